"""Taskline's client library for agents and scripts.

Imports only ``taskline.domain`` and httpx, so it works without the server's dependencies::

    from taskline.sdk import Client, NotFound

    with Client("http://127.0.0.1:8000") as taskline:
        page = taskline.list_tasks(status="in_progress")

Errors form one tree under :class:`TasklineClientError` (drawn in ``_errors.py``).
"""

from taskline.sdk._client import DEFAULT_TIMEOUT, DEFAULT_URL, Client
from taskline.sdk._errors import (
    ApiError,
    ClientClosedError,
    Conflict,
    InvalidRequest,
    NotFound,
    ServerUnreachableError,
    TasklineClientError,
    UnexpectedResponseError,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "ApiError",
    "Client",
    "ClientClosedError",
    "Conflict",
    "InvalidRequest",
    "NotFound",
    "ServerUnreachableError",
    "TasklineClientError",
    "UnexpectedResponseError",
]

# Show the public path in reprs and tracebacks (taskline.sdk.NotFound, not ..._errors.NotFound).
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type):
        _value.__module__ = __name__
del _name, _value

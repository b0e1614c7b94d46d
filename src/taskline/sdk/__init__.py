"""Taskline's client library for agents and scripts.

Imports only ``taskline.domain``, httpx and websockets, so it works without the server's
dependencies. Two faces share every REST endpoint: :class:`Client` (blocking) and
:class:`AsyncClient`::

    from taskline.sdk import Client, NotFound

    with Client("http://127.0.0.1:8000") as taskline:
        page = taskline.list_tasks(status="in_progress")

An agent reports its work through a run (events batched over one WebSocket, acknowledged,
re-sent after a lost connection) and people follow it with a subscription::

    async with AsyncClient(url) as taskline:
        async with taskline.run(task_id, agent="agent_reviewer") as run:
            await run.progress(0.5, "Halfway")

        async with taskline.subscribe(task_id, since=0) as events:
            async for event in events:
                ...

Errors form one tree under :class:`TasklineClientError` (drawn in ``_errors.py``).

A server that checks who asks wants a token (``Authorization: Bearer tl_…``). Give it as
``token=``; without one a client uses ``TASKLINE_TOKEN``, else the token ``taskline login``
stored for that server (:func:`credentials_path`), else none. A missing or refused token
(401) or a role that may not do something (403) is a :class:`TasklineAuthError`, raised by
REST calls, runs, agent connections and subscriptions alike (a WebSocket closed with 4401 or
4403 is not retried)::

    with Client(url, token=os.environ["MY_TOKEN"]) as taskline:
        ...

Changes to a task can be made from the version read (``if_match=``: a task, its version,
or ``"*"``); if someone changed it since, :class:`PreconditionFailed` is raised and nothing
is overwritten::

    task = taskline.get_task(task_id)
    taskline.update_task(task.id, if_match=task, title="Better title")
"""

from taskline.sdk._async_client import AgentConnection, AsyncClient
from taskline.sdk._client import Client
from taskline.sdk._config import (
    CLIENT_DEFAULT,
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    Backoff,
    DeliveryOptions,
)
from taskline.sdk._credentials import (
    credentials_path,
    remove_token,
    resolve_token,
    server_key,
    store_token,
    stored_token,
)
from taskline.sdk._errors import (
    ApiError,
    ApprovalRejected,
    ClientClosedError,
    Conflict,
    ConnectionReplacedError,
    CredentialsError,
    CursorVoidError,
    DeliveryTimeoutError,
    EventRejected,
    InvalidEvent,
    InvalidRequest,
    LeaseLost,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    RequestNotAnswered,
    RunStateError,
    ServerUnreachableError,
    TasklineAuthError,
    TasklineClientError,
    UnexpectedResponseError,
)
from taskline.sdk._models import (
    ClaimedTask,
    Command,
    Decision,
    EventPage,
    HumanMessage,
    IssuedToken,
    MessagePosted,
    TaskControl,
    TaskState,
)
from taskline.sdk._run import (
    ApprovalGate,
    MessageStream,
    Run,
    RunPhase,
    RunState,
    Step,
    SubtaskRef,
    ToolCall,
)
from taskline.sdk._subscription import Subscription, SubscriptionState
from taskline.sdk._sync import SyncMessageStream, SyncRun, SyncSubscription

__all__ = [
    "CLIENT_DEFAULT",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "AgentConnection",
    "ApiError",
    "ApprovalGate",
    "ApprovalRejected",
    "AsyncClient",
    "Backoff",
    "ClaimedTask",
    "Client",
    "ClientClosedError",
    "Command",
    "Conflict",
    "ConnectionReplacedError",
    "CredentialsError",
    "CursorVoidError",
    "Decision",
    "DeliveryOptions",
    "DeliveryTimeoutError",
    "EventPage",
    "EventRejected",
    "HumanMessage",
    "InvalidEvent",
    "InvalidRequest",
    "IssuedToken",
    "LeaseLost",
    "MessagePosted",
    "MessageStream",
    "NotFound",
    "PreconditionFailed",
    "PreconditionRequired",
    "RequestNotAnswered",
    "Run",
    "RunPhase",
    "RunState",
    "RunStateError",
    "ServerUnreachableError",
    "Step",
    "Subscription",
    "SubscriptionState",
    "SubtaskRef",
    "SyncMessageStream",
    "SyncRun",
    "SyncSubscription",
    "TaskControl",
    "TaskState",
    "TasklineAuthError",
    "TasklineClientError",
    "ToolCall",
    "UnexpectedResponseError",
    "credentials_path",
    "remove_token",
    "resolve_token",
    "server_key",
    "store_token",
    "stored_token",
]

# Show the public path in reprs and tracebacks (taskline.sdk.NotFound, not ..._errors.NotFound).
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type):
        _value.__module__ = __name__
del _name, _value

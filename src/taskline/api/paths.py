"""Path parameters that name a resource: ``{task_id:id}`` in a route's path, and its type.

A route path writes an id parameter as ``{task_id:id}``: the :class:`IdConvertor` makes the
route match only when that segment is an id (:data:`~taskline.domain.ids.ID_PATTERN`). A
segment that cannot be an id names nothing, so it answers what any unknown path does: 404, or
405 with ``Allow`` when another route has that path (``PUT /api/v1/tasks/import``). The
parameter's type (:data:`TaskId`, …) puts the same pattern in the OpenAPI document.

Importing this module registers the convertor with Starlette (idempotent: the same name, the
same convertor).
"""

import re
from typing import Annotated

from fastapi import Path
from starlette.convertors import Convertor, register_url_convertor

from taskline.domain.ids import ID_REGEX, ID_SCHEMA_PATTERN

__all__ = [
    "AgentId",
    "ClientId",
    "IdConvertor",
    "RequestId",
    "SectionId",
    "SubtaskId",
    "TaskId",
    "WebhookId",
]


class IdConvertor(Convertor[str]):
    """Matches a path segment that is a whole id (``task_7kq2m9x4ab``).

    Starlette ends a route's pattern with ``$``, which also matches before a final newline;
    the lookahead keeps ``/tasks/task_abc%0A`` from reaching the route as ``task_abc``.
    """

    regex = rf"{ID_REGEX}(?!\n)"
    _whole = re.compile(rf"{ID_REGEX}\Z")

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        if not self._whole.match(value):
            raise ValueError(f"not an id: {value!r}")
        return value


register_url_convertor("id", IdConvertor())


def _id(what: str, example: str) -> object:
    return Path(
        pattern=ID_SCHEMA_PATTERN,
        max_length=80,
        description=f"The {what}'s id.",
        examples=[example],
    )


TaskId = Annotated[str, _id("task", "task_7kq2m9x4ab")]
SectionId = Annotated[str, _id("section", "sec_3kpsbrd3w6")]
SubtaskId = Annotated[str, _id("subtask", "sub_78vkgxq5rc")]
AgentId = Annotated[str, _id("agent", "agent_reviewer")]
ClientId = Annotated[str, _id("client", "client_abc123")]
RequestId = Annotated[str, _id("request", "req_5w9dq2mk7c")]
WebhookId = Annotated[str, _id("webhook", "whk_7kq2m9x4ab")]

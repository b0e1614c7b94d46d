"""Conditional changes over HTTP: the ``If-Match`` a change to a task carries, and the
``ETag`` its answer sends (the task's version, see :mod:`taskline.domain.preconditions`).

Every route that changes a task's document (``PUT``, ``PATCH``, ``DELETE`` of the task, and
the section and subtask routes) takes :data:`IfMatchDep`; with ``require_if_match`` set, a
change without ``If-Match`` is refused with 428 before anything else is looked at.
"""

from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response

from taskline.api.deps import SettingsDep
from taskline.api.responses import problem_doc
from taskline.domain.errors import PreconditionRequiredError
from taskline.domain.preconditions import IF_MATCH_REGEX, IfMatch, etag

__all__ = ["CONDITIONAL", "IfMatchDep", "send_etag"]

#: The answers a conditional change adds, for the OpenAPI document of its route.
CONDITIONAL: dict[int | str, dict[str, Any]] = {
    412: problem_doc(
        "If-Match names a version the task is no longer at (problem details "
        "with current_version; ETag: the current one)."
    ),
    428: problem_doc("The server requires If-Match on changes (TASKLINE_REQUIRE_IF_MATCH)."),
}


async def _if_match(
    request: Request,
    settings: SettingsDep,
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description='Change only if the task is still at this version: its ETag ("3"), '
            "or * for any version. A stale one is a 412.",
            json_schema_extra={"pattern": f"^([ \\t]*|{IF_MATCH_REGEX})$"},
        ),
    ] = None,
) -> IfMatch | None:
    if if_match is None or not if_match.strip(" \t"):
        # an empty field is no condition: the same as none (RFC 9110 §5.3: an empty field
        # value is as if the field were not sent)
        if settings.require_if_match:
            task_id = request.path_params.get("task_id", "{id}")
            raise PreconditionRequiredError(
                "this server requires If-Match on changes to a task: send the ETag of the "
                f"version you read (GET /api/v1/tasks/{task_id}), or * to change whatever "
                "version is current"
            )
        return None
    # repeated If-Match fields are one list (RFC 9110 §5.3)
    return IfMatch.parse(", ".join(request.headers.getlist("if-match")))


IfMatchDep = Annotated[IfMatch | None, Depends(_if_match)]


def send_etag(response: Response, version: int) -> None:
    """Put the task's version on the answer as its ``ETag``."""
    response.headers["ETag"] = etag(version)

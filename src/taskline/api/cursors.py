"""Reading the resume cursor a client sends in ``Last-Event-ID`` (SSE and AG-UI streams)."""

import re
from typing import Annotated

from fastapi import Header

from taskline.domain.errors import InvalidInputError

__all__ = ["MAX_SEQ", "LastEventId", "last_event_id_cursor"]

#: The largest seq a cursor may name (both databases store seqs as signed 64-bit integers).
MAX_SEQ = 2**63 - 1
_CURSOR = re.compile(r"[0-9]{1,18}")
#: The ``Last-Event-ID`` header; its pattern in the OpenAPI document is what
#: :func:`last_event_id_cursor` accepts.
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        description="Resume after this seq (EventSource sends it on reconnect).",
        json_schema_extra={"pattern": "^([0-9]{1,18})?$"},
    ),
]


def last_event_id_cursor(header: str | None) -> int | None:
    """The seq in a ``Last-Event-ID`` header (None when absent or empty).

    Raises:
        InvalidInputError: it is not a seq, decimal digits only (422 naming the header).
    """
    if not header:
        return None
    if _CURSOR.fullmatch(header) is None:
        raise InvalidInputError(
            "Last-Event-ID must be a seq (a non-negative integer)", field="Last-Event-ID"
        )
    return int(header)

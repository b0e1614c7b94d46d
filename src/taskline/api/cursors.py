"""Reading the resume cursor a client sends in ``Last-Event-ID`` (SSE and AG-UI streams)."""

from taskline.domain.errors import InvalidInputError

__all__ = ["last_event_id_cursor"]


def last_event_id_cursor(header: str | None) -> int | None:
    """The seq in a ``Last-Event-ID`` header (None when absent or empty).

    Raises:
        InvalidInputError: it is not a non-negative integer (422 naming the header).
    """
    if not header:
        return None
    try:
        cursor = int(header)
    except ValueError:
        raise InvalidInputError(
            "Last-Event-ID must be a seq (integer)", field="Last-Event-ID"
        ) from None
    if cursor < 0:
        raise InvalidInputError("Last-Event-ID must be >= 0", field="Last-Event-ID")
    return cursor

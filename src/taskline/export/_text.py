"""Small text helpers shared by the writers: timestamps and file-name-safe strings."""

import re
from datetime import UTC, datetime

__all__ = ["compact_timestamp", "iso_timestamp", "safe_segment"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_SEGMENT = 80


def iso_timestamp(value: datetime) -> str:
    """Return ``value`` as ISO 8601, in UTC with a ``Z`` suffix when it is aware.

    Matches pydantic's JSON rendering of UTC datetimes (``2026-01-02T03:04:05.123000Z``;
    no fraction when the microseconds are zero). A naive datetime is written as is, with no
    suffix, since its zone is unknown.
    """
    if value.utcoffset() is None:
        return value.isoformat()
    return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def compact_timestamp(value: datetime) -> str:
    """Return ``value`` (converted to UTC when aware) as ``YYYYmmddTHHMMSSZ``."""
    if value.utcoffset() is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y%m%dT%H%M%SZ")


def safe_segment(text: str, *, fallback: str = "export") -> str:
    """Reduce ``text`` to ``[A-Za-z0-9_-]`` characters, for use in a file name.

    Runs of other characters are dropped, the result is cut to 80 characters, and
    ``fallback`` is returned when nothing is left (so ``"../.."`` never yields an empty name).
    """
    return _UNSAFE.sub("", text)[:_MAX_SEGMENT] or fallback

"""Short, readable, prefixed identifiers such as ``task_7kq2m9x4ab``."""

import re
import secrets

__all__ = ["ID_PATTERN", "ID_REGEX", "ID_SCHEMA_PATTERN", "new_id"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32: no i, l, o, u
_LENGTH = 10  # 50 bits of randomness: collisions are negligible for a self-hosted board

#: What an id is, unanchored (for a path convertor, which anchors it itself).
ID_REGEX = r"[a-z]+_[0-9a-z]{1,64}"
#: The whole string must be an id: ``\Z``, not ``$``, which also matches before a final newline
#: (``"task_abc\n"`` is not an id). ``ID_PATTERN.match(value)`` is a full match.
ID_PATTERN = re.compile(rf"{ID_REGEX}\Z")
#: The same, as a JSON Schema ``pattern`` (ECMA-262, where ``$`` is the end of the string).
ID_SCHEMA_PATTERN = f"^{ID_REGEX}$"


def new_id(prefix: str) -> str:
    """Return a fresh identifier ``{prefix}_{10 random base32 characters}``."""
    bits = secrets.randbits(5 * _LENGTH)  # one call: ids are made on every event's hot path
    return f"{prefix}_{''.join(_ALPHABET[(bits >> (5 * i)) & 31] for i in range(_LENGTH))}"

"""Short, readable, prefixed identifiers such as ``task_7kq2m9x4ab``."""

import re
import secrets

__all__ = ["ID_PATTERN", "new_id"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32: no i, l, o, u
_LENGTH = 10  # 50 bits of randomness: collisions are negligible for a self-hosted board

ID_PATTERN = re.compile(r"^[a-z]+_[0-9a-z]{1,64}$")


def new_id(prefix: str) -> str:
    """Return a fresh identifier ``{prefix}_{10 random base32 characters}``."""
    bits = secrets.randbits(5 * _LENGTH)  # one call: ids are made on every event's hot path
    return f"{prefix}_{''.join(_ALPHABET[(bits >> (5 * i)) & 31] for i in range(_LENGTH))}"

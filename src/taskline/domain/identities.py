"""People and credentials: the records behind an :class:`~taskline.domain.actors.Actor`.

A *credential* is a secret that stands for a principal, shown once and stored only as its
SHA-256: an API token (``tl_…``, for programs), a browser session (the sign-in cookie), or a
one-time sign-in link (printed at first start). The secrets are 256 random bits, so a fast
hash is the right one for them; passwords are hashed with argon2 (memory-hard) instead.
"""

import hashlib
import secrets
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from taskline.domain.actors import Role

__all__ = [
    "SECRET_PREFIX",
    "Credential",
    "CredentialKind",
    "IssuedCredential",
    "User",
    "hash_secret",
    "new_secret",
]

#: Every secret Taskline issues starts with this, so scanners and people can recognise one.
SECRET_PREFIX = "tl_"


class CredentialKind(StrEnum):
    TOKEN = "token"  #: an API token (Authorization: Bearer)
    SESSION = "session"  #: a browser's sign-in cookie
    LINK = "link"  #: a one-time sign-in link; used once, it becomes a session


def new_secret() -> str:
    """A fresh secret: ``tl_`` and 43 url-safe characters (256 random bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """How a secret is stored and looked up (hex SHA-256)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class User(BaseModel):
    """A person who can sign in."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    role: Role
    disabled: bool = False
    has_password: bool = False
    created_at: datetime


class Credential(BaseModel):
    """A credential as listed (never its secret)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: CredentialKind
    name: str
    role: Role = Field(description="For a person's credential: the person's role when issued.")
    user_id: str | None = None
    agent_id: str | None = None
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class IssuedCredential(Credential):
    """A credential just issued: the only time its secret is shown."""

    secret: str

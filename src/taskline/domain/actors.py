"""Who is doing something: the actor every change is made by and every event records.

An actor is a person, an agent, an API token, the system (the server itself: retention, lease
expiry, the demo, an agent's connection coming and going), or anonymous (a request no one
signed). Its text form, stored on each event as ``actor``, is ``kind:id`` (``person:usr_ana``,
``agent:agent_review``, ``system:hub``) or just ``anonymous``.

An actor also carries the :class:`Role` it acts with (``None`` for the system, whose parts are
never refused, and for anonymous callers of a server that checks who asks). The role is not
part of the text form and not stored: what an event records is who, not with what rights.
"""

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Self

__all__ = ["Actor", "ActorKind", "Role"]


class ActorKind(StrEnum):
    PERSON = "person"  #: a signed-in person (or their personal token)
    AGENT = "agent"  #: an agent, by its agent id
    TOKEN = "token"  #: an API token not bound to a person or an agent
    SYSTEM = "system"  #: the server itself; the id names the part (hub, retention, demo)
    ANONYMOUS = "anonymous"  #: nobody signed the request


class Role(StrEnum):
    """What a principal may do (the table is in :mod:`taskline.domain.access`)."""

    ADMIN = "admin"
    MEMBER = "member"
    AGENT = "agent"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Actor:
    """An actor (see the module docstring); build one with the class methods."""

    kind: ActorKind
    id: str | None = None
    role: Role | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return self.kind.value if self.id is None else f"{self.kind.value}:{self.id}"

    @classmethod
    def anonymous(cls, role: Role | None = None) -> Self:
        """Nobody signed the request; ``role`` is what such callers may do (a server run
        without authentication gives them ``admin``; a checking one, nothing)."""
        return cls(ActorKind.ANONYMOUS, None, role)

    @classmethod
    def system(cls, part: str) -> Self:
        """The server itself; ``part`` names what acts (``hub``, ``retention``, ``demo``)."""
        return cls(ActorKind.SYSTEM, part)

    @classmethod
    def agent(cls, agent_id: str, role: Role | None = Role.AGENT) -> Self:
        return cls(ActorKind.AGENT, agent_id, role)

    @classmethod
    def person(cls, person_id: str, role: Role | None = None) -> Self:
        return cls(ActorKind.PERSON, person_id, role)

    @classmethod
    def token(cls, token_id: str, role: Role | None = None) -> Self:
        """An API token bound to neither a person nor an agent."""
        return cls(ActorKind.TOKEN, token_id, role)

    def with_role(self, role: Role | None) -> Self:
        """The same actor acting with ``role``."""
        return replace(self, role=role)

    @classmethod
    def parse(cls, text: str) -> Self:
        """The actor whose text form is ``text``; raises ``ValueError`` for anything else."""
        kind, _, ident = text.partition(":")
        actor = cls(ActorKind(kind), ident or None)
        if (actor.kind == ActorKind.ANONYMOUS) != (actor.id is None):
            raise ValueError(f"not an actor: {text!r}")
        return actor

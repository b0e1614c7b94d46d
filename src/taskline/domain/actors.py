"""Who is doing something: the actor every change is made by and every event records.

An actor is a person, an agent, an API token, the system (the server itself: retention, lease
expiry, the demo, an agent's connection coming and going), or anonymous (a request no one
signed). Its text form, stored on each event as ``actor``, is ``kind:id`` (``person:usr_ana``,
``agent:agent_review``, ``system:hub``) or just ``anonymous``.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Self

__all__ = ["Actor", "ActorKind"]


class ActorKind(StrEnum):
    PERSON = "person"  #: a signed-in person (or their personal token)
    AGENT = "agent"  #: an agent, by its agent id
    TOKEN = "token"  #: an API token not bound to a person or an agent
    SYSTEM = "system"  #: the server itself; the id names the part (hub, retention, demo)
    ANONYMOUS = "anonymous"  #: nobody signed the request


@dataclass(frozen=True, slots=True)
class Actor:
    """An actor (see the module docstring); build one with the class methods."""

    kind: ActorKind
    id: str | None = None

    def __str__(self) -> str:
        return self.kind.value if self.id is None else f"{self.kind.value}:{self.id}"

    @classmethod
    def anonymous(cls) -> Self:
        return cls(ActorKind.ANONYMOUS)

    @classmethod
    def system(cls, part: str) -> Self:
        """The server itself; ``part`` names what acts (``hub``, ``retention``, ``demo``)."""
        return cls(ActorKind.SYSTEM, part)

    @classmethod
    def agent(cls, agent_id: str) -> Self:
        return cls(ActorKind.AGENT, agent_id)

    @classmethod
    def person(cls, person_id: str) -> Self:
        return cls(ActorKind.PERSON, person_id)

    @classmethod
    def parse(cls, text: str) -> Self:
        """The actor whose text form is ``text``; raises ``ValueError`` for anything else."""
        kind, _, ident = text.partition(":")
        actor = cls(ActorKind(kind), ident or None)
        if (actor.kind == ActorKind.ANONYMOUS) != (actor.id is None):
            raise ValueError(f"not an actor: {text!r}")
        return actor

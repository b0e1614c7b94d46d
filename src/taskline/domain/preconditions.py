"""Optimistic concurrency: a task's version, its entity tag, and the ``If-Match`` condition.

Every committed change to a task's document (its fields, tags, sections, subtasks; also what
agents' events change: progress, status, ``updated_at``) bumps the task's ``version``. The
REST API sends it as a strong entity tag, ``ETag: "<version>"``. A change that carries
``If-Match`` is applied only while the task is still at a version it lists (``*``: at any
version). The store checks it in the statement that takes the task for the change
(``UPDATE … WHERE version IN (…)``, see ``TaskStore.claim``), so two changes made from the
same version can never both pass.
"""

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

from taskline.domain.errors import InvalidInputError

__all__ = ["IF_MATCH_REGEX", "IfMatch", "Versioned", "etag"]

T = TypeVar("T")

#: One entity tag (RFC 9110 §8.8.3): optional ``W/``, then a quoted opaque tag of visible ASCII
#: characters other than ``"`` (obs-text, bytes 0x80-0xFF, is not taken).
_ETAG = r'(W/)?"[\x21\x23-\x7e]*"'
_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e]*)"')
#: A whole ``If-Match`` value: ``*``, or a comma-separated list of entity tags (empty list
#: elements and spaces or tabs around the commas allowed, RFC 9110 §5.6.1). The parser and the
#: OpenAPI document use this one definition, so what the document allows is what is accepted.
IF_MATCH_REGEX = rf"[ \t]*(\*|[ \t,]*{_ETAG}([ \t]*,[ \t,]*{_ETAG})*[ \t,]*)[ \t]*"
_IF_MATCH = re.compile(IF_MATCH_REGEX)
_FIELD = "If-Match"


def _is_version(tag: str) -> bool:
    """Whether an opaque tag could be one of our versions (a positive 32-bit integer)."""
    return tag.isascii() and tag.isdecimal() and len(tag) <= 10 and 0 < int(tag) < 2**31


def etag(version: int) -> str:
    """The strong entity tag of ``version``: ``"7"``."""
    return f'"{version}"'


@dataclass(frozen=True, slots=True)
class IfMatch:
    """What a change requires of the task's version: one of ``versions``, or any (``*``).

    Comparison is strong (RFC 9110 §13.1.1): a weak tag (``W/"3"``) never matches; neither
    does a tag that is not one of ours. ``weak`` remembers that weak tags were sent, so the
    refusal can say why.
    """

    versions: frozenset[int] = frozenset()
    any: bool = False
    weak: bool = False

    @classmethod
    def parse(cls, header: str) -> "IfMatch":
        """Read an ``If-Match`` field value: ``*`` or a comma-separated list of entity tags.

        Raises:
            InvalidInputError: not ``*`` and not a list of quoted tags (``3`` instead of
                ``"3"``, say), naming the field ``If-Match``.
        """
        if _IF_MATCH.fullmatch(header) is None:
            if not header.strip(" \t,"):
                raise InvalidInputError("If-Match is empty: send * or an entity tag", field=_FIELD)
            raise InvalidInputError(
                f'If-Match must be * or entity tags such as "3" (quotes included), '
                f"as the ETag header gives them; got {header!r}",
                field=_FIELD,
            )
        if header.strip(" \t") == "*":
            return cls(any=True)
        versions: set[int] = set()
        weak = False
        for match in _TAG.finditer(header):
            if match.group(1):
                weak = True
            elif _is_version(match.group(2)):
                versions.add(int(match.group(2)))
        return cls(versions=frozenset(versions), weak=weak)

    @classmethod
    def version(cls, version: int) -> "IfMatch":
        """Require exactly ``version``."""
        return cls(versions=frozenset({version}))

    def and_version(self, version: int) -> "IfMatch":
        """Require this and also ``version`` (a document's own ``version`` field)."""
        if self.any:
            return IfMatch.version(version)
        return IfMatch(versions=self.versions & {version}, weak=self.weak)

    def allows(self, version: int) -> bool:
        return self.any or version in self.versions

    def describe(self) -> str:
        """What was required, for a refusal: ``version 3``, ``one of versions 3, 4``."""
        if self.any:
            return "any version"
        if not self.versions:
            reason = (
                "weak entity tags (W/...) never match If-Match"
                if self.weak
                else "the entity tags sent are not versions of it"
            )
            return f"a version the request names ({reason})"
        if len(self.versions) == 1:
            return f"version {next(iter(self.versions))}"
        return "one of versions " + ", ".join(str(v) for v in sorted(self.versions))


@dataclass(frozen=True, slots=True)
class Versioned(Generic[T]):
    """What a change to a part of a task returns (a section, a subtask, a list of them),
    with the version the task is at after it."""

    value: T
    version: int

"""Which folders the built-in agent may review, and what it may read inside them.

The rule, in one place:

- A review is allowed only for a folder that *is* one of the review roots or lies under one,
  compared after resolving (``~`` expanded, ``..`` and symbolic links followed): a path that
  resolves out of every root (``/etc``, ``~``, ``../..``, a link out of a root) is refused.
- A relative request is taken relative to the first root. When its first part is the name
  of a root and nothing of that name is under the first root, it is taken relative to that
  root's parent: with the root ``/srv/docs``, ``guide`` and ``docs/guide`` both name
  ``/srv/docs/guide``, and ``docs`` names the root itself.
- Hidden names (starting with ``.``) below a root are refused, unless hidden files are
  allowed (a root may itself be hidden: it was configured so).
- While walking a folder, an entry whose resolved path leaves that folder (a link out) is
  not listed or read, and hidden entries are skipped unless allowed
  (:func:`~taskline.agent.files.list_files`, :func:`~taskline.agent.files.read_document`).

Refusals (:class:`FolderRefused`) name the request as it was given and the roots as they were
configured, nothing the file system told (not whether the path exists, nor where it resolves).

Only the standard library: the server's settings are passed in by the caller.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FolderRefused",
    "ReviewRoots",
    "confine",
    "has_hidden_part",
    "is_hidden",
    "permitted",
    "within",
]


def is_hidden(name: str) -> bool:
    """Whether a file or folder name is hidden (starts with ``.``)."""
    return name.startswith(".")


def within(path: Path, root: Path) -> bool:
    """Whether ``path`` is ``root`` or under it (both already resolved)."""
    return path == root or path.is_relative_to(root)


def has_hidden_part(path: Path, root: Path) -> bool:
    """Whether ``path`` (under ``root``, both resolved) has a hidden name below ``root``."""
    return any(is_hidden(part) for part in path.relative_to(root).parts)


def permitted(path: Path, root: Path, *, hidden: bool = False) -> bool:
    """Whether the resolved ``path`` may be read when reviewing the resolved ``root``: it is
    ``root`` or under it, with no hidden name below ``root`` unless ``hidden``."""
    return within(path, root) and (hidden or not has_hidden_part(path, root))


@dataclass(frozen=True, slots=True)
class ReviewRoots:
    """The folders the built-in agent may review: ``names`` as configured (what refusals
    show), ``paths`` resolved (what is compared), in the same order."""

    names: tuple[str, ...]
    paths: tuple[Path, ...]

    @classmethod
    def of(cls, roots: Sequence[str | os.PathLike[str]], *, default: Path) -> "ReviewRoots":
        """The roots ``roots`` (``~`` expanded; relative ones from the current directory),
        or ``default`` alone (named by its folder name) when ``roots`` is empty."""
        if not roots:
            return cls((default.name,), (default.expanduser().resolve(),))
        names = tuple(os.fspath(root) for root in roots)
        return cls(names, tuple(Path(name).expanduser().resolve() for name in names))


class FolderRefused(ValueError):
    """A folder the built-in agent may not review. ``str()`` says why in one sentence that
    names only the request (as given) and the roots (as configured)."""

    def __init__(self, requested: str, roots: ReviewRoots, *, hidden: bool) -> None:
        shown = repr(requested[:200])
        allowed = ", ".join(roots.names)
        if hidden:
            message = (
                f"{shown} is hidden or inside a hidden folder, and the built-in agent does not "
                "review hidden files and folders on this server"
            )
        else:
            message = (
                f"{shown} is not a folder the built-in agent may review: it reviews only "
                f"{allowed} and the folders under {'it' if len(roots.names) == 1 else 'them'} "
                f"(a relative path is taken relative to {roots.names[0]})"
            )
        super().__init__(message)
        self.requested = requested
        self.hidden = hidden


def _candidates(requested: Path, roots: ReviewRoots) -> list[Path]:
    if requested.is_absolute():
        return [requested]
    found = [roots.paths[0] / requested]
    first = requested.parts[0] if requested.parts else ""
    found += [root.parent / requested for root in roots.paths if root.name == first]
    return found


def confine(requested: str, roots: ReviewRoots, *, hidden: bool = False) -> Path | None:
    """The resolved path ``requested`` names if it is a root or under one (see the module
    docstring), or None if nothing exists there; whether it is a folder is for the caller.

    An existing path is resolved as the system resolves it (a ``..`` after a missing name
    does not make ``missing/..`` exist); the refusal of a missing path is decided from its
    lexical resolution, so it does not depend on what exists out of the roots.

    Raises:
        FolderRefused: it resolves out of every root, it has a hidden name below each root it
            is under (unless ``hidden``), or it cannot be resolved (``~nobody``, a link loop).
    """
    try:
        options = _candidates(Path(requested).expanduser(), roots)
        existing = next((path for path in options if os.path.exists(path)), None)
        chosen = (existing or options[0]).resolve(strict=existing is not None)
    except (OSError, RuntimeError, ValueError):  # no such user, link loop, NUL byte, a race
        raise FolderRefused(requested, roots, hidden=False) from None
    under = [root for root in roots.paths if within(chosen, root)]
    if not under:
        raise FolderRefused(requested, roots, hidden=False)
    if not any(permitted(chosen, root, hidden=hidden) for root in under):
        raise FolderRefused(requested, roots, hidden=True)
    return chosen if existing is not None else None

"""The review of a folder of documents: one :class:`FileReview` per file, one :class:`FolderReview`.

:func:`review_path` does the whole review in one call (no network, no SDK); the built-in
agent (:mod:`taskline.agent.runner`) does the same steps one file at a time, as tool calls,
through :func:`~taskline.agent.files.list_files`, :func:`~taskline.agent.files.read_document`
and :func:`review_document`.

Confidence is the share of listed files whose bytes could be read (text, empty and binary
files count; unreadable and too-large ones do not). An empty folder has confidence 1.0:
nothing in it was left unread.
"""

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from taskline.agent.analysis import (
    Heading,
    Link,
    Marker,
    count_words,
    find_headings,
    find_links,
    find_markers,
    is_markdown,
)
from taskline.agent.confine import permitted
from taskline.agent.files import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES,
    Document,
    FileKind,
    list_files,
    read_document,
)

__all__ = [
    "LARGEST_COUNT",
    "BrokenLink",
    "FileReview",
    "FolderReview",
    "folder_review",
    "review_document",
    "review_path",
]

#: How many files the "largest files" list shows.
LARGEST_COUNT = 5


@dataclass(frozen=True, slots=True)
class BrokenLink:
    """A relative link in ``path`` (line ``line``) whose ``target`` names no file or folder."""

    path: str
    line: int
    target: str


@dataclass(frozen=True, slots=True)
class FileReview:
    """What the review found in one file.

    Only ``text`` files have words, headings (Markdown only), markers and links (Markdown
    only); for the other kinds those stay empty and ``detail`` says why.
    """

    path: str
    kind: FileKind
    size: int
    words: int = 0
    headings: tuple[Heading, ...] = ()
    markers: tuple[Marker, ...] = ()
    links_checked: int = 0
    broken_links: tuple[BrokenLink, ...] = ()
    detail: str | None = None

    @property
    def skipped(self) -> bool:
        """Whether the file was not analysed as text (binary, unreadable, too large)."""
        return self.kind in {FileKind.BINARY, FileKind.UNREADABLE, FileKind.TOO_LARGE}

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest (counts, no content): what a tool call or state patch shows."""
        digest: dict[str, Any] = {
            "path": self.path,
            "kind": self.kind.value,
            "size": self.size,
            "words": self.words,
            "headings": len(self.headings),
            "todo": sum(m.marker == "TODO" for m in self.markers),
            "fixme": sum(m.marker == "FIXME" for m in self.markers),
            "broken_links": len(self.broken_links),
        }
        if self.detail is not None:
            digest["detail"] = self.detail
        return digest


@dataclass(frozen=True, slots=True)
class FolderReview:
    """The review of a folder: its files in listing order, and folder-level figures.

    ``truncated`` means the folder had more than ``max_files`` files and only the first ones
    were reviewed; ``unlisted_dirs`` are sub-folders that could not be listed.
    """

    root: str
    files: tuple[FileReview, ...] = ()
    truncated: bool = False
    max_files: int = DEFAULT_MAX_FILES
    unlisted_dirs: tuple[tuple[str, str], ...] = field(default=())

    def count(self, kind: FileKind) -> int:
        """How many files are of ``kind``."""
        return sum(f.kind is kind for f in self.files)

    @property
    def files_read(self) -> int:
        """Files whose bytes could be read (text, empty, binary)."""
        return sum(f.kind.was_read for f in self.files)

    @property
    def confidence(self) -> float:
        """Files read / files listed, in [0, 1]; 1.0 when there are no files."""
        return self.files_read / len(self.files) if self.files else 1.0

    @property
    def words(self) -> int:
        return sum(f.words for f in self.files)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def headings(self) -> int:
        return sum(len(f.headings) for f in self.files)

    @property
    def markers(self) -> list[Marker]:
        """Every TODO/FIXME finding, file by file in listing order."""
        return [m for f in self.files for m in f.markers]

    def marker_count(self, marker: str) -> int:
        """How many lines carry ``marker`` (``"TODO"`` or ``"FIXME"``)."""
        return sum(m.marker == marker for m in self.markers)

    @property
    def broken_links(self) -> list[BrokenLink]:
        return [b for f in self.files for b in f.broken_links]

    @property
    def skipped(self) -> list[FileReview]:
        """Files not analysed as text: binary, unreadable, too large."""
        return [f for f in self.files if f.skipped]

    def largest(self, count: int = LARGEST_COUNT) -> list[FileReview]:
        """The ``count`` largest files by size, largest first (ties by path); sizeless skipped."""
        sized = [f for f in self.files if f.size > 0]
        return sorted(sized, key=lambda f: (-f.size, f.path))[:count]

    def find(self, path: str) -> FileReview | None:
        """The review of the file at ``path`` (relative, POSIX), if it was reviewed."""
        return next((f for f in self.files if f.path == path), None)

    def totals(self) -> dict[str, Any]:
        """Folder-level figures, JSON-ready (what the agent keeps in its shared state)."""
        return {
            "files": len(self.files),
            "read": self.files_read,
            **{kind.value: self.count(kind) for kind in FileKind},
            "words": self.words,
            "bytes": self.total_bytes,
            "headings": self.headings,
            "todo": self.marker_count("TODO"),
            "fixme": self.marker_count("FIXME"),
            "broken_links": len(self.broken_links),
            "confidence": round(self.confidence, 4),
        }


def _link_target(root: Path, source: str, link: Link) -> Path:
    if link.path.startswith("/"):
        return root / link.path.lstrip("/")
    return root / PurePosixPath(source).parent / link.path


def _checkable(boundary: Path | None, target: Path, *, hidden: bool) -> bool:
    """Whether a link's target may be looked up: it stays in the folder under review (and is
    not hidden unless ``hidden``), so the review tells nothing about files outside it."""
    if boundary is None:
        return False
    try:
        return permitted(target.resolve(), boundary, hidden=hidden)
    except (OSError, RuntimeError, ValueError):  # a link loop, a NUL byte
        return False


def review_document(
    root: str | os.PathLike[str],
    document: Document,
    *,
    markers: Iterable[Marker] | None = None,
    hidden: bool = False,
) -> FileReview:
    """Analyse a document read by :func:`~taskline.agent.files.read_document`.

    For a text file: count words, and for Markdown also list headings and check each
    relative link against the file system (a link to an existing file or folder is fine;
    ``/x`` is resolved from ``root``). A link that leads out of ``root`` (or to a hidden name
    in it, unless ``hidden``) is not checked: it is neither fine nor broken, and not counted
    in ``links_checked``. ``markers`` are the file's TODO/FIXME findings when
    the caller already searched for them; ``None`` searches now. Other kinds are passed
    through with their size and ``detail``.
    """
    if document.kind is not FileKind.TEXT or document.text is None:
        return FileReview(document.path, document.kind, document.size, detail=document.detail)
    text = document.text
    found = tuple(find_markers(document.path, text) if markers is None else markers)
    if not is_markdown(document.path):
        return FileReview(
            document.path, document.kind, document.size, words=count_words(text), markers=found
        )
    base = Path(root)
    try:
        boundary: Path | None = base.resolve()
    except (OSError, RuntimeError):
        boundary = None
    targets = [(link, _link_target(base, document.path, link)) for link in find_links(text)]
    links = [
        (link, target) for link, target in targets if _checkable(boundary, target, hidden=hidden)
    ]
    broken = tuple(
        BrokenLink(document.path, link.line, link.target)
        for link, target in links
        if not os.path.exists(target)
    )
    return FileReview(
        document.path,
        document.kind,
        document.size,
        words=count_words(text),
        headings=tuple(find_headings(text)),
        markers=found,
        links_checked=len(links),
        broken_links=broken,
    )


def review_path(
    path: str | os.PathLike[str],
    *,
    max_files: int = DEFAULT_MAX_FILES,
    max_bytes: int = DEFAULT_MAX_BYTES,
    hidden: bool = False,
) -> FolderReview:
    """Review every file under ``path`` (see :mod:`taskline.agent.files` for the bounds, the
    links not followed and the hidden files skipped unless ``hidden``).

    Raises:
        FolderError: ``path`` does not exist, is not a folder or cannot be listed.
    """
    listing = list_files(path, max_files=max_files, hidden=hidden)
    reviews = [
        review_document(
            listing.root,
            read_document(listing.root, name, max_bytes=max_bytes, hidden=hidden),
            hidden=hidden,
        )
        for name in listing.files
    ]
    return folder_review(
        listing.root,
        reviews,
        truncated=listing.truncated,
        max_files=max_files,
        unlisted_dirs=listing.unlisted_dirs,
    )


def folder_review(
    root: str | os.PathLike[str],
    files: Sequence[FileReview],
    *,
    truncated: bool = False,
    max_files: int = DEFAULT_MAX_FILES,
    unlisted_dirs: Sequence[tuple[str, str]] = (),
) -> FolderReview:
    """Assemble a :class:`FolderReview` (``root`` is shown as given)."""
    return FolderReview(
        os.fspath(root),
        tuple(files),
        truncated=truncated,
        max_files=max_files,
        unlisted_dirs=tuple(unlisted_dirs),
    )

"""Finding and reading the files of a folder under review.

Both steps are bounded and never raise for one bad file: :func:`list_files` stops after
``max_files`` files, and :func:`read_document` reads at most ``max_bytes`` bytes and turns
every ``OSError`` into a :class:`Document` of kind ``unreadable`` with the reason. Only a
root that does not exist, is not a folder or cannot be listed raises (:class:`FolderError`).

Nothing here follows a link to a folder (so a link loop cannot make the walk endless) or
opens anything but a regular file (so a FIFO cannot block the reader).

Both stay inside the folder under review (:mod:`taskline.agent.confine`): an entry whose
resolved path leaves it (a symbolic link out, even to a folder next to it) is neither listed
nor read, and hidden files and folders (a name starting with ``.``) are skipped unless
``hidden=True``. :data:`SKIPPED_DIRS` are never entered.
"""

import errno
import os
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from taskline.agent.confine import has_hidden_part, is_hidden, permitted, within

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FILES",
    "SAMPLE_DOCS",
    "SKIPPED_DIRS",
    "Document",
    "FileKind",
    "FolderError",
    "Listing",
    "check_folder",
    "list_files",
    "read_document",
]

#: Files listed at most; the rest of a larger folder is not reviewed (``Listing.truncated``).
DEFAULT_MAX_FILES = 500
#: Larger files are not read (kind ``too_large``).
DEFAULT_MAX_BYTES = 1_048_576
#: A tiny folder shipped with the package for the demo (``taskline agent run --sample``).
SAMPLE_DOCS = Path(__file__).parent / "sample_docs"
#: Folder names never entered, even when hidden folders are (``hidden=True``).
SKIPPED_DIRS = frozenset({".git", "node_modules", "__pycache__"})


class FolderError(ValueError):
    """The folder to review cannot be reviewed at all: missing, not a folder, not listable.

    ``str()`` is a one-line sentence naming the path; ``reason`` is its second half.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


class FileKind(StrEnum):
    """What reading a file found. Only ``text`` files are analysed."""

    TEXT = "text"  #: UTF-8 text without NUL bytes
    EMPTY = "empty"  #: zero bytes; read, nothing to analyse
    BINARY = "binary"  #: has NUL bytes or is not valid UTF-8; read, not analysed
    UNREADABLE = "unreadable"  #: opening or reading it failed, or it is not a regular file
    TOO_LARGE = "too_large"  #: larger than ``max_bytes``; not read

    @property
    def was_read(self) -> bool:
        """Whether the reader got the file's bytes (what confidence counts)."""
        return self in {FileKind.TEXT, FileKind.EMPTY, FileKind.BINARY}


@dataclass(frozen=True, slots=True)
class Listing:
    """The files of a folder, as POSIX paths relative to ``root``, in walk order.

    The walk visits each folder's entries sorted by name, descending into a sub-folder where
    its name sorts, so the order is stable from run to run.
    """

    root: Path
    files: tuple[str, ...]
    #: More files existed than ``max_files``; only the first ones are listed.
    truncated: bool = False
    #: Sub-folders that could not be listed, with the reason (``("docs/private", "...")``).
    unlisted_dirs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Document:
    """One file as read: its kind, size in bytes and, for ``text``, its content.

    ``detail`` says why a file was not analysed (``"contains NUL bytes"``, ``"broken
    symbolic link"``, ``"Permission denied"``, ...); it is ``None`` for text and empty files.
    """

    path: str
    kind: FileKind
    size: int
    text: str | None = None
    detail: str | None = None


def _resolved(path: str | os.PathLike[str]) -> Path | None:
    """``path`` resolved, or None when that fails (a link loop)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return None


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def check_folder(root: str | os.PathLike[str]) -> Path:
    """Return ``root`` as a :class:`~pathlib.Path` if it is an existing folder.

    Raises:
        FolderError: ``root`` does not exist (``no such folder``) or is not a folder.
    """
    base = Path(root)
    if not base.exists():
        raise FolderError(base, "no such folder")
    if not base.is_dir():
        raise FolderError(base, "not a folder")
    return base


def list_files(
    root: str | os.PathLike[str], *, max_files: int = DEFAULT_MAX_FILES, hidden: bool = False
) -> Listing:
    """List the files under ``root`` recursively, skipping :data:`SKIPPED_DIRS`, hidden files
    and folders (unless ``hidden``) and links that lead out of ``root``.

    Every other entry that is not a folder is listed, links and special files included
    (reading them decides what they are); links to folders inside ``root`` are listed as
    entries, never followed. A link whose target cannot be resolved (a loop) is skipped. A
    sub-folder that cannot be listed is reported in ``unlisted_dirs`` rather than raised.

    Args:
        root: the folder to review.
        max_files: stop after this many files and set ``truncated``; must be at least 1.
        hidden: list hidden files and enter hidden folders too.

    Raises:
        FolderError: ``root`` does not exist, is not a folder, or cannot be listed.
        ValueError: ``max_files`` is below 1.
    """
    if max_files < 1:
        raise ValueError(f"max_files must be at least 1, got {max_files}")
    base = check_folder(root)
    boundary = _resolved(base)
    if boundary is None:
        raise FolderError(base, "cannot be resolved")
    files: list[str] = []
    unlisted: list[tuple[str, str]] = []
    # A stack of (relative folder, entries still to visit) keeps deep trees off the call stack.
    try:
        top = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError as exc:
        raise FolderError(base, f"cannot be listed ({_os_reason(exc)})") from exc
    stack: list[tuple[str, list[os.DirEntry[str]]]] = [("", top[::-1])]
    while stack:
        prefix, pending = stack[-1]
        if not pending:
            stack.pop()
            continue
        entry = pending.pop()
        relative = f"{prefix}{entry.name}"
        if is_hidden(entry.name) and not hidden:
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            is_link = entry.is_symlink()
        except OSError:
            is_dir = is_link = False
        if is_link:
            target = _resolved(entry.path)
            if target is None or not permitted(target, boundary, hidden=hidden):
                continue  # a link out of the folder (or to a hidden entry): not followed
        if not is_dir:
            if len(files) == max_files:
                return Listing(base, tuple(files), truncated=True, unlisted_dirs=tuple(unlisted))
            files.append(relative)
            continue
        if entry.name in SKIPPED_DIRS:
            continue
        try:
            children = sorted(os.scandir(entry.path), key=lambda e: e.name)
        except OSError as exc:
            unlisted.append((relative, _os_reason(exc)))
            continue
        stack.append((f"{relative}/", children[::-1]))
    return Listing(base, tuple(files), unlisted_dirs=tuple(unlisted))


def _kind_of_special(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a link to a folder (not followed)"
    if stat.S_ISFIFO(mode):
        return "not a regular file (a FIFO)"
    if stat.S_ISSOCK(mode):
        return "not a regular file (a socket)"
    return "not a regular file (a device)"


def read_document(
    root: str | os.PathLike[str],
    path: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    hidden: bool = False,
) -> Document:
    """Read ``root/path`` and classify it; never raises for a problem with the file itself.

    - A path that resolves out of ``root`` (a link out, ``..``) or, unless ``hidden``, to a
      hidden name below it is ``unreadable`` and is not opened.
    - A path that cannot be stat'ed or opened (missing, a broken link, permission denied, an
      I/O error) or that is not a regular file (FIFO, socket, device, link to a folder) is
      ``unreadable``, with the reason in ``detail``; nothing that could block is opened.
    - A file larger than ``max_bytes`` is ``too_large`` and is not read.
    - Zero bytes is ``empty``; NUL bytes or invalid UTF-8 make it ``binary``; otherwise it is
      ``text`` (a UTF-8 byte-order mark is dropped).

    ``size`` is the size in bytes from the file system (0 when it cannot be known).

    Note: permission bits do not stop the superuser, so a ``chmod 000`` file is readable when
    running as root; a broken link is a portable way to get an unreadable entry.
    """
    full = Path(root, path)
    boundary, target = _resolved(root), _resolved(full)
    if boundary is None or target is None:
        return Document(path, FileKind.UNREADABLE, 0, detail="a link that cannot be resolved")
    if not within(target, boundary):
        return Document(path, FileKind.UNREADABLE, 0, detail="outside the folder (not followed)")
    if not hidden and has_hidden_part(target, boundary):
        return Document(path, FileKind.UNREADABLE, 0, detail="hidden (not read)")
    try:
        info = target.stat()
    except OSError as exc:
        if exc.errno == errno.ENOENT and full.is_symlink():
            return Document(path, FileKind.UNREADABLE, 0, detail="broken symbolic link")
        return Document(path, FileKind.UNREADABLE, 0, detail=_os_reason(exc))
    if not stat.S_ISREG(info.st_mode):
        return Document(path, FileKind.UNREADABLE, 0, detail=_kind_of_special(info.st_mode))
    if info.st_size > max_bytes:
        detail = f"{info.st_size} bytes, over the {max_bytes}-byte limit"
        return Document(path, FileKind.TOO_LARGE, info.st_size, detail=detail)
    try:
        # the resolved path, not following a link put there since it was checked
        descriptor = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(descriptor, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        return Document(path, FileKind.UNREADABLE, info.st_size, detail=_os_reason(exc))
    if len(data) > max_bytes:  # it grew since stat
        detail = f"over the {max_bytes}-byte limit"
        return Document(path, FileKind.TOO_LARGE, len(data), detail=detail)
    if not data:
        return Document(path, FileKind.EMPTY, 0)
    if b"\0" in data:
        return Document(path, FileKind.BINARY, len(data), detail="contains NUL bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return Document(path, FileKind.BINARY, len(data), detail="not UTF-8 text")
    return Document(path, FileKind.TEXT, len(data), text=text)

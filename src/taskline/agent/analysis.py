"""Text analysis of one document: words, Markdown headings, TODO/FIXME lines, relative links.

Pure functions over a string; nothing here touches the file system (whether a link target
exists is decided by :mod:`taskline.agent.review`).

Markdown is read the way a renderer would for these purposes, in a simplified way: fenced
code blocks (```` ``` ```` or ``~~~``) and a leading YAML front matter block are skipped for
headings and links, inline code spans are ignored for links, headings are ATX (``## Title``)
or setext (a line underlined with ``===`` or ``---``; only the line just above counts as the
heading's text). TODO/FIXME are searched on every line, code included.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote

__all__ = [
    "MARKDOWN_SUFFIXES",
    "MARKER_PATTERN",
    "Heading",
    "Link",
    "Marker",
    "count_words",
    "find_headings",
    "find_links",
    "find_markers",
    "is_markdown",
]

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mdx"})
#: What :func:`find_markers` looks for: the whole words TODO or FIXME, upper case.
MARKER_PATTERN = r"\b(TODO|FIXME)\b"
#: Longest marker line kept in a finding (longer lines are cut and end with an ellipsis).
MAX_MARKER_TEXT = 200

_MARKER = re.compile(MARKER_PATTERN)
_ATX = re.compile(r"^ {0,3}(#{1,6})(?=[ \t]|$)(.*)$")
_ATX_CLOSING = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^ {0,3}(?:[-*+][ \t]|\d{1,9}[.)][ \t]|>|\||#)|^(?: {4}|\t)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# ](target "title") of an inline link or image; the target may be <wrapped in brackets>.
_INLINE_LINK = re.compile(
    r"\]\(\s*(<[^>\n]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
_REFERENCE_LINK = re.compile(r"^ {0,3}\[(?!\^)[^\]]+\]:\s*(<[^>\n]*>|\S+)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True, slots=True)
class Heading:
    """A Markdown heading: level 1-6, its text, its 1-based line number."""

    level: int
    text: str
    line: int


@dataclass(frozen=True, slots=True)
class Marker:
    """A line with TODO or FIXME: the file, 1-based line, which marker, the stripped line."""

    path: str
    line: int
    marker: str
    text: str


@dataclass(frozen=True, slots=True)
class Link:
    """A relative link in Markdown: the target as written and the file path it names.

    ``path`` is the target with any ``#fragment`` or ``?query`` removed and percent-escapes
    decoded; a leading ``/`` means "from the folder under review".
    """

    line: int
    target: str
    path: str


def is_markdown(path: str) -> bool:
    """Whether ``path`` names a Markdown file, by its suffix (case-insensitive)."""
    return PurePosixPath(path).suffix.lower() in MARKDOWN_SUFFIXES


def count_words(text: str) -> int:
    """Return the number of whitespace-separated words (Markdown syntax counts as words)."""
    return len(text.split())


def _closes(fence: str, opening: re.Match[str] | None, line: str) -> bool:
    """Whether ``line`` closes a code block opened by ``fence`` (same character, no shorter,
    nothing after it but spaces)."""
    if opening is None:
        return False
    run = opening.group(1)
    return run[0] == fence[0] and len(run) >= len(fence) and not line.strip().lstrip(fence[0])


def _markdown_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, line)`` for lines outside front matter and fenced code."""
    lines = text.splitlines()
    start = 0
    if lines and lines[0].strip() == "---":
        for index in range(1, len(lines)):
            if lines[index].strip() in {"---", "..."}:
                start = index + 1
                break
    fence: str | None = None
    for index in range(start, len(lines)):
        line = lines[index]
        opening = _FENCE.match(line)
        if fence is None:
            if opening:
                fence = opening.group(1)
                continue
            yield index + 1, line
        elif _closes(fence, opening, line):
            fence = None


def find_headings(text: str) -> list[Heading]:
    """Return the Markdown headings of ``text`` in order.

    An ATX heading's closing ``#`` run is dropped; an empty heading (``#`` alone) is kept
    with empty text. A setext underline counts only under a non-blank line that does not
    start a list item, quote, table row, ATX heading or indented code.
    """
    headings: list[Heading] = []
    previous: tuple[int, str] | None = None  # the last line, if it could be heading text
    for number, line in _markdown_lines(text):
        atx = _ATX.match(line)
        if atx:
            title = _ATX_CLOSING.sub("", atx.group(2)).strip()
            headings.append(Heading(len(atx.group(1)), title, number))
            previous = None
            continue
        setext = _SETEXT.match(line)
        if setext and previous is not None and previous[0] == number - 1:
            level = 1 if setext.group(1)[0] == "=" else 2
            headings.append(Heading(level, previous[1].strip(), previous[0]))
            previous = None
            continue
        paragraph = line.strip() and not _NOT_PARAGRAPH.match(line)
        previous = (number, line) if paragraph else None
    return headings


def find_markers(path: str, text: str) -> list[Marker]:
    """Return one :class:`Marker` per line of ``text`` containing TODO or FIXME.

    The marker is the first of the two on the line; matching is case-sensitive and on whole
    words (``TODOs`` and ``todo`` do not count). Long lines are cut to 200 characters.
    """
    markers: list[Marker] = []
    for number, line in enumerate(text.splitlines(), start=1):
        found = _MARKER.search(line)
        if found:
            shown = line.strip()
            if len(shown) > MAX_MARKER_TEXT:
                shown = shown[: MAX_MARKER_TEXT - 1] + "…"
            markers.append(Marker(path, number, found.group(1), shown))
    return markers


def _relative_target(raw: str) -> str | None:
    """Return the file path a link target names, or ``None`` if it is not a relative path."""
    target = raw[1:-1].strip() if raw.startswith("<") and raw.endswith(">") else raw
    if not target or target.startswith(("#", "//")) or _SCHEME.match(target):
        return None
    for separator in ("#", "?"):
        target = target.split(separator, 1)[0]
    target = unquote(target)
    return target or None


def find_links(text: str) -> list[Link]:
    """Return the relative links of Markdown ``text``: inline links, images and definitions.

    Skipped: targets with a scheme (``http:``, ``https:``, ``mailto:``, ...), protocol-
    relative ``//host`` targets, pure ``#anchors``, links inside code, footnote definitions
    (``[^1]: ...``). Link text with nested brackets is fine since only the ``](target)``
    part is matched, so an image inside a link yields both targets.
    """
    links: list[Link] = []
    for number, line in _markdown_lines(text):
        reference = _REFERENCE_LINK.match(line)
        targets = [reference.group(1)] if reference else []
        targets += [m.group(1) for m in _INLINE_LINK.finditer(_CODE_SPAN.sub("", line))]
        for raw in targets:
            path = _relative_target(raw)
            if path is not None:
                links.append(Link(number, raw, path))
    return links

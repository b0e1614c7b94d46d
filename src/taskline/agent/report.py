"""The Markdown report of a folder review: what the built-in agent leaves as the task's result.

Sections, in order: Summary, Files, Headings, TODO/FIXME findings, Broken relative links,
Largest files, Skipped files, and Messages (people's messages with the agent's answers,
only when there were any). An empty folder gets the Summary saying so and nothing else
but Messages. Text taken from the documents (paths, marker lines, link targets) is put in
code spans and table cells are escaped, so a document cannot break the report's layout.
"""

from collections.abc import Sequence
from typing import TypeVar

from taskline.agent.analysis import Heading
from taskline.agent.answers import MessageLike, answer_message, format_size
from taskline.agent.files import FileKind
from taskline.agent.review import FolderReview

__all__ = ["SECTION_TITLES", "render_report"]

#: The second-level headings of a full report, in order ("Messages" only with messages).
SECTION_TITLES = (
    "Summary",
    "Files",
    "Headings",
    "TODO/FIXME findings",
    "Broken relative links",
    "Largest files",
    "Skipped files",
    "Messages",
)

T = TypeVar("T")

#: Longest message quoted in the Messages section, in characters.
MAX_QUOTE = 2000
#: Item limits tried in turn when a report must fit in ``max_bytes``.
_LIMITS = (None, 1000, 500, 200, 100, 50, 20, 10, 0)

_REASONS = {
    FileKind.BINARY: "binary",
    FileKind.UNREADABLE: "unreadable",
    FileKind.TOO_LARGE: "too large",
}


def _code(text: str) -> str:
    """``text`` as an inline code span that survives backticks inside it."""
    text = text.replace("\n", " ")
    if "`" not in text:
        return f"`{text}`"
    return f"`` {text} ``"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], align: str, rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub table; ``align`` has one letter per column: ``l`` left, ``r`` right."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _summary(review: FolderReview) -> list[str]:
    lines = ["## Summary", "", f"- Folder: {_code(review.root)}"]
    if not review.files:
        lines += ["- Files: 0", "- Confidence: 1.00 (nothing was left unread)"]
    else:
        kinds = ", ".join(f"{review.count(k)} {k.value.replace('_', ' ')}" for k in FileKind)
        lines += [
            f"- Files: {len(review.files)} ({kinds})",
            f"- Size: {format_size(review.total_bytes)}",
            f"- Words: {review.words}",
            f"- Markdown headings: {review.headings}",
            f"- TODO: {review.marker_count('TODO')}, FIXME: {review.marker_count('FIXME')}",
            f"- Broken relative links: {len(review.broken_links)}",
            f"- Confidence: {review.confidence:.2f} ({review.files_read} of "
            f"{len(review.files)} files could be read)",
        ]
    if review.truncated:
        lines.append(
            f"- Only the first {review.max_files} files were reviewed: the folder has more."
        )
    for folder, reason in review.unlisted_dirs:
        lines.append(f"- Folder {_code(folder + '/')} could not be listed: {reason}")
    if not review.files:
        lines += [
            "",
            "The folder has no files to review, so there is nothing else to report. "
            "Hidden folders, `.git`, `node_modules` and `__pycache__` are not looked into.",
        ]
    return lines


def _cut(items: Sequence[T], limit: int | None) -> tuple[Sequence[T], list[str]]:
    """The first ``limit`` items, and a note line saying how many were left out."""
    if limit is None or len(items) <= limit:
        return items, []
    return items[:limit], [
        "",
        f"… and {len(items) - limit} more (left out to keep the report short).",
    ]


def _files(review: FolderReview, limit: int | None) -> list[str]:
    shown, note = _cut(review.files, limit)
    rows = [
        [
            _code(f.path),
            f.kind.value.replace("_", " "),
            format_size(f.size),
            str(f.words),
            str(len(f.headings)),
            str(len(f.markers)),
            str(len(f.broken_links)),
        ]
        for f in shown
    ]
    header = ["File", "Kind", "Size", "Words", "Headings", "TODO/FIXME", "Broken links"]
    return ["## Files", "", *_table(header, "llrrrrr", rows), *note]


def _heading_lines(headings: Sequence[Heading]) -> list[str]:
    top = min(h.level for h in headings)
    return [f"{'  ' * (h.level - top)}- {'#' * h.level} {h.text}".rstrip() for h in headings]


def _headings(review: FolderReview, limit: int | None) -> list[str]:
    lines = ["## Headings"]
    with_headings = [f for f in review.files if f.headings]
    if not with_headings:
        return [*lines, "", "No Markdown headings."]
    shown, note = _cut(with_headings, limit)
    for file in shown:
        headings, cut = _cut(file.headings, limit)
        lines += ["", f"### {_code(file.path)}", "", *_heading_lines(headings), *cut]
    return [*lines, *note]


def _markers(review: FolderReview, limit: int | None) -> list[str]:
    found = review.markers
    if not found:
        return ["## TODO/FIXME findings", "", "None."]
    shown, note = _cut(found, limit)
    rows = [[_code(m.path), str(m.line), m.marker, _code(m.text)] for m in shown]
    table = _table(["File", "Line", "Marker", "Text"], "lrll", rows)
    return ["## TODO/FIXME findings", "", *table, *note]


def _links(review: FolderReview, limit: int | None) -> list[str]:
    broken = review.broken_links
    checked = sum(f.links_checked for f in review.files)
    if not broken:
        return ["## Broken relative links", "", f"None ({checked} relative links checked)."]
    shown, note = _cut(broken, limit)
    rows = [[_code(b.path), str(b.line), _code(b.target)] for b in shown]
    return [
        "## Broken relative links",
        "",
        f"{len(broken)} of {checked} relative links point to no file:",
        "",
        *_table(["File", "Line", "Target"], "lrl", rows),
        *note,
    ]


def _largest(review: FolderReview) -> list[str]:
    largest = review.largest()
    if not largest:
        return ["## Largest files", "", "Every file is empty."]
    items = [f"{n}. {_code(f.path)} — {format_size(f.size)}" for n, f in enumerate(largest, 1)]
    return ["## Largest files", "", *items]


def _skipped(review: FolderReview, limit: int | None) -> list[str]:
    skipped = review.skipped
    if not skipped:
        return ["## Skipped files", "", "None: every file was read as text."]
    shown, note = _cut(skipped, limit)
    rows = [[_code(f.path), _REASONS[f.kind], f.detail or ""] for f in shown]
    return ["## Skipped files", "", *_table(["File", "Reason", "Detail"], "lll", rows), *note]


def _messages(review: FolderReview, messages: Sequence[MessageLike]) -> list[str]:
    lines = ["## Messages"]
    for message in messages:
        content = message.content
        if len(content) > MAX_QUOTE:
            content = content[: MAX_QUOTE - 1] + "…"
        quoted = [f"> {line}" if line else ">" for line in content.splitlines()]
        lines += [
            "",
            f"**{message.author}** wrote:",
            "",
            *(quoted or [">"]),
            "",
            answer_message(message.content, review),
        ]
    return lines


def _render(
    review: FolderReview, messages: Sequence[MessageLike], title: str | None, limit: int | None
) -> str:
    parts = [[f"# {title or 'Review of ' + _code(review.root)}"], _summary(review)]
    if review.files:
        parts += [
            _files(review, limit),
            _headings(review, limit),
            _markers(review, limit),
            _links(review, limit),
            _largest(review),
            _skipped(review, limit),
        ]
    if messages:
        parts.append(_messages(review, messages))
    return "\n\n".join("\n".join(part) for part in parts) + "\n"


def render_report(
    review: FolderReview,
    messages: Sequence[MessageLike] = (),
    *,
    title: str | None = None,
    max_bytes: int | None = None,
) -> str:
    """Render ``review`` as Markdown, answering ``messages`` (oldest first) at the end.

    ``title`` replaces the first heading (default: ``Review of `<folder>```). The report
    ends with a newline. With ``max_bytes`` (UTF-8), long lists are shortened until the
    report fits, each with a line saying how many items were left out; the Summary and
    Largest files are never shortened. A report that still does not fit with every list
    shortened to nothing is cut at ``max_bytes`` and ends with a note. Quoted messages are
    cut at 2,000 characters (the answer still reads the whole message).
    """
    report = ""
    for limit in _LIMITS if max_bytes is not None else (None,):
        report = _render(review, messages, title, limit)
        if max_bytes is None or len(report.encode()) <= max_bytes:
            return report
    assert max_bytes is not None
    note = "\n\n… (the report was cut to fit)\n"
    room = max(0, max_bytes - len(note.encode()))
    return report.encode()[:room].decode(errors="ignore") + note

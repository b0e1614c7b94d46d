"""Answering a person's message from what the review found, without a language model.

The built-in agent has no model to talk with, so it answers by topic: a message naming a
reviewed file gets that file's figures; words such as "todo", "link", "largest",
"headings", "words", "skipped" or "confidence" get the matching findings; anything else
gets the overall summary. Several topics in one message get several answers.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from taskline.agent.review import FileReview, FolderReview

__all__ = [
    "HumanMessage",
    "MessageLike",
    "answer_message",
    "describe_file",
    "format_size",
    "summary_sentence",
]

#: Items listed at most per topic in one answer.
MAX_LISTED = 5


class MessageLike(Protocol):
    """Anything with an author and a content, such as the SDK's ``HumanMessage``."""

    @property
    def author(self) -> str: ...

    @property
    def content(self) -> str: ...


@dataclass(frozen=True, slots=True)
class HumanMessage:
    """A message a person sent to the agent during its run (the minimal :class:`MessageLike`)."""

    author: str
    content: str


def format_size(size: int) -> str:
    """``512 B``, ``1.5 KiB``, ``2.0 MiB``: a byte count for people."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _more(total: int) -> str:
    return f" (and {total - MAX_LISTED} more)" if total > MAX_LISTED else ""


def describe_file(review: FileReview) -> str:
    """One sentence about one file: its kind and, for text, its figures."""
    if review.skipped:
        reason = review.kind.value.replace("_", " ")
        return f"`{review.path}` was skipped: {reason} ({review.detail})."
    todo = sum(m.marker == "TODO" for m in review.markers)
    fixme = len(review.markers) - todo
    return (
        f"`{review.path}` ({format_size(review.size)}): {_plural(review.words, 'word')}, "
        f"{_plural(len(review.headings), 'heading')}, {todo} TODO, {fixme} FIXME, "
        f"{_plural(len(review.broken_links), 'broken link')}."
    )


def _files_named(content: str, review: FolderReview) -> list[FileReview]:
    lowered = content.lower()
    named = []
    for file in review.files:
        name = PurePosixPath(file.path).name.lower()
        if file.path.lower() in lowered or (len(name) >= 3 and name in lowered):
            named.append(file)
    return named


def _markers(review: FolderReview) -> str:
    found = review.markers
    if not found:
        return "There are no TODO or FIXME lines."
    shown = ", ".join(f"{m.marker} in `{m.path}` line {m.line}" for m in found[:MAX_LISTED])
    return (
        f"{review.marker_count('TODO')} TODO and {review.marker_count('FIXME')} FIXME: "
        f"{shown}{_more(len(found))}."
    )


def _links(review: FolderReview) -> str:
    broken = review.broken_links
    if not broken:
        return "No relative link is broken."
    shown = ", ".join(f"`{b.target}` in `{b.path}` line {b.line}" for b in broken[:MAX_LISTED])
    return f"{_plural(len(broken), 'broken relative link')}: {shown}{_more(len(broken))}."


def _largest(review: FolderReview) -> str:
    largest = review.largest()
    if not largest:
        return "There are no files with content."
    shown = ", ".join(f"`{f.path}` ({format_size(f.size)})" for f in largest)
    return f"The largest files: {shown}."


def _headings(review: FolderReview) -> str:
    with_headings = [f for f in review.files if f.headings]
    return (
        f"{_plural(review.headings, 'heading')} in {_plural(len(with_headings), 'Markdown file')}."
    )


def _words(review: FolderReview) -> str:
    return f"{_plural(review.words, 'word')} in {_plural(len(review.files), 'file')}."


def _skipped(review: FolderReview) -> str:
    skipped = review.skipped
    if not skipped:
        return "Every file was read as text."
    shown = ", ".join(
        f"`{f.path}` ({f.kind.value.replace('_', ' ')})" for f in skipped[:MAX_LISTED]
    )
    return f"{_plural(len(skipped), 'file')} skipped: {shown}{_more(len(skipped))}."


def _confidence(review: FolderReview) -> str:
    return (
        f"Confidence {review.confidence:.2f}: {review.files_read} of "
        f"{_plural(len(review.files), 'file')} could be read."
    )


def summary_sentence(review: FolderReview) -> str:
    """One sentence with the folder's main figures (what a message with no topic gets)."""
    return (
        f"{_plural(len(review.files), 'file')} reviewed, {_plural(review.words, 'word')}, "
        f"{review.marker_count('TODO')} TODO, {review.marker_count('FIXME')} FIXME, "
        f"{_plural(len(review.broken_links), 'broken relative link')}."
    )


_TOPICS: list[tuple[tuple[str, ...], Callable[[FolderReview], str]]] = [
    (("todo", "fixme"), _markers),
    (("link",), _links),
    (("largest", "biggest", "size", "large", "big"), _largest),
    (("heading", "title", "outline", "structure"), _headings),
    (("word", "long"), _words),
    (("skip", "binary", "unreadable", "could not read", "couldn't read"), _skipped),
    (("confiden", "sure", "certain"), _confidence),
]


def answer_message(content: str, review: FolderReview) -> str:
    """Answer ``content`` from ``review`` (which may be partial, mid-run).

    Files named in the message (by path, or by file name of at least three characters)
    come first, then each topic the message mentions; a message with neither gets the
    summary. Matching is case-insensitive and by substring.
    """
    lowered = content.lower()
    parts = [describe_file(f) for f in _files_named(content, review)[:MAX_LISTED]]
    for words, answer in _TOPICS:
        if any(word in lowered for word in words):
            parts.append(answer(review))
    if not parts:
        parts.append(summary_sentence(review))
    return " ".join(parts)

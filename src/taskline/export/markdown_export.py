"""The Markdown export: a document for people to read, for the whole board or one task.

Titles and names are escaped just enough that they cannot change the document's structure:
line breaks become spaces, a leading block marker (``#``, ``>``, ``-``, ``1.``, a fence...)
and a trailing ``#`` run are backslash-escaped, and ``<`` is escaped so no raw HTML gets
through. Free text (descriptions, subtask notes, multi-line messages, text results) keeps its
own Markdown but is placed in a blockquote, which closes anything it opens (an unterminated
code fence, a heading) before the next part of the document starts.
"""

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from pydantic import JsonValue

from taskline.domain.models import Agent, Message, Task
from taskline.export.bundle import ExportBundle

__all__ = ["escape_inline", "render_markdown", "render_task_markdown"]

_LINE_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
_BLOCK_START = re.compile(r"^(?:[#>+\-*=~`|]|\d{1,9}[.)])")
_TRAILING_HASHES = re.compile(r"(?<=\s)#+$")
_BACKTICKS = re.compile(r"`+")
_DASH = "—"


def escape_inline(text: str) -> str:
    """Return ``text`` fit for one line of Markdown (a heading, a list item, a label).

    Line breaks become spaces and surrounding whitespace is dropped; a leading block marker,
    a trailing run of ``#`` (a heading's closing sequence) and every ``<`` are escaped with a
    backslash. Everything else, inline emphasis included, is left as written.
    """
    line = _LINE_BREAKS.sub(" ", text).strip().replace("<", "\\<")
    match = _BLOCK_START.match(line)
    if match:
        end = match.end()
        line = f"{line[: end - 1]}\\{line[end - 1 :]}"
    return _TRAILING_HASHES.sub(lambda found: "\\" + found.group(), line)


def _title(text: str) -> str:
    return escape_inline(text) or "(untitled)"


def _code(text: str) -> str:
    """Return ``text`` as an inline code span, whatever backticks it holds."""
    text = _LINE_BREAKS.sub(" ", text)
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    ticks = "`" * (longest + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{padding}{text}{padding}{ticks}"


def _quote(text: str, indent: str = "") -> list[str]:
    """Return ``text`` as blockquote lines (every line marked, so nothing continues lazily)."""
    return [f"{indent}> {line}".rstrip() for line in text.splitlines() or [""]]


def _fenced(text: str, info: str) -> list[str]:
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    # Only "\n" separates the lines of json.dumps output (it escapes every control character).
    return [f"{fence}{info}", *text.split("\n"), fence]


def _when(value: datetime) -> str:
    if value.utcoffset() is None:
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _percent(value: float | None) -> str:
    if value is None:
        return _DASH
    return f"{value * 100:.1f}".rstrip("0").rstrip(".") + "%"


def _agent(agent_id: str | None, agents: Mapping[str, Agent]) -> str:
    if agent_id is None:
        return _DASH
    agent = agents.get(agent_id)
    if agent is None:
        return _code(agent_id)
    return f"{escape_inline(agent.name)} ({_code(agent_id)})"


def _metadata(task: Task, agents: Mapping[str, Agent]) -> list[str]:
    tags = ", ".join(escape_inline(tag) for tag in task.tags) or _DASH
    items = [
        ("ID", _code(task.id)),
        ("Status", task.status.value),
        ("Priority", task.priority.value),
        ("Progress", _percent(task.progress)),
        ("Confidence", _percent(task.confidence)),
        ("Agent", _agent(task.assigned_agent_id, agents)),
        ("Tags", tags),
        ("Created", _when(task.created_at)),
        ("Updated", _when(task.updated_at)),
    ]
    if task.started_at is not None:
        items.append(("Started", _when(task.started_at)))
    if task.completed_at is not None:
        items.append(("Completed", _when(task.completed_at)))
    return [f"- **{label}:** {value}" for label, value in items]


def _result(result: JsonValue) -> list[str]:
    if isinstance(result, str):
        return ["**Result**", "", *_quote(result)]
    # The standard library, not orjson: it prints integers of any size, for display only.
    text = json.dumps(result, indent=2, ensure_ascii=False)
    return ["**Result**", "", *_fenced(text, "json")]


def _message(message: Message) -> list[str]:
    head = (
        f"- **{escape_inline(message.author) or '(unknown)'}** "
        f"({message.author_kind.value}"
        f"{', ' + escape_inline(message.actor) if message.actor else ''}, "
        f"{_when(message.created_at)}):"
    )
    lines = message.content.splitlines()
    if len(lines) <= 1:
        return [f"{head} {escape_inline(message.content)}".rstrip()]
    return [head, *_quote(message.content, indent="  ")]


def _task_lines(
    task: Task, messages: Sequence[Message], agents: Mapping[str, Agent], level: int
) -> list[str]:
    """Return one task's block; its title is a heading of ``level``, its parts one below."""
    heading = "#" * level
    sub_heading = "#" * (level + 1)
    lines = [f"{heading} {_title(task.title)}", "", *_metadata(task, agents), ""]
    if task.description.strip():
        lines += [*_quote(task.description), ""]
    if task.result is not None and task.result != "":
        lines += [*_result(task.result), ""]
    for section in task.sections:
        lines += [f"{sub_heading} {_title(section.title)}", ""]
        if not section.subtasks:
            lines.append("_No subtasks._")
        for subtask in section.subtasks:
            lines.append(f"- [{'x' if subtask.done else ' '}] {_title(subtask.title)}")
            if subtask.notes.strip():
                lines += _quote(subtask.notes, indent="  ")
        lines.append("")
    if messages:
        lines += [f"{sub_heading} Messages", ""]
        for message in messages:
            lines += _message(message)
        lines.append("")
    return lines


def _agents_by_id(agents: Iterable[Agent]) -> dict[str, Agent]:
    return {agent.id: agent for agent in agents}


def _encode(lines: list[str]) -> bytes:
    while lines and not lines[-1]:
        lines.pop()
    return ("\n".join(lines) + "\n").encode("utf-8")


def render_markdown(bundle: ExportBundle) -> bytes:
    """Return the whole bundle as one Markdown document (UTF-8, ``\\n`` line ends).

    ``# Taskline export``, a line with the export time and the task count, then one
    ``## title`` block per task: a metadata list, the description, the result (JSON in a
    fenced block, or quoted text when it is a string; omitted when null or empty), one
    ``###`` heading per section with ``- [ ]`` / ``- [x]`` subtasks and their notes, and the
    messages, oldest first (the heading is omitted when there are none).
    """
    count = len(bundle.tasks)
    lines = [
        "# Taskline export",
        "",
        f"Exported {_when(bundle.exported_at)} · {count} {'task' if count == 1 else 'tasks'}",
        "",
    ]
    agents = _agents_by_id(bundle.agents)
    for task in bundle.tasks:
        lines += _task_lines(task, bundle.messages_of(task.id), agents, level=2)
    return _encode(lines)


def render_task_markdown(
    task: Task,
    messages: Sequence[Message] = (),
    *,
    agents: Iterable[Agent] = (),
    exported_at: datetime | None = None,
) -> bytes:
    """Return one task as a standalone Markdown document (UTF-8, ``\\n`` line ends).

    The same block as in :func:`render_markdown`, one heading level up (``# title``,
    ``## section``). ``agents`` lets the assigned agent be shown by name (otherwise its id
    alone); ``exported_at``, when given, adds an "Exported ..." line under the title.
    """
    lines = _task_lines(task, messages, _agents_by_id(agents), level=1)
    if exported_at is not None:
        lines[2:2] = [f"Exported from Taskline {_when(exported_at)}", ""]
    return _encode(lines)

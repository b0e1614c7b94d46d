"""Rendering for people (rich tables and panels) and for scripts (the API's JSON on stdout).

User text (titles, tags, descriptions) is always wrapped in :class:`rich.text.Text`, never
parsed as markup, so a title like ``[bold]`` prints as written.
"""

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import click
from pydantic import BaseModel
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from taskline.domain.models import Agent, Task, TaskPage
from taskline.domain.status import AgentStatus, TaskStatus

__all__ = [
    "STATUS_STYLE",
    "agent_table",
    "echo_json",
    "percent",
    "stdout",
    "task_detail",
    "task_line",
    "task_table",
    "when",
]

#: Width used when stdout is a pipe or a file: wide enough that rows do not wrap.
PIPE_WIDTH = 160
NONE = "—"

#: How each task status is shown (watch and tables).
STATUS_STYLE: dict[str, str] = {
    TaskStatus.PENDING: "white",
    TaskStatus.IN_PROGRESS: "cyan",
    TaskStatus.PAUSED: "yellow",
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.CANCELLED: "dim",
}
_AGENT_STYLE = {
    AgentStatus.IDLE: "white",
    AgentStatus.WORKING: "cyan",
    AgentStatus.PAUSED: "yellow",
    AgentStatus.ERROR: "red",
    AgentStatus.OFFLINE: "dim",
}


def stdout() -> Console:
    """Return a console on the current stdout (colour only on a terminal, no auto-highlight)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, PIPE_WIDTH)
    return console


def echo_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    """Print ``value`` as indented JSON, exactly the fields the API sends."""
    data: Any
    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json")
    elif isinstance(value, dict):
        data = value
    else:
        data = [item.model_dump(mode="json") for item in value]
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


# --- small formatters -------------------------------------------------------------------------


def percent(value: float | None) -> str:
    """``0.5`` → ``"50%"``; ``None`` → an em dash."""
    return NONE if value is None else f"{value * 100:.0f}%"


def when(moment: datetime | None) -> str:
    """A timestamp in local time to the minute; ``None`` → an em dash."""
    return NONE if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _status(status: TaskStatus) -> Text:
    return Text(status.value, style=STATUS_STYLE.get(status, ""))


def _or_none(value: str | None) -> Text:
    return Text(value) if value else Text(NONE, style="dim")


def task_line(verb: str, task: Task) -> Text:
    """One line such as ``updated task_x  in_progress  50%  Write the report``."""
    line = Text(f"{verb} ")
    line.append(task.id, style="bold")
    line.append("  ")
    line.append_text(_status(task.status))
    line.append(f"  {percent(task.progress)}  ")
    line.append(task.title)
    return line


# --- tables -----------------------------------------------------------------------------------


def task_table(page: TaskPage) -> RenderableType:
    """The task list with a "showing a-b of n" caption; a message when nothing matches."""
    if not page.items:
        suffix = f" (offset {page.offset} is past the {page.total} matches)" if page.total else ""
        return Text(f"No tasks match.{suffix}", style="dim")
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True)
    table.add_column("Title", overflow="fold", ratio=1)
    table.add_column("Status", no_wrap=True)
    table.add_column("Priority", no_wrap=True)
    table.add_column("Progress", justify="right", no_wrap=True)
    table.add_column("Confidence", justify="right", no_wrap=True)
    table.add_column("Agent", no_wrap=True)
    table.add_column("Tags")
    table.add_column("Updated", no_wrap=True)
    for task in page.items:
        table.add_row(
            Text(task.id, style="bold"),
            Text(task.title),
            _status(task.status),
            Text(task.priority.value),
            Text(percent(task.progress)),
            Text(percent(task.confidence)),
            _or_none(task.assigned_agent_id),
            _or_none(", ".join(task.tags)),
            Text(when(task.updated_at)),
        )
    first = page.offset + 1
    last = page.offset + len(page.items)
    caption = Text(f"showing {first}-{last} of {page.total}", style="dim")
    return Group(table, caption)


def agent_table(agents: Iterable[Agent]) -> RenderableType:
    """The agent list; a message when there is none."""
    rows = list(agents)
    if not rows:
        return Text("No agents registered.", style="dim")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("ID", "Name", "Kind", "Status", "Current task", "Last seen"):
        table.add_column(name, no_wrap=name != "Name")
    for agent in rows:
        table.add_row(
            Text(agent.id, style="bold"),
            Text(agent.name),
            Text(agent.kind),
            Text(agent.status.value, style=_AGENT_STYLE.get(agent.status, "")),
            _or_none(agent.current_task_id),
            Text(when(agent.last_seen_at)),
        )
    return table


# --- one task ---------------------------------------------------------------------------------


def task_detail(task: Task) -> RenderableType:
    """A task's fields, description, sections with ``[x]``/``[ ]`` subtasks, and result."""
    heading = Text(task.title, style="bold")
    heading.append(f"  {task.id}", style="dim")
    fields = Table.grid(padding=(0, 2))
    for _ in range(4):
        fields.add_column()
    pairs: list[tuple[str, Text]] = [
        ("status", _status(task.status)),
        ("priority", Text(task.priority.value)),
        ("progress", Text(percent(task.progress))),
        ("confidence", Text(percent(task.confidence))),
        ("agent", _or_none(task.assigned_agent_id)),
        ("tags", _or_none(", ".join(task.tags))),
        ("created", Text(when(task.created_at))),
        ("updated", Text(when(task.updated_at))),
        ("started", Text(when(task.started_at))),
        ("completed", Text(when(task.completed_at))),
    ]
    for index in range(0, len(pairs), 2):
        (k1, v1), (k2, v2) = pairs[index], pairs[index + 1]
        fields.add_row(Text(k1, style="dim"), v1, Text(k2, style="dim"), v2)
    parts: list[RenderableType] = [heading, fields]
    if task.description:
        parts += [Text(), Text(task.description)]
    parts += [Text(), *_sections(task)]
    if task.result is not None:
        parts += [Text(), Text("Result", style="bold"), Text(json.dumps(task.result, indent=2))]
    return Group(*parts)


def _sections(task: Task) -> list[RenderableType]:
    if not task.sections:
        return [Text("No sections.", style="dim")]
    lines: list[RenderableType] = [Text("Sections", style="bold")]
    for section in task.sections:
        done = sum(1 for s in section.subtasks if s.done)
        line = Text(f"  {section.title}")
        line.append(f"  {done}/{len(section.subtasks)}", style="dim")
        lines.append(line)
        for subtask in section.subtasks:
            item = Text("    [x] " if subtask.done else "    [ ] ")
            item.append(subtask.title, style="dim" if subtask.done else "")
            lines.append(item)
            if subtask.notes:
                lines.append(Text(f"        {subtask.notes}", style="dim italic"))
    return lines

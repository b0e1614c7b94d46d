"""The CSV export: one flat table for spreadsheets, one row per subtask.

A task without sections, and a section without subtasks, still get one row each (with the
missing columns empty), so no task and no section disappears from the sheet. Sections and
subtasks appear in the order of their lists. Descriptions, results and messages are not
included: the JSON export is the complete one.

Text cells that a spreadsheet would read as a formula (first character ``= + - @``, tab or
carriage return) get a leading ``'``; numbers and booleans are written plainly.
"""

import csv
import io
from collections.abc import Iterator
from datetime import datetime

from taskline.domain.models import Section, Task
from taskline.export._text import iso_timestamp
from taskline.export.bundle import ExportBundle

__all__ = ["CSV_COLUMNS", "neutralize_formula", "render_csv"]

CSV_COLUMNS: tuple[str, ...] = (
    "task_id",
    "task_title",
    "task_status",
    "priority",
    "progress",
    "confidence",
    "assigned_agent_id",
    "tags",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "section_id",
    "section_title",
    "section_position",
    "subtask_id",
    "subtask_title",
    "subtask_done",
    "subtask_notes",
)

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_TAG_SEPARATOR = "; "
_NO_SECTION = ("", "", "")
_NO_SUBTASK = ("", "", "", "")


def neutralize_formula(text: str) -> str:
    """Return ``text`` with a leading ``'`` if a spreadsheet would run it as a formula.

    Only the first character matters (``= + - @``, tab, carriage return); other text,
    including the empty string, is returned unchanged.
    """
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def _text(value: str | None) -> str:
    return "" if value is None else neutralize_formula(value)


def _time(value: datetime | None) -> str:
    return "" if value is None else iso_timestamp(value)


def _number(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def _task_cells(task: Task) -> tuple[str, ...]:
    return (
        _text(task.id),
        _text(task.title),
        _text(task.status.value),
        _text(task.priority.value),
        _number(task.progress),
        _number(task.confidence),
        _text(task.assigned_agent_id),
        _text(_TAG_SEPARATOR.join(task.tags)),
        _time(task.created_at),
        _time(task.updated_at),
        _time(task.started_at),
        _time(task.completed_at),
    )


def _section_cells(section: Section) -> tuple[str, ...]:
    return (_text(section.id), _text(section.title), _number(section.position))


def _rows(task: Task) -> Iterator[tuple[str, ...]]:
    task_cells = _task_cells(task)
    if not task.sections:
        yield task_cells + _NO_SECTION + _NO_SUBTASK
    for section in task.sections:
        section_cells = task_cells + _section_cells(section)
        if not section.subtasks:
            yield section_cells + _NO_SUBTASK
        for subtask in section.subtasks:
            yield (
                *section_cells,
                _text(subtask.id),
                _text(subtask.title),
                "true" if subtask.done else "false",
                _text(subtask.notes),
            )


def render_csv(bundle: ExportBundle) -> bytes:
    """Return the CSV export of ``bundle``: UTF-8 (no byte-order mark), ``\\r\\n`` line ends.

    The first row is :data:`CSV_COLUMNS`; an empty bundle gives the header row alone.
    Datetimes are ISO 8601 in UTC (``...Z``), tags are joined with ``"; "``.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for task in bundle.tasks:
        writer.writerows(_rows(task))
    return buffer.getvalue().encode("utf-8")

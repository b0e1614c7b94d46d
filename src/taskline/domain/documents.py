"""Replacing a task with a document (``PUT``): what of it the server keeps to itself.

The document ``GET`` returns can be edited and sent back as it is. Its read-only fields
(:attr:`TaskReplace.READ_ONLY` but ``version``, which is a precondition) must be the task's;
sections and subtasks that carry an ``id`` of the task's keep it (and a subtask may move to
another section), those without get a new one, and ``position`` follows the order of the
lists. :func:`check_read_only` and :func:`plan_sections` apply those rules (pure functions);
the store writes the plan.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from taskline.domain.errors import InvalidInputError
from taskline.domain.models import SectionReplace, Task, TaskReplace

__all__ = ["SectionPlan", "SubtaskPlan", "check_read_only", "plan_sections"]


@dataclass(frozen=True, slots=True)
class SubtaskPlan:
    id: str
    new: bool
    title: str
    done: bool
    notes: str
    position: int


@dataclass(frozen=True, slots=True)
class SectionPlan:
    id: str
    new: bool
    title: str
    position: int
    subtasks: list[SubtaskPlan]


def check_read_only(task: Task, body: TaskReplace) -> None:
    """Refuse a read-only field the body carries with another value than the task's.

    ``version`` is not checked here: a different one means the document is stale, which the
    caller turns into a precondition (412), not an invalid input.

    Raises:
        InvalidInputError: naming the first such field.
    """
    for name in TaskReplace.READ_ONLY:
        if name == "version" or name not in body.model_fields_set:
            continue
        sent, current = getattr(body, name), getattr(task, name)
        if _comparable(sent) != _comparable(current):
            shown = "null" if current is None else _shown(current)
            raise InvalidInputError(
                f"{name} is read-only: the task's is {shown}; send it unchanged or leave it out",
                field=name,
            )


def plan_sections(
    task: Task, sections: Sequence[SectionReplace], new_id: Callable[[str], str]
) -> list[SectionPlan]:
    """The task's new sections and subtasks, in order, each kept (an ``id`` of the task's)
    or new (``new_id`` names it).

    Raises:
        InvalidInputError: an ``id`` that is not one of the task's sections (or subtasks), or
            that appears twice; a ``position`` that is neither the one read nor the item's
            place in its list.
    """
    stored_sections = {s.id: s for s in task.sections}
    stored_subtasks = {sub.id: sub for s in task.sections for sub in s.subtasks}
    seen_sections: set[str] = set()
    seen_subtasks: set[str] = set()
    plans: list[SectionPlan] = []
    for i, section in enumerate(sections):
        where = f"sections.{i}"
        stored = None
        if section.id is not None:
            stored = stored_sections.get(section.id)
            _check_id(section.id, stored is not None, seen_sections, "section", task.id, where)
        _check_position(section.position, i, stored.position if stored else None, where)
        subtasks: list[SubtaskPlan] = []
        for j, subtask in enumerate(section.subtasks):
            sub_where = f"{where}.subtasks.{j}"
            stored_sub = None
            if subtask.id is not None:
                stored_sub = stored_subtasks.get(subtask.id)
                _check_id(
                    subtask.id, stored_sub is not None, seen_subtasks, "subtask", task.id, sub_where
                )
            _check_position(
                subtask.position, j, stored_sub.position if stored_sub else None, sub_where
            )
            subtasks.append(
                SubtaskPlan(
                    id=subtask.id or new_id("sub"),
                    new=subtask.id is None,
                    title=subtask.title,
                    done=subtask.done,
                    notes=subtask.notes,
                    position=j,
                )
            )
        plans.append(
            SectionPlan(
                id=section.id or new_id("sec"),
                new=section.id is None,
                title=section.title,
                position=i,
                subtasks=subtasks,
            )
        )
    return plans


def _check_id(
    item_id: str, known: bool, seen: set[str], kind: str, task_id: str, where: str
) -> None:
    if not known:
        raise InvalidInputError(
            f"{kind} {item_id!r} is not in task {task_id!r}; ids are read-only: leave id out "
            f"to add a new {kind}",
            field=f"{where}.id",
        )
    if item_id in seen:
        raise InvalidInputError(f"{kind} {item_id!r} appears twice", field=f"{where}.id")
    seen.add(item_id)


def _check_position(sent: int | None, index: int, stored: int | None, where: str) -> None:
    if sent is None or sent in (index, stored):
        return
    raise InvalidInputError(
        f"position is read-only: the order of the list decides (this one is at {index}); "
        "move the item in the list instead",
        field=f"{where}.position",
    )


def _comparable(value: Any) -> Any:
    """Datetimes compared as instants (a naive one is read as UTC)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _shown(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return repr(value)

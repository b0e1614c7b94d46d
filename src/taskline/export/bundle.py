"""What an export is made from (:class:`ExportBundle`) and what it produces (:class:`ExportFile`).

The bundle is a snapshot handed over by the caller (the ``api`` or ``cli`` layer reads the
store); the writers in this package only turn it into bytes, in memory, and never do I/O.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from taskline.domain.errors import NotFoundError
from taskline.domain.models import Agent, Message, Task

__all__ = ["ExportBundle", "ExportFile"]


@dataclass(frozen=True, slots=True)
class ExportBundle:
    """A snapshot of the board to export.

    Attributes:
        tasks: The tasks to export, in the order they should appear in every format.
        agents: Every agent worth exporting (all of them, not only the assigned ones).
        messages: Each task's thread, keyed by task id, oldest first. A task without an entry
            has no messages; entries for task ids not in ``tasks`` are ignored by the writers.
        exported_at: When the snapshot was taken. Must be timezone-aware; it is converted to
            UTC, so every format shows the same instant.

    Raises:
        ValueError: ``exported_at`` is naive.
    """

    tasks: list[Task]
    agents: list[Agent]
    messages: dict[str, list[Message]]
    exported_at: datetime

    def __post_init__(self) -> None:
        if self.exported_at.utcoffset() is None:
            raise ValueError("exported_at must be timezone-aware (UTC)")
        # Frozen dataclass: normalising the field needs the object-level setter.
        object.__setattr__(self, "exported_at", self.exported_at.astimezone(UTC))

    def messages_of(self, task_id: str) -> list[Message]:
        """Return the thread of ``task_id`` (oldest first), or an empty list."""
        return self.messages.get(task_id, [])

    def for_task(self, task_id: str) -> "ExportBundle":
        """Return a bundle holding only ``task_id`` and its messages (agents are kept).

        Raises:
            NotFoundError: no task of the bundle has this id.
        """
        tasks = [task for task in self.tasks if task.id == task_id]
        if not tasks:
            raise NotFoundError("task", task_id)
        return ExportBundle(
            tasks=tasks,
            agents=list(self.agents),
            messages={task_id: list(self.messages_of(task_id))},
            exported_at=self.exported_at,
        )


@dataclass(frozen=True, slots=True)
class ExportFile:
    """A rendered export, ready to be sent as a download or written to disk by the caller."""

    content: bytes
    media_type: str
    filename: str

"""What a task listing may ask for: filters, sort order and a page."""

from dataclasses import dataclass, field
from enum import StrEnum

from taskline.domain.status import TaskStatus

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "SortField", "TaskQuery"]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class SortField(StrEnum):
    """Fields a listing can be sorted by (prefix ``-`` in the API for descending)."""

    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    PRIORITY = "priority"
    PROGRESS = "progress"
    TITLE = "title"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """A filtered, sorted page of tasks. Empty filters match everything.

    ``search`` matches case-insensitively in the title and the description; ``needs_input``
    (None: either) keeps the tasks that have (true) or have not (false) an open request.
    Ties in the sort order are broken by id, so pages never overlap.
    """

    statuses: tuple[TaskStatus, ...] = ()
    agent_id: str | None = None
    tag: str | None = None
    search: str | None = None
    needs_input: bool | None = None
    sort: SortField = SortField.CREATED_AT
    descending: bool = True
    limit: int = DEFAULT_PAGE_SIZE
    offset: int = 0
    ids: tuple[str, ...] = field(default=())

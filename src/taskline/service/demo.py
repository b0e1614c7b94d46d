"""Sample tasks so a first start shows a board that is not empty."""

from sqlalchemy import func, select

from taskline.domain.models import AgentCreate, SectionCreate, SubtaskCreate, TaskCreate
from taskline.domain.status import Priority, TaskStatus
from taskline.service.writes import Writes
from taskline.store.agents import AgentStore
from taskline.store.tables import TaskRow
from taskline.store.tasks import TaskStore

__all__ = ["seed_demo_board"]


def _section(title: str, *subtasks: tuple[str, bool]) -> SectionCreate:
    return SectionCreate(
        title=title, subtasks=[SubtaskCreate(title=t, done=done) for t, done in subtasks]
    )


async def seed_demo_board(writes: Writes) -> int:
    """Create the sample agent and tasks if the board has no task; return how many were made.

    The samples get no log events (their logs start empty, as imported tasks' do)."""
    async with writes.change() as change:
        session = change.session
        if await session.scalar(select(func.count()).select_from(TaskRow)):
            return 0
        agent = await AgentStore(session).create(
            AgentCreate(name="Reviewer", kind="builtin", metadata={"demo": True})
        )
        store = TaskStore(session)
        samples = [
            TaskCreate(
                title="Review the project documentation",
                description="Read every document, report broken links and open TODOs.",
                status=TaskStatus.IN_PROGRESS,
                priority=Priority.HIGH,
                progress=0.4,
                confidence=0.7,
                assigned_agent_id=agent.id,
                tags=["docs", "review"],
                sections=[
                    _section("Plan", ("List the files", True), ("Pick a reading order", True)),
                    _section("Read", ("README.md", True), ("design.md", False)),
                    _section("Report", ("Write the summary", False)),
                ],
            ),
            TaskCreate(
                title="Triage new issues",
                description="Label and prioritise this week's incoming issues.",
                priority=Priority.MEDIUM,
                tags=["triage"],
                sections=[_section("Inbox", ("Label", False), ("Assign", False))],
            ),
            TaskCreate(
                title="Prepare the release notes",
                status=TaskStatus.COMPLETED,
                priority=Priority.LOW,
                confidence=0.95,
                tags=["release"],
                result="Release notes drafted and published.",
                sections=[_section("Draft", ("Collect changes", True), ("Write notes", True))],
            ),
        ]
        for sample in samples:
            await store.create(sample)
        return len(samples)

"""``taskline agent run``: the built-in agent reviews a folder of documents on a task, live.

The command is a thin layer over :func:`taskline.agent.runner.review_folder`: it checks the
folder, creates the task (or uses ``--task``), prints one line per step, and exits 0 when
the task completed. A cancelled task or a folder that cannot be reviewed is one
``error: ...`` line and a non-zero exit; SDK errors are reported by the root group.
"""

import asyncio
from pathlib import Path

import click

from taskline.agent.files import SAMPLE_DOCS, FolderError, check_folder
from taskline.agent.runner import (
    APPROVABLE_STEPS,
    DEFAULT_AGENT_ID,
    ReviewOutcome,
    ReviewResult,
    review_folder,
)
from taskline.cli.context import open_async_client
from taskline.cli.errors import CliError, ExitCode
from taskline.domain.ids import ID_PATTERN
from taskline.sdk import AsyncClient

__all__ = ["agent"]

#: Seconds between files by default: slow enough to watch, quick enough for a demo.
DEFAULT_DELAY = 0.6


def _check_agent_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Refuse a malformed agent id before anything is created on the server."""
    if not (value.startswith("agent_") and ID_PATTERN.match(value)):
        raise click.BadParameter("expected 'agent_' followed by lowercase letters and digits")
    return value


@click.group()
def agent() -> None:
    """Run Taskline's built-in agent, or attach a remote AG-UI agent to a task."""


@agent.command("run")
@click.argument(
    "path", required=False, type=click.Path(file_okay=True, dir_okay=True, path_type=Path)
)
@click.option("--sample", is_flag=True, help="Review the sample folder shipped with Taskline.")
@click.option("--task", "task_id", metavar="ID", help="Work on this existing task.")
@click.option("--new", "title", metavar="TITLE", help="Create a task with this title (default).")
@click.option(
    "--agent-id",
    callback=_check_agent_id,
    default=DEFAULT_AGENT_ID,
    show_default=True,
    help="The agent's id (agent_...); registered on first use.",
)
@click.option(
    "--delay",
    type=click.FloatRange(min=0),
    default=DEFAULT_DELAY,
    show_default=True,
    help="Seconds to wait before each file, so the run can be watched; 0 for full speed.",
)
@click.option("--print-report", is_flag=True, help="Print the Markdown report at the end.")
@click.option(
    "--approve",
    "approve",
    multiple=True,
    type=click.Choice(sorted(APPROVABLE_STEPS)),
    help="Ask a person to approve this step first (repeatable); answer with taskline approve.",
)
def run(
    path: Path | None,
    sample: bool,
    task_id: str | None,
    title: str | None,
    agent_id: str,
    delay: float,
    print_report: bool,
    approve: tuple[str, ...],
) -> None:
    """Review the folder PATH (or --sample) as the built-in agent working on a task.

    It plans one step per file, reads each file with tool calls, streams its narration,
    reports progress and confidence, keeps shared state, and completes the task with a
    Markdown report: headings, word counts, TODO/FIXME lines, broken relative links and the
    largest files. Pause, resume, cancel and messages (taskline tasks ...) reach it while it
    runs. With --approve STEP it waits for a person's approval before that step (a
    rejection fails the task).

    \b
    Exit status: 0 completed; 1 cancelled or failed; 2 bad usage or no such folder;
    3 server unreachable; 4 no such task; 7 not signed in or not allowed.
    """
    if sample == (path is not None):
        raise click.UsageError("give a PATH or --sample (one of them)")
    if task_id is not None and title is not None:
        raise click.UsageError("--task and --new cannot be used together")
    folder = SAMPLE_DOCS if path is None else path
    try:
        check_folder(folder)
    except FolderError as exc:
        raise CliError(str(exc), ExitCode.USAGE) from None
    client = open_async_client()
    if title is None and task_id is None:
        title = "Review the sample documents" if sample else f"Review {folder.resolve().name}"
    result = asyncio.run(_run(client, folder, task_id, title, agent_id, delay, approve))
    if result.outcome is not ReviewOutcome.COMPLETED:
        done, total = len(result.review.files), result.files_total
        raise CliError(f"the task was cancelled after {done} of {total} files", ExitCode.ERROR)
    if print_report and result.report is not None:
        click.echo(result.report, nl=False)


def _echo(line: str) -> None:
    """Print a step line; the narration's Markdown code marks are dropped for the terminal."""
    click.echo(line.replace("`", ""))


async def _run(
    client: AsyncClient,
    folder: Path,
    task_id: str | None,
    title: str | None,
    agent_id: str,
    delay: float,
    approve: tuple[str, ...] = (),
) -> ReviewResult:
    async with client:
        if task_id is None:
            task = await client.create_task(
                title or "Review",
                description=f"The built-in agent reviews the folder {folder}.",
                tags=["review", "builtin"],
            )
            task_id = task.id
        else:
            await client.get_task(task_id)  # an unknown id is "not found" before connecting
        click.echo(f"task {task_id}: reviewing {folder} as {agent_id}")
        try:
            result = await review_folder(
                client,
                task_id,
                folder,
                agent_id=agent_id,
                step_delay=delay,
                on_step=_echo,
                approve=approve,
            )
        except FolderError as exc:
            raise CliError(f"{exc} (the task was failed)", ExitCode.ERROR) from None
    if result.outcome is ReviewOutcome.COMPLETED:
        review = result.review
        click.echo(
            f"task {task_id} completed: {len(review.files)} files, confidence "
            f"{review.confidence:.2f}; the report is the task's result "
            f"(taskline tasks show {task_id})"
        )
    return result

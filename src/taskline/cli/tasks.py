"""``taskline tasks ...``: list, show, create, update, delete, export and import tasks.

Values are checked by the server, not here (one judge of input): a progress of 1.5 reaches
the API and comes back as "invalid input" (exit 5). Click only checks shapes: numbers are
numbers, statuses and priorities come from their fixed vocabularies.
"""

from pathlib import Path
from typing import IO, Any

import click

from taskline.cli.context import open_client
from taskline.cli.errors import CliError, ExitCode
from taskline.cli.output import echo_json, stdout, task_detail, task_line, task_table, when
from taskline.domain.queries import SortField
from taskline.domain.status import Priority, TaskStatus

__all__ = ["tasks"]

_STATUS = click.Choice([s.value for s in TaskStatus], case_sensitive=False)
_PRIORITY = click.Choice([p.value for p in Priority], case_sensitive=False)
_SORT_HELP = "Sort field, '-' prefix for descending: " + ", ".join(f.value for f in SortField)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead.")


@click.group()
def tasks() -> None:
    """List, inspect and change tasks."""


@tasks.command("list")
@click.option("--status", "-s", "statuses", type=_STATUS, multiple=True, help="Repeatable.")
@click.option("--agent", help="Only tasks assigned to this agent id.")
@click.option("--tag", help="Only tasks carrying this tag.")
@click.option("--search", "-q", help="Text to find in the title or description.")
@click.option("--sort", default="-created_at", show_default=True, help=_SORT_HELP)
@click.option("--limit", type=int, default=50, show_default=True, help="Page size (1-500).")
@click.option("--offset", type=int, default=0, show_default=True, help="Tasks to skip.")
@_JSON
def list_tasks(
    statuses: tuple[str, ...],
    agent: str | None,
    tag: str | None,
    search: str | None,
    sort: str,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List tasks, newest first. Repeated --status options match any of them."""
    page = open_client().list_tasks(
        status=statuses or None,
        agent=agent,
        tag=tag,
        q=search,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    if as_json:
        echo_json(page)
    else:
        stdout().print(task_table(page))


@tasks.command("show")
@click.argument("task_id")
@_JSON
def show_task(task_id: str, as_json: bool) -> None:
    """Show one task with its sections and subtasks."""
    task = open_client().get_task(task_id)
    if as_json:
        echo_json(task)
    else:
        stdout().print(task_detail(task))


@tasks.command("create")
@click.argument("title")
@click.option("--description", "-d", help="Longer text.")
@click.option("--priority", "-p", type=_PRIORITY, help="[default: medium]")
@click.option("--tag", "-t", "tags", multiple=True, help="Repeatable.")
@click.option("--agent", help="Assign to this agent id.")
@click.option(
    "--section",
    "sections",
    multiple=True,
    metavar="TITLE",
    help="Add an empty section; repeatable.",
)
@_JSON
def create_task(
    title: str,
    description: str | None,
    priority: str | None,
    tags: tuple[str, ...],
    agent: str | None,
    sections: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create a task titled TITLE."""
    fields: dict[str, Any] = {}
    if description is not None:
        fields["description"] = description
    if priority is not None:
        fields["priority"] = priority.lower()
    if tags:
        fields["tags"] = list(tags)
    if agent:
        fields["assigned_agent_id"] = agent
    if sections:
        fields["sections"] = [{"title": section} for section in sections]
    task = open_client().create_task(title, **fields)
    if as_json:
        echo_json(task)
    else:
        stdout().print(task_line("created", task))


@tasks.command("update")
@click.argument("task_id")
@click.option("--title", help="New title.")
@click.option("--description", "-d", help="New description.")
@click.option("--status", "-s", type=_STATUS, help="New status (the state machine decides).")
@click.option("--priority", "-p", type=_PRIORITY)
@click.option("--progress", type=float, help="A fraction from 0 to 1.")
@click.option("--confidence", type=float, help="A fraction from 0 to 1.")
@click.option("--agent", help="Assign to this agent id; an empty string unassigns.")
@click.option("--tag", "-t", "tags", multiple=True, help="Replaces all tags; repeatable.")
@click.option("--clear-tags", is_flag=True, help="Remove every tag.")
@_JSON
def update_task(
    task_id: str,
    title: str | None,
    description: str | None,
    status: str | None,
    priority: str | None,
    progress: float | None,
    confidence: float | None,
    agent: str | None,
    tags: tuple[str, ...],
    clear_tags: bool,
    as_json: bool,
) -> None:
    """Change some fields of a task; the others stay as they are.

    A refused status change exits with 6 and names the statuses allowed from the current one.
    """
    if tags and clear_tags:
        raise click.UsageError("--tag and --clear-tags cannot be combined")
    given: dict[str, Any] = {
        "title": title,
        "description": description,
        "status": status.lower() if status else None,
        "priority": priority.lower() if priority else None,
        "progress": progress,
        "confidence": confidence,
    }
    changes = {name: value for name, value in given.items() if value is not None}
    if agent is not None:
        changes["assigned_agent_id"] = agent or None
    if tags or clear_tags:
        changes["tags"] = list(tags)
    if not changes:
        raise click.UsageError("nothing to update: give at least one option, e.g. --status")
    task = open_client().update_task(task_id, **changes)
    if as_json:
        echo_json(task)
    else:
        stdout().print(task_line("updated", task))


@tasks.command("claim")
@click.option(
    "--tag", "-t", "tags", multiple=True, help="Only tasks carrying one of these; repeatable."
)
@click.option(
    "--lease",
    "lease_seconds",
    type=float,
    help="Seconds the lease lasts without a heartbeat.  [default: the server's, 300]",
)
@click.option("--agent", help="Claim for this agent id (a person's token must name one).")
@click.option(
    "--assigned",
    type=click.Choice(["any", "mine", "unassigned"]),
    default="any",
    show_default=True,
    help="Tasks assigned to the agent or nobody (any), only to the agent, only to nobody.",
)
@_JSON
def claim_task(
    tags: tuple[str, ...],
    lease_seconds: float | None,
    agent: str | None,
    assigned: str,
    as_json: bool,
) -> None:
    """Claim the most urgent, then oldest, pending task: it becomes the agent's, in progress,
    until its lease runs out (any event the agent publishes renews it).

    Prints the task and its lease; when nothing matches, says so on stderr (``null`` with
    --json) and exits with 0. A lease out of bounds exits with 5.
    """
    task = open_client().claim(tags, lease_seconds=lease_seconds, agent_id=agent, assigned=assigned)
    if task is None:
        if as_json:
            click.echo("null")
        click.echo("nothing to claim: no pending task matches", err=True)
    elif as_json:
        echo_json(task)
    else:
        line = task_line("claimed", task)
        line.append(f"  held by {task.lease.agent_id} until {when(task.lease.expires_at)}")
        line.append(f" (lease {task.lease.token})", style="dim")
        stdout().print(line)


@tasks.command("release")
@click.argument("task_id")
@_JSON
def release_task(task_id: str, as_json: bool) -> None:
    """Give a claimed task back: pending again, unassigned unless it was assigned to the agent
    before the claim. Exits with 6 when the agent does not hold it (the error names who does).
    """
    task = open_client().release(task_id)
    if as_json:
        echo_json(task)
    else:
        stdout().print(task_line("released", task))


@tasks.command("delete")
@click.argument("task_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete_task(task_id: str, yes: bool) -> None:
    """Delete a task with its sections and messages (asks first unless --yes)."""
    client = open_client()
    if not yes:
        task = client.get_task(task_id)
        click.confirm(f"Delete task {task.id} ({task.title!r})?", abort=True, err=True)
    client.delete_task(task_id)
    click.echo(f"deleted {task_id}")


@tasks.command("export")
@click.argument("fmt", metavar="FORMAT")
@click.option("--task", "task_id", help="Export only this task.")
@click.option(
    "--output",
    "-o",
    metavar="PATH",
    help="File or directory to write, '-' for stdout.  [default: the server's file name]",
)
def export_tasks(fmt: str, task_id: str | None, output: str | None) -> None:
    """Export every task (or one with --task) as FORMAT: json, csv, md or zip.

    Without --output the file gets the server's name in the current directory; an existing
    file is overwritten. The path written is printed.
    """
    filename, content = open_client().export(fmt.lower(), task_id=task_id)
    if output == "-":
        click.echo(content, nl=False)  # bytes go to the binary stdout untouched
        return
    target = Path(output) if output else Path.cwd()
    if target.is_dir():
        target = target / filename
    try:
        target.write_bytes(content)
    except OSError as exc:
        raise CliError(f"cannot write {target}: {exc.strerror or exc}", ExitCode.ERROR) from None
    click.echo(f"wrote {target} ({len(content)} bytes)")


@tasks.command("import")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--mode",
    type=click.Choice(["create", "replace"]),
    default="create",
    show_default=True,
    help="create refuses ids that exist; replace overwrites them.",
)
@_JSON
def import_tasks(file: IO[bytes], mode: str, as_json: bool) -> None:
    """Import a JSON export from FILE ('-' for stdin); all or nothing."""
    data = file.read()
    summary = open_client().import_tasks(data, mode=mode)
    if as_json:
        echo_json(dict(summary))
        return
    click.echo(
        f"imported {summary.get('tasks', 0)} tasks, {summary.get('agents', 0)} agents, "
        f"{summary.get('messages', 0)} messages ({summary.get('replaced', 0)} replaced)"
    )


def _delivery(delivered: bool) -> str:
    return "delivered to the agent" if delivered else "queued for the agent (not connected)"


@tasks.command("message")
@click.argument("task_id")
@click.argument("text")
@click.option("--author", default="user", show_default=True, help="Who is writing.")
@_JSON
def message_task(task_id: str, text: str, author: str, as_json: bool) -> None:
    """Post TEXT to the task's thread; the task's agent gets it live (or when it connects)."""
    posted = open_client().post_message(task_id, text, author=author)
    if as_json:
        echo_json(posted.model_dump(mode="json"))
        return
    click.echo(f"message {posted.id} posted, {_delivery(posted.delivered)}")


def _control_command(name: str, verb: str, summary: str) -> None:
    @tasks.command(name, help=summary)
    @click.argument("task_id")
    @_JSON
    def command(task_id: str, as_json: bool) -> None:
        client = open_client()
        task = getattr(client, name)(task_id)
        if as_json:
            echo_json(task.model_dump(mode="json"))
            return
        click.echo(
            f"task {task.id} {verb} (status {task.status.value}), {_delivery(task.delivered)}"
        )


_control_command("pause", "paused", "Pause the task and tell its agent to pause.")
_control_command("resume", "resumed", "Resume a paused task and tell its agent to go on.")
_control_command("cancel", "cancelled", "Cancel the task and tell its agent to stop.")

"""``taskline agent attach``: run a remote AG-UI agent and record its run into a task.

A thin layer over :func:`taskline.agui.bridge.attach`. The Taskline server is the global
``--url``; the remote agent's AG-UI endpoint is ``--agui-url``. One line is printed per event
type as it first arrives (``-v`` prints every event), then a summary.

A run that ends asking (``RUN_FINISHED`` with an interrupt outcome) opens a request per
interrupt on the task (the inbox shows them) and exits 0, saying so.

Exit status: 0 the run finished (``RUN_FINISHED``); 1 it ended with ``RUN_ERROR`` (recorded,
so the task is failed) or the bridge failed; 2 bad usage; 4 no such task; 7 Taskline refused
the token (none, unknown, expired) or the role may not record events on the task.

Taskline's token comes from ``--token``, ``TASKLINE_TOKEN`` or the credentials file, as for
every command; it is sent to Taskline only, never to the remote agent (``--header`` is for
the remote agent).
"""

import asyncio
from typing import Any

import click

from taskline.agui.bridge import BridgeError, BridgeResult
from taskline.agui.bridge import attach as run_bridge
from taskline.cli.context import current_state
from taskline.cli.errors import CliError, ExitCode
from taskline.sdk import resolve_token

__all__ = ["attach"]


def _header(values: tuple[str, ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(
                f"expected 'Name: value', got {value!r}", param_hint="'--header'"
            )
        headers[name.strip()] = content.strip()
    return headers


@click.command("attach")
@click.option("--agui-url", required=True, metavar="URL", help="The remote agent's AG-UI endpoint.")
@click.option("--task", "task_id", required=True, metavar="ID", help="The task to record into.")
@click.option("--message", "-m", metavar="TEXT", help="The user message sent to the agent.")
@click.option(
    "--header",
    "-H",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="A header for the remote agent (repeatable), e.g. Authorization.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    help="Events recorded per request at most.",
)
@click.option("-v", "--verbose", is_flag=True, help="Print every event.")
def attach(
    agui_url: str,
    task_id: str,
    message: str | None,
    headers: tuple[str, ...],
    batch_size: int,
    verbose: bool,
) -> None:
    """Run the AG-UI agent at --agui-url on task --task, recording its stream live.

    Any framework's AG-UI endpoint works: it gets a RunAgentInput (threadId = the task id,
    the task's shared state, the --message), and every event it streams back is recorded
    with POST /api/v1/tasks/{id}/events?format=agui, so the run shows in Taskline.
    """
    state = current_state()
    token = resolve_token(state.url, state.token)
    seen: set[str] = set()
    asked: list[Any] = []

    def on_event(event: dict[str, Any]) -> None:
        kind = str(event.get("type"))
        outcome = event.get("outcome")
        if kind == "RUN_FINISHED" and isinstance(outcome, dict) and outcome.get("interrupts"):
            asked.extend(outcome["interrupts"])
        if verbose or kind not in seen:
            click.echo(f"{kind}" + (f" {event.get('message')}" if kind == "RUN_ERROR" else ""))
        seen.add(kind)

    def on_warning(line: str) -> None:
        click.echo(f"warning: {line}", err=True)

    try:
        result: BridgeResult = asyncio.run(
            run_bridge(
                state.url,
                agui_url,
                task_id,
                message=message,
                headers=_header(headers),
                token=token,
                timeout=state.timeout,
                batch_size=batch_size,
                on_event=on_event,
                on_warning=on_warning,
            )
        )
    except BridgeError as exc:
        if exc.status == 401:
            fix = "run 'taskline login', or pass --token (TASKLINE_TOKEN)"
            raise CliError(f"not signed in: {exc} — {fix}", ExitCode.AUTH) from None
        if exc.status == 403:
            raise CliError(f"not allowed: {exc}", ExitCode.AUTH) from None
        code = ExitCode.NOT_FOUND if exc.status == 404 else ExitCode.ERROR
        raise CliError(str(exc), code) from None
    click.echo(
        f"task {task_id}: recorded {result.recorded} events of run {result.run_id} "
        f"({result.terminal or 'no terminal event'})"
    )
    if asked:
        click.echo(
            f"interrupt: the agent waits for {len(asked)} answer"
            + ("s" if len(asked) != 1 else "")
            + ", each a request on the task (see taskline inbox)"
        )
    if result.terminal != "RUN_FINISHED":
        raise CliError("the AG-UI run did not finish (the task was failed)", ExitCode.ERROR)

"""``taskline watch TASK_ID``: a live terminal view of one task.

It shows the status, a progress bar, the confidence, the agent and its status, the latest
tool calls with their durations, the text the agent is streaming, and whether the view is
connected. It follows the task's event stream through the SDK, which reconnects and resumes
after a lost connection or a server restart; the indicator says ``reconnecting`` meanwhile.
A refused token is not retried: it ends the command (exit 7), like any other command's.
"""

import asyncio

import click
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from taskline.cli.context import open_async_client
from taskline.cli.errors import CliError, ExitCode
from taskline.cli.output import STATUS_STYLE
from taskline.cli.watch_view import WatchView
from taskline.domain.status import TERMINAL_STATUSES
from taskline.sdk import AsyncClient, NotFound

__all__ = ["watch"]

_CONNECTION_STYLE = {"live": "green", "connecting": "yellow", "reconnecting": "yellow"}


def render(view: WatchView) -> Panel:
    """The Rich renderable of ``view``."""
    header = Table.grid(expand=True)
    header.add_column()
    header.add_column(justify="right")
    status = Text(view.status, style=STATUS_STYLE.get(view.status, "white"))
    connection = Text(f"● {view.connection}", style=_CONNECTION_STYLE.get(view.connection, "red"))
    header.add_row(Text.assemble("Status: ", status), connection)
    bar = Table.grid(expand=True)
    bar.add_column(ratio=1)
    bar.add_column(width=6, justify="right")
    bar.add_row(ProgressBar(total=1.0, completed=view.progress), f"{view.progress:.0%}")
    confidence = "—" if view.confidence is None else f"{view.confidence:.0%}"
    agent = view.agent_id or "none"
    if view.agent_status:
        agent += f" ({view.agent_status})"
    facts = Text(f"Confidence: {confidence}    Agent: {agent}    Seq: {view.last_seq}")
    calls = Table(title="Tool calls", expand=True, show_edge=False)
    calls.add_column("tool")
    calls.add_column("state")
    calls.add_column("duration", justify="right")
    for line in view.tool_calls.values():
        duration = "" if line.duration_ms is None else f"{line.duration_ms:.0f} ms"
        state = line.state if not line.detail else f"{line.state}: {line.detail[:40]}"
        calls.add_row(line.name, state, duration)
    text = view.text[-600:] + ("▌" if view.text_open else "")
    body = Group(
        header,
        bar,
        Text(view.progress_message, style="dim"),
        facts,
        calls,
        Panel(text or "(no message yet)", title="Agent says"),
    )
    return Panel(body, title=f"{view.title} [{view.task_id}]")


async def _follow(client: AsyncClient, task_id: str, once: bool, console: Console) -> None:
    view = WatchView(task_id)
    async with client:
        view.load(await client.get_task(task_id))
        subscription = client.subscribe(task_id, since=0, include_connection_messages=True)
        with Live(render(view), console=console, refresh_per_second=8) as live:

            async def show_connection() -> None:
                # The stream is silent while reconnecting: poll its state for the indicator.
                while True:
                    if view.connection != subscription.state.value:
                        view.connection = subscription.state.value
                        live.update(render(view))
                    await asyncio.sleep(0.2)

            indicator = asyncio.create_task(show_connection())
            try:
                async with subscription as events:
                    async for event in events:
                        view.connection = subscription.state.value
                        view.apply(event)
                        live.update(render(view))
                        if once and view.status in TERMINAL_STATUSES:
                            return
            finally:
                indicator.cancel()


@click.command()
@click.argument("task_id")
@click.option("--exit-when-done", is_flag=True, help="Stop when the task completes or fails.")
def watch(task_id: str, exit_when_done: bool) -> None:
    """Watch one task live: progress, confidence, agent, tool calls, streamed text."""
    client = open_async_client()
    try:
        asyncio.run(_follow(client, task_id, exit_when_done, Console()))
    except NotFound:
        raise CliError(f"task {task_id!r} does not exist", ExitCode.NOT_FOUND) from None
    except KeyboardInterrupt:
        pass

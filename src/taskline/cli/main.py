"""The root ``taskline`` group and the console-script entry point ``main()``.

Errors end here: SDK errors become one ``error: ...`` line and a documented exit code
(see :class:`~taskline.cli.errors.ExitCode`); anything unexpected is reported the same way
unless ``--debug`` asks for the traceback.
"""

from typing import Any

import click

from taskline import __version__
from taskline.cli.access import tokens, users
from taskline.cli.agent import agent
from taskline.cli.agents import agents
from taskline.cli.attach import attach
from taskline.cli.context import CliState
from taskline.cli.db import db
from taskline.cli.errors import CliError, ExitCode, from_client_error
from taskline.cli.login import login, logout
from taskline.cli.mcp import mcp
from taskline.cli.requests import answer, approve, inbox, reject
from taskline.cli.serve import serve
from taskline.cli.tasks import tasks
from taskline.cli.watch import watch
from taskline.cli.webhooks import webhooks
from taskline.sdk import DEFAULT_TIMEOUT, DEFAULT_URL, TasklineClientError

__all__ = ["main", "taskline"]


class TasklineGroup(click.Group):
    """A group that turns every error of its commands into a :class:`CliError`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TasklineClientError as exc:
            state = ctx.find_object(CliState)
            raise from_client_error(exc, state.url if state else None) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            state = ctx.find_object(CliState)
            if state is not None and state.debug:
                raise
            raise CliError(
                f"unexpected {type(exc).__name__}: {exc}",
                ExitCode.ERROR,
                ["run again with --debug to see the traceback"],
            ) from exc


@click.group(
    cls=TasklineGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--url",
    envvar="TASKLINE_URL",
    default=DEFAULT_URL,
    show_default=True,
    show_envvar=True,
    metavar="URL",
    help="The Taskline server to talk to.",
)
@click.option(
    "--token",
    envvar="TASKLINE_TOKEN",
    show_envvar=True,
    metavar="TOKEN",
    help="API token sent to the server (Authorization: Bearer). Without it: the token "
    "'taskline login' stored for --url in $XDG_CONFIG_HOME/taskline/credentials.json "
    "(~/.config/taskline/credentials.json).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the server.",
)
@click.option("--debug", is_flag=True, hidden=True, help="Show tracebacks of unexpected errors.")
@click.version_option(__version__, "--version", "-V", prog_name="taskline")
@click.pass_context
def taskline(ctx: click.Context, url: str, token: str | None, timeout: float, debug: bool) -> None:
    """Taskline: a task board where AI agents and people work on the same tasks, live.

    A server that checks who asks wants a token: sign in once with 'taskline login' (the
    token is stored for that server), or pass --token / set TASKLINE_TOKEN.

    \b
    Exit codes: 0 ok, 1 error, 2 usage, 3 server unreachable, 4 not found,
    5 invalid input, 6 conflict (e.g. a refused status change),
    7 not signed in or not allowed.
    """
    ctx.obj = CliState(url=url, timeout=timeout, debug=debug, token=token or None)


taskline.add_command(serve)
taskline.add_command(db)
taskline.add_command(users)
taskline.add_command(tokens)
taskline.add_command(tasks)
taskline.add_command(agents)
agent.add_command(attach)
taskline.add_command(agent)
taskline.add_command(watch)
taskline.add_command(login)
taskline.add_command(logout)
taskline.add_command(mcp)
taskline.add_command(inbox)
taskline.add_command(answer)
taskline.add_command(approve)
taskline.add_command(reject)
taskline.add_command(webhooks)


def main() -> None:
    """Run the ``taskline`` command line (the console script)."""
    taskline(prog_name="taskline")

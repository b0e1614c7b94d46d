"""``taskline serve``: run the API server with uvicorn."""

import asyncio
from typing import TYPE_CHECKING

import click

from taskline.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from taskline.settings import Settings

__all__ = ["exposure_warnings", "is_loopback", "serve"]

_LOG_LEVELS = click.Choice(["critical", "error", "warning", "info", "debug", "trace"])


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    return host in {"localhost", "::1"} or host.startswith("127.")


def exposure_warnings(settings: "Settings") -> list[str]:
    """What to tell the person starting a server open to the network.

    Raises:
        CliError: a non-loopback address with authentication off and no ``--insecure``.
    """
    if is_loopback(settings.host):
        return ["authentication is off (--insecure)"] if settings.insecure else []
    if settings.insecure:
        return [
            f"serving {settings.host} with no authentication (--insecure): anyone who can "
            "reach this address may do everything"
        ]
    if not settings.auth:
        raise CliError(
            f"refusing to serve {settings.host} with authentication off (TASKLINE_AUTH=false): "
            "anyone on the network could change every task. Turn it on, or pass --insecure "
            "if you mean it",
            ExitCode.USAGE,
        )
    if not (settings.public_url or "").startswith("https://"):
        return [
            f"serving {settings.host} over plain HTTP: passwords, tokens and session cookies "
            "cross the network readable. Put a TLS-terminating proxy in front and set "
            "TASKLINE_PUBLIC_URL=https://..."
        ]
    return []


@click.command()
@click.option("--host", help="Address to listen on.  [default: 127.0.0.1]")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to listen on.  [default: 8000]")
@click.option(
    "--database-url",
    metavar="URL",
    help="SQLAlchemy async URL.  [default: sqlite+aiosqlite:///./taskline.db]",
)
@click.option(
    "--demo/--no-demo",
    default=None,
    help="Create sample tasks when the board is empty, and start the built-in agent on the "
    "sample folder so a task progresses live.",
)
@click.option("--log-level", type=_LOG_LEVELS, help="uvicorn log level.  [default: info]")
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="No authentication and no Host or Origin checks, on any address: everyone may do "
    "everything. For trusted networks and experiments only.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes sharing the port (more than one needs PostgreSQL and "
    "TASKLINE_REDIS_URL).",
)
def serve(
    host: str | None,
    port: int | None,
    database_url: str | None,
    demo: bool | None,
    log_level: str | None,
    insecure: bool | None,
    workers: int,
) -> None:
    """Run the Taskline server until interrupted (Ctrl+C).

    Options left out come from TASKLINE_* environment variables, then from the defaults.
    Migrations are applied at start-up.
    """
    # Server imports stay here so client commands do not pay for them.
    import os

    from taskline.cli.config import check_database, load_settings, safe_database_url
    from taskline.settings import retired_variables

    for warning in retired_variables(os.environ):
        click.echo(f"warning: {warning}", err=True)

    settings = load_settings(
        host=host,
        port=port,
        database_url=database_url,
        seed_demo=demo,
        log_level=log_level,
        insecure=insecure,
    )
    for line in exposure_warnings(settings):
        click.echo(f"warning: {line}", err=True)
    from taskline.cli.workers import check_workers, supervise

    check_workers(settings, workers)
    # Fail with one line here rather than with uvicorn's start-up traceback.
    asyncio.run(check_database(settings.database_url))
    if workers > 1:
        supervise(settings, workers)
        return
    from taskline.server import build_server, file_descriptor_headroom

    # every WebSocket holds an open file: raise the limit for the caps, or lower the caps
    settings, fd_warnings = file_descriptor_headroom(settings)
    for line in fd_warnings:
        click.echo(f"warning: {line}", err=True)
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    click.echo(
        f"Taskline serving on http://{shown_host}:{settings.port} "
        f"(database: {safe_database_url(settings.database_url)})"
    )
    server = build_server(settings)
    if settings.seed_demo:
        from taskline.cli.demo import start_demo_agent
        from taskline.domain.actors import Actor

        local = "127.0.0.1" if settings.host in {"0.0.0.0", "::"} else shown_host
        url = f"http://{local}:{settings.port}"
        # the demo agent signs its requests with a secret that lives only in this process
        token = server.app.state.services.identity.issue_ephemeral(Actor.system("demo"))
        start_demo_agent(url, token=token, approve=settings.agent_approve)
        click.echo(f"Live demo: open {url}/ in a browser, or run: taskline watch <task id>")
    server.run()
    if not server.started:
        raise CliError("the server did not start; see the log above", ExitCode.ERROR)

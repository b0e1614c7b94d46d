"""``taskline serve``: run the API server with uvicorn."""

import asyncio

import click

from taskline.cli.errors import CliError, ExitCode

__all__ = ["serve"]

_LOG_LEVELS = click.Choice(["critical", "error", "warning", "info", "debug", "trace"])


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
def serve(
    host: str | None,
    port: int | None,
    database_url: str | None,
    demo: bool | None,
    log_level: str | None,
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
        host=host, port=port, database_url=database_url, seed_demo=demo, log_level=log_level
    )
    # Fail with one line here rather than with uvicorn's start-up traceback.
    asyncio.run(check_database(settings.database_url))
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    click.echo(
        f"Taskline serving on http://{shown_host}:{settings.port} "
        f"(database: {safe_database_url(settings.database_url)})"
    )
    from taskline.server import build_server

    server = build_server(settings)
    if settings.seed_demo:
        from taskline.cli.demo import start_demo_agent

        local = "127.0.0.1" if settings.host in {"0.0.0.0", "::"} else shown_host
        url = f"http://{local}:{settings.port}"
        start_demo_agent(url)
        click.echo(f"Live demo: open {url}/ in a browser, or run: taskline watch <task id>")
    server.run()
    if not server.started:
        raise CliError("the server did not start; see the log above", ExitCode.ERROR)

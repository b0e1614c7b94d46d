"""``taskline login`` and ``taskline logout``: the token kept for a server between commands.

``login`` signs in with a username and password (``POST /api/v1/auth/token``) and stores the
personal token the server returns; ``login --token-stdin`` stores a token made elsewhere,
after one authenticated request shows the server accepts it. Either way the token goes to the
credentials file (:func:`taskline.sdk.credentials_path`, mode 0600), keyed by the server
(``--url``), and is never printed. ``logout`` removes the server's entry.

Every other command then sends that token unless ``--token`` or ``TASKLINE_TOKEN`` gives one.
"""

import socket
import sys

import click

from taskline.cli.context import current_state
from taskline.cli.errors import CliError, ExitCode
from taskline.sdk import (
    Client,
    NotFound,
    TasklineAuthError,
    credentials_path,
    remove_token,
    server_key,
    store_token,
)

__all__ = ["login", "logout"]


def _server(url: str) -> str:
    """``url`` as the credentials file names it, or a usage error for a bad ``--url``."""
    try:
        return server_key(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--url'") from None


def _client(url: str, token: str, timeout: float) -> Client:
    try:
        return Client(url, token=token, timeout=timeout)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--url'") from None


def _read_token() -> str:
    token = sys.stdin.read().strip()
    if not token or any(c.isspace() for c in token):
        raise CliError("expected one token on stdin (tl_...), and nothing else", ExitCode.USAGE)
    return token


@click.command()
@click.option("--username", "-u", metavar="NAME", help="Who signs in (asked when left out).")
@click.option(
    "--token-stdin",
    is_flag=True,
    help="Store a token read from stdin instead of signing in (it is checked first).",
)
@click.option(
    "--name",
    "label",
    metavar="LABEL",
    help="A label for the new token, to recognise it later.  [default: taskline CLI on <host>]",
)
def login(username: str | None, token_stdin: bool, label: str | None) -> None:
    """Sign in to the server at --url and keep a token for it.

    Asks for the password (and the username, unless --username), gets a personal token
    with POST /api/v1/auth/token and stores it in the credentials file; commands for the
    same server send it from then on. With --token-stdin a token made elsewhere is stored
    instead, once the server has accepted it:

    \b
        printf %s "$TOKEN" | taskline login --token-stdin

    \b
    Exit status: 0 stored; 3 server unreachable; 4 the server has no sign-in;
    7 the server refused the password or the token.
    """
    state = current_state()
    server = _server(state.url)
    if token_stdin:
        if username is not None or label is not None:
            raise click.UsageError(
                "--token-stdin does not sign in: leave out --username and --name"
            )
        token = _read_token()
        with _client(state.url, token, state.timeout) as client:
            try:
                client.list_tasks(limit=1)
            except TasklineAuthError as exc:
                raise CliError(
                    f"{server} refused the token: {exc.detail} ({exc.status})", ExitCode.AUTH
                ) from None
        path = store_token(state.url, token)
        click.echo(f"token stored for {server} in {path}")
    else:
        name = username or click.prompt("Username")
        password = click.prompt("Password", hide_input=True)
        with _client(state.url, "", state.timeout) as client:  # "": no stored token sent
            try:
                issued = client.create_token(
                    name, password, name=label or f"taskline CLI on {socket.gethostname()}"
                )
            except TasklineAuthError as exc:
                raise CliError(
                    f"{server} refused the sign-in: {exc.detail} ({exc.status})", ExitCode.AUTH
                ) from None
            except NotFound:
                raise CliError(
                    f"{server} has no sign-in (POST /api/v1/auth/token): a server without "
                    "authentication needs no token",
                    ExitCode.NOT_FOUND,
                ) from None
        path = store_token(state.url, issued.token)
        click.echo(f"signed in to {server} as {name} ({issued.role}); token stored in {path}")
    if state.token is not None:
        click.echo(
            "note: --token or TASKLINE_TOKEN is set; it is sent instead of the stored token",
            err=True,
        )


@click.command()
def logout() -> None:
    """Forget the token stored for the server at --url.

    Only this machine forgets it: the token stays valid on the server until it expires or
    is revoked there.
    """
    state = current_state()
    server = _server(state.url)
    if remove_token(state.url):
        click.echo(f"signed out of {server}: its token was removed from {credentials_path()}")
    else:
        click.echo(f"no token stored for {server}")

"""What the root group hands to its commands: the server URL and timeout, and an SDK client."""

from dataclasses import dataclass

import click

from taskline.sdk import DEFAULT_TIMEOUT, DEFAULT_URL, Client

__all__ = ["CliState", "open_client"]


@dataclass(frozen=True, slots=True)
class CliState:
    """Options of the root ``taskline`` group."""

    url: str = DEFAULT_URL
    timeout: float = DEFAULT_TIMEOUT
    debug: bool = False


def open_client() -> Client:
    """Return a client for the current command, closed when the command ends.

    Raises:
        click.BadParameter: ``--url`` is not an http(s) URL (exit code 2).
    """
    ctx = click.get_current_context()
    state = ctx.find_object(CliState) or CliState()
    try:
        client = Client(state.url, timeout=state.timeout)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param_hint="'--url'") from None
    ctx.call_on_close(client.close)
    return client

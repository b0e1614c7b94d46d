"""What the root group hands to its commands: the server URL, timeout and token, and SDK
clients built from them."""

from dataclasses import dataclass, field

import click

from taskline.sdk import DEFAULT_TIMEOUT, DEFAULT_URL, AsyncClient, Client

__all__ = ["CliState", "current_state", "open_async_client", "open_client"]


@dataclass(frozen=True, slots=True)
class CliState:
    """Options of the root ``taskline`` group.

    ``token`` is ``--token`` (or ``TASKLINE_TOKEN``); ``None`` lets the SDK use the token
    ``taskline login`` stored for ``url``. It is kept out of the repr.
    """

    url: str = DEFAULT_URL
    timeout: float = DEFAULT_TIMEOUT
    debug: bool = False
    token: str | None = field(default=None, repr=False)


def current_state() -> CliState:
    """The root group's options for the running command (defaults outside a command)."""
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(CliState) if ctx is not None else None
    return found or CliState()


def _bad_url(exc: ValueError) -> click.BadParameter:
    ctx = click.get_current_context(silent=True)
    return click.BadParameter(str(exc), ctx=ctx, param_hint="'--url'")


def open_client() -> Client:
    """Return a client for the current command, closed when the command ends.

    Raises:
        click.BadParameter: ``--url`` is not an http(s) URL (exit code 2).
    """
    ctx = click.get_current_context()
    state = current_state()
    try:
        client = Client(state.url, token=state.token, timeout=state.timeout)
    except ValueError as exc:
        raise _bad_url(exc) from None
    ctx.call_on_close(client.close)
    return client


def open_async_client() -> AsyncClient:
    """Return an async client for the current command; the caller closes it (``async with``).

    Raises:
        click.BadParameter: ``--url`` is not an http(s) URL (exit code 2).
    """
    state = current_state()
    try:
        return AsyncClient(state.url, token=state.token, timeout=state.timeout)
    except ValueError as exc:
        raise _bad_url(exc) from None

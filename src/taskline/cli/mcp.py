"""``taskline mcp``: Taskline's MCP server for clients that start a process (stdio).

It runs no tools of its own: it relays MCP's JSON-RPC messages, unchanged, between this
process's stdin/stdout and the server's ``/mcp`` endpoint (``--url``, ``TASKLINE_URL``) over
Streamable HTTP, with the usual token (``--token``, ``TASKLINE_TOKEN`` or the one
``taskline login`` stored) as ``Authorization: Bearer``. So the tools, their access rules and
the record of each call are the server's, whichever way a client comes in.

Before relaying it asks the server who the token is (``GET /api/v1/auth/me``): a server that
does not answer (exit 3), a refused token or a role that may not use MCP (exit 7) is one line
on stderr, before the client has sent anything. Stdout carries MCP messages only; the relay's
own messages go to stderr. It exits 0 when the client closes stdin.

The relay sets the per-message HTTP headers Streamable HTTP asks of a client: the negotiated
``MCP-Protocol-Version`` after an ``initialize`` handshake, and on 2026-07-28 requests (which
carry their version in ``_meta``) ``Mcp-Method`` and ``Mcp-Name`` too.
"""

import sys
from collections.abc import AsyncIterable
from typing import Any, Protocol

import anyio
import click
import httpx
import httpx2
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
)
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp.types import JSONRPCRequest, JSONRPCResponse
from mcp_types import PROTOCOL_VERSION_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from taskline.cli.context import current_state
from taskline.cli.errors import CliError, ExitCode
from taskline.sdk import resolve_token

__all__ = ["mcp"]


@click.command()
def mcp() -> None:
    """Serve Taskline's MCP tools on stdin/stdout (for clients that start a process).

    \b
    It relays to the server's /mcp endpoint (--url) with the token (--token, TASKLINE_TOKEN
    or 'taskline login'). For Claude Code:
      claude mcp add -e TASKLINE_URL=http://127.0.0.1:8000 \\
        -e TASKLINE_TOKEN=tl_... taskline -- taskline mcp
    """
    state = current_state()
    base = state.url.rstrip("/")
    token = resolve_token(state.url, state.token)
    _check(base, token, state.timeout)
    anyio.run(_relay, f"{base}/mcp", token, state.timeout)


def _check(base: str, token: str | None, timeout: float) -> None:
    """Fail with one clear line unless the server answers and lets this token use MCP.

    Raises:
        CliError: unreachable (exit 3), no or a refused token, or a role without MCP (exit 7).
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.get(f"{base}/api/v1/auth/me", headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise CliError(
            f"cannot reach the Taskline server at {base}: {exc}",
            ExitCode.UNREACHABLE,
            ["start it with 'taskline serve', or give its address: --url / TASKLINE_URL"],
        ) from None
    if answer.status_code == 401:
        hint = "sign in with 'taskline login', or set TASKLINE_TOKEN"
        why = "the token is refused" if token else "this server wants a token"
        raise CliError(f"{why} ({base})", ExitCode.AUTH, [hint])
    if answer.status_code != 200:
        raise CliError(f"{base} answered {answer.status_code} to GET /api/v1/auth/me")
    me = answer.json()
    if "use_mcp" not in me.get("actions", ()):
        role = me.get("role") or "anonymous"
        raise CliError(
            f"the {role} role may not use the MCP server (admin, member and agent may)",
            ExitCode.AUTH,
        )


class _Sink(Protocol):
    async def send(self, item: SessionMessage, /) -> None: ...

    async def aclose(self) -> None: ...


async def _relay(url: str, token: str | None, timeout: float) -> None:
    """Relay until the client closes stdin; then end the HTTP session (DELETE) and return."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    stamp = _Stamp()
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(timeout, read=None))
    async with (
        http,
        streamable_http_client(url, http_client=http) as (remote_in, remote_out),
        stdio_server() as (local_in, local_out),
    ):
        async with anyio.create_task_group() as group:

            async def upstream() -> None:
                await _pump_up(local_in, remote_out, stamp)
                group.cancel_scope.cancel()  # the client closed stdin: done

            group.start_soon(upstream)
            group.start_soon(_pump_down, remote_in, local_out, stamp)
        # both transports' writers run until their streams close
        await local_out.aclose()
        await remote_out.aclose()


async def _pump_up(
    source: AsyncIterable[SessionMessage | Exception],
    sink: "_Sink",
    stamp: "_Stamp",
) -> None:
    async for item in source:
        if isinstance(item, Exception):  # a line that is not JSON-RPC: say so, go on
            print(f"taskline mcp: ignored a malformed message: {item}", file=sys.stderr)
            continue
        await sink.send(stamp.outgoing(item))


async def _pump_down(
    source: AsyncIterable[SessionMessage | Exception],
    sink: "_Sink",
    stamp: "_Stamp",
) -> None:
    async for item in source:
        if isinstance(item, Exception):
            print(f"taskline mcp: {item}", file=sys.stderr)
            continue
        stamp.incoming(item)
        await sink.send(item)


class _Stamp:
    """The per-message headers of client messages (see the module docstring)."""

    def __init__(self) -> None:
        self.negotiated: str | None = None
        self._initialize_ids: set[Any] = set()

    def outgoing(self, item: SessionMessage) -> SessionMessage:
        message = item.message
        if not isinstance(message, JSONRPCRequest):
            return self._with({MCP_PROTOCOL_VERSION_HEADER: self.negotiated}, item)
        if message.method == "initialize":
            self._initialize_ids.add(message.id)
            self.negotiated = None
            return item
        params = message.params or {}
        version = (params.get("_meta") or {}).get(PROTOCOL_VERSION_META_KEY)
        if version in MODERN_PROTOCOL_VERSIONS:
            headers = {MCP_PROTOCOL_VERSION_HEADER: version, MCP_METHOD_HEADER: message.method}
            name_key = NAME_BEARING_METHODS.get(message.method)
            if name_key is not None and isinstance(name := params.get(name_key), str):
                headers[MCP_NAME_HEADER] = encode_header_value(name)
            return self._with(headers, item)
        return self._with({MCP_PROTOCOL_VERSION_HEADER: self.negotiated}, item)

    def incoming(self, item: SessionMessage) -> None:
        message = item.message
        if isinstance(message, JSONRPCResponse) and message.id in self._initialize_ids:
            self._initialize_ids.discard(message.id)
            version = message.result.get("protocolVersion")
            self.negotiated = version if isinstance(version, str) else None

    @staticmethod
    def _with(headers: dict[str, str | None], item: SessionMessage) -> SessionMessage:
        present = {k: v for k, v in headers.items() if v is not None}
        if not present:
            return item
        return SessionMessage(item.message, metadata=ClientMessageMetadata(headers=present))

"""MCP clients for tests: the official SDK's, over Streamable HTTP with a bearer token."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

__all__ = ["mcp_session", "tool_json"]


@asynccontextmanager
async def mcp_session(
    url: str,
    token: str | None,
    *,
    message_handler: Callable[[Any], Awaitable[None]] | None = None,
) -> AsyncIterator[ClientSession]:
    """An initialized handshake-era session with ``url``/mcp, signed with ``token``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write, message_handler=message_handler) as session,
    ):
        await session.initialize()
        yield session


def tool_json(result: Any) -> Any:
    """The JSON a successful tool call answered (its one text content)."""
    import json

    assert not result.is_error, result.content
    (content,) = result.content
    return json.loads(content.text)

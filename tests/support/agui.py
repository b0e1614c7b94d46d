"""AG-UI test helpers: run inputs, posting a run and reading its SSE frames (checked), a
server whose built-in agent may review a temporary folder, and a folder for it to review."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ag_ui.core import Event
from pydantic import TypeAdapter

from taskline.settings import Settings
from tests.support.server import LiveServer, serving

__all__ = [
    "docs_folder",
    "parse_sse",
    "post_run",
    "review_server",
    "run_input",
    "stream_run",
]

EVENTS: TypeAdapter[Any] = TypeAdapter(Event)


def run_input(thread_id: str, text: str, run_id: str | None = None) -> dict[str, Any]:
    return {
        "threadId": thread_id,
        "runId": run_id or str(uuid.uuid4()),
        "state": {},
        "messages": [{"id": "u1", "role": "user", "content": text}],
        "tools": [],
        "context": [],
        "forwardedProps": {},
    }


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Every frame of a complete AG-UI body, checked: LF framing, valid, camelCase, int ts."""
    assert "\r" not in text and text.endswith("\n\n")
    frames = []
    for block in text.split("\n\n")[:-1]:
        lines = [line for line in block.split("\n") if line.startswith("data: ")]
        if not lines:
            continue  # a comment (heartbeat)
        data = json.loads(lines[0].removeprefix("data: "))
        EVENTS.validate_python(data)
        assert isinstance(data.get("timestamp", 0), int)
        assert "_" not in "".join(data)
        frames.append(data)
    return frames


async def post_run(server: LiveServer, body: Any, timeout: float = 60) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.url, timeout=timeout) as http:
        response = await http.post("/api/v1/agui", json=body)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        return parse_sse(response.text)


async def stream_run(
    server: LiveServer, body: Any, seen: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """:func:`post_run`, keeping ``seen`` up to date with the frames received so far."""
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=60) as http,
        http.stream("POST", "/api/v1/agui", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = ""
        async for chunk in response.aiter_text():
            text += chunk
            end = text.rfind("\n\n")
            if end >= 0:
                seen[:] = parse_sse(text[: end + 2])
    return parse_sse(text)


@pytest.fixture
def review_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A running server on each backend whose built-in agent may review ``tmp_path``."""
    yield from serving(Settings(database_url=database_url, review_roots=(str(tmp_path),)))


def docs_folder(tmp_path: Path, *, with_text_file: bool = False) -> Path:
    """``tmp_path/docs`` with a Markdown file holding a TODO (and a text file with a FIXME)."""
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.md").write_text("# A\n\nTODO: write more.\n")
    if with_text_file:
        (root / "b.txt").write_text("FIXME later\nplain text\n")
    return root

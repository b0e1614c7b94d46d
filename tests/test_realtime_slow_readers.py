"""Readers slower than a burst catch up from the log; only a reader that stopped is cut off.

The server runs in its own process so that its memory can be measured alone.
"""

import asyncio
import base64
import json
import os
import socket
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.support.process import ServerProcess

OUTBOX_BYTES = 256 * 1024
WRITE_TIMEOUT = 5.0
BURSTS, BURST_SIZE, PAUSE = 12, 50, 0.1  # 600 events of 10 KB, a burst every 0.1 s
#: The most the server's resident memory may grow while the 51 subscribers are served.
MEMORY_BOUND_MIB = 48


def never_reads(port: int, task_id: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again.

    Its receive buffer is tiny (set before connecting, so the kernel does not grow it).
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/tasks/{task_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


async def read_everything(
    url: str,
    port: int,
    last_seq: int,
    delay: float,
    connected: asyncio.Event,
    done: asyncio.Event,
    finished: asyncio.Event,
) -> tuple[list[int], int | None]:
    """Read the task's events until ``last_seq``, sleeping ``delay`` after each one; then set
    ``done`` and stay connected until ``finished`` is set.

    A small receive buffer keeps the kernel from absorbing what the reader has not read.
    Returns the seqs seen (in arrival order) and the close code, if the server closed.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    seqs: list[int] = []
    async with connect(url, sock=sock, compression=None, ping_interval=None, max_queue=4) as ws:
        try:
            await _read(ws, seqs, last_seq, delay, connected)
        finally:
            done.set()
        close_code = ws.close_code
        await finished.wait()
        return seqs, close_code


async def _read(
    ws: ClientConnection, seqs: list[int], last_seq: int, delay: float, connected: asyncio.Event
) -> None:
    while not seqs or seqs[-1] < last_seq:
        message = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if message["event_type"] == "connection_established":
            connected.set()
        if message.get("seq") is not None:
            seqs.append(message["seq"])
            if delay:
                await asyncio.sleep(delay)  # this reader's speed, the behaviour under test


async def test_slow_readers_catch_up_from_the_log_and_only_a_stopped_reader_is_cut(
    tmp_path: Path,
) -> None:
    """50 readers of different speeds (one at a tenth of the publish rate) and one that never
    reads; 600 events of 10 KB in bursts. The 50 get every seq exactly once and in order, those
    that fall behind catch up from the log, only the non-reader is closed (4008, after the
    write timeout), no connection ever has more than its bound pending, and the server's
    memory stays under MEMORY_BOUND_MIB."""
    server = ServerProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'bursts.db'}",
        tmp_path / "server.log",
        TASKLINE_OUTBOX_BYTES=str(OUTBOX_BYTES),
        TASKLINE_WRITE_TIMEOUT=str(WRITE_TIMEOUT),
    )
    server.start()
    readers: list[asyncio.Task[tuple[list[int], int | None]]] = []
    finished = asyncio.Event()
    stopped: socket.socket | None = None
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            task_id = (await http.post("/api/v1/tasks/", json={"title": "bursts"})).json()["id"]
            url = f"{server.ws_url}/ws/tasks/{task_id}"
            stopped = never_reads(server.port, task_id)
            last_seq = 1 + BURSTS * BURST_SIZE
            offered_rate = BURST_SIZE / PAUSE  # events per second at most
            tenth = 10 / offered_rate  # seconds per event: a tenth of the offered rate
            delays = [0.0] * 40 + [tenth / 8] * 5 + [tenth / 4] * 4 + [tenth]
            connected = [asyncio.Event() for _ in delays]
            done = [asyncio.Event() for _ in delays]
            readers = [
                asyncio.create_task(read_everything(url, server.port, last_seq, d, c, e, finished))
                for d, c, e in zip(delays, connected, done, strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*(c.wait() for c in connected)), 30)
            rss_before, _ = server.memory_kib()

            padding = "x" * 10_000
            event = {"event_type": "custom", "data": {"name": "bulk", "value": padding}}
            for _ in range(BURSTS):
                response = await http.post(
                    f"/api/v1/tasks/{task_id}/events", json=[event] * BURST_SIZE
                )
                assert response.status_code == 200, response.text
                await asyncio.sleep(PAUSE)  # the publisher's pace (bursts), not a wait

            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in done)), 120)
            _, rss_peak = server.memory_kib()
            status = (await http.get("/api/v1/websocket/status")).json()
            finished.set()
            for seqs, close_code in await asyncio.gather(*readers):
                assert seqs == list(range(2, last_seq + 1))
                assert close_code is None

            delivery = status["delivery"]
            assert delivery["slow_consumers_closed"] == 1  # the non-reader, after the timeout
            assert status["connections_per_task"][task_id] == 50
            assert delivery["caught_up_from_log"] >= 1  # the slow readers used the log
            assert delivery["peak_bytes_pending"] <= OUTBOX_BYTES + 12_000
            growth_mib = (rss_peak - rss_before) / 1024
            print(f"server memory: {rss_before / 1024:.1f} MiB before, +{growth_mib:.1f} MiB peak")
            print(f"delivery counters: {delivery}")
            assert growth_mib < MEMORY_BOUND_MIB
    finally:
        if stopped is not None:
            stopped.close()
        finished.set()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        server.stop()


async def test_a_board_viewer_that_falls_behind_is_told_to_reload(tmp_path: Path) -> None:
    """A /ws/board client that does not read while 400 board events of 5 KB are published
    gets a `gap` event marked `board` (its cue to reload the list) instead of an unbounded
    outbox, and then live events again; it is not closed."""
    server = ServerProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'board.db'}",
        tmp_path / "server.log",
        TASKLINE_OUTBOX_BYTES=str(64 * 1024),
    )
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            task_id = (await http.post("/api/v1/tasks/", json={"title": "board"})).json()["id"]
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.setblocking(False)
            url = f"{server.ws_url}/ws/board"
            async with connect(
                url, sock=sock, compression=None, ping_interval=None, max_queue=1
            ) as ws:
                assert json.loads(await ws.recv())["event_type"] == "connection_established"
                note = "n" * 5000
                for start in range(0, 400, 50):
                    events = [
                        {
                            "event_type": "progress_update",
                            "data": {"progress": 0.5, "message": note},
                        }
                        for _ in range(start, start + 50)
                    ]
                    response = await http.post(f"/api/v1/tasks/{task_id}/events", json=events)
                    assert response.status_code == 200
                status = (await http.get("/api/v1/websocket/status")).json()
                assert status["delivery"]["board_resyncs"] >= 1
                assert status["delivery"]["peak_bytes_pending"] <= 64 * 1024 + 6_000
                types: list[str] = []
                while "gap" not in types:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    types.append(message["event_type"])
                    if message["event_type"] == "gap":
                        assert message["data"]["board"] is True
                assert types.count("progress_update") < 400  # some were dropped
                await http.post(
                    f"/api/v1/tasks/{task_id}/events",
                    json={"event_type": "progress_update", "data": {"progress": 0.9}},
                )
                while True:  # live again: the newest event arrives
                    message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if message["data"].get("progress") == 0.9:
                        break
                assert ws.close_code is None
    finally:
        server.stop()

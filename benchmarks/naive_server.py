"""The baseline for ``benchmarks/fanout.py``: a WebSocket fan-out written the naive way.

This is the server the issue asks Taskline to be compared with, and it is deliberately simple:
the subscribers of a task are a plain list, and an HTTP publish loops over them with
``await ws.send_text(json.dumps(message))`` for every event, before answering. Nothing is
stored, there is no outbox and no ordering guarantee between concurrent publishes.

It speaks the same URLs and bodies as Taskline, so the benchmark drives both alike:

- ``POST /api/v1/tasks/`` ``{"title": ...}`` → ``{"id": "task_..."}``
- ``POST /api/v1/tasks/{task_id}/events`` ``{"events": [...]}`` → ``{"seqs": [...], "last_seq": N}``
- ``WS /ws/tasks/{task_id}``: a ``connection_established`` frame, then one envelope per event.
- ``GET /health``

Run: ``.venv/bin/python benchmarks/naive_server.py --port 9100`` (uvicorn, default settings).
"""

import argparse
import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI(title="naive fan-out baseline")

subscribers: dict[str, list[WebSocket]] = defaultdict(list)
last_seq: dict[str, int] = defaultdict(int)


def envelope(task_id: str, seq: int | None, event_type: str, data: Any) -> dict[str, Any]:
    """A message shaped like Taskline's envelope, so frames are about the same size."""
    return {
        "id": f"evt_{uuid.uuid4().hex[:16]}",
        "seq": seq,
        "task_id": task_id,
        "event_type": event_type,
        "data": data,
        "timestamp": datetime.now(UTC).isoformat(),
        "source": None,
        "client_id": None,
    }


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/api/v1/tasks/")
async def create_task(body: dict[str, Any]) -> dict[str, str]:
    return {"id": f"task_{uuid.uuid4().hex[:16]}", "title": str(body.get("title", ""))}


@app.post("/api/v1/tasks/{task_id}/events")
async def publish(task_id: str, body: dict[str, Any]) -> dict[str, Any]:
    seqs: list[int] = []
    for event in body["events"]:
        last_seq[task_id] += 1
        seq = last_seq[task_id]
        seqs.append(seq)
        message = envelope(task_id, seq, event["event_type"], event.get("data", {}))
        for ws in list(subscribers[task_id]):
            try:
                await ws.send_text(json.dumps(message))
            except Exception:
                # A subscriber that went away: forget it (the only care taken here).
                if ws in subscribers[task_id]:
                    subscribers[task_id].remove(ws)
    return {"seqs": seqs, "last_seq": last_seq[task_id]}


@app.websocket("/ws/tasks/{task_id}")
async def task_socket(ws: WebSocket, task_id: str) -> None:
    await ws.accept()
    await ws.send_text(json.dumps(envelope(task_id, None, "connection_established", {})))
    subscribers[task_id].append(ws)
    try:
        while True:
            await ws.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        if ws in subscribers[task_id]:
            subscribers[task_id].remove(ws)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()

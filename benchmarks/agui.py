"""AG-UI gateway benchmark: publish → AG-UI viewer latency, and viewers held at 500 events/s.

::

    .venv/bin/python benchmarks/agui.py            # 500 ev/s, 1..400 viewers, 5 s per step
    .venv/bin/python benchmarks/agui.py --quick    # 1..100 viewers, 3 s per step

A Taskline server runs in its own process (SQLite in a temporary folder). One task has a run
open with a text message; a publisher posts ``message.delta`` events at ``--rate`` events/s
(batches of ``--batch`` every ``batch/rate`` seconds) through ``POST /api/v1/tasks/{id}/events``,
each delta holding its send time (wall clock, ms). Viewers read
``GET /api/v1/tasks/{id}/agui`` (joined mid-run, so each gets the prelude first; each step
streams a new message) in ``--workers`` separate processes, and record receipt time minus
send time per ``TEXT_MESSAGE_CONTENT``. The same is measured for the plain Taskline SSE stream
(``GET /api/v1/tasks/{id}/stream``) with one viewer as the baseline: the difference of the two
is the latency the AG-UI gateway adds (translation + encoding). The viewer count grows until
p99 exceeds ``--target-ms`` (100) or events are lost.

It also reports the watch endpoint's own CPU per event and viewer, measured in-process
without I/O (``gateway_cpu``), which does not depend on the machine's load.

Caveats: viewer processes share the machine with the server, so at high viewer counts the
client's own parsing competes for CPU; the figures are an upper bound on the gateway's latency.
Results are printed and written to ``benchmarks/results/agui-<UTC time>.json``.

The server checks who asks (``--auth on``, the default): an admin token is issued in its
database before it starts, and the publisher and every viewer send it; ``--auth off`` runs
it with ``TASKLINE_AUTH=false`` and sends none.
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from access import Access, add_auth_option, prepare

BENCH_DIR = Path(__file__).parent
STOP = "stop"


@dataclass
class Step:
    mode: str
    viewers: int
    sent: int
    expected: int
    received: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def percentile(samples: list[float], fraction: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 2)


# --- viewers (run in worker processes) ---------------------------------------------------------


async def _view(
    url: str, headers: dict[str, str], ready: "mp.Queue[int]", out: list[float]
) -> None:
    buffer = ""
    opened = False
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(60.0), headers=headers) as http,
        http.stream("GET", url) as response,
    ):
        async for chunk in response.aiter_text():
            if not opened:
                ready.put(1)
                opened = True
            buffer += chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                now = time.time() * 1000
                for line in block.split("\n"):
                    if not line.startswith("data:"):
                        continue
                    data = json.loads(line[5:])
                    delta = data.get("delta")
                    if delta is None and isinstance(data.get("data"), dict):
                        delta = data["data"].get("delta")  # the plain Taskline envelope
                    if delta == STOP:
                        return
                    if isinstance(delta, str) and delta.startswith("t="):
                        out.append(now - float(delta[2:]))


def _worker(
    urls: list[str],
    headers: dict[str, str],
    ready: "mp.Queue[int]",
    results: "mp.Queue[list[float]]",
) -> None:
    async def main() -> list[float]:
        samples: list[float] = []
        views = [asyncio.create_task(_view(url, headers, ready, samples)) for url in urls]
        await asyncio.wait(views, timeout=600)
        return samples

    results.put(asyncio.run(main()))


# --- the server and the publisher -----------------------------------------------------------


def database_url(workdir: Path) -> str:
    return f"sqlite+aiosqlite:///{workdir / 'bench.db'}"


def start_server(workdir: Path, port: int, access: Access) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).parent / "taskline"),
        "serve",
        "--port",
        str(port),
        "--database-url",
        database_url(workdir),
        "--log-level",
        "warning",
    ]
    log = (workdir / "server.log").open("wb")
    return subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=access.server_environ()
    )


async def wait_ready(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        for _ in range(600):
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/health")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError("the server did not start")


async def open_run(http: httpx.AsyncClient) -> str:
    task_id: str = (await http.post("/api/v1/tasks/", json={"title": "agui bench"})).json()["id"]
    events = [
        {"event_type": "task_started", "run_id": "run_bench"},
        {"event_type": "message.start", "data": {"message_id": "m1"}},
    ]
    (await http.post(f"/api/v1/tasks/{task_id}/events", json=events)).raise_for_status()
    return task_id


_MESSAGE: dict[str, Any] = {"id": "m1", "n": 1}


def delta(text: str) -> dict[str, Any]:
    message_id = _MESSAGE["id"]
    return {"event_type": "message.delta", "data": {"message_id": message_id, "delta": text}}


async def new_message(http: httpx.AsyncClient, task_id: str) -> None:
    """End the open message and start another, so a viewer's prelude carries no old deltas."""
    old = _MESSAGE["id"]
    _MESSAGE["n"] = int(_MESSAGE["n"]) + 1
    _MESSAGE["id"] = f"m{_MESSAGE['n']}"
    events = [
        {"event_type": "message.end", "data": {"message_id": old}},
        {"event_type": "message.start", "data": {"message_id": _MESSAGE["id"]}},
    ]
    (await http.post(f"/api/v1/tasks/{task_id}/events", json=events)).raise_for_status()


async def publish(
    http: httpx.AsyncClient, task_id: str, rate: float, batch: int, seconds: float
) -> int:
    interval = batch / rate
    start = time.monotonic()
    sent = 0
    posts: set[asyncio.Task[Any]] = set()
    total = int(rate * seconds)
    while sent < total:
        due = start + (sent / batch) * interval
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        now = f"t={time.time() * 1000:.3f}"
        post = asyncio.create_task(
            http.post(f"/api/v1/tasks/{task_id}/events", json=[delta(now)] * batch)
        )
        posts.add(post)
        post.add_done_callback(posts.discard)
        sent += batch
    if posts:
        await asyncio.gather(*posts)
    (await http.post(f"/api/v1/tasks/{task_id}/events", json=[delta(STOP)])).raise_for_status()
    return sent


async def measure(
    base: str, task_id: str, mode: str, viewers: int, config: argparse.Namespace
) -> Step:
    path = "agui" if mode == "agui" else "stream"
    url = f"{base}/api/v1/tasks/{task_id}/{path}"
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=config.headers) as http:
        await new_message(http, task_id)
    workers = max(1, min(config.workers, viewers))
    context = mp.get_context("spawn")
    ready: mp.Queue[int] = context.Queue()
    results: mp.Queue[list[float]] = context.Queue()
    shares = [
        [url] * (viewers // workers + (1 if i < viewers % workers else 0)) for i in range(workers)
    ]
    processes = [
        context.Process(target=_worker, args=(s, config.headers, ready, results))
        for s in shares
        if s
    ]
    for process in processes:
        process.start()
    for _ in range(viewers):
        await asyncio.to_thread(ready.get, True, 120)
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=config.headers) as http:
        sent = await publish(http, task_id, config.rate, config.batch, config.duration)
    samples: list[float] = []
    for _ in processes:
        samples += await asyncio.to_thread(results.get, True, 300)
    for process in processes:
        process.join(30)
    return Step(
        mode,
        viewers,
        sent,
        sent * viewers,
        len(samples),
        percentile(samples, 0.5),
        percentile(samples, 0.99),
        round(max(samples), 2) if samples else None,
    )


def gateway_cpu(viewers: int = 10, events: int = 4000) -> dict[str, float]:
    """CPU the watch endpoint spends per event, in-process and without I/O: translating and
    encoding once per event (shared), and folding it into each viewer's run view."""
    from datetime import UTC, datetime

    from taskline.agui.projection import RunView
    from taskline.domain.events import WebSocketMessage
    from taskline.service.agui_watch import AguiWatch

    # Translating and encoding only: the database and connections are not used.
    watch = AguiWatch(None, None)  # type: ignore[arg-type]

    now = datetime.now(UTC).isoformat()
    messages = [
        WebSocketMessage.model_validate(
            {
                "id": f"evt_cpu{i}",
                "seq": i + 3,
                "task_id": "task_cpu",
                "event_type": "message.delta",
                "data": {"message_id": "m1", "delta": "t=1.0"},
                "timestamp": now,
            }
        )
        for i in range(events)
    ]
    views = []
    for _ in range(viewers):
        view = RunView(open=True)
        view.text["m1"] = ("assistant", "")
        views.append(view)
    started = time.perf_counter()
    for message in messages:
        translated, _ = watch._translated(message, message.seq or 0)
        for view in views:
            view.apply(message, translated)
    per = (time.perf_counter() - started) / (events * viewers) * 1e6
    return {"us_per_event_per_viewer": round(per, 2), "viewers": viewers}


async def main(config: argparse.Namespace) -> dict[str, Any]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    steps: list[Step] = []
    with tempfile.TemporaryDirectory() as folder:
        access = await prepare(database_url(Path(folder)), config.auth == "on")
        config.headers = access.headers
        server = start_server(Path(folder), port, access)
        try:
            await wait_ready(base)
            await asyncio.to_thread(access.check, base)
            async with httpx.AsyncClient(base_url=base, timeout=30, headers=config.headers) as http:
                task_id = await open_run(http)
            await measure(base, task_id, "agui", 1, config)  # warm-up, not reported
            for mode in ("stream", "agui"):
                step = await measure(base, task_id, mode, 1, config)
                steps.append(step)
                print(json.dumps(asdict(step)), flush=True)
            held = 0
            for viewers in config.viewers:
                step = await measure(base, task_id, "agui", viewers, config)
                steps.append(step)
                print(json.dumps(asdict(step)), flush=True)
                ok = step.p99_ms is not None and step.p99_ms < config.target_ms
                if not ok or step.received < step.expected:
                    break
                held = viewers
        finally:
            server.terminate()
            server.wait(10)
    baseline, agui = steps[0], steps[1]
    added = None
    if baseline.p50_ms is not None and agui.p50_ms is not None and agui.p99_ms is not None:
        added = {
            "p50_ms": round(agui.p50_ms - baseline.p50_ms, 2),
            "p99_ms": round(agui.p99_ms - (baseline.p99_ms or 0), 2),
        }
    return {
        "gateway_cpu": gateway_cpu(),
        "rate": config.rate,
        "batch": config.batch,
        "duration": config.duration,
        "cpus": os.cpu_count(),
        "steps": [asdict(s) for s in steps],
        "gateway_added": added,
        "viewers_held_p99_under_target": held,
        "target_ms": config.target_ms,
        "auth": config.auth,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="events per second")
    parser.add_argument("--batch", type=int, default=25, help="events per publish request")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per step")
    parser.add_argument(
        "--viewers", type=int, nargs="+", default=[1, 2, 5, 10, 25, 50, 100, 200, 400]
    )
    parser.add_argument("--workers", type=int, default=4, help="viewer processes")
    parser.add_argument("--target-ms", type=float, default=100.0)
    parser.add_argument("--quick", action="store_true", help="3 s per step, up to 100 viewers")
    add_auth_option(parser, both=False)
    config = parser.parse_args(argv)
    if config.quick:
        config.duration = 3.0
        config.viewers = [1, 5, 10, 50, 100]
    return config


if __name__ == "__main__":
    arguments = parse_args()
    report = asyncio.run(main(arguments))
    print(json.dumps(report, indent=2))
    results = BENCH_DIR / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (results / f"agui-{stamp}.json").write_text(json.dumps(report, indent=2))

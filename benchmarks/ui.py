"""UI benchmark: an agent streams 200 events/s into an open task detail panel for 30 s in
headless Chromium; how busy is the page, and how long from publish to the DOM?

Usage: ``.venv/bin/python benchmarks/ui.py [--rate 200] [--seconds 30] [--batch 10]``

The server runs in its own process pinned to CPU 0; this publisher and Chromium share
CPU 1. Every event carries its publish time (``sent_at``, ms since the epoch, taken just
before the HTTP request that stores it). In the page:

- a debug hook the panel calls right after each frame's DOM update
  (``window.__taskline.onCommit``) records ``Date.now() - sent_at`` for every event that
  frame showed: publish → stored → delivered over the WebSocket → rendered;
- a ``PerformanceObserver`` counts main-thread long tasks (over 50 ms);
- a ``requestAnimationFrame`` loop measures frame rate and the longest gap between frames.

Events are sent in batches of ``--batch`` (10 every 50 ms at 200/s, like an SDK that
flushes on a timer); ``--batch 1`` sends one request per event. The mix per 10 events:
4 ``message.delta``, 2 ``progress_update``, a ``tool_call.start``/``.end`` pair, a
``state.patch`` and a ``custom``.

Long tasks and latency are wall-clock figures: on a busy machine other processes preempt the
page's main thread and inflate them. ``--trace`` also records a Chrome trace and reports the
CPU time the page's main thread itself used per second (script, style, layout, paint), which
other load does not inflate.

The server runs with authentication off (``TASKLINE_AUTH=false``, on 127.0.0.1 only): the
page would otherwise have to sign in first, which is not what this measures; the publisher
then sends no token.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))

from access import Access  # noqa: E402
from tests.support.browser import CHROMIUM, launch_chromium  # noqa: E402

PAGE_PROBES = """() => {
    const probe = { latencies: [], longTasks: [], frames: 0, maxGap: 0, events: 0,
                    seqs: new Set() };
    window.__bench = probe;
    const since = performance.now();  // long tasks of the page's own loading do not count
    new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
            if (entry.startTime >= since) probe.longTasks.push(entry.duration);
        }
    }).observe({ type: 'longtask' });
    let last = performance.now();
    const frame = (now) => {
        probe.frames += 1;
        probe.maxGap = Math.max(probe.maxGap, now - last);
        last = now;
        requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
    window.__taskline.onCommit = (events) => {
        const now = Date.now();
        for (const event of events) {
            if (typeof event.seq === 'number') probe.seqs.add(event.seq);
            const sent = event.data && event.data.sent_at;
            if (typeof sent === 'number') {
                probe.latencies.push(now - sent);
                probe.events += 1;
            }
        }
    };
}"""

COLLECT = """() => {
    const p = window.__bench;
    return { latencies: p.latencies, longTasks: p.longTasks, frames: p.frames, maxGap: p.maxGap,
             events: p.events, distinct: p.seqs.size,
             rows: document.querySelectorAll('#timeline li').length,
             duplicates: window.__taskline.app.detail.socket.duplicates };
}"""


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def make_events(start: int, count: int) -> list[dict[str, Any]]:
    """``count`` events of the benchmark mix, numbered from ``start``; ``sent_at`` added later."""
    events: list[dict[str, Any]] = []
    for n in range(start, start + count):
        slot = n % 10
        if slot < 4:
            events.append(
                {
                    "event_type": "message.delta",
                    "data": {"message_id": f"m{n // 2000}", "delta": f"word{n} "},
                }
            )
        elif slot < 6:
            events.append(
                {
                    "event_type": "progress_update",
                    "data": {"progress": (n % 1000) / 1000, "message": f"step {n}"},
                }
            )
        elif slot == 6:
            events.append(
                {
                    "event_type": "tool_call.start",
                    "data": {"tool_call_id": f"c{n}", "name": "search", "args": {"q": n}},
                }
            )
        elif slot == 7:
            events.append(
                {
                    "event_type": "tool_call.end",
                    "data": {"tool_call_id": f"c{n - 1}", "result": {"hits": n % 7}},
                }
            )
        elif slot == 8:
            events.append(
                {
                    "event_type": "state.patch",
                    "data": {"patch": [{"op": "replace", "path": "/counter", "value": n}]},
                }
            )
        else:
            events.append({"event_type": "custom", "data": {"name": "tick", "value": n}})
    return events


#: Trace events summed into the CPU breakdown (thread time, ``tdur``), by what they are.
TRACE_PARTS = {
    "ThreadControllerImpl::RunTask": "all main-thread tasks",
    "FunctionCall": "script",
    "UpdateLayoutTree": "style",
    "Layout": "layout",
    "PrePaint": "pre-paint",
    "Paint": "paint",
    "MinorGC": "garbage collection (minor)",
    "MajorGC": "garbage collection (major)",
}


def main_thread_cpu(trace_path: Path, seconds: float) -> dict[str, float]:
    """CPU ms per second the renderer's main thread spent in each of :data:`TRACE_PARTS`."""
    trace = json.loads(trace_path.read_text())
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    threads = Counter(e.get("tid") for e in events if e.get("name") in ("Layout", "Paint"))
    main_thread = threads.most_common(1)[0][0]
    spent: Counter[str] = Counter()
    for event in events:
        if event.get("tid") == main_thread and event.get("ph") == "X" and "tdur" in event:
            spent[event["name"]] += event["tdur"] / 1000
    return {name: spent[name] / seconds for name in TRACE_PARTS}


def stream(client: httpx.Client, task_id: str, rate: int, seconds: float, batch: int) -> int:
    """Publish ``rate`` events/s for ``seconds`` in batches; return how many were stored."""
    interval = batch / rate
    total = int(rate * seconds)
    sent = 0
    started = time.perf_counter()
    while sent < total:
        due = started + (sent / batch) * interval
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        events = make_events(sent, min(batch, total - sent))
        stamp = time.time() * 1000
        for event in events:
            event["data"]["sent_at"] = stamp
        client.post(f"/api/v1/tasks/{task_id}/events", json=events).raise_for_status()
        sent += len(events)
    elapsed = time.perf_counter() - started
    print(
        f"published {sent} events in {elapsed:.1f} s ({sent / elapsed:.0f}/s, batches of {batch})"
    )
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200, help="events per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch", type=int, default=10, help="events per publish request")
    parser.add_argument(
        "--trace", action="store_true", help="also report main-thread CPU time (Chrome trace)"
    )
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="taskline-ui-bench-"))
    url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    port = 19000 + random.randrange(1000)
    pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) > 1 else []
    command = [*pin, sys.executable, "-m", "taskline", "serve", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--database-url", url, "--log-level", "warning"],
        env=Access(auth=False).server_environ(),
    )
    if pin:
        os.sched_setaffinity(0, {1})  # this publisher and Chromium (its children inherit it)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(200):
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            task = client.post(
                "/api/v1/tasks/", json={"title": "Benchmark", "status": "in_progress"}
            ).json()
            client.post(
                f"/api/v1/tasks/{task['id']}/events",
                json=[
                    {
                        "event_type": "state.snapshot",
                        "data": {"snapshot": {"counter": 0, "notes": ["bench"]}},
                    },
                    {"event_type": "message.start", "data": {"message_id": "m0"}},
                ],
            ).raise_for_status()
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{base}/#/tasks/{task['id']}")
                page.wait_for_function(
                    "() => document.querySelector('#connection').dataset.state === 'connected'"
                    " && document.querySelectorAll('#timeline li').length > 0"
                )
                page.evaluate(PAGE_PROBES)
                trace_path = workdir / "trace.json"
                if args.trace:
                    categories = ["toplevel", "devtools.timeline", "blink", "v8"]
                    browser.start_tracing(page=page, path=str(trace_path), categories=categories)
                sent = stream(client, task["id"], args.rate, args.seconds, args.batch)
                if args.trace:
                    browser.stop_tracing()
                deadline = time.monotonic() + 30
                while (
                    page.evaluate("() => window.__bench.events") < sent
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.2)
                result = page.evaluate(COLLECT)
                browser.close()
        report(result, sent, args)
        if args.trace:
            print("main-thread CPU time (thread time, not inflated by other processes):")
            for name, ms in main_thread_cpu(trace_path, args.seconds).items():
                print(f"  {TRACE_PARTS[name]:<28} {ms:6.1f} ms/s")
    finally:
        server.terminate()
        server.wait(10)


def report(result: dict[str, Any], sent: int, args: argparse.Namespace) -> None:
    latencies = result["latencies"]
    long_tasks = result["longTasks"]
    print(
        f"rendered {result['events']} of {sent} events ({result['distinct']} distinct seqs, "
        f"{result['duplicates']} duplicates dropped); timeline rows in the DOM: {result['rows']}"
    )
    print(
        f"publish -> DOM latency   p50 {statistics.median(latencies):6.1f} ms   "
        f"p99 {percentile(latencies, 0.99):6.1f} ms   max {max(latencies):6.1f} ms"
    )
    print(
        f"long tasks (>50 ms)      {len(long_tasks)}"
        + (
            f"   longest {max(long_tasks):.0f} ms   total {sum(long_tasks):.0f} ms"
            if long_tasks
            else ""
        )
    )
    fps = result["frames"] / args.seconds
    print(
        f"frames                   {fps:.0f}/s   "
        f"longest gap between frames {result['maxGap']:.0f} ms"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine load average     {load} (1, 5, 15 min; {os.cpu_count()} CPUs): "
        "other work on the machine skews these figures"
    )


if __name__ == "__main__":
    main()

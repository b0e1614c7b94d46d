"""kill -9 in the middle of publishing: every acknowledged event survives, once, in order
(hardening, part 6).

A real server (``python -m taskline serve``, its own process: tests/support/process.py) on
each backend takes publishes from four REST publishers (two per task, batches of 1-4 events
with ids of their own) and from an SDK run (the agent WebSocket, the SDK's outbox), and is
killed with SIGKILL ``ROUNDS`` times while they publish, each time restarted on the same
database and port. A publisher whose request fails (refused, reset, cut) waits for the server
to be back and sends the same batch again, same ids: the server returns the stored seq for an
id it has, so a batch that committed just before the kill is not stored twice. The SDK run
re-sends its unacknowledged batches itself once it reconnects.

At the end, for each task: seqs are 1..N without a gap; no event id appears twice; every
acknowledged event is there, with the seq it was acknowledged with; each publisher's events
are in the log in the order they were acknowledged; the SDK run's events are there in the
order it emitted them. Batches in flight at a kill may have committed or not (the resend
finds out: the printed report counts those the killed server had stored without
acknowledging them), but never twice.
"""

import asyncio
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskline.sdk import AsyncClient, Backoff, DeliveryOptions
from tests.support.process import ServerProcess
from tests.support.waiting import WAIT, async_wait_until

#: Kills (and restarts) per backend.
ROUNDS = 4
#: Batches each REST publisher sends.
BATCHES = 60
#: REST publishers, and tasks they share (two publishers per task).
PUBLISHERS = 4
TASKS = 2
#: Events the SDK run emits.
SDK_EVENTS = 400


@dataclass
class Publisher:
    """One REST publisher: its batches go out one at a time, each until acknowledged."""

    name: str
    task_id: str
    acked: list[tuple[str, int]] = field(default_factory=list)  #: (event id, seq), in order
    batches_acked: int = 0
    resent: int = 0  #: batches sent again after a failure
    #: of those, batches the killed server had stored without acknowledging them (the resend
    #: was answered with seqs from before the restart)
    stored_unacked: int = 0
    in_flight: bool = False

    def batch(self, number: int) -> list[dict[str, Any]]:
        size = 1 + number % 4
        return [
            {
                "id": f"evt_{self.name}b{number}e{k}",
                "event_type": "custom",
                "data": {"name": self.name, "value": [number, k]},
            }
            for k in range(size)
        ]


class Killer:
    """The server, killed and restarted; publishers wait on :attr:`up` after a failure."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.up = asyncio.Event()
        self.up.set()
        self.kills = 0
        self.in_flight_at_kills: list[int] = []
        #: connections the SDK run has made so far (it reconnects after each kill)
        self.sdk_connections: Callable[[], int] = lambda: 1
        #: the last seq of each task when the server came back (before any resend)
        self.heads: dict[str, int] = {}

    async def kill_and_restart(self, publishers: list[Publisher], http: httpx.AsyncClient) -> None:
        self.up.clear()  # before the kill: a publisher that fails from now on waits
        self.in_flight_at_kills.append(sum(p.in_flight for p in publishers))
        self.server.kill()
        assert self.server.process is not None
        assert self.server.process.returncode == -signal.SIGKILL
        self.kills += 1
        await asyncio.to_thread(self.server.start)
        for task_id in {p.task_id for p in publishers}:
            page = await http.get(f"/api/v1/tasks/{task_id}/events", params={"limit": 1})
            self.heads[task_id] = page.json()["last_seq"]
        self.up.set()


async def publish_all(
    http: httpx.AsyncClient, publisher: Publisher, killer: Killer, total: int
) -> None:
    """Send ``total`` batches, each until it is acknowledged (the same ids every time).

    The batches of round r (a ``ROUNDS + 1``-th of them each) wait for the r-th kill, and the
    second half of them for the SDK run to be connected again: the next kill comes in that
    second half, with every kind of publisher at work.
    """
    url = f"/api/v1/tasks/{publisher.task_id}/events"
    share = total // (ROUNDS + 1)
    for number in range(total):
        round_ = min(number // share, ROUNDS)
        second_half = number % share >= share // 2

        def may_go(round_: int = round_, second_half: bool = second_half) -> bool:
            return killer.kills >= round_ and (
                not second_half or killer.sdk_connections() > killer.kills
            )

        await async_wait_until(may_go, message=f"batch {number}'s turn (round {round_})")
        events = publisher.batch(number)
        attempts = 0
        while True:
            attempts += 1
            await killer.up.wait()
            publisher.in_flight = True
            try:
                response = await http.post(url, json={"events": events})
            except httpx.TransportError:  # refused, reset or cut by the kill
                continue
            finally:
                publisher.in_flight = False
            if response.status_code == 503:  # the database went away with the server
                continue
            assert response.status_code == 200, response.text
            break
        body = response.json()
        assert body["ids"] == [e["id"] for e in events]
        publisher.acked += list(zip(body["ids"], body["seqs"], strict=True))
        publisher.batches_acked += 1
        if attempts > 1:
            publisher.resent += 1
            publisher.stored_unacked += max(body["seqs"]) <= killer.heads[publisher.task_id]


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(database_url, tmp_path / "server.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def test_kill_9_mid_stream_loses_and_doubles_no_acknowledged_event(
    server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """ROUNDS kills while publishing; then every check of the module docstring."""
    caplog.set_level(logging.INFO, logger="taskline.sdk")
    killer = Killer(server)
    timeout = httpx.Timeout(WAIT, connect=5)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=timeout) as http,
        AsyncClient(
            server.url, delivery=DeliveryOptions(backoff=Backoff(initial=0.05, maximum=0.5))
        ) as sdk,
    ):
        task_ids = []
        for n in range(TASKS):
            response = await http.post("/api/v1/tasks/", json={"title": f"Killed {n}"})
            task_ids.append(response.json()["id"])
        sdk_task = await sdk.create_task("Killed, the SDK's")
        publishers = [Publisher(f"p{n}", task_ids[n % TASKS]) for n in range(PUBLISHERS)]
        emitted: list[str] = []
        async with sdk.run(sdk_task.id, agent="agent_killed") as run:
            killer.sdk_connections = lambda: run.connections

            async def kill_rounds() -> None:
                # kill k comes in the second half of the publishers' batches of round k - 1,
                # once the SDK run is connected to this server too (it reconnected after the
                # last kill)
                share = BATCHES // (ROUNDS + 1)
                for kill in range(1, ROUNDS + 1):
                    goal = PUBLISHERS * (share * (kill - 1) + share // 2 + 1)
                    await async_wait_until(
                        lambda goal=goal, kill=kill: (
                            sum(p.batches_acked for p in publishers) >= goal
                            and run.connections >= kill
                        ),
                        message=f"{goal} acknowledged batches and the SDK run before kill {kill}",
                    )
                    await killer.kill_and_restart(publishers, http)

            async def emit_across_kills() -> None:
                # the SDK's events go out during every round (a share before each kill)
                share = SDK_EVENTS // (ROUNDS + 1)
                for round_ in range(ROUNDS + 1):
                    await async_wait_until(
                        lambda round_=round_: killer.kills >= round_,
                        message=f"kill {round_}",
                    )
                    while len(emitted) < min(SDK_EVENTS, share * (round_ + 1)):
                        emitted.append(
                            await run.emit("custom", {"name": "sdk", "value": len(emitted)})
                        )
                while len(emitted) < SDK_EVENTS:
                    emitted.append(await run.emit("custom", {"name": "sdk", "value": len(emitted)}))

            await asyncio.gather(
                kill_rounds(),
                emit_across_kills(),
                *(publish_all(http, p, killer, BATCHES) for p in publishers),
            )
            await run.flush()
            assert run.pending == 0
            sdk_connections = run.connections

        logs = {}
        for task_id in [*task_ids, sdk_task.id]:
            response = await http.get(f"/api/v1/tasks/{task_id}/events", params={"limit": 10_000})
            logs[task_id] = response.json()["events"]

    assert killer.kills == ROUNDS
    for task_id, log in logs.items():
        seqs = [e["seq"] for e in log]
        assert seqs == list(range(1, len(log) + 1)), f"{task_id}: a gap or a repeat"
        ids = [e["id"] for e in log]
        assert len(set(ids)) == len(ids), f"{task_id}: an event stored twice"
    stored = {e["id"]: (task_id, e["seq"]) for task_id, log in logs.items() for e in log}
    checked = 0
    for publisher in publishers:
        assert publisher.batches_acked == BATCHES
        seqs = []
        for event_id, seq in publisher.acked:
            assert stored.get(event_id) == (publisher.task_id, seq), event_id
            seqs.append(seq)
        assert seqs == sorted(seqs), f"{publisher.name}: not in the order acknowledged"
        checked += len(seqs)
    sdk_log = [e for e in logs[sdk_task.id] if e["event_type"] == "custom"]
    assert [e["id"] for e in sdk_log] == emitted  # each once, in the order emitted
    assert [e["data"]["value"] for e in sdk_log] == list(range(SDK_EVENTS))
    assert sdk_connections >= ROUNDS + 1  # it reconnected after every kill
    assert "Traceback" not in server.log()
    print(
        f"{killer.kills} kills (requests in flight at each: {killer.in_flight_at_kills}); "
        f"{checked} acknowledged REST events checked ({sum(p.resent for p in publishers)} "
        f"batches resent, {sum(p.stored_unacked for p in publishers)} of them stored but not "
        f"acknowledged before the kill), {len(sdk_log)} SDK events, "
        f"{sum(map(len, logs.values()))} in the logs"
    )

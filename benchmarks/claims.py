"""Claims per second: 20 concurrent agents beside one agent, in the same run, on SQLite and
PostgreSQL.

A server in its own process (CPU 0; the raw asyncio client on CPU 1) that checks who asks,
with an agent token per agent issued in its database before it starts. Two pools of pending
tasks of the same size are created, tagged ``solo`` and ``team``; one agent claims from the
``solo`` pool on one keep-alive connection until it is empty (each claim answered before the
next is sent), then ``--agents`` agents, each with its own token and connection, claim from
the ``team`` pool concurrently until it is empty (PostgreSQL is ``ANALYZE``d after seeding,
as autovacuum would). Every claim is one write transaction (the
lazy expiry check, the conditional update, the logged events). The figure is claims/s of
the many as a ratio of claims/s of the one; the run also checks that every task was claimed
exactly once.

    .venv/bin/python benchmarks/claims.py                  # SQLite, then PostgreSQL
    .venv/bin/python benchmarks/claims.py --backend sqlite --tasks 2000
"""

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from access import Access, prepare
from rawhttp import Server, http_request, pin_self, read_response, scratch_postgres
from sqlalchemy import text

from taskline.domain.actors import Actor, Role
from taskline.service.identity import Identity
from taskline.store.database import Database

CLAIM = "/api/v1/tasks/claim"


async def agent_tokens(database_url: str, count: int) -> list[str]:
    """One agent token per agent (``agent_bench0``, ...), issued in the server's database."""
    database = Database(database_url)
    try:
        identity = Identity(database, session_ttl=3600)
        tokens = []
        for n in range(count):
            issued = await identity.issue_token(
                f"bench agent {n}",
                Role.AGENT,
                agent_id=f"agent_bench{n}",
                actor=Actor.system("bench"),
            )
            tokens.append(issued.secret)
        return tokens
    finally:
        await database.dispose()


async def create_tasks(port: int, count: int, tag: str, headers: dict[str, str]) -> set[str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ids = set()
    for n in range(count):
        body = json.dumps({"title": f"{tag} {n}", "tags": [tag]}).encode()
        writer.write(http_request("POST", "/api/v1/tasks/", body, headers=headers))
        status, answer = await read_response(reader)
        assert status == 201, answer
        ids.add(json.loads(answer)["id"])
    writer.close()
    return ids


async def analyze(database_url: str) -> None:
    """Give PostgreSQL's planner the statistics of the tables just filled, as autovacuum
    does within a minute or so (without them it estimates one row and joins tags by a
    nested loop, dozens of times slower); SQLite plans without statistics."""
    if database_url.startswith("postgresql"):
        database = Database(database_url)
        try:
            async with database.write() as session:
                await session.execute(text("ANALYZE"))
        finally:
            await database.dispose()


async def claim_all(port: int, tag: str, tokens: list[str]) -> tuple[float, list[str], int]:
    """Agents (one per token, one connection each) claim from the ``tag`` pool until it is
    empty; returns claims/s, the claimed ids and the number of answers other than 200/204."""
    body = json.dumps({"tags": [tag]}).encode()
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in tokens]
    claimed: list[str] = []
    errors = 0

    async def agent(index: int) -> None:
        nonlocal errors
        reader, writer = streams[index]
        request = http_request(
            "POST", CLAIM, body, headers={"Authorization": f"Bearer {tokens[index]}"}
        )
        while True:
            writer.write(request)
            status, answer = await read_response(reader)
            if status == 204:
                return
            if status != 200:
                errors += 1
                continue
            claimed.append(json.loads(answer)["id"])

    started = time.monotonic()
    await asyncio.gather(*(agent(i) for i in range(len(tokens))))
    elapsed = time.monotonic() - started
    for _, writer in streams:
        writer.close()
    return len(claimed) / elapsed, claimed, errors


async def measure(database_url: str, agents: int, tasks: int, tmp: Path) -> dict[str, float]:
    access: Access = await prepare(database_url, True)
    tokens = await agent_tokens(database_url, agents)
    server = Server(database_url, env=access.server_env)
    server.start(tmp / f"server-{time.monotonic_ns()}.log")
    try:
        access.check(f"http://127.0.0.1:{server.port}")
        solo_ids = await create_tasks(server.port, tasks, "solo", access.headers)
        team_ids = await create_tasks(server.port, tasks, "team", access.headers)
        await analyze(database_url)
        solo_rate, solo, solo_errors = await claim_all(server.port, "solo", tokens[:1])
        team_rate, team, team_errors = await claim_all(server.port, "team", tokens)
    finally:
        server.stop()
    assert sorted(solo) == sorted(solo_ids), "the single agent did not claim every task once"
    assert sorted(team) == sorted(team_ids), "the agents did not claim every task exactly once"
    return {
        "single_claims_per_s": solo_rate,
        "concurrent_claims_per_s": team_rate,
        "ratio": team_rate / solo_rate,
        "errors": solo_errors + team_errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=1000, help="tasks in each pool")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql", "both"), default="both", help="(both)"
    )
    args = parser.parse_args()
    pinned = pin_self(1)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    print(
        f"{args.agents} agents vs 1, {args.tasks} tasks per pool, auth on, server on CPU 0"
        + (", client on CPU 1" if pinned else ""),
        flush=True,
    )
    results = {}
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            url = (
                stack.enter_context(scratch_postgres())
                if backend == "postgresql"
                else f"sqlite+aiosqlite:///{Path(tmp) / 'claims.db'}"
            )
            result = asyncio.run(measure(url, args.agents, args.tasks, Path(tmp)))
        results[backend] = result
        print(
            f"{backend:10}  1 agent {result['single_claims_per_s']:,.0f} claims/s  "
            f"{args.agents} agents {result['concurrent_claims_per_s']:,.0f} claims/s  "
            f"ratio {result['ratio']:.2f}x  (errors {result['errors']:.0f})",
            flush=True,
        )
    print(json.dumps({"agents": args.agents, "tasks": args.tasks, "results": results}))


if __name__ == "__main__":
    main()

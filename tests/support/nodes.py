"""Several real ``taskline serve`` processes on one PostgreSQL database and one Redis."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from taskline.domain.ids import new_id
from tests.support.databases import empty_database
from tests.support.process import ServerProcess
from tests.support.waiting import TIME_SCALE

__all__ = ["running_nodes"]

#: Seconds a process gets to answer /health (a machine busy with other tests is slow).
START = 60.0


@contextmanager
def running_nodes(
    database_url: str,
    redis_url: str,
    logs: Path,
    count: int = 3,
    *,
    start_timeout: float = START * TIME_SCALE,
    **env: str,
) -> Iterator[list[ServerProcess]]:
    """``count`` processes on the emptied ``database_url`` and ``redis_url`` under a key prefix
    of their own (other tests' servers on the same Redis do not meet them), stopped at the
    end; each may take ``start_timeout`` seconds to answer. The first applies the migrations,
    the others start in parallel after it (two processes migrating one new database collide).
    ``env``: more ``TASKLINE_*`` settings."""
    empty_database(database_url)
    settings = {
        "TASKLINE_REDIS_URL": redis_url,
        "TASKLINE_REDIS_PREFIX": new_id("test"),
        "TASKLINE_AUTH": "false",
        **env,
    }
    first = ServerProcess(database_url, logs / "node0.log", **settings)
    others = [
        ServerProcess(
            database_url, logs / f"node{n}.log", **settings, TASKLINE_MIGRATE_ON_START="false"
        )
        for n in range(1, count)
    ]
    started = [first, *others]
    try:
        first.start(timeout=start_timeout)
        if others:
            with ThreadPoolExecutor(len(others)) as pool:  # each start waits for its /health
                list(pool.map(lambda node: node.start(timeout=start_timeout), others))
        yield started
    finally:
        for node in started:
            node.stop()

"""NodeStats: each server process's connection figures in Redis, for a view of the cluster.

Every ``interval`` seconds a process (a *node*) writes its figures — whatever ``figures()``
returns, a JSON object — to the key ``{prefix}:node-stats:{node}`` with a time to live of
``3 * interval`` (``SET ... PX``), and records its node id in the set ``{prefix}:nodes``. A
node that stops (gracefully: :meth:`close` deletes its key) or dies (``kill -9``: its key
expires) drops out of :meth:`cluster` within that time to live; readers forget ids whose key
is gone.

Each report carries ``node`` and ``reported_at`` (Unix seconds, the writer's clock);
:meth:`cluster` adds ``seconds_since_report`` (never below 0, whatever the clocks say).

Redis failures: a failed report is logged (once until a report succeeds again) and the next
round tries again; :meth:`cluster` raises :class:`~taskline.domain.errors.StorageError`
(``from`` the driver's error), and callers show what this process knows alone.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from taskline.bus.redis_subscription import as_text, connect, redis_errors
from taskline.domain.errors import StorageError

__all__ = ["Figures", "NodeStats"]

logger = logging.getLogger(__name__)

#: Returns this node's figures now (a JSON-serialisable mapping).
Figures = Callable[[], Mapping[str, Any]]


class NodeStats:
    """Reports this node's figures to Redis every ``interval`` seconds; reads everyone's.

    Args:
        url: Redis URL (``redis://127.0.0.1:6379/0``).
        node: this process's id, unique per deployment.
        figures: what to report (called once per round).
        interval: seconds between two reports; a report lives ``3 * interval``.
        prefix: key prefix shared by the processes of one deployment.
        timeout: seconds allowed to connect and for each command (the status endpoint
            waits this long at most when Redis does not answer).
    """

    def __init__(
        self,
        url: str,
        *,
        node: str,
        figures: Figures,
        interval: float = 5.0,
        prefix: str = "taskline",
        timeout: float = 1.0,
    ) -> None:
        if not node:
            raise ValueError("node must be a non-empty string")
        if interval <= 0 or timeout <= 0:
            raise ValueError("interval and timeout must be positive")
        self.url = url
        self.node = node
        self.figures = figures
        self.interval = interval
        self.prefix = prefix
        self._timeout = timeout
        self._client: Redis | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._failing = False

    def __repr__(self) -> str:
        return f"<NodeStats node={self.node!r} prefix={self.prefix!r}>"

    @property
    def ttl(self) -> float:
        """Seconds a report lives: a node silent this long is out of the cluster view."""
        return 3 * self.interval

    def _key(self, node: str) -> str:
        return f"{self.prefix}:node-stats:{node}"

    @property
    def _nodes(self) -> str:
        return f"{self.prefix}:nodes"

    @property
    def _redis(self) -> Redis:
        if self._client is None:
            raise RuntimeError("NodeStats: not started")
        return self._client

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start reporting (the first report now). Redis being down does not stop the start:
        the rounds go on trying."""
        if self._client is not None:
            raise RuntimeError("NodeStats: already started")
        self._client = connect(
            self.url,
            timeout=self._timeout,
            name=f"taskline-node-stats:{self.node}",
            health_checks=False,
        )
        self._reporter = asyncio.get_running_loop().create_task(
            self._report_every_interval(), name=f"taskline-node-stats:{self.node}"
        )

    async def close(self) -> None:
        """Stop reporting and delete this node's report (it leaves the view at once; if Redis
        does not answer, the report expires instead). Closing twice is harmless."""
        reporter, self._reporter = self._reporter, None
        if reporter is not None:
            reporter.cancel()
            await asyncio.wait({reporter})
        client, self._client = self._client, None
        if client is None:
            return
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(self.node))
                pipe.srem(self._nodes, self.node)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.info("node stats of %s left to expire: %s", self.node, exc)
        finally:
            await client.aclose()

    # --- reporting --------------------------------------------------------------------------

    async def report(self) -> None:
        """Write this node's figures now.

        Raises:
            StorageError: Redis did not take them.
        """
        report = {**self.figures(), "node": self.node, "reported_at": time.time()}
        with redis_errors(f"report the figures of node {self.node}"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._key(self.node), orjson.dumps(report), px=int(self.ttl * 1000))
                pipe.sadd(self._nodes, self.node)
                await pipe.execute()

    async def _report_every_interval(self) -> None:
        while True:
            try:
                await self.report()
            except StorageError as exc:
                if not self._failing:
                    logger.warning("%s; trying again every %g s", exc, self.interval)
                self._failing = True
            else:
                if self._failing:
                    logger.warning("node stats of %s reported to Redis again", self.node)
                self._failing = False
            await asyncio.sleep(self.interval)

    # --- reading ----------------------------------------------------------------------------

    async def cluster(self) -> list[dict[str, Any]]:
        """Every node's last report (sorted by node id), with ``seconds_since_report``.

        Ids whose report expired are forgotten; a report that is not a JSON object is
        skipped (and logged).

        Raises:
            StorageError: Redis did not answer.
        """
        with redis_errors("read the nodes' figures"):
            found = (as_text(m) for m in await self._redis.smembers(self._nodes))
            members = sorted(m for m in found if m is not None)
            values = await self._redis.mget([self._key(n) for n in members]) if members else []
            gone = [n for n, v in zip(members, values, strict=True) if v is None]
            if gone:
                await self._redis.srem(self._nodes, *gone)
        now = time.time()
        reports: list[dict[str, Any]] = []
        for node, value in zip(members, values, strict=True):
            if value is None:
                continue
            try:
                report: Any = orjson.loads(value)
            except orjson.JSONDecodeError:
                report = None
            if not isinstance(report, dict):
                logger.warning("node stats of %s are not a JSON object: skipped", node)
                continue
            reported_at = report.get("reported_at")
            since = now - reported_at if isinstance(reported_at, int | float) else None
            report["node"] = node
            report["seconds_since_report"] = None if since is None else round(max(0, since), 3)
            reports.append(report)
        return reports

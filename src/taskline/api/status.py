"""``GET /api/v1/websocket/status``: live connections, queues, bus statistics, uptime — of this
process — and ``cluster``, the figures of every process of the deployment.

The cluster view comes from the reports each process writes to Redis every
``node_stats_interval`` seconds (``app.state.node_stats``, a :class:`ClusterSource`; see
``taskline.bus.node_stats``). ``cluster_view`` says where it came from:

* ``"redis"`` — every node that reported within its reports' time to live (this one with its
  figures of now);
* ``"local"`` — no Redis configured: one process, the only node;
* ``"unavailable"`` — Redis did not answer: only this node is listed, the others are unknown
  (the endpoint still answers 200).
"""

from datetime import UTC, datetime
from typing import Any, Protocol

from fastapi import APIRouter, Request

from taskline.api.deps import ActorDep, ServicesDep
from taskline.domain.access import Action, require
from taskline.domain.errors import StorageError
from taskline.realtime import ConnectionManager

__all__ = ["ClusterSource", "node_figures", "router"]

router = APIRouter(prefix="/api/v1", tags=["events"])


class ClusterSource(Protocol):
    """Where the nodes' reports are read (``app.state.node_stats``)."""

    async def cluster(self) -> list[dict[str, Any]]:
        """Every live node's last report (with ``node`` and ``seconds_since_report``).

        Raises:
            StorageError: the reports could not be read.
        """
        ...


def node_figures(manager: ConnectionManager) -> dict[str, Any]:
    """This process's figures as a node of the cluster reports them (JSON-serialisable)."""
    stats = manager.get_stats()
    return {
        "connections": stats["connections"],
        "subscribers": {
            "board": stats["board_connections"],
            "task": sum(stats["tasks"].values()),
        },
        "lag": {"bytes_pending": stats["bytes_pending"], "catching_up": stats["catching_up"]},
        "started_at": datetime.fromtimestamp(manager.started_at, UTC).isoformat(),
        "uptime_seconds": stats["uptime_seconds"],
    }


def _entry(report: dict[str, Any], since: float) -> dict[str, Any]:
    """One node of ``cluster``: its report, aged by ``since`` seconds."""
    lag = dict(report.get("lag") or {})
    lag["seconds_since_report"] = since
    uptime = report.get("uptime_seconds")
    return {
        "node": report.get("node"),
        "connections": report.get("connections"),
        "subscribers": report.get("subscribers"),
        "lag": lag,
        "started_at": report.get("started_at"),
        "uptime_seconds": round(uptime + since, 3) if isinstance(uptime, int | float) else None,
    }


async def cluster_view(
    source: ClusterSource | None, node: str, manager: ConnectionManager
) -> tuple[list[dict[str, Any]], str]:
    """The ``cluster`` list (by node id) and the ``cluster_view`` flag (module docstring)."""
    here = _entry({**node_figures(manager), "node": node}, 0.0)
    if source is None:
        return [here], "local"
    try:
        reports = await source.cluster()
    except StorageError:
        return [here], "unavailable"
    others = [
        _entry(r, float(r.get("seconds_since_report") or 0.0))
        for r in reports
        if r.get("node") != node
    ]
    return sorted([here, *others], key=lambda e: str(e["node"])), "redis"


@router.get("/websocket/status", summary="Live connection status")
async def websocket_status(
    request: Request, services: ServicesDep, actor: ActorDep
) -> dict[str, Any]:
    """Who is connected (client ids, addresses, user agents) and how delivery goes, on this
    process (``node``), and each node's figures (``cluster``, see ``cluster_view``): admin."""
    require(actor, Action.VIEW_CONNECTIONS)
    manager: ConnectionManager = request.app.state.connections
    source: ClusterSource | None = getattr(request.app.state, "node_stats", None)
    stats = manager.get_stats()
    cluster, view = await cluster_view(source, services.node, manager)
    return {
        "node": services.node,
        "connections_total": stats["connections"],
        "connections_per_task": stats["tasks"],
        "board_connections": stats["board_connections"],
        "clients": [info.model_dump(mode="json") for info in manager.all_connections()],
        "offline_queues": stats["offline_queues"],
        "delivery": {
            "connections_opened": stats["connections_opened"],
            "caught_up_from_log": stats["caught_up_from_log"],
            "catching_up": stats["catching_up"],
            "slow_consumers_closed": stats["slow_consumers_closed"],
            "stale_closed": stats["stale_closed"],
            "board_resyncs": stats["board_resyncs"],
            "bytes_pending": stats["bytes_pending"],
            "peak_bytes_pending": stats["peak_bytes_pending"],
            "recent_events": stats["recent_events"],
        },
        "bus": services.bus.get_stats(),
        "uptime_seconds": stats["uptime_seconds"],
        "epoch": await manager.epoch(),
        "cluster": cluster,
        "cluster_view": view,
    }

"""``GET /api/v1/websocket/status``: live connections, queues, bus statistics, uptime."""

from typing import Any

from fastapi import APIRouter, Request

from taskline.api.deps import ActorDep, ServicesDep
from taskline.domain.access import Action, require
from taskline.realtime import ConnectionManager

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["events"])


@router.get("/websocket/status", summary="Live connection status")
async def websocket_status(
    request: Request, services: ServicesDep, actor: ActorDep
) -> dict[str, Any]:
    """Who is connected (client ids, addresses, user agents) and how delivery goes: admin."""
    require(actor, Action.VIEW_CONNECTIONS)
    manager: ConnectionManager = request.app.state.connections
    stats = manager.get_stats()
    return {
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
    }

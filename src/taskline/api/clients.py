"""Personal messages to one WebSocket client, delivered now or queued while it is away."""

from typing import Annotated

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel

from taskline.api.deps import ActorDep
from taskline.api.json_body import JsonBodyRoute
from taskline.api.paths import ClientId
from taskline.domain.access import Action, require
from taskline.domain.json_bounds import StorableObject
from taskline.realtime import ConnectionManager

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/clients", tags=["events"], route_class=JsonBodyRoute)


class Delivery(BaseModel):
    client_id: str
    delivered: bool
    queued: int


@router.post("/{client_id:id}/messages", response_model=Delivery, summary="Message one client")
async def send_personal_message(
    client_id: ClientId,
    request: Request,
    body: Annotated[StorableObject, Body(description="Any JSON object (storable).")],
    actor: ActorDep,
) -> Delivery:
    """Send ``body`` to the client as a ``personal_message`` event.

    Delivered at once if the client is connected (to any process, with Redis); otherwise
    queued (up to the offline queue size, oldest dropped) and delivered in order when it
    reconnects with its ``client_id`` (to any process). ``delivered`` is true only when a live
    connection took it; ``queued``: how many wait for the client now.
    """
    require(actor, Action.MESSAGE_CLIENTS)
    manager: ConnectionManager = request.app.state.connections
    delivered = await manager.send_personal_message(client_id, dict(body))
    return Delivery(
        client_id=client_id, delivered=delivered, queued=await manager.queued(client_id)
    )

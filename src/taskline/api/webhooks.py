"""Outgoing webhooks (admins only): create, list, read, change, delete; a webhook's delivery
log; a test delivery."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from taskline.api.deps import ActorDep, ServicesDep
from taskline.api.json_body import JsonBodyRoute
from taskline.api.paths import WebhookId
from taskline.api.responses import JSONBytes, document
from taskline.domain.webhooks import (
    Delivery,
    DeliveryStatus,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookPatch,
)

__all__ = ["DeliveryList", "WebhookList", "router"]

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], route_class=JsonBodyRoute)


class WebhookList(BaseModel):
    webhooks: list[Webhook]


class DeliveryList(BaseModel):
    deliveries: list[Delivery] = Field(description="Newest first.")


@router.get("/", response_model=WebhookList, summary="List webhooks")
async def list_webhooks(services: ServicesDep, actor: ActorDep) -> Response:
    webhooks = await services.webhooks.all(actor)
    return JSONBytes({"webhooks": [document(w) for w in webhooks]})


@router.post(
    "/",
    response_model=WebhookCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Add a webhook",
)
async def create_webhook(body: WebhookCreate, services: ServicesDep, actor: ActorDep) -> Response:
    """Add a webhook: events committed from now on that it takes (``events``) are POSTed to
    ``url``, signed (Standard Webhooks). The answer holds the signing ``secret`` (generated
    when none is given): it is never shown again."""
    webhook = await services.webhooks.create(actor, body)
    return JSONBytes(
        document(webhook),
        status_code=status.HTTP_201_CREATED,
        headers={"Location": f"/api/v1/webhooks/{webhook.id}"},
    )


@router.get("/{webhook_id:id}", response_model=Webhook, summary="Get a webhook")
async def get_webhook(webhook_id: WebhookId, services: ServicesDep, actor: ActorDep) -> Response:
    return JSONBytes(document(await services.webhooks.get(actor, webhook_id)))


@router.patch("/{webhook_id:id}", response_model=Webhook, summary="Change a webhook")
async def patch_webhook(
    webhook_id: WebhookId, body: WebhookPatch, services: ServicesDep, actor: ActorDep
) -> Response:
    """Change the members given (url, events, format, enabled, description). Deliveries of
    a disabled webhook wait; enabling it sends them."""
    webhook = await services.webhooks.patch(actor, webhook_id, body.changes())
    return JSONBytes(document(webhook))


@router.delete(
    "/{webhook_id:id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a webhook"
)
async def delete_webhook(webhook_id: WebhookId, services: ServicesDep, actor: ActorDep) -> Response:
    """Delete the webhook and its delivery log (deliveries not sent yet are dropped)."""
    await services.webhooks.delete(actor, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{webhook_id:id}/deliveries",
    response_model=DeliveryList,
    summary="A webhook's delivery log",
)
async def list_deliveries(
    webhook_id: WebhookId,
    services: ServicesDep,
    actor: ActorDep,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """Each delivery with its attempts, the last answer's status or error, and when the next
    attempt is due; newest first."""
    deliveries = await services.webhooks.deliveries(actor, webhook_id, status=status, limit=limit)
    return JSONBytes({"deliveries": [document(d) for d in deliveries]})


@router.post(
    "/{webhook_id:id}/test",
    response_model=Delivery,
    summary="Send a test delivery",
)
async def test_webhook(webhook_id: WebhookId, services: ServicesDep, actor: ActorDep) -> Response:
    """Send a ``webhook.test`` delivery (a disabled webhook too) and answer it after its
    first attempt — ``delivered``, or ``pending`` with the error (it is retried like any) —
    or after a second at most (``sending``: read the outcome in the delivery log)."""
    return JSONBytes(document(await services.webhooks.test(actor, webhook_id)))

"""A task's message thread (people and agents talking about the task)."""

from fastapi import APIRouter, status

from taskline.api.deps import ActorDep, ServicesDep
from taskline.api.json_body import JsonBodyRoute
from taskline.api.paths import TaskId
from taskline.domain.models import Message, MessageCreate

__all__ = ["MessagePosted", "router"]

router = APIRouter(
    prefix="/api/v1/tasks/{task_id:id}/messages", tags=["messages"], route_class=JsonBodyRoute
)


@router.get("", response_model=list[Message], summary="List a task's messages")
async def list_messages(task_id: TaskId, services: ServicesDep) -> list[Message]:
    return await services.steering.messages(task_id)


class MessagePosted(Message):
    """The stored message, and whether a connected agent got it now (else it is queued)."""

    delivered: bool


@router.post(
    "", response_model=MessagePosted, status_code=status.HTTP_201_CREATED, summary="Post a message"
)
async def post_message(
    task_id: TaskId, body: MessageCreate, services: ServicesDep, actor: ActorDep
) -> MessagePosted:
    """Store the message in the task's thread, log it (``custom`` event ``task_message``) and
    deliver it to the task's agent as a ``message`` command."""
    message, delivered = await services.steering.post(task_id, body, actor=actor)
    return MessagePosted(**message.model_dump(), delivered=delivered)

"""A task's message thread (people and agents talking about the task)."""

from fastapi import APIRouter, Request, status

from taskline.api.deps import BusDep, DatabaseDep
from taskline.api.recording import record
from taskline.domain.events import WebSocketEventType
from taskline.domain.models import Message, MessageCreate
from taskline.realtime.agents import AgentHub
from taskline.store.messages import MessageStore

__all__ = ["MessagePosted", "router"]

router = APIRouter(prefix="/api/v1/tasks/{task_id}/messages", tags=["messages"])


@router.get("", response_model=list[Message], summary="List a task's messages")
async def list_messages(task_id: str, database: DatabaseDep) -> list[Message]:
    async with database.read() as session:
        return await MessageStore(session).list(task_id)


class MessagePosted(Message):
    """The stored message, and whether a connected agent got it now (else it is queued)."""

    delivered: bool


@router.post(
    "", response_model=MessagePosted, status_code=status.HTTP_201_CREATED, summary="Post a message"
)
async def post_message(
    task_id: str, body: MessageCreate, request: Request, database: DatabaseDep, bus: BusDep
) -> MessagePosted:
    """Store the message in the task's thread, log it (``custom`` event ``task_message``) and
    deliver it to the task's agent as a ``message`` command."""
    async with database.write() as session:
        message = await MessageStore(session).add(task_id, body)
        payload = message.model_dump(mode="json")
        events = await record(
            session, task_id, WebSocketEventType.CUSTOM, {"name": "task_message", "value": payload}
        )
    await bus.dispatch(events)
    hub: AgentHub = request.app.state.agents
    delivered = await hub.send_command(task_id, "message", message=payload)
    return MessagePosted(**message.model_dump(), delivered=delivered)

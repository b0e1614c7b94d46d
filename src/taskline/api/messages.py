"""A task's message thread (people and agents talking about the task)."""

from fastapi import APIRouter, status

from taskline.api.deps import DatabaseDep
from taskline.domain.models import Message, MessageCreate
from taskline.store.messages import MessageStore

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/tasks/{task_id}/messages", tags=["messages"])


@router.get("", response_model=list[Message], summary="List a task's messages")
async def list_messages(task_id: str, database: DatabaseDep) -> list[Message]:
    async with database.read() as session:
        return await MessageStore(session).list(task_id)


@router.post(
    "", response_model=Message, status_code=status.HTTP_201_CREATED, summary="Post a message"
)
async def post_message(task_id: str, body: MessageCreate, database: DatabaseDep) -> Message:
    async with database.write() as session:
        return await MessageStore(session).add(task_id, body)

"""Agent routes: list, register, read, change, delete."""

from fastapi import APIRouter, Response, status

from taskline.api.deps import DatabaseDep
from taskline.domain.models import Agent, AgentCreate, AgentPatch
from taskline.domain.status import AgentStatus
from taskline.store.agents import AgentStore

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])


@router.get("/", response_model=list[Agent], summary="List agents")
async def list_agents(database: DatabaseDep, status: AgentStatus | None = None) -> list[Agent]:
    async with database.read() as session:
        return await AgentStore(session).list(status=status)


@router.post(
    "/", response_model=Agent, status_code=status.HTTP_201_CREATED, summary="Register an agent"
)
async def create_agent(body: AgentCreate, database: DatabaseDep, response: Response) -> Agent:
    async with database.write() as session:
        agent = await AgentStore(session).create(body)
    response.headers["Location"] = f"/api/v1/agents/{agent.id}"
    return agent


@router.get("/{agent_id}", response_model=Agent, summary="Get an agent")
async def get_agent(agent_id: str, database: DatabaseDep) -> Agent:
    async with database.read() as session:
        return await AgentStore(session).get(agent_id)


@router.patch("/{agent_id}", response_model=Agent, summary="Change some of an agent's fields")
async def patch_agent(agent_id: str, body: AgentPatch, database: DatabaseDep) -> Agent:
    async with database.write() as session:
        return await AgentStore(session).patch(agent_id, body.changes())


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an agent")
async def delete_agent(agent_id: str, database: DatabaseDep) -> Response:
    async with database.write() as session:
        await AgentStore(session).delete(agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""Agent routes: list, register, read, change, delete."""

from fastapi import APIRouter, Response, status

from taskline.api.deps import ActorDep, ServicesDep
from taskline.api.json_body import JsonBodyRoute
from taskline.api.paths import AgentId
from taskline.api.responses import JSONBytes, document
from taskline.domain.models import Agent, AgentCreate, AgentPatch
from taskline.domain.status import AgentStatus

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/agents", tags=["agents"], route_class=JsonBodyRoute)


@router.get("/", response_model=list[Agent], summary="List agents")
async def list_agents(services: ServicesDep, status: AgentStatus | None = None) -> Response:
    return JSONBytes([document(agent) for agent in await services.agents.list(status=status)])


@router.post(
    "/", response_model=Agent, status_code=status.HTTP_201_CREATED, summary="Register an agent"
)
async def create_agent(body: AgentCreate, services: ServicesDep, actor: ActorDep) -> Response:
    agent = await services.agents.create(body, actor=actor)
    return JSONBytes(
        document(agent),
        status_code=status.HTTP_201_CREATED,
        headers={"Location": f"/api/v1/agents/{agent.id}"},
    )


@router.get("/{agent_id:id}", response_model=Agent, summary="Get an agent")
async def get_agent(agent_id: AgentId, services: ServicesDep) -> Response:
    return JSONBytes(document(await services.agents.get(agent_id)))


@router.patch("/{agent_id:id}", response_model=Agent, summary="Change some of an agent's fields")
async def patch_agent(
    agent_id: AgentId, body: AgentPatch, services: ServicesDep, actor: ActorDep
) -> Response:
    return JSONBytes(document(await services.agents.patch(agent_id, body.changes(), actor=actor)))


@router.delete("/{agent_id:id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an agent")
async def delete_agent(agent_id: AgentId, services: ServicesDep, actor: ActorDep) -> Response:
    await services.agents.delete(agent_id, actor=actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

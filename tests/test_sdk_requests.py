"""Asking people through the SDK against a real server: ``run.ask`` returning the answer,
``run.approval`` giving the (edited) arguments or raising :class:`ApprovalRejected` before
its body runs, :class:`RequestNotAnswered` on expiry, a wait that survives a restart of the
server, and the blocking client's answering side."""

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from taskline.domain.requests import Request
from taskline.sdk import (
    ApprovalRejected,
    AsyncClient,
    Client,
    InvalidRequest,
    RequestNotAnswered,
)
from tests.support.auth import SecureServer, secure_server
from tests.support.waiting import async_wait_until

AGENT = "agent_bot"


@pytest.fixture
def secured(sqlite_url: str) -> Iterator[SecureServer]:
    with secure_server(sqlite_url, request_sweep_interval=0.1) as server:
        yield server


async def _asked(person: AsyncClient, task_id: str) -> Request:
    """The one open request of the task, once the agent has asked it."""

    async def found() -> list[Request]:
        return await person.list_requests("open", task_id=task_id)

    (request,) = await async_wait_until(found, message="the agent's request")
    return request


async def test_ask_returns_the_answer_a_person_gives(secured: SecureServer) -> None:
    """``run.ask`` opens a question (with its schema and run id) and returns the answer;
    the task needs input until then."""
    async with (
        AsyncClient(secured.url, token=secured.tokens["admin"]) as person,
        AsyncClient(secured.url, token=secured.tokens["agent"]) as agent,
    ):
        task = await person.create_task("needs a branch")
        assert await agent.claim() is not None
        async with agent.run(task.id, agent=AGENT) as run:
            schema = {"type": "object", "required": ["branch"]}
            asking = asyncio.create_task(run.ask("Which branch?", schema=schema))
            request = await _asked(person, task.id)
            assert (request.kind, request.run_id, request.response_schema) == (
                "question",
                run.run_id,
                schema,
            )
            assert (await person.get_task(task.id)).needs_input
            with pytest.raises(InvalidRequest):
                await person.answer_request(request.id, {"no": "branch"})
            await person.answer_request(request.id, {"branch": "main"}, comment="the usual")
            assert await asyncio.wait_for(asking, 30) == {"branch": "main"}
            assert not (await person.get_task(task.id)).needs_input


async def test_approval_gives_the_edited_arguments_or_raises_on_rejection(
    secured: SecureServer,
) -> None:
    """An approved action's body runs with the arguments the person edited; a rejected one
    raises ApprovalRejected with the comment before its body runs."""
    ran: list[dict[str, Any]] = []
    async with (
        AsyncClient(secured.url, token=secured.tokens["admin"]) as person,
        AsyncClient(secured.url, token=secured.tokens["agent"]) as agent,
    ):
        task = await person.create_task("cleanup")
        assert await agent.claim() is not None
        async with agent.run(task.id, agent=AGENT) as run:

            async def delete(branch: str) -> None:
                gate = run.approval("delete_branch", {"branch": branch}, reason="old", risk="high")
                async with gate as decision:
                    ran.append(decision.arguments)

            approving = asyncio.create_task(delete("old"))
            request = await _asked(person, task.id)
            assert request.action is not None and request.action.risk == "high"
            await person.approve(request.id, arguments={"branch": "older"})
            await asyncio.wait_for(approving, 30)
            assert ran == [{"branch": "older"}]

            rejecting = asyncio.create_task(delete("main"))
            request = await _asked(person, task.id)
            await person.reject(request.id, comment="never main")
            with pytest.raises(ApprovalRejected) as rejected:
                await asyncio.wait_for(rejecting, 30)
            assert rejected.value.comment == "never main" and rejected.value.status == "rejected"
            assert ran == [{"branch": "older"}]  # the body did not run


async def test_an_unanswered_request_raises_request_not_answered(secured: SecureServer) -> None:
    """A question nobody answers within its timeout expires: ask raises RequestNotAnswered;
    so does a cancelled approval."""
    async with (
        AsyncClient(secured.url, token=secured.tokens["admin"]) as person,
        AsyncClient(secured.url, token=secured.tokens["agent"]) as agent,
    ):
        task = await person.create_task("quiet")
        assert await agent.claim() is not None
        async with agent.run(task.id, agent=AGENT) as run:
            with pytest.raises(RequestNotAnswered) as unanswered:
                await run.ask("Anyone?", timeout=0.3)
            assert unanswered.value.status == "expired"
            cancelling = asyncio.create_task(run.approval("x").__aenter__())
            request = await _asked(person, task.id)
            await person.cancel_request(request.id, reason="not now")
            with pytest.raises(RequestNotAnswered) as cancelled:
                await asyncio.wait_for(cancelling, 30)
            assert not isinstance(cancelled.value, ApprovalRejected)
            assert (cancelled.value.status, cancelled.value.comment) == ("cancelled", "not now")


async def test_waiting_survives_a_restart_of_the_server(secured: SecureServer) -> None:
    """The server restarts while the agent waits for an answer: the wait goes on (its long
    poll ends at the shutdown, the next ones wait for the server), and the answer given
    after the restart reaches it."""
    async with (
        AsyncClient(secured.url, token=secured.tokens["admin"]) as person,
        AsyncClient(secured.url, token=secured.tokens["agent"]) as agent,
    ):
        task = await person.create_task("long wait")
        request = await person.open_request(task.id, "question", "Still there?")
        waiting = asyncio.create_task(agent.wait_request(request.id))
        app = secured.server.app
        assert app is not None
        service = app.state.services.requests
        await async_wait_until(lambda: service.waiting(request.id) == 1, message="the wait")
        await asyncio.to_thread(secured.server.restart)
        assert not waiting.done()
        await person.answer_request(request.id, "yes")
        answered = await asyncio.wait_for(waiting, 30)
        assert (answered.status, answered.answer) == ("answered", "yes")


def test_the_blocking_client_lists_answers_and_cancels(secured: SecureServer) -> None:
    with (
        Client(secured.url, token=secured.tokens["admin"]) as person,
        Client(secured.url, token=secured.tokens["agent"]) as agent,
    ):
        task = person.create_task("plain")
        assert agent.claim() is not None
        question = agent.open_request(task.id, "question", "Colour?", choices=["red", "blue"])
        approval = agent.open_request(
            task.id, "approval", "Paint?", action={"name": "paint", "arguments": {"c": "red"}}
        )
        assert [r.id for r in person.list_requests("open")] == [question.id, approval.id]
        assert person.answer_request(question.id, "blue").answer == "blue"
        assert person.approve(approval.id, comment="fine").status == "approved"
        third = agent.open_request(task.id, "question", "Size?")
        assert agent.cancel_request(third.id, reason="moot").status == "cancelled"
        assert person.get_request(third.id).comment == "moot"
        assert person.list_requests("open") == []

"""Claiming through the SDK against a real server: ``claim`` / ``renew_lease`` / ``release``
on both clients, :class:`LeaseLost` naming the holder, and a run whose events renew the lease
(and whose late events are refused once the lease is lost)."""

from collections.abc import Iterator

import pytest

from taskline.sdk import AsyncClient, ClaimedTask, Client, EventRejected, LeaseLost
from tests.support.auth import SecureServer, make_token, secure_server
from tests.support.waiting import async_wait_until


@pytest.fixture
def secured(sqlite_url: str) -> Iterator[SecureServer]:
    with secure_server(sqlite_url, lease_sweep_interval=0.1) as server:
        yield server


def test_claim_renew_release_with_the_blocking_client(secured: SecureServer) -> None:
    with (
        Client(secured.url, token=secured.tokens["admin"]) as admin,
        Client(secured.url, token=secured.tokens["agent"]) as agent,
    ):
        docs = admin.create_task("docs", tags=["docs"])
        admin.create_task("code", tags=["code"])
        assert agent.claim(["rust"]) is None
        claimed = agent.claim(["docs"], lease_seconds=30)
        assert isinstance(claimed, ClaimedTask) and claimed.id == docs.id
        assert claimed.lease.agent_id == "agent_bot" and claimed.lease.token == 1
        renewed = agent.renew_lease(docs.id, lease_seconds=120)
        assert renewed.lease.expires_at > claimed.lease.expires_at
        released = agent.release(docs.id)
        assert (released.status, released.lease) == ("pending", None)
        with pytest.raises(LeaseLost) as lost:
            agent.release(docs.id)
        assert lost.value.holder is None and lost.value.status == 409
        assert "held by nobody" in str(lost.value)


async def test_a_run_renews_its_lease_and_is_fenced_once_it_lost_it(
    secured: SecureServer,
) -> None:
    """Every batch a run publishes renews the lease; after it ran out and another agent
    claimed the task, the old holder's REST calls raise LeaseLost naming the new holder and
    its run's events are refused."""
    other = make_token(secured.database_url, "agent", agent_id="agent_other", name="other")
    async with (
        AsyncClient(secured.url, token=secured.tokens["admin"]) as admin,
        AsyncClient(secured.url, token=secured.tokens["agent"]) as agent,
        AsyncClient(secured.url, token=other) as rival,
    ):
        task = await admin.create_task("renewed by its run")
        claimed = await agent.claim(lease_seconds=5)
        assert claimed is not None and claimed.id == task.id
        with pytest.raises(_Lost):  # leaving with it: the run's failure report is refused too
            await _work_until_lost(admin, agent, rival, task.id, claimed)


class _Lost(Exception):
    pass


async def _work_until_lost(
    admin: AsyncClient, agent: AsyncClient, rival: AsyncClient, task_id: str, claimed: ClaimedTask
) -> None:
    """Work on the claimed task through a run until its lease is lost (see the test)."""
    async with agent.run(task_id, agent="agent_bot") as run:
        await run.progress(0.5, "halfway")
        await run.flush()
        now = await admin.get_task(task_id)
        assert now.lease is not None and now.lease.expires_at > claimed.lease.expires_at
        # the lease is cut short; the sweeper gives the task back; another agent takes it
        await agent.renew_lease(task_id, lease_seconds=1)

        async def given_back() -> bool:
            return (await admin.get_task(task_id)).status == "pending"

        await async_wait_until(given_back, message="the task to go back to pending")
        taken = await rival.claim()
        assert taken is not None and taken.id == task_id and taken.lease.token == 2
        with pytest.raises(LeaseLost) as lost:
            await agent.renew_lease(task_id)
        assert lost.value.holder == "agent_other" and lost.value.lease_token == 2
        assert "agent_other" in str(lost.value)
        await run.progress(0.9, "late")
        with pytest.raises(EventRejected) as rejected:
            await run.flush()
        assert rejected.value.status == 409
        assert rejected.value.problem["holder"] == "agent_other"
        raise _Lost

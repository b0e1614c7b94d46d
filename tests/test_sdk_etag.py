"""The SDK's conditional changes: ``if_match=`` on update, replace and delete (a task, a
version, an ETag or ``*``), and the errors a refused condition raises."""

from collections.abc import Iterator

import pytest

from taskline.sdk import (
    AsyncClient,
    Client,
    Conflict,
    InvalidRequest,
    PreconditionFailed,
    PreconditionRequired,
)
from taskline.settings import Settings
from tests.support.server import LiveServer


def test_a_change_from_a_stale_task_raises_and_overwrites_nothing(
    sqlite_server: LiveServer,
) -> None:
    """The lost update through the SDK: a PUT from a copy read before someone else's change
    raises PreconditionFailed (a Conflict) with the current version."""
    with Client(sqlite_server.url) as client:
        task = client.create_task("Shared", description="v1")
        read = client.get_task(task.id)
        assert read.version == 1
        changed = client.update_task(task.id, if_match=read, description="agent's")
        assert changed.version == 2

        with pytest.raises(PreconditionFailed) as refused:
            client.replace_task(task.id, "Person's", if_match=read)
        assert isinstance(refused.value, Conflict)
        assert refused.value.status == 412 and refused.value.current_version == 2
        with pytest.raises(PreconditionFailed):
            client.update_task(task.id, if_match=1, title="no")
        with pytest.raises(PreconditionFailed):
            client.delete_task(task.id, if_match='"1"')
        assert client.get_task(task.id).description == "agent's"

        again = client.replace_task(
            task.id, "Person's", if_match=changed, description=changed.description
        )
        assert again.title == "Person's" and again.version == 3
        assert client.update_task(task.id, if_match="*", progress=0.5).version == 4
        client.delete_task(task.id, if_match=4)


def test_replace_takes_back_a_task_read_before(sqlite_server: LiveServer) -> None:
    """A Task's own fields, read-only ones included, can be passed back to replace_task; the
    sections keep their ids; a stale ``version`` among them is refused like If-Match."""
    with Client(sqlite_server.url) as client:
        task = client.create_task("Doc", sections=[{"title": "S", "subtasks": [{"title": "a"}]}])
        fields = task.model_dump(mode="json", exclude={"title"})
        replaced = client.replace_task(task.id, "Doc 2", **fields)
        assert replaced.sections == task.sections and replaced.version == 2
        with pytest.raises(PreconditionFailed):
            client.replace_task(task.id, "Doc 3", **fields)  # version 1 again
        with pytest.raises(InvalidRequest) as refused:
            client.replace_task(task.id, "Doc 3", **{**fields, "version": 2, "id": "task_zz"})
        assert refused.value.errors[0]["field"] == "id"


async def test_the_async_face_sends_if_match_too(sqlite_server: LiveServer) -> None:
    async with AsyncClient(sqlite_server.url) as client:
        task = await client.create_task("Async")
        await client.update_task(task.id, progress=0.1)
        with pytest.raises(PreconditionFailed) as refused:
            await client.update_task(task.id, if_match=task, title="stale")
        assert refused.value.current_version == 2
        with pytest.raises(PreconditionFailed):
            await client.replace_task(task.id, "stale", if_match=task)
        with pytest.raises(PreconditionFailed):
            await client.delete_task(task.id, if_match=task)
        await client.delete_task(task.id, if_match=2)


@pytest.fixture
def strict_server(sqlite_url: str) -> Iterator[LiveServer]:
    server = LiveServer(Settings(database_url=sqlite_url, require_if_match=True))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_server_that_requires_if_match_raises_precondition_required(
    strict_server: LiveServer,
) -> None:
    with Client(strict_server.url) as client:
        task = client.create_task("Strict")
        with pytest.raises(PreconditionRequired) as refused:
            client.update_task(task.id, title="x")
        assert isinstance(refused.value, InvalidRequest) and refused.value.status == 428
        assert client.update_task(task.id, if_match=task, title="x").title == "x"

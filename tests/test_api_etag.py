"""Optimistic concurrency over the real API, on SQLite and PostgreSQL: tasks carry a version,
answers send it as ``ETag``, changes honour ``If-Match`` (412 when stale, 428 when required
and missing), and ``PUT`` takes back the document ``GET`` gave."""

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from taskline.domain.errors import PreconditionFailedError
from taskline.domain.models import TaskCreate
from taskline.domain.preconditions import IfMatch
from taskline.settings import Settings
from taskline.store.database import Database
from taskline.store.tasks import TaskStore
from tests.support.rest import create_task, publish
from tests.support.server import LiveServer

PROBLEM = "application/problem+json"


def url(task: dict[str, Any]) -> str:
    return f"/api/v1/tasks/{task['id']}"


def read(client: httpx.Client, task: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The task as GET gives it, and its ETag."""
    response = client.get(url(task))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body, response.headers["etag"]


def structured(client: httpx.Client) -> dict[str, Any]:
    return create_task(
        client,
        "Structured",
        description="first",
        tags=["a"],
        sections=[
            {"title": "Plan", "subtasks": [{"title": "p1"}, {"title": "p2", "done": True}]},
            {"title": "Do", "subtasks": [{"title": "d1", "notes": "n"}]},
        ],
    )


# --- versions and ETags ---------------------------------------------------------------------


def test_every_answer_about_a_task_sends_its_version_as_etag(client: httpx.Client) -> None:
    """POST, GET, PUT, PATCH (and the section and subtask routes) send ``ETag: "<version>"``,
    the version the body carries; every change moves it on."""
    created = client.post("/api/v1/tasks/", json={"title": "Versioned"})
    task = created.json()
    assert task["version"] == 1 and created.headers["etag"] == '"1"'
    body, tag = read(client, task)
    assert tag == '"1"' and body == task

    patched = client.patch(url(task), json={"description": "more"})
    assert patched.json()["version"] == 2 and patched.headers["etag"] == '"2"'
    replaced = client.put(url(task), json={"title": "Versioned", "description": "again"})
    assert replaced.json()["version"] == 3 and replaced.headers["etag"] == '"3"'

    section = client.post(
        f"{url(task)}/sections", json={"title": "S", "subtasks": [{"title": "x"}]}
    )
    assert section.status_code == 201 and section.headers["etag"] == '"4"'
    subtask_id = section.json()["subtasks"][0]["id"]
    toggled = client.post(f"{url(task)}/subtasks/{subtask_id}/toggle")
    assert toggled.headers["etag"] == '"5"'
    deleted = client.delete(f"{url(task)}/subtasks/{subtask_id}")
    assert deleted.status_code == 204 and deleted.headers["etag"] == '"6"'
    assert read(client, task)[1] == '"6"'


def test_events_that_change_the_task_move_its_version(client: httpx.Client) -> None:
    """An agent's progress and status events change the document, so they move the version
    (and a task_updated event carries the new one)."""
    task = create_task(client, "Agent work")
    publish(client, task["id"], {"event_type": "task_started", "data": {}})
    after_start, tag = read(client, task)
    assert after_start["version"] == 2 and tag == '"2"'
    publish(client, task["id"], {"event_type": "progress_update", "data": {"progress": 0.5}})
    publish(
        client,
        task["id"],
        {"event_type": "progress_update", "data": {"progress": 0.6}},
        {"event_type": "confidence_update", "data": {"confidence": 0.7}},
    )
    assert read(client, task)[0]["version"] == 4  # one per committed batch
    client.patch(url(task), json={"title": "Renamed"})
    events = client.get(f"{url(task)}/events", params={"since": 0}).json()["events"]
    updated = [e for e in events if e["event_type"] == "task_updated"]
    assert updated[-1]["data"]["task"]["version"] == 5


# --- the lost update ------------------------------------------------------------------------


def test_a_stale_put_is_412_and_reverts_nothing(client: httpx.Client) -> None:
    """A person reads the task; an agent changes it; the person's PUT of the copy read before
    is refused (412 problem+json naming the current version) and the agent's change stays."""
    task = create_task(client, "Shared", description="v1")
    copy_read, tag = read(client, task)

    agent = client.patch(url(task), json={"description": "agent's", "progress": 0.4})
    assert agent.status_code == 200

    edited = {**copy_read, "title": "Person's title"}
    refused = client.put(url(task), json=edited, headers={"If-Match": tag})
    assert refused.status_code == 412
    assert refused.headers["content-type"] == PROBLEM
    problem = refused.json()
    assert problem["status"] == 412
    assert problem["type"].endswith("/precondition-failed")
    assert problem["current_version"] == 2
    assert "version 2" in problem["detail"] and "version 1" in problem["detail"]
    assert refused.headers["etag"] == '"2"'

    now, _ = read(client, task)
    assert now["description"] == "agent's" and now["progress"] == 0.4
    assert now["title"] == "Shared" and now["version"] == 2


def test_the_documents_own_version_is_a_precondition_too(client: httpx.Client) -> None:
    """A GET → edit → PUT without If-Match is still safe: the body's ``version`` is the one it
    was read at, and a stale one is a 412 as well."""
    task = create_task(client, "Shared")
    copy_read, _ = read(client, task)
    client.patch(url(task), json={"progress": 0.3})
    refused = client.put(url(task), json={**copy_read, "title": "Mine"})
    assert refused.status_code == 412 and refused.json()["current_version"] == 2
    assert read(client, task)[0]["title"] == "Shared"


def test_stale_patch_and_delete_are_412(client: httpx.Client) -> None:
    """PATCH and DELETE with an old ETag change nothing; with the current one they pass."""
    task = create_task(client, "Keep me")
    _, old = read(client, task)
    current = client.patch(url(task), json={"priority": "high"}).headers["etag"]

    assert (
        client.patch(url(task), json={"title": "x"}, headers={"If-Match": old}).status_code == 412
    )
    assert client.delete(url(task), headers={"If-Match": old}).status_code == 412
    assert read(client, task)[0]["title"] == "Keep me"

    ok = client.patch(url(task), json={"title": "y"}, headers={"If-Match": current})
    assert ok.status_code == 200 and ok.headers["etag"] == '"3"'
    assert client.delete(url(task), headers={"If-Match": '"3"'}).status_code == 204
    assert client.get(url(task)).status_code == 404


def test_section_and_subtask_edits_honour_the_tasks_if_match(client: httpx.Client) -> None:
    """The section and subtask routes compare If-Match with the task's version and answer
    with the task's new ETag."""
    task = structured(client)
    body, tag = read(client, task)
    section_id = body["sections"][0]["id"]
    subtask_id = body["sections"][0]["subtasks"][0]["id"]
    client.patch(url(task), json={"progress": 0.1})  # someone else: tag is stale now

    stale = {"If-Match": tag}
    base = url(task)
    attempts = [
        client.post(f"{base}/sections", json={"title": "New"}, headers=stale),
        client.patch(f"{base}/sections/{section_id}", json={"title": "R"}, headers=stale),
        client.delete(f"{base}/sections/{section_id}", headers=stale),
        client.put(
            f"{base}/sections/order",
            json={"ids": [s["id"] for s in reversed(body["sections"])]},
            headers=stale,
        ),
        client.post(f"{base}/sections/{section_id}/subtasks", json={"title": "s"}, headers=stale),
        client.patch(f"{base}/subtasks/{subtask_id}", json={"done": True}, headers=stale),
        client.post(f"{base}/subtasks/{subtask_id}/toggle", headers=stale),
        client.delete(f"{base}/subtasks/{subtask_id}", headers=stale),
    ]
    assert [r.status_code for r in attempts] == [412] * len(attempts)
    assert read(client, task)[0]["sections"] == body["sections"]

    _, current = read(client, task)
    renamed = client.patch(
        f"{base}/sections/{section_id}", json={"title": "Renamed"}, headers={"If-Match": current}
    )
    assert renamed.status_code == 200 and renamed.json()["title"] == "Renamed"
    assert renamed.headers["etag"] == read(client, task)[1]


def test_if_match_star_lists_and_weak_tags(client: httpx.Client) -> None:
    """``*`` matches any version of an existing task (a missing one stays a 404); a list
    matches if any of its tags does; weak tags never match; a bare number is a 422."""
    task = create_task(client, "Tags")
    star = client.patch(url(task), json={"progress": 0.2}, headers={"If-Match": "*"})
    assert star.status_code == 200 and star.headers["etag"] == '"2"'
    missing = client.patch("/api/v1/tasks/task_nothere", json={}, headers={"If-Match": "*"})
    assert missing.status_code == 404

    listed = client.patch(url(task), json={"progress": 0.3}, headers={"If-Match": '"1", "2"'})
    assert listed.status_code == 200

    weak = client.patch(url(task), json={"progress": 0.4}, headers={"If-Match": 'W/"3"'})
    assert weak.status_code == 412 and "weak" in weak.json()["detail"]

    bare = client.patch(url(task), json={"progress": 0.4}, headers={"If-Match": "3"})
    assert bare.status_code == 422 and bare.headers["content-type"] == PROBLEM
    assert bare.json()["errors"][0]["field"] == "If-Match"
    assert read(client, task)[0]["version"] == 3


# --- PUT takes back what GET gave -----------------------------------------------------------


def test_get_edit_put_round_trip(client: httpx.Client) -> None:
    """The document GET answers, edited and sent back with its ETag, is accepted: its
    read-only fields are ignored, sections and subtasks keep their ids (a subtask may move to
    another section), new ones get ids, and positions follow the lists' order."""
    task = structured(client)
    document, tag = read(client, task)
    unchanged = client.put(url(task), json=document, headers={"If-Match": tag})
    assert unchanged.status_code == 200, unchanged.text
    again = unchanged.json()
    assert again["version"] == 2
    assert again["sections"] == document["sections"]  # same ids, same positions

    edited = copy.deepcopy(again)
    edited["title"] = "Edited"
    edited["tags"] = ["a", "b"]
    plan, do = edited["sections"]
    moved = plan["subtasks"].pop(0)  # p1 moves to the end of "Do", ticked
    moved["done"] = True
    do["subtasks"].append(moved)
    do["subtasks"].insert(0, {"title": "new one"})
    edited["sections"] = [do, plan, {"title": "Later"}]  # positions left as they were read

    response = client.put(url(task), json=edited, headers={"If-Match": unchanged.headers["etag"]})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["title"] == "Edited" and result["tags"] == ["a", "b"]
    assert result["version"] == 3 and response.headers["etag"] == '"3"'
    assert result["created_at"] == document["created_at"]
    shape = [
        (s["title"], s["position"], [(t["title"], t["done"], t["position"]) for t in s["subtasks"]])
        for s in result["sections"]
    ]
    assert shape == [
        ("Do", 0, [("new one", False, 0), ("d1", False, 1), ("p1", True, 2)]),
        ("Plan", 1, [("p2", True, 0)]),
        ("Later", 2, []),
    ]
    ids = {s["title"]: s["id"] for s in result["sections"]}
    assert ids["Do"] == do["id"] and ids["Plan"] == plan["id"]
    assert result["sections"][0]["subtasks"][2]["id"] == moved["id"]
    assert result["sections"][0]["subtasks"][0]["id"].startswith("sub_")
    assert read(client, task)[0] == result


def test_put_removes_sections_and_subtasks_left_out(client: httpx.Client) -> None:
    """Sections and subtasks missing from the document are deleted, also a section whose
    subtasks moved elsewhere."""
    task = structured(client)
    document, tag = read(client, task)
    plan, do = document["sections"]
    do["subtasks"].append(plan["subtasks"][1])
    response = client.put(url(task), json={**document, "sections": [do]}, headers={"If-Match": tag})
    assert response.status_code == 200, response.text
    (only,) = response.json()["sections"]
    assert only["id"] == do["id"]
    assert [s["title"] for s in only["subtasks"]] == ["d1", "p2"]
    toggled = client.post(f"{url(task)}/subtasks/{plan['subtasks'][0]['id']}/toggle")
    assert toggled.status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "task_other"}, "id"),
        ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ({"updated_at": "2020-01-01T00:00:00Z"}, "updated_at"),
        ({"started_at": "2020-01-01T00:00:00Z"}, "started_at"),
        ({"completed_at": "2020-01-01T00:00:00Z"}, "completed_at"),
    ],
)
def test_a_changed_read_only_field_is_422_naming_it(
    client: httpx.Client, change: dict[str, Any], field: str
) -> None:
    """A read-only field sent with another value than the task's is refused, naming it, and
    nothing changes."""
    task = create_task(client, "Read only")
    document, tag = read(client, task)
    response = client.put(
        url(task), json={**document, "title": "No", **change}, headers={"If-Match": tag}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["errors"][0]["field"] == field
    assert problem["detail"].startswith(f"{field} is read-only")
    assert read(client, task)[0] == document


def test_changed_section_ids_and_positions_are_422_naming_them(client: httpx.Client) -> None:
    """An id that is not one of the task's, an id given twice, or a position that is neither
    the one read nor the item's place is refused, naming the field."""
    task = structured(client)
    other = structured(client)
    document, tag = read(client, task)

    def put_sections(sections: list[dict[str, Any]]) -> httpx.Response:
        return client.put(
            url(task), json={**document, "sections": sections}, headers={"If-Match": tag}
        )

    foreign = copy.deepcopy(document["sections"])
    foreign[1]["id"] = other["sections"][1]["id"]
    twice = copy.deepcopy(document["sections"])
    twice[1]["subtasks"].append(twice[0]["subtasks"][0])
    moved = copy.deepcopy(document["sections"])
    moved[0]["position"] = 5
    sub_moved = copy.deepcopy(document["sections"])
    sub_moved[1]["subtasks"][0]["position"] = 3
    cases = [
        (foreign, "sections.1.id"),
        (twice, "sections.1.subtasks.1.id"),
        (moved, "sections.0.position"),
        (sub_moved, "sections.1.subtasks.0.position"),
    ]
    for sections, field in cases:
        response = put_sections(sections)
        assert response.status_code == 422, (field, response.text)
        assert response.json()["errors"][0]["field"] == field
    assert read(client, task)[0] == document


# --- requiring If-Match ---------------------------------------------------------------------


@pytest.fixture
def strict_server(database_url: str) -> Iterator[LiveServer]:
    server = LiveServer(Settings(database_url=database_url, require_if_match=True))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_require_if_match_makes_a_missing_one_428(strict_server: LiveServer) -> None:
    """With TASKLINE_REQUIRE_IF_MATCH a change without If-Match is a 428 problem; reading,
    creating, and changes with If-Match (or ``*``) work as before."""
    with httpx.Client(base_url=strict_server.url, timeout=10) as client:
        task = create_task(client, "Strict", sections=[{"title": "S"}])
        section_id = task["sections"][0]["id"]
        refused = [
            client.patch(url(task), json={"title": "x"}),
            client.put(url(task), json={"title": "x"}),
            client.delete(url(task)),
            client.post(f"{url(task)}/sections", json={"title": "T"}),
            client.patch(f"{url(task)}/sections/{section_id}", json={"title": "T"}),
        ]
        for response in refused:
            assert response.status_code == 428, response.text
            assert response.headers["content-type"] == PROBLEM
            assert "If-Match" in response.json()["detail"]
        _, tag = read(client, task)
        assert tag == '"1"'
        ok = client.patch(url(task), json={"title": "y"}, headers={"If-Match": tag})
        assert ok.status_code == 200
        assert client.patch(url(task), json={}, headers={"If-Match": "*"}).status_code == 200
        assert client.delete(url(task), headers={"If-Match": '"3"'}).status_code == 204


# --- concurrency ----------------------------------------------------------------------------


def test_concurrent_patches_from_the_same_version_exactly_one_wins(server: LiveServer) -> None:
    """Many PATCHes sent at once with the same If-Match: one is applied, the others are 412,
    and the version moved on once."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        task = create_task(client, "Race")

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            return await asyncio.gather(
                *(
                    http.patch(
                        url(task), json={"title": f"writer {i}"}, headers={"If-Match": '"1"'}
                    )
                    for i in range(12)
                )
            )

    responses = asyncio.run(race())
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [412] * 11, statuses
    (winner,) = [r.json() for r in responses if r.status_code == 200]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        final, tag = read(client, task)
    assert final["title"] == winner["title"] and final["version"] == 2 and tag == '"2"'


async def test_claim_is_compare_and_set_across_transactions(database_url: str) -> None:
    """Two write transactions claim the same version: the second waits for the first (its
    row lock, or SQLite's one writer) and, once the first commits, is refused."""
    database = Database(database_url)
    try:
        await database.migrate()
        async with database.write() as session:
            task = await TaskStore(session).create(TaskCreate(title="CAS"))
        first_claimed = asyncio.Event()
        release = asyncio.Event()

        async def first() -> int:
            async with database.write() as session:
                version = await TaskStore(session).claim(task.id, IfMatch.version(1))
                first_claimed.set()
                await release.wait()
            return version

        async def second() -> int:
            await first_claimed.wait()
            async with database.write() as session:
                return await TaskStore(session).claim(task.id, IfMatch.version(1))

        winner = asyncio.create_task(first())
        loser = asyncio.create_task(second())
        await first_claimed.wait()
        await asyncio.sleep(0.2)  # the second is now waiting for the first
        assert not loser.done()
        release.set()
        assert await winner == 2
        with pytest.raises(PreconditionFailedError) as refused:
            await loser
        assert refused.value.current == 2
    finally:
        await database.dispose()

"""Task CRUD, listing, filters, sorting and paging over the real API, on SQLite and PostgreSQL."""

from datetime import datetime
from typing import Any

import httpx
import pytest


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/v1/tasks/", json={"title": "A task", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_create_returns_the_stored_task_with_defaults(client: httpx.Client) -> None:
    """POST /tasks/ answers 201, a Location header and the task with its defaults."""
    response = client.post("/api/v1/tasks/", json={"title": "  Write docs  "})
    assert response.status_code == 201
    task = response.json()
    assert response.headers["location"] == f"/api/v1/tasks/{task['id']}"
    assert task["id"].startswith("task_") and len(task["id"]) == 15
    assert task["title"] == "Write docs"
    assert task["status"] == "pending"
    assert task["priority"] == "medium"
    assert task["progress"] == 0.0
    assert task["confidence"] is None
    assert task["tags"] == []
    assert task["sections"] == []
    assert task["created_at"] == task["updated_at"]
    assert task["started_at"] is None and task["completed_at"] is None


def test_create_with_sections_keeps_their_order(client: httpx.Client) -> None:
    """Nested sections and subtasks are stored in the order given, positions from 0."""
    task = create(
        client,
        tags=["b", "a", "b"],
        sections=[
            {"title": "Plan", "subtasks": [{"title": "one"}, {"title": "two", "done": True}]},
            {"title": "Do"},
        ],
    )
    assert task["tags"] == ["b", "a"]
    assert [s["title"] for s in task["sections"]] == ["Plan", "Do"]
    assert [s["position"] for s in task["sections"]] == [0, 1]
    subtasks = task["sections"][0]["subtasks"]
    assert [(s["title"], s["done"], s["position"]) for s in subtasks] == [
        ("one", False, 0),
        ("two", True, 1),
    ]
    fetched = client.get(f"/api/v1/tasks/{task['id']}").json()
    assert fetched == task


def test_get_unknown_task_is_404_problem(client: httpx.Client) -> None:
    """An unknown id is a 404 problem+json naming the id."""
    response = client.get("/api/v1/tasks/task_nothere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404 and "task_nothere" in body["detail"]


def test_patch_changes_only_given_fields(client: httpx.Client) -> None:
    """PATCH changes what is sent, clears what is sent as null, and bumps updated_at."""
    task = create(client, description="keep me", confidence=0.5, tags=["x"])
    response = client.patch(
        f"/api/v1/tasks/{task['id']}", json={"progress": 0.25, "confidence": None}
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["progress"] == 0.25
    assert patched["confidence"] is None
    assert patched["description"] == "keep me"
    assert patched["tags"] == ["x"]
    # a zero fraction of a second is left out of the text: compare instants, not strings
    before, after = task["updated_at"], patched["updated_at"]
    assert datetime.fromisoformat(after) >= datetime.fromisoformat(before)


def test_patch_null_on_required_field_is_422(client: httpx.Client) -> None:
    """A null title is refused with the field named."""
    task = create(client)
    response = client.patch(f"/api/v1/tasks/{task['id']}", json={"title": None})
    assert response.status_code == 422
    assert "title" in response.json()["detail"]


def test_put_replaces_fields_but_keeps_status_and_sections_when_omitted(
    client: httpx.Client,
) -> None:
    """PUT resets omitted fields to defaults; status and sections stay unless given."""
    task = create(
        client,
        description="old",
        priority="urgent",
        tags=["t"],
        sections=[{"title": "S", "subtasks": [{"title": "x"}]}],
    )
    response = client.put(f"/api/v1/tasks/{task['id']}", json={"title": "New title"})
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert replaced["title"] == "New title"
    assert replaced["description"] == ""
    assert replaced["priority"] == "medium"
    assert replaced["tags"] == []
    assert replaced["status"] == "pending"
    assert replaced["sections"] == task["sections"]
    response = client.put(
        f"/api/v1/tasks/{task['id']}",
        json={"title": "T", "status": "in_progress", "sections": [{"title": "Only"}]},
    )
    assert response.status_code == 200
    assert [s["title"] for s in response.json()["sections"]] == ["Only"]
    assert response.json()["status"] == "in_progress"


def test_status_machine_stamps_times_and_refuses_invalid_moves(client: httpx.Client) -> None:
    """Transitions stamp started/completed; an invalid one is 409 listing the allowed ones."""
    task = create(client)
    url = f"/api/v1/tasks/{task['id']}"
    refused = client.patch(url, json={"status": "completed"})
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["allowed"] == ["in_progress", "cancelled"]
    assert "pending" in problem["detail"] and "completed" in problem["detail"]

    started = client.patch(url, json={"status": "in_progress"}).json()
    assert started["started_at"] is not None and started["completed_at"] is None
    paused = client.patch(url, json={"status": "paused"}).json()
    assert paused["status"] == "paused"
    client.patch(url, json={"status": "in_progress"})
    done = client.patch(url, json={"status": "completed"}).json()
    assert done["completed_at"] is not None
    assert done["progress"] == 1.0
    assert done["started_at"] == started["started_at"]
    reopened = client.patch(url, json={"status": "pending"}).json()
    assert reopened["completed_at"] is None
    assert client.patch(url, json={"status": "paused"}).status_code == 409


def test_assigning_an_unknown_agent_is_422(client: httpx.Client) -> None:
    """assigned_agent_id must name an existing agent."""
    response = client.post(
        "/api/v1/tasks/", json={"title": "x", "assigned_agent_id": "agent_missing"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "assigned_agent_id"


def test_delete_removes_the_task_and_releases_its_agent(client: httpx.Client) -> None:
    """DELETE answers 204; the task is gone; the agent working on it is released."""
    agent = client.post("/api/v1/agents/", json={"name": "Bot"}).json()
    task = create(client, assigned_agent_id=agent["id"], sections=[{"title": "S"}])
    client.patch(f"/api/v1/agents/{agent['id']}", json={"current_task_id": task["id"]})
    assert client.delete(f"/api/v1/tasks/{task['id']}").status_code == 204
    assert client.get(f"/api/v1/tasks/{task['id']}").status_code == 404
    assert client.delete(f"/api/v1/tasks/{task['id']}").status_code == 404
    assert client.get(f"/api/v1/agents/{agent['id']}").json()["current_task_id"] is None


@pytest.fixture
def board(client: httpx.Client) -> dict[str, dict[str, Any]]:
    agent = client.post("/api/v1/agents/", json={"name": "Worker"}).json()
    tasks = {
        "alpha": create(client, title="Alpha report", priority="low", tags=["docs"]),
        "beta": create(
            client,
            title="Beta migration",
            priority="urgent",
            description="move the 100% data",
            assigned_agent_id=agent["id"],
            tags=["ops", "docs"],
        ),
        "gamma": create(client, title="gamma cleanup", priority="high", progress=0.9),
    }
    client.patch(f"/api/v1/tasks/{tasks['gamma']['id']}", json={"status": "in_progress"})
    return {"agent": agent, **tasks}


def titles(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [t["title"] for t in response.json()["items"]]


def test_list_filters(client: httpx.Client, board: dict[str, dict[str, Any]]) -> None:
    """status, agent, tag and q filter the listing; total counts the matches."""
    url = "/api/v1/tasks/"
    assert titles(client.get(url, params={"status": "in_progress"})) == ["gamma cleanup"]
    assert sorted(titles(client.get(url, params={"status": "pending,in_progress"}))) == [
        "Alpha report",
        "Beta migration",
        "gamma cleanup",
    ]
    assert titles(client.get(url, params={"agent": board["agent"]["id"]})) == ["Beta migration"]
    assert sorted(titles(client.get(url, params={"tag": "docs"}))) == [
        "Alpha report",
        "Beta migration",
    ]
    assert titles(client.get(url, params={"q": "GAMMA"})) == ["gamma cleanup"]
    assert titles(client.get(url, params={"q": "100%"})) == ["Beta migration"]
    assert titles(client.get(url, params={"q": "_"})) == []
    response = client.get(url, params={"tag": "docs"})
    assert response.json()["total"] == 2
    assert response.headers["x-total-count"] == "2"


def test_list_sorting_and_paging(client: httpx.Client, board: dict[str, dict[str, Any]]) -> None:
    """sort (with '-' for descending) orders the items; limit/offset page through them."""
    url = "/api/v1/tasks/"
    assert titles(client.get(url, params={"sort": "-priority"})) == [
        "Beta migration",
        "gamma cleanup",
        "Alpha report",
    ]
    assert titles(client.get(url, params={"sort": "title"})) == [
        "Alpha report",
        "Beta migration",
        "gamma cleanup",
    ]
    assert titles(client.get(url, params={"sort": "created_at"}))[0] == "Alpha report"
    first = client.get(url, params={"sort": "title", "limit": 2}).json()
    second = client.get(url, params={"sort": "title", "limit": 2, "offset": 2}).json()
    assert [t["title"] for t in first["items"]] == ["Alpha report", "Beta migration"]
    assert [t["title"] for t in second["items"]] == ["gamma cleanup"]
    assert first["total"] == second["total"] == 3
    assert (first["limit"], second["offset"]) == (2, 2)


def test_list_rejects_bad_parameters(client: httpx.Client) -> None:
    """Unknown status or sort field and out-of-range limits are 422 naming the parameter."""
    for params, field in [
        ({"status": "done"}, "status"),
        ({"sort": "colour"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
    ]:
        response = client.get("/api/v1/tasks/", params=params)
        assert response.status_code == 422, params
        assert response.json()["errors"][0]["field"] == field

"""Agents CRUD and task messages."""

import httpx


def test_agent_crud(client: httpx.Client) -> None:
    """Register, list, read, change and delete an agent."""
    created = client.post(
        "/api/v1/agents/", json={"name": "Scout", "kind": "crawler", "metadata": {"v": 1}}
    )
    assert created.status_code == 201
    agent = created.json()
    assert agent["id"].startswith("agent_")
    assert (agent["status"], agent["kind"], agent["metadata"]) == ("idle", "crawler", {"v": 1})
    assert [a["id"] for a in client.get("/api/v1/agents/").json()] == [agent["id"]]
    patched = client.patch(f"/api/v1/agents/{agent['id']}", json={"status": "working"})
    assert patched.status_code == 200 and patched.json()["status"] == "working"
    working = client.get("/api/v1/agents/", params={"status": "working"}).json()
    assert [a["id"] for a in working] == [agent["id"]]
    assert client.get("/api/v1/agents/", params={"status": "idle"}).json() == []
    assert client.delete(f"/api/v1/agents/{agent['id']}").status_code == 204
    assert client.get(f"/api/v1/agents/{agent['id']}").status_code == 404


def test_agent_with_chosen_id_and_duplicates(client: httpx.Client) -> None:
    """An agent may choose its id; taking it twice is 409."""
    body = {"id": "agent_reviewer", "name": "Reviewer"}
    assert client.post("/api/v1/agents/", json=body).status_code == 201
    again = client.post("/api/v1/agents/", json=body)
    assert again.status_code == 409 and again.json()["ids"] == ["agent_reviewer"]
    bad = client.post("/api/v1/agents/", json={"id": "Not An Id", "name": "x"})
    assert bad.status_code == 422


def test_deleting_an_agent_unassigns_its_tasks(client: httpx.Client) -> None:
    """Tasks of a deleted agent become unassigned, not deleted."""
    agent = client.post("/api/v1/agents/", json={"name": "Temp"}).json()
    task = client.post(
        "/api/v1/tasks/", json={"title": "t", "assigned_agent_id": agent["id"]}
    ).json()
    client.delete(f"/api/v1/agents/{agent['id']}")
    assert client.get(f"/api/v1/tasks/{task['id']}").json()["assigned_agent_id"] is None


def test_task_messages_thread(client: httpx.Client) -> None:
    """Messages are stored per task, oldest first; an unknown task is 404."""
    task = client.post("/api/v1/tasks/", json={"title": "t"}).json()
    url = f"/api/v1/tasks/{task['id']}/messages"
    first = client.post(url, json={"content": "Please hurry"})
    assert first.status_code == 201
    client.post(url, json={"content": "On it", "author_kind": "agent", "author": "bot"})
    thread = client.get(url).json()
    assert [(m["author_kind"], m["content"]) for m in thread] == [
        ("human", "Please hurry"),
        ("agent", "On it"),
    ]
    assert client.get("/api/v1/tasks/task_none/messages").status_code == 404
    assert client.post(url, json={"content": ""}).status_code == 422

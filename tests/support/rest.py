"""Setting a scene through the REST API: ``client`` is an ``httpx.Client`` on a live server."""

from typing import Any

import httpx

__all__ = ["create_task", "new_task", "publish"]


def create_task(client: httpx.Client, title: str = "Watch me", **fields: Any) -> dict[str, Any]:
    """Create a task and return it."""
    response = client.post("/api/v1/tasks/", json={"title": title, **fields})
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def new_task(client: httpx.Client, title: str = "Test task") -> str:
    """Create a task and return its id."""
    task_id: str = create_task(client, title)["id"]
    return task_id


def publish(client: httpx.Client, task_id: str, *events: dict[str, Any]) -> list[int]:
    """Publish events to a task's log (the agents' wire, as ``{"events": [...]}``); return
    their seqs."""
    response = client.post(f"/api/v1/tasks/{task_id}/events", json={"events": list(events)})
    assert response.status_code == 200, response.text
    seqs: list[int] = response.json()["seqs"]
    return seqs

"""Sections and subtasks: create, rename, reorder, move, toggle, delete."""

from datetime import datetime
from typing import Any

import httpx


def make_task(client: httpx.Client) -> dict[str, Any]:
    response = client.post(
        "/api/v1/tasks/",
        json={
            "title": "Structured",
            "sections": [
                {"title": "A", "subtasks": [{"title": "a1"}, {"title": "a2"}, {"title": "a3"}]},
                {"title": "B"},
            ],
        },
    )
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


def sections_of(client: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    sections: list[dict[str, Any]] = client.get(f"/api/v1/tasks/{task_id}").json()["sections"]
    return sections


def test_add_rename_and_delete_sections(client: httpx.Client) -> None:
    """A section is added at a position, renamed, deleted; positions stay contiguous."""
    task = make_task(client)
    base = f"/api/v1/tasks/{task['id']}/sections"
    response = client.post(base, params={"position": 1}, json={"title": "Middle"})
    assert response.status_code == 201
    middle = response.json()
    assert [(s["title"], s["position"]) for s in sections_of(client, task["id"])] == [
        ("A", 0),
        ("Middle", 1),
        ("B", 2),
    ]
    renamed = client.patch(f"{base}/{middle['id']}", json={"title": "Centre"})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Centre"
    assert client.delete(f"{base}/{task['sections'][0]['id']}").status_code == 204
    assert [(s["title"], s["position"]) for s in sections_of(client, task["id"])] == [
        ("Centre", 0),
        ("B", 1),
    ]
    assert client.delete(f"{base}/sec_missing").status_code == 404


def test_reorder_sections_needs_every_id_once(client: httpx.Client) -> None:
    """Reordering takes a permutation of the section ids; anything else is 422."""
    task = make_task(client)
    ids = [s["id"] for s in task["sections"]]
    url = f"/api/v1/tasks/{task['id']}/sections/order"
    response = client.put(url, json={"ids": list(reversed(ids))})
    assert response.status_code == 200
    assert [s["title"] for s in sections_of(client, task["id"])] == ["B", "A"]
    assert client.put(url, json={"ids": ids[:1]}).status_code == 422
    assert client.put(url, json={"ids": [ids[0], ids[0]]}).status_code == 422


def test_subtasks_add_toggle_update_move_reorder_delete(client: httpx.Client) -> None:
    """The full life of a subtask inside a task's sections."""
    task = make_task(client)
    tid = task["id"]
    section_a, section_b = task["sections"]
    a1, a2, a3 = section_a["subtasks"]

    added = client.post(
        f"/api/v1/tasks/{tid}/sections/{section_b['id']}/subtasks",
        json={"title": "b1", "notes": "first"},
    )
    assert added.status_code == 201 and added.json()["position"] == 0

    toggled = client.post(f"/api/v1/tasks/{tid}/subtasks/{a2['id']}/toggle")
    assert toggled.status_code == 200 and toggled.json()["done"] is True
    untoggled = client.post(f"/api/v1/tasks/{tid}/subtasks/{a2['id']}/toggle")
    assert untoggled.json()["done"] is False

    updated = client.patch(
        f"/api/v1/tasks/{tid}/subtasks/{a1['id']}",
        json={"title": "a1!", "done": True, "notes": "checked"},
    )
    assert updated.status_code == 200
    assert (updated.json()["title"], updated.json()["done"], updated.json()["notes"]) == (
        "a1!",
        True,
        "checked",
    )

    moved = client.patch(
        f"/api/v1/tasks/{tid}/subtasks/{a3['id']}", json={"section_id": section_b["id"]}
    )
    assert moved.status_code == 200 and moved.json()["id"] == a3["id"]
    sections = sections_of(client, tid)
    assert [s["title"] for s in sections[0]["subtasks"]] == ["a1!", "a2"]
    assert [(s["title"], s["position"]) for s in sections[1]["subtasks"]] == [
        ("b1", 0),
        ("a3", 1),
    ]

    reorder_url = f"/api/v1/tasks/{tid}/sections/{section_a['id']}/subtasks/order"
    assert client.put(reorder_url, json={"ids": [a2["id"], a1["id"]]}).status_code == 200
    assert [s["title"] for s in sections_of(client, tid)[0]["subtasks"]] == ["a2", "a1!"]

    assert client.delete(f"/api/v1/tasks/{tid}/subtasks/{a2['id']}").status_code == 204
    assert [s["position"] for s in sections_of(client, tid)[0]["subtasks"]] == [0]


def test_subtask_of_another_task_is_not_found(client: httpx.Client) -> None:
    """A subtask id is only reachable through its own task."""
    first = make_task(client)
    second = make_task(client)
    sub = first["sections"][0]["subtasks"][0]
    response = client.post(f"/api/v1/tasks/{second['id']}/subtasks/{sub['id']}/toggle")
    assert response.status_code == 404
    moved = client.patch(
        f"/api/v1/tasks/{first['id']}/subtasks/{sub['id']}",
        json={"section_id": second["sections"][0]["id"]},
    )
    assert moved.status_code == 422
    assert moved.json()["errors"][0]["field"] == "section_id"


def test_section_change_bumps_task_updated_at(client: httpx.Client) -> None:
    """Editing the structure counts as a change of the task."""
    task = make_task(client)
    client.post(f"/api/v1/tasks/{task['id']}/sections", json={"title": "C"})
    updated = client.get(f"/api/v1/tasks/{task['id']}").json()["updated_at"]
    assert _instant(updated) > _instant(task["updated_at"])


def _instant(stamp: str) -> datetime:
    """A timestamp of the API as a datetime (its text drops a zero fraction of a second, so
    two stamps do not compare as strings)."""
    return datetime.fromisoformat(stamp)

"""Exports in every format, and the JSON import round trip, through the real API."""

import csv
import io
import json
import re
import zipfile
from typing import Any

import httpx

from taskline.settings import Settings
from tests.support.server import LiveServer

FILENAME = re.compile(r'attachment; filename="(taskline-[A-Za-z0-9_-]+-\d{8}T\d{6}Z\.(\w+))"')

JSON = {"Content-Type": "application/json"}


def fill_board(client: httpx.Client) -> list[dict[str, Any]]:
    agent = client.post("/api/v1/agents/", json={"name": "Exporter", "kind": "test"}).json()
    tasks = [
        client.post(
            "/api/v1/tasks/",
            json={
                "title": '=HYPERLINK("http://evil")',
                "description": "Formula in the title",
                "tags": ["@risk", "csv"],
                "assigned_agent_id": agent["id"],
                "confidence": 0.8,
                "result": {"score": 3, "notes": ["a", "b"]},
                "sections": [
                    {
                        "title": "Checks",
                        "subtasks": [
                            {"title": "first", "done": True, "notes": "ok"},
                            {"title": "+second"},
                            {"title": "third"},
                        ],
                    },
                    {"title": "Empty section"},
                ],
            },
        ).json(),
        client.post("/api/v1/tasks/", json={"title": "Plain task", "result": "done text"}).json(),
    ]
    client.patch(f"/api/v1/tasks/{tasks[1]['id']}", json={"status": "in_progress"})
    client.post(f"/api/v1/tasks/{tasks[0]['id']}/messages", json={"content": "hello"})
    return tasks


def download(client: httpx.Client, path: str) -> tuple[str, httpx.Response]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    match = FILENAME.fullmatch(response.headers["content-disposition"])
    assert match, response.headers["content-disposition"]
    return match.group(1), response


def without_export_time(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "exported_at"}


def without_versions(document: dict[str, Any]) -> dict[str, Any]:
    tasks = [{k: v for k, v in t.items() if k != "version"} for t in document["tasks"]]
    return {**without_export_time(document), "tasks": tasks}


def test_json_export_round_trips_through_import(client: httpx.Client) -> None:
    """Export → import into an empty database → export gives the same document."""
    fill_board(client)
    filename, response = download(client, "/api/v1/tasks/export/json")
    assert filename.endswith(".json")
    assert response.headers["content-type"].startswith("application/json")
    original = response.json()
    assert original["format"] == "taskline.export" and original["count"] == 2

    second = LiveServer(Settings(database_url=f"sqlite+aiosqlite:///{_tmp_db()}"))
    second.start()
    try:
        with httpx.Client(base_url=second.url, timeout=10) as other:
            imported = other.post("/api/v1/tasks/import", content=response.content, headers=JSON)
            assert imported.status_code == 200, imported.text
            assert imported.json() == {"tasks": 2, "agents": 1, "messages": 1, "replaced": 0}
            again = other.get("/api/v1/tasks/export/json").json()
            assert without_export_time(again) == without_export_time(original)
            refused = other.post("/api/v1/tasks/import", content=response.content, headers=JSON)
            assert refused.status_code == 409
            replaced = other.post(
                "/api/v1/tasks/import",
                params={"mode": "replace"},
                content=response.content,
                headers=JSON,
            )
            assert replaced.status_code == 200 and replaced.json()["replaced"] == 3
            final = other.get("/api/v1/tasks/export/json").json()
            # exact but for the versions: a replaced task moves past the one it had, so an
            # ETag read before the import never matches what the import wrote
            assert [t["version"] for t in final["tasks"]] == [
                t["version"] + 1 for t in again["tasks"]
            ]
            assert without_versions(final) == without_versions(original)
    finally:
        second.stop()


def _tmp_db() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="taskline-import-") + "/board.db"


def test_import_refuses_a_broken_document(client: httpx.Client) -> None:
    """A bad document is a 422 that names the field, and nothing is imported."""
    fill_board(client)
    document = client.get("/api/v1/tasks/export/json").json()
    client.delete(f"/api/v1/tasks/{document['tasks'][0]['id']}")
    document["tasks"][1]["progress"] = 1.5
    response = client.post("/api/v1/tasks/import", content=json.dumps(document), headers=JSON)
    assert response.status_code == 422
    assert "progress" in response.json()["detail"]
    assert client.get("/api/v1/tasks/").json()["total"] == 1
    assert client.post("/api/v1/tasks/import", content=b"not json", headers=JSON).status_code == 422
    # a body not declared as JSON is refused before it is read (a form post from a page)
    assert client.post("/api/v1/tasks/import", content=b"{}").status_code == 415


def test_csv_has_one_row_per_subtask_and_neutralises_formulas(client: httpx.Client) -> None:
    """CSV: one row per subtask (and one for a task or section without any); '=' is quoted."""
    tasks = fill_board(client)
    filename, response = download(client, "/api/v1/tasks/export/csv")
    assert filename.endswith(".csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    first = [r for r in rows if r["task_id"] == tasks[0]["id"]]
    assert [r["subtask_title"] for r in first] == ["first", "'+second", "third", ""]
    assert all(r["task_title"] == '\'=HYPERLINK("http://evil")' for r in first)
    assert first[0]["subtask_done"] == "true" and first[1]["subtask_done"] == "false"
    plain = [r for r in rows if r["task_id"] == tasks[1]["id"]]
    assert len(plain) == 1 and plain[0]["subtask_id"] == ""


def test_markdown_shows_checkboxes(client: httpx.Client) -> None:
    """Markdown: headings per task, [x] for done and [ ] for open subtasks."""
    tasks = fill_board(client)
    _, response = download(client, f"/api/v1/tasks/{tasks[0]['id']}/export/md")
    assert response.headers["content-type"].startswith("text/markdown")
    text = response.text
    assert "- [x] first" in text
    assert "- [ ] third" in text
    assert re.search(r"^##+ Checks$", text, re.MULTILINE)
    _, everything = download(client, "/api/v1/tasks/export/md")
    assert "### Checks" in everything.text and "- [x] first" in everything.text


def test_zip_contains_the_files_its_manifest_lists(client: httpx.Client) -> None:
    """ZIP: json, csv, md, one file per task, and a manifest that matches the archive."""
    tasks = fill_board(client)
    filename, response = download(client, "/api/v1/tasks/export/zip")
    assert filename.endswith(".zip")
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = set(archive.namelist())
    manifest = json.loads(archive.read("manifest.json"))
    listed = {entry["name"] for entry in manifest["files"]}
    assert listed | {"manifest.json"} == names
    assert {"tasks.json", "tasks.csv", "tasks.md"} <= names
    for task in tasks:
        assert any(task["id"] in name for name in names)


def test_single_task_export_in_every_format(client: httpx.Client) -> None:
    """Each format exports one task alone; an unknown task is 404."""
    tasks = fill_board(client)
    for fmt in ("json", "csv", "md", "zip"):
        filename, _ = download(client, f"/api/v1/tasks/{tasks[1]['id']}/export/{fmt}")
        assert tasks[1]["id"] in filename and filename.endswith(f".{fmt}")
    one = client.get(f"/api/v1/tasks/{tasks[1]['id']}/export/json").json()
    assert [t["id"] for t in one["tasks"]] == [tasks[1]["id"]]
    assert client.get("/api/v1/tasks/task_gone/export/json").status_code == 404


def test_export_all_accepts_list_filters(client: httpx.Client) -> None:
    """The export of all tasks can be narrowed like the listing."""
    tasks = fill_board(client)
    document = client.get("/api/v1/tasks/export/json", params={"status": "in_progress"}).json()
    assert [t["id"] for t in document["tasks"]] == [tasks[1]["id"]]

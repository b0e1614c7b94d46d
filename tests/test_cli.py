"""The ``taskline`` command line (and the SDK under it) against real servers on SQLite.

Commands run in-process through click's ``CliRunner``; a few run the installed console
script in a subprocess, to check the entry point, the exit codes and that no traceback leaks.
"""

import csv
import io
import json
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

import taskline.sdk as sdk_package
from taskline import __version__
from taskline.cli.main import taskline
from taskline.domain.models import Task
from taskline.sdk import (
    ApiError,
    Client,
    ClientClosedError,
    Conflict,
    NotFound,
    ServerUnreachableError,
    UnexpectedResponseError,
)
from taskline.settings import Settings
from tests.support.server import LiveServer, free_port

SCRIPT = Path(sys.executable).with_name("taskline")


def cli(url: str, *args: str, code: int = 0, input: str | None = None) -> Result:
    """Run ``taskline --url URL ARGS...`` in-process and check its exit code."""
    result = CliRunner().invoke(taskline, ["--url", url, *args], input=input)
    assert result.exit_code == code, (
        f"exit {result.exit_code} != {code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        f"\nexception: {result.exception!r}"
    )
    return result


def create(url: str, *args: str) -> Task:
    """Create a task through the CLI and return it as the API sent it."""
    return Task.model_validate_json(cli(url, "tasks", "create", *args, "--json").stdout)


@pytest.fixture
def url(sqlite_server: LiveServer) -> str:
    return sqlite_server.url


@pytest.fixture
def sdk(url: str) -> Iterator[Client]:
    with Client(url) as client:
        yield client


# --- tasks: create, list, show --------------------------------------------------------------


def test_create_prints_the_new_task(url: str) -> None:
    """`tasks create` prints the new id, status and title on one line."""
    result = cli(url, "tasks", "create", "Write the report", "--priority", "high")
    assert result.stdout.startswith("created task_")
    assert "pending" in result.stdout and "Write the report" in result.stdout
    assert result.stderr == ""


def test_create_sends_every_option(url: str, sdk: Client) -> None:
    """Description, priority, tags, agent and sections all reach the server."""
    agent_id = sdk.create_agent("Reviewer").id
    task = create(
        url,
        "Write the report",
        "--description",
        "Ten pages",
        "-p",
        "urgent",
        "--tag",
        "docs",
        "--tag",
        "q3",
        "--agent",
        agent_id,
        "--section",
        "Research",
        "--section",
        "Draft",
    )
    assert task.description == "Ten pages"
    assert task.priority == "urgent"
    assert task.tags == ["docs", "q3"]
    assert task.assigned_agent_id == agent_id
    assert [s.title for s in task.sections] == ["Research", "Draft"]


def test_list_shows_a_table(url: str) -> None:
    """The default listing is a table with status, progress %, tags and a total."""
    task = create(url, "Write the report", "--tag", "docs", "--tag", "review", "-p", "high")
    cli(url, "tasks", "update", task.id, "--status", "in_progress", "--progress", "0.25")
    create(url, "Plan [bold]sprint[/]")  # markup in a title is printed as written
    out = cli(url, "tasks", "list").stdout
    header = out.splitlines()[0].split()
    assert header[:4] == ["ID", "Title", "Status", "Priority"]
    assert {"Progress", "Confidence", "Agent", "Tags", "Updated"} <= set(header)
    row = next(line for line in out.splitlines() if line.startswith(task.id))
    assert "Write the report" in row
    assert "in_progress" in row and "high" in row and "25%" in row and "docs, review" in row
    assert "Plan [bold]sprint[/]" in out
    assert out.rstrip().endswith("showing 1-2 of 2")


def test_list_filters_and_pages(url: str) -> None:
    """--status, --tag, --search, --sort and --limit are passed to the API."""
    first = create(url, "Alpha", "--tag", "docs")
    second = create(url, "Beta")
    cli(url, "tasks", "update", second.id, "--status", "in_progress")

    def ids(*args: str) -> list[str]:
        page = json.loads(cli(url, "tasks", "list", "--json", *args).stdout)
        return [item["id"] for item in page["items"]]

    assert ids("--status", "in_progress") == [second.id]
    assert ids("--status", "IN_PROGRESS") == [second.id]
    assert set(ids("--status", "in_progress", "--status", "pending")) == {first.id, second.id}
    assert ids("--tag", "docs") == [first.id]
    assert ids("-q", "alph") == [first.id]
    assert ids("--sort", "title") == [first.id, second.id]
    assert ids("--sort", "-title") == [second.id, first.id]
    assert ids("--sort", "title", "--limit", "1", "--offset", "1") == [second.id]
    assert "No tasks match." in cli(url, "tasks", "list", "--tag", "nothing").stdout


def test_list_json_is_the_api_page(url: str, sdk: Client) -> None:
    """--json prints the API's page, parseable, and nothing else."""
    task = create(url, "Write the report")
    page = json.loads(cli(url, "tasks", "list", "--json").stdout)
    assert page["total"] == 1 and page["limit"] == 50 and page["offset"] == 0
    assert page["items"] == [json.loads(sdk.get_task(task.id).model_dump_json())]


def test_show_lists_sections_and_subtasks(url: str, sdk: Client) -> None:
    """`tasks show` prints the fields, then each section with [x]/[ ] subtasks."""
    task = sdk.create_task(
        "Write the report",
        description="Ten pages about the quarter.",
        tags=["docs"],
        sections=[
            {
                "title": "Research",
                "subtasks": [{"title": "Find sources", "done": True}, {"title": "Read them"}],
            }
        ],
    )
    out = cli(url, "tasks", "show", task.id).stdout
    lines = [line.strip() for line in out.splitlines()]
    assert lines[0] == f"Write the report  {task.id}"
    assert "Ten pages about the quarter." in lines
    assert any(line.startswith("Research") and line.endswith("1/2") for line in lines)
    assert "[x] Find sources" in lines
    assert "[ ] Read them" in lines
    assert lines.index("[x] Find sources") < lines.index("[ ] Read them")
    shown = Task.model_validate_json(cli(url, "tasks", "show", task.id, "--json").stdout)
    assert shown == sdk.get_task(task.id)


# --- tasks: update ------------------------------------------------------------------------------


def test_update_changes_only_the_given_fields(url: str, sdk: Client) -> None:
    """`tasks update` sends a PATCH with the given options; the rest is untouched."""
    task = create(url, "Write the report", "--tag", "docs", "-d", "Ten pages")
    out = cli(
        url, "tasks", "update", task.id, "--status", "in_progress", "--progress", "0.5",
        "--confidence", "0.8", "--tag", "draft",
    ).stdout  # fmt: skip
    assert out.startswith(f"updated {task.id}  in_progress  50%")
    updated = sdk.get_task(task.id)
    assert (updated.status, updated.progress, updated.confidence) == ("in_progress", 0.5, 0.8)
    assert updated.tags == ["draft"]
    assert updated.description == "Ten pages"
    assert updated.started_at is not None
    cli(url, "tasks", "update", task.id, "--clear-tags", "--title", "Final report")
    assert (sdk.get_task(task.id).tags, sdk.get_task(task.id).title) == ([], "Final report")


def test_update_without_options_is_a_usage_error(url: str) -> None:
    """Nothing to change is refused locally with click's usage exit code."""
    task = create(url, "Write the report")
    result = cli(url, "tasks", "update", task.id, code=2)
    assert "nothing to update" in result.stderr


def test_refused_transition_exits_6_and_names_the_allowed_statuses(url: str, sdk: Client) -> None:
    """pending → completed is a conflict; the message lists where pending may go."""
    task = create(url, "Write the report")
    result = cli(url, "tasks", "update", task.id, "--status", "completed", code=6)
    assert result.stdout == ""
    assert result.stderr == (
        f"error: task {task.id!r} cannot go from 'pending' to 'completed'; "
        "allowed from 'pending': in_progress, cancelled (409)\n"
    )
    assert sdk.get_task(task.id).status == "pending"


def test_invalid_input_exits_5(url: str, sdk: Client) -> None:
    """A progress of 1.5 is refused by the server (422) and reported with the field."""
    task = create(url, "Write the report")
    result = cli(url, "tasks", "update", task.id, "--progress", "1.5", code=5)
    assert result.stderr.startswith("error: progress: ")
    assert result.stderr.rstrip().endswith("(422)")
    assert sdk.get_task(task.id).progress == 0.0
    several = cli(url, "tasks", "list", "--limit", "0", "--offset", "-1", code=5).stderr
    assert "  limit: " in several and "  offset: " in several


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("tasks", "show", "task_missing"),
        ("tasks", "update", "task_missing", "--progress", "0.5"),
        ("tasks", "delete", "task_missing", "--yes"),
        ("tasks", "delete", "task_missing"),
        ("tasks", "export", "json", "--task", "task_missing"),
    ],
)
def test_unknown_task_exits_4(url: str, args: tuple[str, ...]) -> None:
    """Every command that names a missing task reports it in one line, exit 4."""
    result = cli(url, *args, code=4)
    assert result.stderr == "error: task 'task_missing' does not exist (404)\n"
    assert result.stdout == ""


def test_unreachable_server_exits_3() -> None:
    """No server on the port: one line naming the URL and how to start one."""
    dead = f"http://127.0.0.1:{free_port()}"
    result = cli(dead, "tasks", "list", code=3)
    assert result.stderr == (
        f"error: cannot reach the Taskline server at {dead} — is it running? (taskline serve)\n"
    )


def test_bad_url_is_a_usage_error() -> None:
    """A --url that is not http(s) is refused before any request."""
    result = cli("ftp://example.com", "tasks", "list", code=2)
    assert "--url" in result.stderr and "invalid server URL" in result.stderr


def test_url_comes_from_the_environment(url: str) -> None:
    """TASKLINE_URL replaces the default server URL."""
    create(url, "Write the report")
    result = CliRunner().invoke(taskline, ["tasks", "list", "--json"], env={"TASKLINE_URL": url})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["total"] == 1


def test_version() -> None:
    """--version prints the package version."""
    result = CliRunner().invoke(taskline, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"taskline, version {__version__}"


# --- delete -------------------------------------------------------------------------------------


def test_delete_asks_first(url: str, sdk: Client) -> None:
    """Without --yes a 'no' keeps the task (exit 1); a 'yes' deletes it."""
    task = create(url, "Write the report")
    refused = cli(url, "tasks", "delete", task.id, input="n\n", code=1)
    assert f"Delete task {task.id} ('Write the report')?" in refused.stderr
    assert "Aborted" in refused.stderr
    assert sdk.get_task(task.id).id == task.id
    cli(url, "tasks", "delete", task.id, input="y\n")
    with pytest.raises(NotFound):
        sdk.get_task(task.id)


def test_delete_with_yes(url: str, sdk: Client) -> None:
    """--yes deletes without asking; a second delete is not found."""
    task = create(url, "Write the report")
    assert cli(url, "tasks", "delete", task.id, "--yes").stdout == f"deleted {task.id}\n"
    assert sdk.list_tasks().total == 0
    cli(url, "tasks", "delete", task.id, "--yes", code=4)


# --- export and import --------------------------------------------------------------------------


def _wrote(result: Result) -> Path:
    line = result.stdout.strip()
    assert line.startswith("wrote ") and line.endswith(" bytes)"), line
    return Path(line.removeprefix("wrote ").rsplit(" (", 1)[0])


def test_export_each_format(url: str, sdk: Client, tmp_path: Path) -> None:
    """json, csv, md and zip land in the output directory under the server's file names."""
    first = create(url, "Write the report", "--tag", "docs", "--section", "Research")
    second = create(url, "Plan, then review")  # a comma that CSV must quote
    sdk.post_message(first.id, "Started on it")
    out = tmp_path / "exports"
    out.mkdir()
    written = {}
    for fmt in ("json", "csv", "md", "zip"):
        path = _wrote(cli(url, "tasks", "export", fmt, "--output", str(out)))
        assert path.parent == out and path.suffix == f".{fmt}" and path.is_file()
        written[fmt] = path
    document = json.loads(written["json"].read_bytes())
    assert {t["id"] for t in document["tasks"]} == {first.id, second.id}
    rows = list(csv.DictReader(io.StringIO(written["csv"].read_text(encoding="utf-8"))))
    assert {row["task_id"] for row in rows} == {first.id, second.id}
    assert "Plan, then review" in {row["task_title"] for row in rows}
    assert "Write the report" in written["md"].read_text(encoding="utf-8")
    with zipfile.ZipFile(written["zip"]) as archive:
        assert archive.testzip() is None
        assert len(archive.namelist()) >= 3


def test_export_defaults_to_the_current_directory(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --output the server's file name is used in the current directory."""
    create(url, "Write the report")
    monkeypatch.chdir(tmp_path)
    path = _wrote(cli(url, "tasks", "export", "csv"))
    assert path.parent == tmp_path and path.is_file()


def test_export_to_stdout_and_to_a_file(url: str, tmp_path: Path) -> None:
    """'-' writes the bytes to stdout only; a file path is used as given."""
    task = create(url, "Write the report")
    result = cli(url, "tasks", "export", "csv", "--task", task.id, "-o", "-")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows and {row["task_id"] for row in rows} == {task.id}
    target = tmp_path / "one.md"
    assert _wrote(cli(url, "tasks", "export", "md", "--task", task.id, "-o", str(target))) == target
    assert target.read_text(encoding="utf-8").startswith("# Write the report")


def test_export_unknown_format_exits_5(url: str) -> None:
    """The server names the formats it supports."""
    result = cli(url, "tasks", "export", "xml", code=5)
    assert "supported formats: json, csv, md, zip" in result.stderr


def test_import_into_a_fresh_server(url: str, sdk: Client, tmp_path: Path) -> None:
    """A JSON export imports into an empty server with the same ids; again only in replace mode."""
    with Client(url) as source:
        agent = source.create_agent("Reviewer")
        task = source.create_task("Write the report", assigned_agent_id=agent.id)
        source.post_message(task.id, "Started on it")
    create(url, "Second task")
    export = _wrote(cli(url, "tasks", "export", "json", "-o", str(tmp_path)))

    target = LiveServer(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'copy.db'}"))
    target.start()
    try:
        result = cli(target.url, "tasks", "import", str(export))
        assert result.stdout == "imported 2 tasks, 1 agents, 1 messages (0 replaced)\n"
        with Client(target.url) as copy:
            assert {t.id for t in copy.list_tasks().items} == {t.id for t in sdk.list_tasks().items}
            assert copy.get_task(task.id) == sdk.get_task(task.id)
            assert [m.content for m in copy.list_messages(task.id)] == ["Started on it"]
        again = cli(target.url, "tasks", "import", str(export), code=6)
        assert "already exist" in again.stderr and task.id in again.stderr
        replaced = cli(target.url, "tasks", "import", str(export), "--mode", "replace", "--json")
        assert json.loads(replaced.stdout)["replaced"] >= 2
    finally:
        target.stop()


def test_import_rejects_a_bad_file(url: str, tmp_path: Path) -> None:
    """A file that is not a Taskline export is invalid input (exit 5), nothing imported."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": "world"}', encoding="utf-8")
    result = cli(url, "tasks", "import", str(bad), code=5)
    assert result.stderr.startswith("error: ") and "(422)" in result.stderr
    assert json.loads(cli(url, "tasks", "list", "--json").stdout)["total"] == 0


# --- agents, db ---------------------------------------------------------------------------------


def test_agents_list(url: str, sdk: Client) -> None:
    """The agent table lists names and statuses; --json is the API's list."""
    assert "No agents registered." in cli(url, "agents", "list").stdout
    agent = sdk.create_agent("Reviewer", kind="builtin", status="working")
    out = cli(url, "agents", "list").stdout
    row = next(line for line in out.splitlines() if line.startswith(agent.id))
    assert "Reviewer" in row and "builtin" in row and "working" in row
    listed = json.loads(cli(url, "agents", "list", "--json").stdout)
    assert [a["id"] for a in listed] == [agent.id]
    assert cli(url, "agents", "list", "--status", "idle", "--json").stdout.strip() == "[]"


def test_db_upgrade_creates_the_tables(tmp_path: Path) -> None:
    """`db upgrade` migrates a new SQLite file (in a new directory); a second run is a no-op."""
    path = tmp_path / "nested" / "board.db"
    database_url = f"sqlite+aiosqlite:///{path}"
    result = CliRunner().invoke(taskline, ["db", "upgrade", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"upgraded {database_url} from an empty database to revision")
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    connection.close()
    assert {"tasks", "sections", "subtasks", "agents", "messages", "alembic_version"} <= tables
    again = CliRunner().invoke(taskline, ["db", "upgrade", "--database-url", database_url])
    assert again.exit_code == 0, again.output
    assert again.stdout == f"{database_url} is up to date (schema revision {revision})\n"


def test_db_upgrade_refuses_a_sync_driver() -> None:
    """A URL without an async driver is a usage error, not a traceback."""
    result = CliRunner().invoke(taskline, ["db", "upgrade", "--database-url", "sqlite:///x.db"])
    assert result.exit_code == 2
    assert "--database-url" in result.stderr and "async" in result.stderr


def test_serve_refuses_a_database_it_cannot_open() -> None:
    """`serve` checks the database first: one error line instead of uvicorn's traceback."""
    dead = f"postgresql+asyncpg://user:secret@127.0.0.1:{free_port()}/taskline"
    result = CliRunner().invoke(taskline, ["serve", "--port", "0", "--database-url", dead])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: cannot open postgresql+asyncpg://user:***@127.0.0.1:")
    assert "secret" not in result.stderr and result.stderr.count("\n") == 1


# --- the console script -------------------------------------------------------------------------


def script(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the installed ``taskline`` console script."""
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_console_script_talks_to_the_server(url: str) -> None:
    """The installed entry point creates and lists tasks."""
    created = script("--url", url, "tasks", "create", "From a shell", "--json")
    assert created.returncode == 0, created.stderr
    task_id = json.loads(created.stdout)["id"]
    listed = script("--url", url, "tasks", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [t["id"] for t in json.loads(listed.stdout)["items"]] == [task_id]


def test_console_script_exit_codes_without_traceback(url: str) -> None:
    """Failures are one stderr line and a documented exit code, never a traceback."""
    dead = script("--url", f"http://127.0.0.1:{free_port()}", "tasks", "list")
    missing = script("--url", url, "tasks", "show", "task_missing")
    for completed, code in ((dead, 3), (missing, 4)):
        assert completed.returncode == code, completed.stderr
        assert completed.stderr.count("\n") == 1 and completed.stderr.startswith("error: ")
        assert "Traceback" not in completed.stderr


def test_console_script_serves(tmp_path: Path) -> None:
    """`taskline serve` starts a server on the given port and database, and stops on SIGTERM."""
    port = free_port()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'served.db'}"
    command = [str(SCRIPT), "serve", "--port", str(port), "--database-url", database_url]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            with Client(f"http://127.0.0.1:{port}", timeout=2) as client:
                deadline = time.monotonic() + 20
                while True:
                    try:
                        health = client.health()
                        break
                    except ServerUnreachableError:
                        assert process.poll() is None, process.stderr and process.stderr.read()
                        assert time.monotonic() < deadline, "server did not start"
                        time.sleep(0.1)
                assert health["status"] == "ok" and health["database"] == "sqlite"
        finally:
            process.terminate()
            stdout, stderr = process.communicate(timeout=20)
    # uvicorn shuts down cleanly, then re-raises the signal it caught (exit status -15).
    assert process.returncode in (0, -signal.SIGTERM), stderr
    assert "Application shutdown complete" in stderr
    assert stdout.startswith(f"Taskline serving on http://127.0.0.1:{port} (database: ")
    assert (tmp_path / "served.db").is_file()


# --- the SDK under the CLI ----------------------------------------------------------------------


def test_sdk_public_names_are_sorted_and_complete() -> None:
    """taskline.sdk.__all__ is sorted, duplicate-free and lists what the package exports."""
    names = sdk_package.__all__
    assert len(names) == len(set(names))
    constants = [n for n in names if n.isupper()]
    assert names == sorted(constants) + sorted(n for n in names if not n.isupper())
    public = {n for n in vars(sdk_package) if not n.startswith("_")}
    assert public == set(names)


def test_sdk_imports_without_server_packages() -> None:
    """Importing the SDK loads none of the server's frameworks."""
    code = (
        "import sys, taskline.sdk\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules}"
        " & {'fastapi', 'starlette', 'sqlalchemy', 'uvicorn', 'alembic'})\n"
        "print(','.join(loaded))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert completed.stdout.strip() == ""


def test_sdk_errors_carry_the_problem(url: str, sdk: Client) -> None:
    """Conflicts carry the allowed statuses; not-found carries status and detail."""
    task = sdk.create_task("Write the report")
    with pytest.raises(Conflict) as conflict:
        sdk.update_task(task.id, status="completed")
    assert conflict.value.status == 409
    assert conflict.value.allowed == ["in_progress", "cancelled"]
    assert conflict.value.problem["current"] == "pending"
    with pytest.raises(NotFound) as missing:
        sdk.get_agent("agent_missing")
    assert missing.value.detail == "agent 'agent_missing' does not exist"
    assert str(missing.value) == "agent 'agent_missing' does not exist (404)"


def test_sdk_round_trip(url: str, sdk: Client) -> None:
    """Create, replace, message and delete through the SDK; ids with '/' stay one segment."""
    task = sdk.create_task("Draft", tags=["docs"], priority="high")
    replaced = sdk.replace_task(task.id, "Final", description="done")
    assert (replaced.title, replaced.tags, replaced.priority) == ("Final", [], "medium")
    message = sdk.post_message(task.id, "Looks good", author="alice")
    assert [m.id for m in sdk.list_messages(task.id)] == [message.id]
    assert sdk.export("json", task_id=task.id)[0].endswith(".json")
    with pytest.raises(NotFound):
        sdk.get_task("../agents/")
    sdk.delete_task(task.id)
    assert sdk.list_tasks().total == 0


def test_sdk_closed_client_refuses_calls(url: str) -> None:
    """After close() every call raises; closing twice is fine; a client cannot reopen."""
    client = Client(url)
    client.close()
    client.close()
    assert client.closed
    with pytest.raises(ClientClosedError, match="expected an open client, got closed"):
        client.health()
    with pytest.raises(ClientClosedError), client:
        pass


def test_sdk_reads_answers_that_are_not_problem_json() -> None:
    """A proxy's HTML error, a redirect, a bad body and a hostile file name are all handled."""

    def handler(request: httpx.Request) -> httpx.Response:
        match request.url.path:
            case "/health":
                return httpx.Response(502, text="<html>Bad Gateway</html>")
            case "/api/v1/agents/":
                return httpx.Response(307, headers={"Location": "/elsewhere"})
            case "/api/v1/tasks/task_x":
                return httpx.Response(200, json={"id": "task_x"})
        disposition = 'attachment; filename="../../etc/passwd"'
        return httpx.Response(200, content=b"x", headers={"Content-Disposition": disposition})

    with Client("http://taskline.test", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ApiError) as proxy:
            client.health()
        assert type(proxy.value) is ApiError and proxy.value.status == 502
        assert proxy.value.detail == "GET /health: <html>Bad Gateway</html>"
        with pytest.raises(UnexpectedResponseError, match="status 307"):
            client.list_agents()
        with pytest.raises(UnexpectedResponseError, match="not a Task"):
            client.get_task("task_x")
        assert client.export("csv") == ("passwd", b"x")


def test_message_pause_resume_cancel_talk_to_the_task(sqlite_server: LiveServer) -> None:
    """tasks message|pause|resume|cancel change the task and say whether an agent got it."""
    runner = CliRunner()
    url = ["--url", sqlite_server.url]
    with httpx.Client(base_url=sqlite_server.url) as http:
        task_id = http.post("/api/v1/tasks/", json={"title": "t", "status": "in_progress"}).json()[
            "id"
        ]
    result = runner.invoke(taskline, [*url, "tasks", "message", task_id, "hello"])
    assert result.exit_code == 0, result.output
    assert "posted" in result.output and "queued" in result.output
    paused = runner.invoke(taskline, [*url, "tasks", "pause", task_id, "--json"])
    assert paused.exit_code == 0 and json.loads(paused.output)["status"] == "paused"
    resumed = runner.invoke(taskline, [*url, "tasks", "resume", task_id])
    assert resumed.exit_code == 0 and "in_progress" in resumed.output
    assert runner.invoke(taskline, [*url, "tasks", "cancel", task_id]).exit_code == 0
    refused = runner.invoke(taskline, [*url, "tasks", "pause", task_id])
    assert refused.exit_code == 6

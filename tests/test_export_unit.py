"""Unit tests of ``taskline.export``: pure writers and the JSON parser, no server."""

import csv
import hashlib
import io
import re
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

import taskline
import taskline.export
from taskline.domain.errors import InvalidInputError, NotFoundError, UnsupportedFormatError
from taskline.domain.models import Agent, AuthorKind, Message, Section, Subtask, Task
from taskline.domain.status import AgentStatus, Priority, TaskStatus
from taskline.export import (
    SUPPORTED_FORMATS,
    ExportBundle,
    ExportDocument,
    ExportedTask,
    parse_json_export,
    render,
)
from taskline.export.csv_export import CSV_COLUMNS
from taskline.export.json_export import dump_document
from taskline.export.markdown_export import escape_inline, render_task_markdown

EXPORTED_AT = datetime(2026, 11, 25, 21, 7, 24, 123000, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)
FILENAME = re.compile(r"^taskline-[A-Za-z0-9_-]+-\d{8}T\d{6}Z\.(json|csv|md|zip)$")


def make_task(task_id: str = "task_aaa111", **changes: Any) -> Task:
    """A task with two sections: one with a done and an open subtask, one empty."""
    fields: dict[str, Any] = {
        "id": task_id,
        "title": "Write the report",
        "description": "Summarise **Q3**.\n\n# not a heading of the export",
        "status": TaskStatus.IN_PROGRESS,
        "priority": Priority.HIGH,
        "progress": 0.4,
        "confidence": 0.85,
        "assigned_agent_id": "agent_writer1",
        "tags": ["docs", "q3"],
        "result": {"pages": 3, "ok": True, "items": [1.5, None, "x"]},
        "created_at": T0,
        "updated_at": T0 + timedelta(hours=1, microseconds=250000),
        "started_at": T0 + timedelta(minutes=5),
        "completed_at": None,
        "sections": [
            Section(
                id="sec_aaa111",
                title="Outline",
                position=0,
                subtasks=[
                    Subtask(id="sub_aaa111", title="Gather data", done=True, notes="", position=0),
                    Subtask(
                        id="sub_aaa222", title="Draft", done=False, notes="see @bob", position=1
                    ),
                ],
            ),
            Section(id="sec_aaa222", title="Review", position=1, subtasks=[]),
        ],
    }
    fields.update(changes)
    return Task(**fields)


def make_agent() -> Agent:
    return Agent(
        id="agent_writer1",
        name="Writer",
        kind="llm",
        status=AgentStatus.WORKING,
        current_task_id="task_aaa111",
        last_seen_at=T0,
        metadata={"model": "m1", "limits": {"tokens": 1000}},
        created_at=T0,
        updated_at=T0,
    )


def make_message(message_id: str, task_id: str, content: str, minutes: int) -> Message:
    return Message(
        id=message_id,
        task_id=task_id,
        author_kind=AuthorKind.HUMAN,
        author="alice",
        content=content,
        created_at=T0 + timedelta(minutes=minutes),
    )


def make_bundle(*extra_tasks: Task) -> ExportBundle:
    plain = make_task(
        "task_bbb222",
        title="=SUM(A1)",
        sections=[],
        tags=[],
        result=None,
        confidence=None,
        assigned_agent_id=None,
        started_at=None,
        status=TaskStatus.PENDING,
    )
    return ExportBundle(
        tasks=[make_task(), plain, *extra_tasks],
        agents=[make_agent()],
        messages={
            "task_aaa111": [
                make_message("msg_aaa111", "task_aaa111", "Looks good", 10),
                make_message("msg_aaa222", "task_aaa111", "Two\nlines", 20),
            ]
        },
        exported_at=EXPORTED_AT,
    )


def json_dict(bundle: ExportBundle) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(render(bundle, "json", scope="tasks").content)
    return data


# --- JSON -------------------------------------------------------------------------------------


def test_json_document_shape() -> None:
    """The document has the header, the agents, and each task with its messages."""
    data = json_dict(make_bundle())
    assert data["format"] == "taskline.export"
    assert data["version"] == 1
    assert data["exported_at"] == "2026-11-25T21:07:24.123000Z"
    assert data["taskline_version"] == taskline.__version__
    assert data["count"] == 2
    assert [agent["id"] for agent in data["agents"]] == ["agent_writer1"]
    first, second = data["tasks"]
    assert first["id"] == "task_aaa111"
    assert [m["id"] for m in first["messages"]] == ["msg_aaa111", "msg_aaa222"]
    assert first["sections"][0]["subtasks"][1]["position"] == 1
    assert first["updated_at"] == "2026-11-20T10:00:00.250000Z"
    assert second["messages"] == []


def test_json_dump_parse_dump_is_identical() -> None:
    """Parsing an export and dumping it again gives the same bytes (datetimes included)."""
    raw = render(make_bundle(), "json", scope="tasks").content
    document = parse_json_export(raw)
    assert dump_document(document) == raw
    assert dump_document(parse_json_export(raw.decode("utf-8"))) == raw
    assert dump_document(parse_json_export(orjson.loads(raw))) == raw


def test_json_parsed_document_exports_again_identically() -> None:
    """A bundle rebuilt from a parsed document (as the importer would) renders the same JSON."""
    raw = render(make_bundle(), "json", scope="tasks").content
    document = parse_json_export(raw)
    rebuilt = ExportBundle(
        tasks=list(document.tasks),
        agents=document.agents,
        messages={task.id: task.messages for task in document.tasks},
        exported_at=document.exported_at,
    )
    assert render(rebuilt, "json", scope="tasks").content == raw


def test_json_parse_gives_models() -> None:
    """The parsed document holds ExportedTask (a Task) with messages, and Agent objects."""
    document = parse_json_export(render(make_bundle(), "json", scope="tasks").content)
    assert isinstance(document, ExportDocument)
    task = document.tasks[0]
    assert isinstance(task, ExportedTask)
    assert isinstance(task, Task)
    assert task.sections[0].subtasks[0].done is True
    assert task.messages[1].content == "Two\nlines"
    assert task.created_at == T0
    assert document.agents[0].metadata == {"model": "m1", "limits": {"tokens": 1000}}
    assert document.exported_at == EXPORTED_AT


def test_json_parse_ignores_unknown_top_level_keys() -> None:
    """A newer writer's extra top-level keys do not make the document invalid."""
    data = json_dict(make_bundle())
    data["written_by"] = "a future version"
    assert parse_json_export(data).count == 2


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"version": 2}, "version", "version: expected 1"),
        ({"version": True}, "version", "version: expected 1"),
        ({"format": "trello"}, "format", "format: expected 'taskline.export'"),
        ({"count": 5}, "count", "count:"),
    ],
)
def test_json_parse_rejects_bad_header(change: dict[str, Any], field: str, message: str) -> None:
    """A wrong format, version or count is reported under that field's name."""
    data = json_dict(make_bundle()) | change
    with pytest.raises(InvalidInputError) as caught:
        parse_json_export(data)
    assert caught.value.field == field
    assert str(caught.value).startswith(message)


def test_json_parse_names_the_bad_field() -> None:
    """A progress of 1.5 is reported with its path, in the message and in ``field``."""
    data = json_dict(make_bundle())
    data["tasks"][0]["progress"] = 1.5
    with pytest.raises(InvalidInputError) as caught:
        parse_json_export(orjson.dumps(data))
    assert caught.value.field == "tasks.0.progress"
    assert str(caught.value) == "tasks.0.progress: Input should be less than or equal to 1"


def test_json_parse_names_nested_fields() -> None:
    """Errors deep inside a task (a subtask, a message) name the full path."""
    data = json_dict(make_bundle())
    data["tasks"][0]["sections"][0]["subtasks"][1]["done"] = "perhaps"
    with pytest.raises(InvalidInputError) as caught:
        parse_json_export(data)
    assert caught.value.field == "tasks.0.sections.0.subtasks.1.done"

    data = json_dict(make_bundle())
    data["tasks"][0]["messages"][0]["task_id"] = "task_bbb222"
    with pytest.raises(InvalidInputError) as caught:
        parse_json_export(data)
    assert caught.value.field == "tasks.0.messages.0.task_id"


def test_json_parse_rejects_duplicate_task_ids() -> None:
    """Two tasks with one id cannot both be imported."""
    data = json_dict(make_bundle())
    data["tasks"][1]["id"] = data["tasks"][0]["id"]
    with pytest.raises(InvalidInputError) as caught:
        parse_json_export(data)
    assert caught.value.field == "tasks.1.id"


@pytest.mark.parametrize("raw", [b"{not json", "", b"[1, 2]", b'"text"'])
def test_json_parse_rejects_non_documents(raw: bytes | str) -> None:
    """Input that is not JSON, or not a JSON object, is an InvalidInputError."""
    with pytest.raises(InvalidInputError) as caught:
        parse_json_export(raw)
    assert caught.value.field is None
    assert "JSON" in str(caught.value)


def test_json_parse_reports_missing_sections() -> None:
    """A missing required top-level field is named."""
    data = json_dict(make_bundle())
    del data["tasks"]
    with pytest.raises(InvalidInputError) as caught:
        parse_json_export(data)
    assert caught.value.field == "tasks"
    assert str(caught.value) == "tasks: Field required"


# --- CSV --------------------------------------------------------------------------------------


def csv_rows(bundle: ExportBundle) -> list[dict[str, str]]:
    text = render(bundle, "csv", scope="tasks").content.decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_has_one_row_per_subtask() -> None:
    """Two subtasks, an empty section and a task without sections give four rows."""
    rows = csv_rows(make_bundle())
    assert [(r["task_id"], r["section_id"], r["subtask_id"]) for r in rows] == [
        ("task_aaa111", "sec_aaa111", "sub_aaa111"),
        ("task_aaa111", "sec_aaa111", "sub_aaa222"),
        ("task_aaa111", "sec_aaa222", ""),
        ("task_bbb222", "", ""),
    ]
    done, open_, empty_section, no_sections = rows
    assert done["subtask_done"] == "true"
    assert open_["subtask_done"] == "false"
    assert open_["subtask_notes"] == "see @bob"
    assert empty_section["section_title"] == "Review"
    assert empty_section["section_position"] == "1"
    assert empty_section["subtask_done"] == ""
    assert no_sections["section_title"] == no_sections["subtask_title"] == ""


def test_csv_columns_and_values() -> None:
    """The header is exactly the documented columns; numbers and times are plain."""
    raw = render(make_bundle(), "csv", scope="tasks").content
    assert raw.startswith(",".join(CSV_COLUMNS).encode() + b"\r\n")
    first = csv_rows(make_bundle())[0]
    assert first["progress"] == "0.4"
    assert first["confidence"] == "0.85"
    assert first["tags"] == "docs; q3"
    assert first["task_status"] == "in_progress"
    assert first["created_at"] == "2026-11-20T09:00:00Z"
    assert first["completed_at"] == ""
    assert csv_rows(make_bundle())[-1]["confidence"] == ""


def test_csv_neutralizes_formulas() -> None:
    """Text cells starting with = + - @ tab or CR get a leading quote; others do not."""
    odd = make_task(
        "task_ccc333",
        title="+cmd",
        tags=["-1", "@x", "ok"],
        sections=[
            Section(
                id="sec_ccc333",
                title="\tTabbed",
                position=0,
                subtasks=[
                    Subtask(id="sub_ccc333", title="@mention", done=False, notes="\rx", position=0)
                ],
            )
        ],
    )
    rows = csv_rows(make_bundle(odd))
    assert rows[3]["task_title"] == "'=SUM(A1)"
    last = rows[-1]
    assert last["task_title"] == "'+cmd"
    assert last["tags"] == "'-1; @x; ok"
    assert last["section_title"] == "'\tTabbed"
    assert last["subtask_title"] == "'@mention"
    assert last["subtask_notes"] == "'\rx"
    assert rows[0]["task_title"] == "Write the report"


def test_csv_of_empty_bundle_is_the_header() -> None:
    """No tasks: the header row alone."""
    bundle = ExportBundle(tasks=[], agents=[], messages={}, exported_at=EXPORTED_AT)
    assert render(bundle, "csv", scope="tasks").content == ",".join(CSV_COLUMNS).encode() + b"\r\n"


# --- Markdown ---------------------------------------------------------------------------------


def markdown(bundle: ExportBundle, scope: str = "tasks") -> str:
    return render(bundle, "md", scope=scope).content.decode("utf-8")


def test_markdown_board_document() -> None:
    """Heading, export line, task blocks with metadata, checkboxes, notes and messages."""
    text = markdown(make_bundle())
    lines = text.splitlines()
    assert lines[0] == "# Taskline export"
    assert "Exported 2026-11-25 21:07:24 UTC · 2 tasks" in lines
    assert "## Write the report" in lines
    assert "- **ID:** `task_aaa111`" in lines
    assert "- **Progress:** 40%" in lines
    assert "- **Confidence:** 85%" in lines
    assert "- **Agent:** Writer (`agent_writer1`)" in lines
    assert "- **Tags:** docs, q3" in lines
    assert "- **Started:** 2026-11-20 09:05:00 UTC" in lines
    assert not any(line.startswith("- **Completed:**") for line in lines)
    assert "### Outline" in lines
    assert "- [x] Gather data" in lines
    assert "- [ ] Draft" in lines
    assert "  > see @bob" in lines
    assert "### Messages" in lines
    assert "- **alice** (human, 2026-11-20 09:10:00 UTC): Looks good" in lines
    assert "**Result**" in lines
    assert "```json" in lines
    assert '  "pages": 3,' in lines


def test_markdown_task_without_extras() -> None:
    """A task with no confidence, agent, tags, result or sections shows dashes only."""
    text = markdown(make_bundle(), scope="task_bbb222")
    lines = text.splitlines()
    assert lines[0] == "# \\=SUM(A1)"
    assert "- **Confidence:** —" in lines
    assert "- **Agent:** —" in lines
    assert "- **Tags:** —" in lines
    assert "**Result**" not in lines
    assert "## Messages" not in lines


def test_markdown_titles_cannot_break_structure() -> None:
    """A title with a leading #, a newline or HTML stays on its heading line, escaped."""
    evil = make_task("task_ddd444", title="# Evil\n## Injected <script>", sections=[])
    lines = markdown(make_bundle(evil)).splitlines()
    assert "## \\# Evil ## Injected \\<script>" in lines
    assert not any(line.startswith("## Injected") for line in lines)
    assert escape_inline("1. first") == "1\\. first"
    assert escape_inline("C #") == "C \\#"
    assert escape_inline("C#") == "C#"


def test_markdown_free_text_is_quoted() -> None:
    """Descriptions and multi-line messages are blockquoted, so their headings stay inside."""
    lines = markdown(make_bundle()).splitlines()
    assert "> # not a heading of the export" in lines
    assert "# not a heading of the export" not in lines
    assert "  > Two" in lines
    assert "  > lines" in lines


def test_markdown_result_string_and_fence() -> None:
    """A string result is quoted text; a JSON result with backticks gets a longer fence."""
    text_result = render_task_markdown(make_task(result="All done")).decode()
    assert "> All done" in text_result.splitlines()
    fenced = render_task_markdown(make_task(result={"code": "```x```"})).decode().splitlines()
    assert "````json" in fenced
    assert fenced.count("````") == 1


def test_single_task_markdown_is_standalone() -> None:
    """One task's document starts with its title as the top heading."""
    lines = markdown(make_bundle(), scope="task_aaa111").splitlines()
    assert lines[0] == "# Write the report"
    assert "## Outline" in lines
    assert "## Messages" in lines
    assert not any("task_bbb222" in line for line in lines)


# --- ZIP --------------------------------------------------------------------------------------


def test_zip_matches_its_manifest() -> None:
    """The archive holds exactly the manifest's files plus manifest.json, hashes matching."""
    content = render(make_bundle(), "zip", scope="tasks").content
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = archive.namelist()
        manifest = orjson.loads(archive.read("manifest.json"))
        listed = {entry["name"]: entry for entry in manifest["files"]}
        assert sorted(names) == sorted([*listed, "manifest.json"])
        assert len(names) == len(set(names))
        for name, entry in listed.items():
            data = archive.read(name)
            assert entry["size"] == len(data)
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
        assert archive.testzip() is None
        document = parse_json_export(archive.read("tasks.json"))
        per_task = archive.read("tasks/task_aaa111.md").decode()
    assert set(listed) == {
        "tasks.json",
        "tasks.csv",
        "tasks.md",
        "tasks/task_aaa111.md",
        "tasks/task_bbb222.md",
    }
    assert manifest["count"] == 2
    assert manifest["exported_at"] == "2026-11-25T21:07:24.123000Z"
    assert document.count == 2
    assert per_task.startswith("# Write the report\n")


def test_zip_is_deterministic() -> None:
    """The same bundle gives the same archive bytes."""
    first = render(make_bundle(), "zip", scope="tasks").content
    assert render(make_bundle(), "zip", scope="tasks").content == first


# --- render -----------------------------------------------------------------------------------


def test_render_rejects_unknown_format() -> None:
    """An unknown format raises UnsupportedFormatError listing the supported ones."""
    with pytest.raises(UnsupportedFormatError) as caught:
        render(make_bundle(), "xlsx", scope="tasks")
    message = str(caught.value)
    for fmt in ("json", "csv", "md", "zip"):
        assert fmt in message
    assert caught.value.supported == list(SUPPORTED_FORMATS)
    assert caught.value.requested == "xlsx"


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [
        ("json", "application/json"),
        ("csv", "text/csv; charset=utf-8"),
        ("md", "text/markdown; charset=utf-8"),
        ("zip", "application/zip"),
    ],
)
def test_render_media_types_and_filenames(fmt: str, media_type: str) -> None:
    """Each format has its media type and a timestamped, safe filename."""
    exported = render(make_bundle(), fmt, scope="tasks")
    assert exported.media_type == media_type
    assert exported.filename == f"taskline-tasks-20261125T210724Z.{fmt}"
    assert FILENAME.match(exported.filename)
    single = render(make_bundle(), fmt, scope="task_aaa111")
    assert single.filename == f"taskline-task_aaa111-20261125T210724Z.{fmt}"


def test_render_filename_scope_is_sanitized() -> None:
    """A scope with path or header characters is reduced to [A-Za-z0-9_-]."""
    odd_id = '../"x y";\r\n'
    bundle = make_bundle(make_task(odd_id, sections=[]))
    exported = render(bundle, "json", scope=odd_id)
    assert exported.filename == "taskline-xy-20261125T210724Z.json"
    assert FILENAME.match(exported.filename)
    with zipfile.ZipFile(io.BytesIO(render(bundle, "zip", scope=odd_id).content)) as archive:
        assert "tasks/xy.md" in archive.namelist()


def test_render_single_task_scope() -> None:
    """A task id as scope exports that task alone; an unknown id is NotFoundError."""
    data = orjson.loads(render(make_bundle(), "json", scope="task_bbb222").content)
    assert [task["id"] for task in data["tasks"]] == ["task_bbb222"]
    assert data["count"] == 1
    with pytest.raises(NotFoundError):
        render(make_bundle(), "csv", scope="task_missing")


def test_bundle_requires_aware_time() -> None:
    """A naive exported_at is refused; other zones are converted to UTC."""
    with pytest.raises(ValueError, match="timezone-aware"):
        ExportBundle(tasks=[], agents=[], messages={}, exported_at=datetime(2026, 1, 1))
    paris = ExportBundle(
        tasks=[],
        agents=[],
        messages={},
        exported_at=datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))),
    )
    assert paris.exported_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert paris.exported_at.utcoffset() == timedelta(0)
    assert render(paris, "json", scope="tasks").filename.endswith("-20260101T000000Z.json")


def test_public_names() -> None:
    """The package exports the documented names, without duplicates."""
    names = taskline.export.__all__
    assert len(set(names)) == len(names)
    assert set(names) == {
        "ExportBundle",
        "ExportDocument",
        "ExportFile",
        "ExportedTask",
        "SUPPORTED_FORMATS",
        "parse_json_export",
        "render",
    }
    assert SUPPORTED_FORMATS == ("json", "csv", "md", "zip")

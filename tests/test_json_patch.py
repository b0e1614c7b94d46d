"""JSON Patch (RFC 6902) on the server (``taskline.domain.json_patch``, through the event
schema and ``apply_event`` too) and in the UI (``json-patch.js``, in Node.js): one table of
cases, ``tests/json_patch_cases.json``, that both must follow case by case. Then the bounds of
the shared state: its size limit (``TASKLINE_MAX_STATE_BYTES``), patches that would grow it
without end, and the REST behaviour of empty patches, missing values and extra members.

The UI's module is also run in Chromium against the same table (``tests/test_ui_modules.py``).
"""

import copy
import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskline.domain.effects import Effects, Facts, apply_event
from taskline.domain.errors import InvalidInputError
from taskline.domain.events import WebSocketEventType, validate_data
from taskline.domain.json_patch import PatchError, apply_patch, json_equal
from taskline.domain.status import TaskStatus
from taskline.settings import Settings
from tests.support.databases import unavailable
from tests.support.server import LiveServer

HERE = Path(__file__).parent
CASES: list[dict[str, Any]] = json.loads((HERE / "json_patch_cases.json").read_text("utf-8"))
JSON_PATCH_JS = HERE.parent / "src" / "taskline" / "web" / "static" / "js" / "json-patch.js"
E = WebSocketEventType


def case_id(case: dict[str, Any]) -> str:
    return str(case["comment"])


def test_the_table_is_broad() -> None:
    ops = {
        op["op"]
        for case in CASES
        if isinstance(case["patch"], list)
        for op in case["patch"]
        if isinstance(op, dict) and "op" in op
    }
    assert ops >= {"add", "remove", "replace", "move", "copy", "test"}
    assert len(CASES) >= 100
    assert sum("error" in case for case in CASES) >= 40
    assert len({case["comment"] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_server_follows_each_case(case: dict[str, Any]) -> None:
    """``apply_patch`` gives the expected document (or refuses), and leaves its input as it
    was; so does the way a ``state.patch`` event goes (its schema, then ``apply_event``)."""
    doc = copy.deepcopy(case["doc"])
    if "error" in case:
        with pytest.raises(PatchError):
            apply_patch(doc, case["patch"])
    else:
        assert apply_patch(doc, case["patch"]) == case["expected"]
    assert doc == case["doc"]
    outcome = through_an_event(case["doc"], case["patch"])
    if "error" in case:
        assert isinstance(outcome, InvalidInputError), outcome
        assert outcome.field is not None and outcome.field.startswith("events.0.data.patch")
    else:
        assert outcome == case["expected"]


def through_an_event(doc: Any, patch: Any) -> Any:
    """What recording a ``state.patch`` with ``patch`` on a state ``doc`` makes the state (or
    the error that refuses it)."""
    facts = Facts("task_x", TaskStatus.IN_PROGRESS, None, 3, copy.deepcopy(doc))
    effects = Effects()
    try:
        data = validate_data(E.STATE_PATCH, {"patch": patch}, field_prefix="events.0.data")
        stored = apply_event(
            facts, effects, E.STATE_PATCH, data, prefix="events.0", now=datetime.now(UTC)
        )
    except InvalidInputError as exc:
        return exc
    assert stored["version"] == 4 and effects.log["state_version"] == 4
    return effects.log["state"]


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        unavailable("Node.js", "node is not on PATH")
    assert found is not None
    return found


def test_the_ui_follows_each_case_like_the_server(node: str) -> None:
    """json-patch.js, in Node.js, gives every case's expected document or a PatchError (and
    leaves its input as it was): case by case what the server gives."""
    done = subprocess.run(
        [
            node,
            str(HERE / "json_patch_cases.mjs"),
            str(HERE / "json_patch_cases.json"),
            str(JSON_PATCH_JS),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == len(CASES)
    disagreements = []
    for case, result in zip(CASES, results, strict=True):
        try:
            server: Any = apply_patch(copy.deepcopy(case["doc"]), case["patch"])
        except PatchError:
            server = PatchError
        if not result["same"]:
            disagreements.append((case["comment"], "the UI changed its input"))
        elif "error" in result:
            if not result["patchError"]:
                disagreements.append((case["comment"], f"not a PatchError: {result['error']}"))
            elif server is not PatchError:
                disagreements.append((case["comment"], f"UI refused, server gave {server}"))
        elif server is PatchError:
            disagreements.append((case["comment"], f"server refused, UI gave {result['ok']}"))
        elif not json_equal(result["ok"], server):
            disagreements.append((case["comment"], f"UI {result['ok']} != server {server}"))
    assert not disagreements, "\n".join(f"{c}: {why}" for c, why in disagreements)


# --- against a plain implementation, on random patches ----------------------------------------


def reference_patch(doc: Any, operations: list[dict[str, Any]]) -> Any:
    """A plain JSON Patch: a deep copy, changed in place (slow and simple)."""
    root = copy.deepcopy(doc)

    def tokens(pointer: str) -> list[str]:
        return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]

    def index(token: str, length: int) -> int:
        if token != "0" and (not token.isdigit() or token.startswith("0")):
            raise PatchError("bad index")
        if int(token) >= length:
            raise PatchError("past the end")
        return int(token)

    def get(path: list[str]) -> Any:
        node = root
        for token in path:
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list):
                node = node[index(token, len(node))]
            else:
                raise PatchError("no such target")
        return node

    def add(path: list[str], value: Any) -> None:
        nonlocal root
        if not path:
            root = value
            return
        parent, key = get(path[:-1]), path[-1]
        if isinstance(parent, list):
            parent.insert(len(parent) if key == "-" else index(key, len(parent) + 1), value)
        elif isinstance(parent, dict):
            parent[key] = value
        else:
            raise PatchError("not a container")

    def remove(path: list[str]) -> Any:
        if not path:
            raise PatchError("whole document")
        parent, key = get(path[:-1]), path[-1]
        if isinstance(parent, list):
            return parent.pop(index(key, len(parent)))
        if isinstance(parent, dict) and key in parent:
            return parent.pop(key)
        raise PatchError("no such target")

    for operation in operations:
        op, path = operation["op"], tokens(operation["path"])
        if op == "add":
            add(path, copy.deepcopy(operation["value"]))
        elif op == "remove":
            remove(path)
        elif op == "replace":
            get(path)  # must exist
            if path:
                remove(path)
            add(path, copy.deepcopy(operation["value"]))
        elif op in ("move", "copy"):
            source = tokens(operation["from"])
            if op == "move" and source == path:
                get(source)  # must exist; nothing moves
            elif op == "move" and path[: len(source)] == source:
                raise PatchError("own child")
            else:
                value = get(source) if op == "copy" else remove(source)
                add(path, copy.deepcopy(value))
        elif not json_equal(get(path), operation["value"]):
            raise PatchError("test failed")
    return root


KEYS = st.sampled_from(["a", "b", "c"])
SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["x", "y"])
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
POINTERS = st.lists(KEYS | st.sampled_from(["0", "1", "2", "-"]), max_size=3).map(
    lambda tokens: "".join("/" + t for t in tokens)
)
OPERATIONS = st.one_of(
    st.builds(
        lambda o, p, v: {"op": o, "path": p, "value": v},
        st.sampled_from(["add", "replace", "test"]),
        POINTERS,
        VALUES,
    ),
    st.builds(lambda p: {"op": "remove", "path": p}, POINTERS),
    st.builds(
        lambda o, f, p: {"op": o, "from": f, "path": p},
        st.sampled_from(["move", "copy"]),
        POINTERS,
        POINTERS,
    ),
)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=3), st.lists(OPERATIONS, max_size=8))
def test_copy_on_write_gives_what_a_plain_implementation_gives(
    doc: dict[str, Any], operations: list[dict[str, Any]]
) -> None:
    """The copy-on-write patcher (sharing what it does not change with its input) agrees with a
    plain deep-copy one on every random patch, and never changes its input."""
    before = copy.deepcopy(doc)
    try:
        expected: Any = reference_patch(doc, operations)
    except PatchError:
        expected = PatchError
    try:
        got: Any = apply_patch(doc, operations)
    except PatchError:
        got = PatchError
    assert doc == before
    if expected is PatchError:
        assert got is PatchError
    else:
        assert got is not PatchError and json_equal(got, expected), (got, expected)


# --- the bounds -----------------------------------------------------------------------------


def test_a_patch_may_not_grow_the_state_past_the_limit_on_its_way() -> None:
    """2,000 copies of 50 KB (a 110 KB patch) are refused at the copy that passes 1 MiB,
    at once; copying the document into itself over and over hits the 64 levels first."""
    doc = {"v": "x" * 50_000, "l": []}
    copies = [{"op": "copy", "from": "/v", "path": "/l/-"}] * 2000
    with pytest.raises(PatchError, match="more than the limit of 1048576") as refused:
        apply_patch(doc, copies)
    assert refused.value.index == 19
    with pytest.raises(PatchError, match="deeper than 64 levels"):
        apply_patch({"a": 1}, [{"op": "copy", "from": "", "path": "/a"}] * 2000)
    assert apply_patch(doc, copies[:5], max_bytes=300_029)["l"] == ["x" * 50_000] * 5
    with pytest.raises(PatchError, match="would be 300029 bytes, more than the limit of 300028"):
        apply_patch(doc, copies[:5], max_bytes=300_028)


def test_the_size_is_that_of_the_compact_json() -> None:
    doc = {"a": [1, "é", {"b": None}], "c": {}}
    size = len(orjson.dumps(doc))
    apply_patch(doc, [{"op": "test", "path": "", "value": doc}], max_bytes=size)
    with pytest.raises(PatchError, match=f"would be {size + 4} bytes"):
        apply_patch(doc, [{"op": "add", "path": "/a/-", "value": 2.5}], max_bytes=size + 3)


def test_copy_cycles_are_refused_before_they_cost_much() -> None:
    """Copying a large part and removing the copy again, 5,000 times, would copy the
    document's 20,000 members each time: refused once a million members were copied."""
    doc = {f"k{i}": i for i in range(20_000)}
    cycles = [{"op": "copy", "from": "", "path": "/x"}, {"op": "remove", "path": "/x"}] * 5000
    with pytest.raises(PatchError, match="copy cycles"):
        apply_patch(doc, cycles)


def test_a_value_must_fit_in_64_levels_where_it_goes() -> None:
    value: Any = 1
    for _ in range(62):
        value = [value]
    doc = {"a": {}}
    assert apply_patch(doc, [{"op": "add", "path": "/a/b", "value": value}])  # 1+1+62
    with pytest.raises(PatchError, match="deeper than 64"):
        apply_patch(doc, [{"op": "add", "path": "/a/b", "value": [value]}])
    deep = apply_patch(doc, [{"op": "add", "path": "/a/b", "value": value}])
    with pytest.raises(PatchError, match="deeper than 64"):
        apply_patch(deep, [{"op": "move", "from": "/a", "path": "/c/d"}])  # no /c: refused
    with pytest.raises(PatchError, match="deeper than 64"):
        apply_patch({**deep, "c": {}}, [{"op": "copy", "from": "/a", "path": "/c/d"}])


def test_a_state_an_older_version_stored_unwritable_must_be_replaced_whole() -> None:
    with pytest.raises(PatchError, match="replace it whole"):
        apply_patch({"n": 2**64}, [{"op": "add", "path": "/b", "value": 1}])


def test_a_snapshot_larger_than_the_limit_is_refused() -> None:
    facts = Facts("task_x", TaskStatus.IN_PROGRESS, None, 0, None)
    snapshot = {"s": "x" * 2000}
    data = validate_data(E.STATE_SNAPSHOT, {"snapshot": snapshot})
    now = datetime.now(UTC)
    with pytest.raises(InvalidInputError) as refused:
        apply_event(
            facts,
            Effects(),
            E.STATE_SNAPSHOT,
            dict(data),
            prefix="events.0",
            now=now,
            max_state_bytes=2000,
        )
    assert refused.value.field == "events.0.data.snapshot"
    assert "2008 bytes, more than the shared state's limit of 2000" in refused.value.detail
    apply_event(
        facts,
        Effects(),
        E.STATE_SNAPSHOT,
        dict(data),
        prefix="events.0",
        now=now,
        max_state_bytes=2008,
    )


# --- through a server -----------------------------------------------------------------------


@pytest.fixture
def small_state_server(sqlite_url: str) -> Any:
    server = LiveServer(Settings(database_url=sqlite_url, max_state_bytes=4096))
    server.start()
    yield server
    server.stop()


def post_events(client: httpx.Client, task_id: str, *events: dict[str, Any]) -> httpx.Response:
    return client.post(f"/api/v1/tasks/{task_id}/events", json=list(events))


def test_the_state_limit_is_configured_and_refuses_by_name(small_state_server: LiveServer) -> None:
    """With TASKLINE_MAX_STATE_BYTES=4096 a larger snapshot, or a patch that would make the
    state larger, is a 422 naming it, and the state and its version stay as they were."""
    with httpx.Client(base_url=small_state_server.url, timeout=10) as client:
        task_id = client.post("/api/v1/tasks/", json={"title": "t"}).json()["id"]
        ok = post_events(
            client,
            task_id,
            {"event_type": "state.snapshot", "data": {"snapshot": {"s": "x" * 4000}}},
        )
        assert ok.status_code == 200, ok.text
        too_big = post_events(
            client,
            task_id,
            {"event_type": "state.snapshot", "data": {"snapshot": {"s": "x" * 4100}}},
        )
        assert too_big.status_code == 422
        assert too_big.json()["errors"][0]["field"] == "events.0.data.snapshot"
        growing = [
            {"op": "add", "path": "/t", "value": "y"},
            {"op": "copy", "from": "/t", "path": "/t2"},
            {"op": "replace", "path": "/s", "value": "x" * 4000},
            {"op": "add", "path": "/u", "value": "z" * 100},
        ]
        refused = post_events(
            client, task_id, {"event_type": "state.patch", "data": {"patch": growing}}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "events.0.data.patch.3"
        assert "more than the limit of 4096" in refused.json()["detail"]
        state = client.get(f"/api/v1/tasks/{task_id}/state").json()
        assert state == {"task_id": task_id, "version": 1, "state": {"s": "x" * 4000}}


def test_patches_follow_the_rfc_through_rest(client: httpx.Client) -> None:
    """An empty patch is logged and bumps the version; unknown members are ignored (and not
    stored); a missing value is a 422 naming the operation."""
    task_id = client.post("/api/v1/tasks/", json={"title": "t"}).json()["id"]
    empty = post_events(client, task_id, {"event_type": "state.patch", "data": {"patch": []}})
    assert empty.status_code == 200, empty.text
    assert client.get(f"/api/v1/tasks/{task_id}/state").json()["version"] == 1
    extra = {"op": "add", "path": "/a", "value": 1, "comment": "ignored", "from": 7}
    assert (
        post_events(
            client, task_id, {"event_type": "state.patch", "data": {"patch": [extra]}}
        ).status_code
        == 200
    )
    missing = post_events(
        client,
        task_id,
        {"event_type": "state.patch", "data": {"patch": [{"op": "add", "path": "/b"}]}},
    )
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "events.0.data.patch.0"
    state = client.get(f"/api/v1/tasks/{task_id}/state").json()
    assert (state["version"], state["state"]) == (2, {"a": 1})
    patches = client.get(f"/api/v1/tasks/{task_id}/events", params={"types": "state.patch"})
    stored = [e["data"] for e in patches.json()["events"]]
    assert stored == [
        {"patch": [], "version": 1},
        {"patch": [{"op": "add", "path": "/a", "value": 1}], "version": 2},
    ]

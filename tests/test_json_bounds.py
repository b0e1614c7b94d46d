"""The one definition of a storable JSON value (``taskline.domain.json_bounds``): its bounds,
the parser of bodies and frames, the way out for values stored before, and the event data
and write models that apply it."""

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from taskline.domain.errors import InvalidInputError
from taskline.domain.events import WebSocketEventType, validate_data
from taskline.domain.json_bounds import (
    MAX_DEPTH,
    MAX_INT,
    MAX_ITEMS,
    MAX_STRING_LENGTH,
    MIN_INT,
    UNREADABLE_KEY,
    JsonBoundsError,
    check_storable,
    parse_json,
    readable,
)
from taskline.domain.models import AgentCreate, AgentPatch, TaskCreate, TaskPatch, TaskReplace

E = WebSocketEventType


def nested(levels: int, leaf: Any = 1) -> Any:
    """``levels`` arrays around ``leaf``."""
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def nested_objects(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"k": value}
    return value


LARGEST: list[Any] = [
    nested(MAX_DEPTH),
    nested_objects(MAX_DEPTH),
    {"max": MAX_INT, "min": MIN_INT, "float": 1.5e308, "none": None, "yes": True},
    "é" * MAX_STRING_LENGTH,
    {"k" * MAX_STRING_LENGTH: 1},
    list(range(MAX_ITEMS)),
    {str(i): i for i in range(MAX_ITEMS)},
    "😀 surrogate pairs are fine",
]

BEYOND: list[tuple[Any, str, str]] = [
    (nested(MAX_DEPTH + 1), "nested deeper than 64 levels", "/0/0/0"),
    (nested_objects(MAX_DEPTH + 1), "nested deeper than 64 levels", "/k/k/k"),
    (nested(252), "nested deeper than 64 levels", "/0"),
    ({"n": 2**64}, "integer 18446744073709551616 is outside the signed 64-bit range", "/n"),
    ({"n": MAX_INT + 1}, "outside the signed 64-bit range", "/n"),
    ([0, MIN_INT - 1], "integer -9223372036854775809 is outside", "/1"),
    ({"x": [float("nan")]}, "nan is not a JSON number", "/x/0"),
    ([float("inf")], "inf is not a JSON number", "/0"),
    ({"s": "x" * (MAX_STRING_LENGTH + 1)}, "longer than 524288", "/s"),
    ({"a": "\ud800"}, "lone surrogate", "/a"),
    ({"a": ["nul \x00 inside"]}, "U+0000, which PostgreSQL cannot store", "/a/0"),
    ({"\udc00": 1}, "object key: a string holds a lone surrogate", ""),
    (list(range(MAX_ITEMS + 1)), "an array of 100001 members is larger than 100000", ""),
    ({1: "a"}, "object key 1 is not a string", ""),
    ({"when": object()}, "object is not a JSON value", "/when"),
]


@pytest.mark.parametrize("value", LARGEST, ids=range(len(LARGEST)))
def test_the_largest_values_are_storable(value: Any) -> None:
    check_storable(value)
    orjson.dumps(value)  # and every encoder writes them


@pytest.mark.parametrize(("value", "reason", "where"), BEYOND, ids=range(len(BEYOND)))
def test_a_value_beyond_a_bound_is_refused_saying_where(
    value: Any, reason: str, where: str
) -> None:
    with pytest.raises(JsonBoundsError) as refused:
        check_storable(value)
    assert reason in str(refused.value)
    assert where in str(refused.value)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=5),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=3), children, max_size=3)
        ),
        max_leaves=20,
    )
)
def test_storable_means_orjson_writes_it_and_readable_fixes_the_rest(value: Any) -> None:
    """Whatever is storable orjson encodes; whatever is not, ``readable`` turns into
    something orjson encodes (a NUL or a long string it leaves: those encode)."""
    try:
        check_storable(value)
    except JsonBoundsError:
        fixed, problems = readable(value)
        assert problems or fixed is value
        orjson.dumps(fixed)
    else:
        orjson.dumps(value)
        assert readable(value) == (value, [])


def test_readable_replaces_only_what_no_encoder_writes() -> None:
    value = {
        "big": 2**64,
        "fine": [1, "two", 3.0, MAX_INT],
        "nan": float("nan"),
        "lone": "\ud800",
        "\udfffkey": True,
        "deep": nested(200),
        "long": "x" * (MAX_STRING_LENGTH + 1),  # encodable: kept
        "not so deep": nested(100),  # encodable: kept
    }
    fixed, problems = readable(value)
    assert fixed["big"] == {
        UNREADABLE_KEY: "integer 18446744073709551616 is outside the signed 64-bit range"
    }
    assert fixed["fine"] == [1, "two", 3.0, MAX_INT]
    assert UNREADABLE_KEY in fixed["nan"] and UNREADABLE_KEY in fixed["lone"]
    assert fixed["\ufffdkey"] is True
    cut = fixed["deep"]
    for _ in range(127):
        cut = cut[0]
    assert cut == {UNREADABLE_KEY: "nested deeper than 128 levels"}
    assert fixed["long"] == value["long"] and fixed["not so deep"] == nested(100)
    assert len(problems) == 5
    orjson.dumps(fixed)
    same = {"a": [1, 2]}
    assert readable(same)[0] is same


# --- parse_json -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a": [1, 2.5, "x", null, true]}',
        '{"n": 18446744073709551616, "m": -9223372036854775809}',
        "[NaN, Infinity, -Infinity]",
        '{"smile": "\\ud83d\\ude00"}',
        '"\\u00e9"',
        "12345678901234567890.5",
    ],
)
def test_parse_json_means_what_json_loads_means(text: str) -> None:
    expected = json.loads(text)
    for given_text in (text, text.encode()):
        assert repr(parse_json(given_text)) == repr(expected)


def test_parse_json_keeps_integers_beyond_64_bits_exact() -> None:
    parsed = parse_json(b'{"n": 18446744073709551616}')
    assert parsed["n"] == 2**64 and isinstance(parsed["n"], int)


@pytest.mark.parametrize("levels", [1000, 5000, 300_000])
def test_parse_json_cuts_what_the_parser_cannot_reach(levels: int) -> None:
    """A text deeper than the parsers go (orjson: 1024 levels) is read with everything below
    128 levels as null: the field holding it still nests more than 64 levels, and its check
    says so."""
    text = '{"result": ' + "[" * levels + "1" + "]" * levels + "}"
    parsed = parse_json(text)
    depth, node = 0, parsed["result"]
    while isinstance(node, list):
        depth, node = depth + 1, node[0]
    assert (node, depth) == ((1, levels) if levels <= 1024 else (None, 127))
    with pytest.raises(JsonBoundsError, match="nested deeper than 64 levels"):
        check_storable(parsed["result"])


def test_parse_json_cuts_deep_objects_and_skips_brackets_in_strings() -> None:
    levels = 2000
    text = '{"a": "[[[{{{", "b": ' + '{"k": "]}]}", "v": ' * levels + "1" + "}" * levels + "}"
    parsed = parse_json(text)
    assert parsed["a"] == "[[[{{{"
    node, depth = parsed["b"], 0
    while isinstance(node, dict):
        assert node["k"] == "]}]}"
        node, depth = node["v"], depth + 1
    assert node is None and depth == 127


@pytest.mark.parametrize("text", ["", "{", "[1,]", "{'a': 1}", "[" * 3000 + "]" * 2999, b"\xff"])
def test_parse_json_refuses_what_is_not_json(text: str | bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        parse_json(text)


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (b'{"events": [{"data": {"title": "a\\udc00b"}}]}', "events.0.data.title", "surrogate"),
        ('{"title": "\\ud800"}', "title", "surrogate"),
        (b'{"a": {"b\\u0000": 1}}', "a.b\x00", "U+0000"),
        ('["ok", "nul\\u0000"]', "1", "U+0000"),
    ],
)
def test_parse_json_refuses_text_no_database_stores_naming_where(
    text: str | bytes, field: str, problem: str
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse_json(text)
    assert refused.value.field == field
    assert problem in refused.value.detail


def test_parse_json_takes_surrogate_pairs_and_escaped_backslashes() -> None:
    assert parse_json(b'{"text": "\\\\ud800 \\\\u0000"}') == {"text": "\\ud800 \\u0000"}
    assert parse_json('"\\ud83d\\ude00"') == "\U0001f600"


# --- the models and the event data that apply it ----------------------------------------------


@pytest.mark.parametrize("model", [TaskCreate, TaskReplace, TaskPatch])
def test_a_task_result_is_storable(model: Any) -> None:
    for value in (nested(MAX_DEPTH), {"n": MAX_INT, "m": MIN_INT}):
        assert model(title="t", result=value).result == value
    for value in (nested(MAX_DEPTH + 1), nested(400), {"n": 2**64}):
        with pytest.raises(ValidationError) as refused:
            model(title="t", result=value)
        error = refused.value.errors()[0]
        assert error["loc"] == ("result",)
        assert "64" in error["msg"]


@pytest.mark.parametrize("model", [AgentCreate, AgentPatch])
def test_agent_metadata_is_a_storable_object(model: Any) -> None:
    assert model(name="a", metadata={"m": nested(MAX_DEPTH - 1)}).metadata is not None
    with pytest.raises(ValidationError) as refused:
        model(name="a", metadata={"m": nested(MAX_DEPTH)})  # the object is one level more
    assert refused.value.errors()[0]["loc"] == ("metadata",)


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        (E.CUSTOM, {"name": "x", "value": nested(MAX_DEPTH)}),
        (E.TASK_COMPLETED, {"result": nested(MAX_DEPTH)}),
        (E.STATE_SNAPSHOT, {"snapshot": nested_objects(MAX_DEPTH)}),
        (E.STATE_PATCH, {"patch": [{"op": "add", "path": "/a", "value": nested(MAX_DEPTH)}]}),
        (E.TASK_UPDATED, {"task": {"result": nested(MAX_DEPTH)}, "changes": ["result"]}),
        (E.TOOL_CALL_END, {"tool_call_id": "t", "result": {"n": MIN_INT}, "extra": [MAX_INT]}),
        (
            E.STATE_PATCH,
            {
                "patch": [{"op": "add", "path": "/a", "value": 1}],
                "agui": {
                    "type": "STATE_DELTA",
                    "delta": [{"op": "add", "path": "/a", "value": nested(MAX_DEPTH)}],
                },
            },
        ),
        (E.CUSTOM, {"name": "agui:RAW", "value": {"type": "RAW", "event": nested(MAX_DEPTH)}}),
    ],
)
def test_event_data_members_hold_values_up_to_the_bounds(kind: Any, data: Any) -> None:
    validate_data(kind, data, field_prefix="events.0.data")


@pytest.mark.parametrize(
    ("kind", "data", "field"),
    [
        (E.CUSTOM, {"name": "x", "value": nested(MAX_DEPTH + 1)}, "events.0.data.value"),
        (E.CUSTOM, {"name": "x", "value": {"n": 2**64}}, "events.0.data.value"),
        (E.TASK_COMPLETED, {"result": nested(1000)}, "events.0.data.result"),
        (E.STATE_SNAPSHOT, {"snapshot": [MIN_INT - 1]}, "events.0.data.snapshot"),
        (
            E.STATE_PATCH,
            {"patch": [{"op": "add", "path": "/a", "value": nested(MAX_DEPTH + 1)}]},
            "events.0.data.patch.0.value",
        ),
        (E.TASK_UPDATED, {"task": {"result": {"n": 2**64}}}, "events.0.data.task.result"),
        (E.MESSAGE_DELTA, {"message_id": "m", "delta": "d", "note": [2**64]}, "events.0.data.note"),
        (
            E.MESSAGE_DELTA,
            {"message_id": "m", "delta": "x" * (MAX_STRING_LENGTH + 1)},
            "events.0.data.delta",
        ),
        (
            E.CUSTOM,
            {"name": "agui:RAW", "value": {"type": "RAW", "event": nested(MAX_DEPTH + 1)}},
            "events.0.data.value.event",
        ),
    ],
)
def test_event_data_beyond_the_bounds_is_refused_naming_the_member(
    kind: Any, data: Any, field: str
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        validate_data(kind, data, field_prefix="events.0.data")
    assert refused.value.field == field
    assert refused.value.detail.startswith(field + ": ")

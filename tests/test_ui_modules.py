"""The UI's pure modules, run in Chromium: JSON Patch (the cases of tests/json_patch_cases.json,
which the server follows too), backoff, problem messages, event summaries, request forms made
from schemas, what a role may do and how a refusal is said."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from taskline.domain.access import ROLE_ACTIONS, Role
from taskline.domain.events import STATUS_EVENTS
from tests.support.browser import (
    browser_fixture,  # noqa: F401 (fixture)
    page_factory_fixture,  # noqa: F401 (fixture)
    playwright_api,
)
from tests.support.server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

playwright_api()
NewPage = Callable[..., "Page"]

#: The JSON Patch cases the server and the UI both follow (see tests/test_json_patch.py).
JSON_PATCH_CASES = Path(__file__).with_name("json_patch_cases.json").read_text("utf-8")


@pytest.fixture
def page(sqlite_server: LiveServer, new_page: NewPage) -> "Page":
    return new_page(f"{sqlite_server.url}/ui/")


def test_json_patch_follows_rfc_6902(page: "Page") -> None:
    """In the browser too, every case of tests/json_patch_cases.json applies (or fails with a
    PatchError) as the server applies it; a failed patch leaves the document untouched. (The
    table goes in as text: a "__proto__" key would not survive Playwright's serialisation.)"""
    results = page.evaluate(
        """async (text) => {
            const { applyPatch, PatchError } = await import('/ui/js/json-patch.js');
            return JSON.stringify(JSON.parse(text).map(({ doc, patch }) => {
                const before = JSON.stringify(doc);
                const same = () => JSON.stringify(doc) === before;
                try { return { ok: applyPatch(doc, patch), same: same() }; }
                catch (e) { return { error: e instanceof PatchError, same: same() }; }
            }));
        }""",
        JSON_PATCH_CASES,
    )
    cases = json.loads(JSON_PATCH_CASES)
    for case, result in zip(cases, json.loads(results), strict=True):
        assert result["same"], f"input changed: {case['comment']}"
        if "error" in case:
            assert result.get("error") is True, f"{case['comment']}: should fail, got {result}"
        else:
            assert result.get("ok") == case["expected"], case["comment"]


def test_backoff_grows_exponentially_with_jitter_and_a_cap(page: "Page") -> None:
    """Delays double per failure, stay within [ceiling/2, ceiling], and stop at the cap."""
    delays = page.evaluate(
        """async () => {
            const { backoffDelay } = await import('/ui/js/live-socket.js');
            const low = (n) => backoffDelay(n, { random: () => 0 });
            const high = (n) => backoffDelay(n, { random: () => 1 });
            return [1, 2, 3, 4, 5, 6, 7, 8, 20].map((n) => [low(n), high(n)]);
        }"""
    )
    ceilings = [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000]
    assert delays == [[c // 2, c] for c in ceilings]


def test_problem_details_become_readable_sentences(page: "Page") -> None:
    """The message shown for a failed request is the problem's detail (plus allowed moves)."""
    texts = page.evaluate(
        """async () => {
            const { describeProblem } = await import('/ui/js/api.js');
            return [
                describeProblem(404, 'Not Found',
                                {title: 'Not found', detail: "task 'x' does not exist"}),
                describeProblem(409, 'Conflict', {detail: 'cannot move from completed to paused',
                                                  allowed: ['pending']}),
                describeProblem(502, 'Bad Gateway', '<html>proxy</html>'),
            ];
        }"""
    )
    assert texts == [
        "task 'x' does not exist",
        "cannot move from completed to paused (allowed: pending)",
        "The server answered 502 Bad Gateway.",
    ]


def test_event_summaries_and_groups(page: "Page") -> None:
    """Timeline lines say what happened; filter groups place each type."""
    lines = page.evaluate(
        """async () => {
            const { summarize, groupOf } = await import('/ui/js/event-summary.js');
            const events = [
                {event_type: 'progress_update',
                 data: {progress: 0.75, message: 'Halfway', confidence: 0.8}},
                {event_type: 'tool_call.end',
                 data: {tool_call_id: 'c1', name: 'grep', duration_ms: 2500}},
                {event_type: 'tool_call.end', data: {tool_call_id: 'c2', error: 'boom'}},
                {event_type: 'state.patch', data: {version: 3, patch: [{op: 'add', path: '/a'}]}},
                {event_type: 'custom',
                 data: {name: 'task_message', value: {author: 'ana', content: 'hi'}}},
                {event_type: 'task_paused', data: {}},
            ];
            return events.map((e) => [summarize(e), groupOf(e)]);
        }"""
    )
    assert lines == [
        ["75% — Halfway (confidence 80%)", "progress"],
        ["grep done in 2.5 s", "tools"],
        ["c2 failed: boom", "tools"],
        ["version 3: add /a", "state"],
        ["ana: hi", "messages"],
        ["→ Paused", "task"],
    ]


def test_the_ui_moves_statuses_as_the_server_does(page: "Page") -> None:
    """format.js's STATUS_OF_EVENT (the UI's one copy) is domain.events.STATUS_EVENTS."""
    mapping = page.evaluate(
        """async () => ({...(await import('/ui/js/format.js')).STATUS_OF_EVENT})"""
    )
    assert mapping == {kind.value: status for kind, status in STATUS_EVENTS.items()}


def test_what_a_role_may_not_do_is_said_in_words(page: "Page") -> None:
    """session.js: a principal may do what its ``actions`` list; a refusal names the role;
    nobody known yet is not refused here (the server decides)."""
    actions = {role.value: sorted(ROLE_ACTIONS[role]) for role in Role}
    result = page.evaluate(
        """async (actions) => {
            const { may, denial, cannot, orList } = await import('/ui/js/session.js');
            const me = (role) => ({ role, actions: actions[role] });
            return {
                viewerPause: denial(me('viewer'), 'control', 'pause tasks'),
                memberPause: denial(me('member'), 'control', 'pause tasks'),
                agentCreate: denial(me('agent'), 'edit_tasks', 'create tasks'),
                agentPost: may(me('agent'), 'post_messages'),
                memberImportReplace: may(me('member'), 'import_replace'),
                adminImportReplace: may(me('admin'), 'import_replace'),
                unknown: denial(null, 'control', 'pause tasks'),
                odd: cannot({ role: 'auditor', actions: [] }, 'edit tasks'),
                none: cannot({ role: null, actions: [] }, 'edit tasks'),
                lists: [orList([]), orList(['pause']), orList(['pause', 'resume']),
                        orList(['start', 'pause', 'cancel'])],
            };
        }""",
        actions,
    )
    assert result == {
        "viewerPause": "Viewers cannot pause tasks",
        "memberPause": None,
        "agentCreate": "Agents cannot create tasks",
        "agentPost": True,
        "memberImportReplace": False,
        "adminImportReplace": True,
        "unknown": None,
        "odd": "The auditor role cannot edit tasks",
        "none": "You cannot edit tasks",
        "lists": ["", "pause", "pause or resume", "start, pause or cancel"],
    }


def test_a_schema_becomes_form_fields_or_a_json_box(page: "Page") -> None:
    """request-form.js: an object of simple properties (or one simple value) is a form;
    nested objects, arrays, and required properties it has no field for are not (null: the
    answer is typed as JSON). Outcomes are said in words."""
    result = page.evaluate(
        """async () => {
            const { schemaFields, outcomeText, outcomeDetail, actorName } =
                await import('/ui/js/request-form.js');
            const fields = (schema) => {
                const got = schemaFields(schema);
                return got && got.map((f) => [f.name, f.label, f.type, f.required]);
            };
            return {
                object: fields({type: 'object', required: ['a'], properties: {
                    a: {type: 'string', title: 'The A'}, n: {type: 'integer'},
                    b: {type: 'boolean'}, e: {enum: ['x', 'y']}}}),
                scalar: fields({type: 'number'}),
                nested: fields({type: 'object', properties: {o: {type: 'object'}}}),
                array: fields({type: 'array', items: {type: 'string'}}),
                missing: fields({type: 'object', properties: {a: {type: 'string'}},
                                 required: ['zz']}),
                none: fields(null),
                answered: outcomeText({status: 'answered', resolved_by: 'person:ana',
                                       answer: {n: 3}, comment: 'ok'}),
                approved: outcomeDetail({status: 'approved', resolved_by: 'agent:a1',
                                         arguments: null}, (id) => `Agent ${id}`),
                expired: outcomeText({status: 'expired', resolved_by: 'system:requests'}),
                system: actorName('system:requests'),
            };
        }"""
    )
    assert result == {
        "object": [
            ["a", "The A", "string", True],
            ["n", "n", "integer", False],
            ["b", "b", "boolean", False],
            ["e", "e", "enum", False],
        ],
        "scalar": [[None, "Answer", "number", True]],
        "nested": None,
        "array": None,
        "missing": None,
        "none": None,
        "answered": 'answered by ana: {"n":3} — “ok”',
        "approved": "by Agent a1 as asked",
        "expired": "expired unanswered",
        "system": "the server",
    }

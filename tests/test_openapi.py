"""The OpenAPI document says what every operation can answer (``taskline.api.openapi``).

Walks the application's route table, so a new route is held to the same rules: every status
it can give documented, each error as ``application/problem+json``, id path parameters with
the id pattern, ``If-Match`` with the pattern the server parses, links for stateful clients.
"""

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from taskline.api.openapi import problem_statuses
from taskline.app import create_app
from taskline.domain.ids import ID_PATTERN, ID_SCHEMA_PATTERN
from taskline.domain.preconditions import IfMatch
from taskline.settings import Settings

PROBLEM = "application/problem+json"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture(scope="module")
def app_and_doc(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('doc') / 'doc.db'}"
    app = create_app(Settings(database_url=url))
    return app, app.openapi()


def _api_routes(routes: list[BaseRoute]) -> list[APIRoute]:
    """Every route of the application, however deep the routers are included."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        for attribute in ("routes", "original_router"):
            nested = getattr(route, attribute, None)
            if nested is not None:
                found.extend(_api_routes(getattr(nested, "routes", nested)))
    return found


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
    ]


def test_every_documented_route_is_in_the_document(app_and_doc: tuple[Any, Any]) -> None:
    app, doc = app_and_doc
    documented = {operation["operationId"] for _, _, operation in _operations(doc)}
    routes = {route.name for route in _api_routes(app.routes) if route.include_in_schema}
    assert routes, "no routes found: the walk of the route table is broken"
    assert routes <= documented, routes - documented


def test_every_operation_documents_its_statuses_as_problem_details(
    app_and_doc: tuple[Any, Any],
) -> None:
    _, doc = app_and_doc
    for path, method, operation in _operations(doc):
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        successes = [code for code in responses if code.startswith("2")]
        assert successes, f"{where}: no success answer"
        # every operation: a foreign Host (400), a refused credential (401), no database (503)
        required = {400, 401, 503} | set(problem_statuses(path, method, operation))
        if method.upper() in UNSAFE:
            required |= {409, 413, 415, 422, 429}
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            required |= {404, 405}
        missing = {str(status) for status in required} - set(responses)
        assert not missing, f"{where}: undocumented {sorted(missing)}"
        for code, answer in responses.items():
            if int(code) >= 400:
                assert list(answer["content"]) == [PROBLEM], f"{where} {code}"
                schema = answer["content"][PROBLEM]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, f"{where} {code}"
            elif code != "204":
                assert answer.get("content"), f"{where} {code}: no media type"
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_rate_limits_and_preconditions_document_their_headers(
    app_and_doc: tuple[Any, Any],
) -> None:
    _, doc = app_and_doc
    put = doc["paths"]["/api/v1/tasks/{task_id}"]["put"]["responses"]
    assert {"Retry-After", "RateLimit-Policy", "RateLimit"} <= set(put["429"]["headers"])
    assert "ETag" in put["412"]["headers"] and "ETag" in put["200"]["headers"]
    assert "Allow" in put["405"]["headers"]
    assert "WWW-Authenticate" in put["401"]["headers"]


def test_id_path_parameters_carry_the_id_pattern(app_and_doc: tuple[Any, Any]) -> None:
    _, doc = app_and_doc
    seen = 0
    for path, method, operation in _operations(doc):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"].endswith("_id"):
                seen += 1
                assert parameter["schema"]["pattern"] == ID_SCHEMA_PATTERN, f"{method} {path}"
            elif parameter["in"] == "path":
                assert parameter["schema"].get("enum"), f"{method} {path} {parameter['name']}"
    assert seen > 30


def test_the_id_pattern_is_a_whole_match() -> None:
    assert ID_PATTERN.match("task_abc123")
    for bad in ("task_abc\n", "Task_abc", "task_", "_abc", "task_abc/x", "task_abc "):
        assert not ID_PATTERN.match(bad), repr(bad)
    assert re.search(ID_SCHEMA_PATTERN, "task_abc123")


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("*", True),
        ('"3"', True),
        ('W/"3", "4"', True),
        ('"3",,', True),
        ("", True),  # as if not sent
        ("3", False),
        ("null", False),
        ('"3"x', False),
        ('"3" "4"', False),
        ('*, "3"', False),
        ('"\x80"', False),
    ],
)
def test_if_match_pattern_is_what_the_server_accepts(
    app_and_doc: tuple[Any, Any], header: str, accepted: bool
) -> None:
    _, doc = app_and_doc
    parameters = doc["paths"]["/api/v1/tasks/{task_id}"]["patch"]["parameters"]
    schema = next(p["schema"] for p in parameters if p["name"] == "If-Match")
    assert "anyOf" not in schema
    assert bool(re.search(schema["pattern"], header)) is accepted
    if header:
        try:
            IfMatch.parse(header)
        except Exception:
            parsed = False
        else:
            parsed = True
        assert parsed is accepted


def test_created_resources_link_to_the_operations_on_them(app_and_doc: tuple[Any, Any]) -> None:
    _, doc = app_and_doc
    operations = {operation["operationId"] for _, _, operation in _operations(doc)}
    created = doc["paths"]["/api/v1/tasks/"]["post"]["responses"]["201"]["links"]
    assert {"GetTask", "PatchTask", "DeleteTask", "AddSection"} <= set(created)
    for _, _, operation in _operations(doc):
        for answer in operation["responses"].values():
            for link in answer.get("links", {}).values():
                assert link["operationId"] in operations


def test_bodies_read_by_hand_are_documented(app_and_doc: tuple[Any, Any]) -> None:
    _, doc = app_and_doc
    paths = doc["paths"]
    for path, method in [
        ("/api/v1/tasks/import", "post"),
        ("/api/v1/agui", "post"),
        ("/api/v1/tasks/{task_id}/events", "post"),
    ]:
        body = paths[path][method]["requestBody"]
        assert body["required"] and list(body["content"]) == ["application/json"], path
    export = paths["/api/v1/tasks/export/{format}"]["get"]["responses"]["200"]["content"]
    assert set(export) == {"application/json", "text/csv", "text/markdown", "application/zip"}
    stream = paths["/api/v1/tasks/{task_id}/stream"]["get"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]

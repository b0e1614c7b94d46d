"""Every error is RFC 9457 problem details; no stack trace ever reaches a client."""

import httpx
import pytest

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": 5}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x", "progress": 1.5}, "progress"),
        ({"title": "x", "confidence": -0.1}, "confidence"),
        ({"title": "x", "status": "done"}, "status"),
        ({"title": "x", "priority": "asap"}, "priority"),
        ({"title": "x", "tags": "not-a-list"}, "tags"),
        ({"title": "x", "colour": "red"}, "colour"),
        ({}, "title"),
    ],
)
def test_bad_payloads_are_422_naming_the_field(
    client: httpx.Client, payload: dict[str, object], field: str
) -> None:
    """Wrong types, out-of-range values, empty and unknown fields each name the field."""
    body = assert_problem(client.post("/api/v1/tasks/", json=payload), 422)
    errors = body["errors"]
    assert isinstance(errors, list)
    assert errors[0]["field"] == field
    assert field in str(body["detail"])


def test_invalid_json_is_422(client: httpx.Client) -> None:
    """A body that is not JSON is refused clearly."""
    response = client.post(
        "/api/v1/tasks/", content=b"{not json", headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422)
    assert "JSON" in str(body["detail"])


def test_two_mebibyte_body_is_413(client: httpx.Client) -> None:
    """Bodies over the 1 MiB default limit are refused with 413 before being parsed."""
    big = b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = client.post(
        "/api/v1/tasks/", content=big, headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 413)
    assert body["limit"] == 1024 * 1024


def test_chunked_body_over_the_limit_is_413(client: httpx.Client) -> None:
    """A body without Content-Length is counted as it arrives."""

    def chunks() -> object:
        for _ in range(40):
            yield b"x" * 65536

    response = client.post(
        "/api/v1/tasks/import", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)


def test_unknown_route_and_wrong_method(client: httpx.Client) -> None:
    """Routing errors are problem details too."""
    assert_problem(client.get("/api/v1/nothing"), 404)
    assert_problem(client.delete("/api/v1/tasks/"), 405)


def test_unsupported_export_format_lists_the_supported_ones(client: httpx.Client) -> None:
    """An unknown export format is a 400 naming json, csv, md and zip."""
    body = assert_problem(client.get("/api/v1/tasks/export/xlsx"), 400)
    for name in ("json", "csv", "md", "zip"):
        assert name in str(body["detail"])
    task = client.post("/api/v1/tasks/", json={"title": "t"}).json()
    assert_problem(client.get(f"/api/v1/tasks/{task['id']}/export/pdf"), 400)

"""Service endpoints: API information, health, OpenAPI and docs."""

import httpx


def test_root_describes_the_api(client: httpx.Client) -> None:
    """GET / names the service, its version and where things are."""
    info = client.get("/").json()
    assert info["name"] == "Taskline"
    assert info["docs"] == "/docs"
    assert info["endpoints"]["tasks"] == "/api/v1/tasks/"


def test_health_checks_the_database(client: httpx.Client) -> None:
    """GET /health answers ok with the backend it asked."""
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["database"] in {"sqlite", "postgresql"}


def test_openapi_and_docs_are_served(client: httpx.Client) -> None:
    """The OpenAPI document lists the spec's endpoints; /docs is an HTML page."""
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/tasks/",
        "/api/v1/tasks/{task_id}",
        "/api/v1/tasks/export/{format}",
        "/api/v1/tasks/{task_id}/export/{format}",
        "/api/v1/tasks/import",
        "/api/v1/agents/",
        "/health",
    ):
        assert path in paths
    assert {"get", "put", "patch", "delete"} <= paths["/api/v1/tasks/{task_id}"].keys()
    docs = client.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]


def test_unreachable_database_is_503_not_a_traceback() -> None:
    """With the database down, /health and the API answer 503 problem details."""
    from taskline.settings import Settings
    from tests.support.server import LiveServer, free_port

    dead = f"postgresql+asyncpg://127.0.0.1:{free_port()}/nothing"
    server = LiveServer(Settings(database_url=dead, migrate_on_start=False))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for path in ("/health", "/api/v1/tasks/"):
                response = http.get(path)
                assert response.status_code == 503, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert "Traceback" not in response.text
    finally:
        server.stop()

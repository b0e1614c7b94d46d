"""The list endpoint issues a fixed number of queries, however many tasks are on the page."""

from typing import Any

import httpx
from sqlalchemy import event

from tests.support.server import LiveServer


def count_list_queries(server: LiveServer, client: httpx.Client) -> int:
    assert server.app is not None
    engine = server.app.state.database._read_engine.sync_engine
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get("/api/v1/tasks/", params={"limit": 50}).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(statements)


def test_listing_does_not_query_per_task(quiet_server: LiveServer) -> None:
    """Listing 3 tasks and listing 40 tasks (with sections and subtasks) cost the same queries."""
    with httpx.Client(base_url=quiet_server.url) as client:

        def add(n: int) -> None:
            for i in range(n):
                client.post(
                    "/api/v1/tasks/",
                    json={
                        "title": f"t{i}",
                        "tags": ["a", "b"],
                        "sections": [{"title": "s", "subtasks": [{"title": "x"}]}] * 3,
                    },
                ).raise_for_status()

        add(3)
        few = count_list_queries(quiet_server, client)
        add(37)
        many = count_list_queries(quiet_server, client)
    assert few == many
    assert many <= 6

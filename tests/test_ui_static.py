"""The UI is served by the Python server itself: no build step, no CDN, no Node."""

import re
from pathlib import Path

import httpx
import pytest

from taskline.api.meta import prefers_html
from taskline.domain.access import Action
from taskline.web.routes import CONTENT_SECURITY_POLICY, STATIC_DIR
from tests.support.server import LiveServer

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER_ACCEPT, True),
        ("text/html", True),
        ("*/*", False),
        (None, False),
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/*;q=0.9, application/json;q=0.8", True),
        ("text/html;q=0, */*", False),
    ],
)
def test_prefers_html_reads_the_accept_header(accept: str | None, html: bool) -> None:
    """Only a client that ranks text/html above JSON is a browser."""
    assert prefers_html(accept) is html


def test_root_serves_the_page_to_browsers_and_json_to_others(sqlite_server: LiveServer) -> None:
    """GET / negotiates: the UI for Accept text/html, the API information otherwise."""
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as http:
        page = http.get("/", headers={"Accept": BROWSER_ACCEPT})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "accept" in page.headers["vary"].lower()
        assert '<script type="module" src="/ui/js/app.js">' in page.text
        info = http.get("/")
        assert info.headers["content-type"] == "application/json"
        assert info.json()["name"] == "Taskline"
        assert "accept" in info.headers["vary"].lower()
        assert http.get("/", headers={"Accept": "application/json"}).json()["name"] == "Taskline"
        assert http.get("/ui/").text == page.text


def test_every_static_file_is_served_with_its_type(sqlite_server: LiveServer) -> None:
    """Each file under static/ is reachable at /ui/... with a proper content type."""
    types = {
        ".js": "text/javascript",
        ".css": "text/css",
        ".html": "text/html",
        ".svg": "image/svg+xml",
    }
    files = [p for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert len(files) > 10
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as http:
        for path in files:
            response = http.get("/ui/" + path.relative_to(STATIC_DIR).as_posix())
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith(types[path.suffix]), path
            assert response.headers["cache-control"] == "no-cache"
        assert http.get("/ui/js/nothing.js").status_code == 404
        assert http.get("/ui/../pyproject.toml").status_code == 404


def _imports(module: Path) -> list[str]:
    return re.findall(r"^import .*? from '([^']+)';$|^import '([^']+)';$", module.read_text(), re.M)


def test_modules_import_only_each_other_and_nothing_remote() -> None:
    """Every ES module import resolves to a shipped file; no file names a remote URL."""
    for module in (STATIC_DIR / "js").glob("*.js"):
        for groups in _imports(module):
            target = next(g for g in groups if g)
            assert target.startswith("./"), f"{module.name} imports {target}"
            assert (module.parent / target).is_file(), f"{module.name} imports missing {target}"
    for path in STATIC_DIR.rglob("*"):
        if path.is_file():
            text = path.read_text()
            text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, not a fetch
            remote = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}\b", text)
            assert not remote, (path, remote)


def test_the_ui_names_the_actions_the_server_has() -> None:
    """Every action the UI checks for is one of taskline.domain.access.Action."""
    used: set[str] = set()
    for module in (STATIC_DIR / "js").glob("*.js"):
        text = module.read_text()
        used.update(re.findall(r"action: '([a-z_]+)'", text))
        used.update(re.findall(r"(?:may|denial)\('([a-z_]+)'", text))
        for table in re.findall(r"CONTROL_ACTIONS = \{([^}]*)\}", text):
            used.update(re.findall(r": '([a-z_]+)'", table))
        used.update(re.findall(r"EDIT_ACTION = '([a-z_]+)'", text))
    assert used >= {"edit_tasks", "control", "post_messages", "edit_checklist"}
    assert used <= {action.value for action in Action}, used - {a.value for a in Action}

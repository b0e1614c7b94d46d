"""Real Chromium for UI tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

Playwright's own browser download is not used (and cannot work offline); the Python package
drives the system's Chromium through ``executable_path``. When either is missing the tests
are skipped with the reason, or fail under ``TASKLINE_REQUIRE_SERVICES=1`` (CI).

Fixtures (import them into a test module to use them):

- ``browser_fixture`` (named ``browser``): one headless Chromium per test module;
- ``page_factory_fixture`` (named ``new_page``): opens pages in fresh browser contexts
  (separate storage, like two people), closing them after the test and failing the test
  if a page threw an uncaught error.

``tests.support.rest`` sets a scene through the REST API.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.databases import services_required, unavailable
from tests.support.waiting import TIME_SCALE

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "LIVE_MS",
    "SCALE",
    "SCREENSHOTS",
    "browser_fixture",
    "launch_chromium",
    "page_factory_fixture",
    "playwright_api",
]

CHROMIUM = Path(os.environ.get("TASKLINE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Where the test run writes screenshots (git-ignored; named in the README).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
#: Time unit of these tests (the one of tests/support/waiting.py).
SCALE = TIME_SCALE
#: Playwright's auto-waiting ``expect`` gives up after this long (ms).
EXPECT_TIMEOUT_MS = int(10_000 * SCALE)
#: The deadline for a published event to show on the page (ms). It is a deadline, not a
#: speed target: how fast updates reach the page is measured by benchmarks/ui.py.
LIVE_MS = int(10_000 * SCALE)


def playwright_api() -> ModuleType:
    """``playwright.sync_api``, or skip (fail under TASKLINE_REQUIRE_SERVICES=1) the module
    that asks for it when Playwright is not installed."""
    try:
        import playwright.sync_api as api
    except ImportError as exc:
        message = f"Playwright is not available: {exc}; make sync installs it (uv.lock, dev group)"
        if services_required():
            pytest.fail(message + " (TASKLINE_REQUIRE_SERVICES=1)")
        pytest.skip(message, allow_module_level=True)
    return api


def launch_chromium(playwright: Any) -> "Browser":
    """Launch Debian's Chromium headless with the flags the UI tests use."""
    browser: Browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
    return browser


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator["Browser"]:
    """One headless Chromium for the module (skipped or failed when it is not there)."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        unavailable("Playwright", f"{exc}; make sync installs it (uv.lock, dev group)")
    if not CHROMIUM.exists():
        unavailable(
            "Chromium",
            f"{CHROMIUM} is missing; install it with apt-get install chromium (make pytest does)",
        )
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        try:
            browser = launch_chromium(playwright)
        except Exception as exc:  # the binary is there but does not start
            unavailable("Chromium", f"{CHROMIUM} did not start: {exc}")
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(name="new_page")
def page_factory_fixture(browser: "Browser") -> Iterator[Callable[..., "Page"]]:
    """Open pages in fresh contexts: ``new_page(url, viewport=..., color_scheme=...)``;
    ``bypass_csp=True`` lets a test inject a script of its own (the axe-core audit)."""
    contexts = []
    errors: list[str] = []

    def open_page(
        url: str,
        *,
        viewport: tuple[int, int] = (1280, 900),
        color_scheme: str = "light",
        bypass_csp: bool = False,
    ) -> "Page":
        context = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]},
            color_scheme=color_scheme,  # type: ignore[arg-type]
            accept_downloads=True,
            bypass_csp=bypass_csp,
        )
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{url}: {error}"))
        page.goto(url)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"

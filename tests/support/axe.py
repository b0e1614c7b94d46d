"""The WCAG 2.1 AA audit of a page: axe-core (pinned in tests/axe_js/package-lock.json,
installed by ``npm ci`` on first use) injected into the page with Playwright's
``add_script_tag`` (its file's content), then ``axe.run`` with the WCAG 2.0/2.1 A and AA rules.

The page must come from ``new_page(..., bypass_csp=True)``: the UI's Content-Security-Policy
refuses inline scripts, the injected one included. Without Node.js/npm or the registry the test
is skipped, or fails under TASKLINE_REQUIRE_SERVICES=1.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.node import locked_node

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["WCAG_21_AA", "assert_accessible", "audit", "axe_source"]

AXE_DIR = Path(__file__).resolve().parents[1] / "axe_js"
AXE_SCRIPT = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
#: The axe-core rule tags of WCAG 2.1 level AA (which includes 2.0 A/AA and 2.1 A).
WCAG_21_AA = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")

_RUN = """async (tags) => {
    const results = await axe.run(document, { runOnly: { type: 'tag', values: tags } });
    return results.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
    }));
}"""


def axe_source() -> str:
    """The text of axe.min.js (installing the locked axe-core first if needed)."""
    locked_node(AXE_DIR, AXE_SCRIPT)
    return AXE_SCRIPT.read_text("utf-8")


def audit(page: "Page") -> list[dict[str, Any]]:
    """The WCAG 2.1 AA violations axe-core finds in the page as it is now (axe is injected
    once per document; a navigation needs it again, which this does)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(content=axe_source())
    violations: list[dict[str, Any]] = page.evaluate(_RUN, list(WCAG_21_AA))
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    """One paragraph per violation: rule, impact, help and each failing element."""
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        lines.extend(f"  {node['target']}: {node['summary']}" for node in violation["nodes"])
    return "\n".join(lines)


def assert_accessible(page: "Page", where: str) -> None:
    """Fail naming every WCAG 2.1 AA violation axe-core finds in ``page`` (``where`` says
    which view, e.g. "board, dark")."""
    violations = audit(page)
    assert not violations, f"axe-core found WCAG 2.1 AA violations on the {where}:\n" + describe(
        violations
    )

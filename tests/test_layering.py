"""The layering rule (docs/architecture.md), checked on the source: which package may import
which. A new import that points up, or a new package without a rule, fails here."""

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "taskline"

#: Each part of the package and the parts it may import (besides itself). Top-level modules
#: are parts of their own. ``taskline`` is the package's ``__init__`` (its version).
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "store": {"domain"},
    "export": {"domain", "taskline"},
    "bus": {"domain"},
    "agui": {"domain"},
    "sdk": {"domain"},
    "agent": {"domain", "sdk"},
    "realtime": {"domain", "store", "bus"},
    "service": {"domain", "store", "bus", "export", "agui", "realtime", "agent", "sdk"},
    "api": {"domain", "service", "realtime", "agui", "export", "settings", "taskline"},
    "mcp": {"api", "domain", "service", "taskline"},
    "web": {"domain"},
    "ws_protocol": {"realtime"},
    "front_protocol": set(),
    "settings": set(),
    "app": {
        "api",
        "bus",
        "domain",
        "mcp",
        "realtime",
        "service",
        "settings",
        "store",
        "taskline",
        "web",
    },
    "server": {
        "api",
        "app",
        "front_protocol",
        "realtime",
        "service",
        "settings",
        "ws_protocol",
    },
    "cli": {
        "agent",
        "agui",
        "app",
        "domain",
        "sdk",
        "server",
        "service",
        "settings",
        "store",
        "taskline",
    },
    "__main__": {"cli"},
    "__init__": set(),
}


def _part(path: Path) -> str:
    relative = path.relative_to(SOURCE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        modules: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        for module in modules:
            parts = module.split(".")
            if parts[0] == "taskline":
                found.add(parts[1] if len(parts) > 1 else "taskline")
    return found


@pytest.mark.parametrize(
    "path", sorted(SOURCE.rglob("*.py")), ids=lambda p: str(p.relative_to(SOURCE))
)
def test_imports_point_down_only(path: Path) -> None:
    """Every module imports only the parts its layer may use."""
    part = _part(path)
    assert part in ALLOWED, f"{part!r} has no layering rule: add it to docs/architecture.md"
    wrong = _imports(path) - ALLOWED[part] - {part}
    assert not wrong, f"{path.relative_to(SOURCE)} ({part}) imports {sorted(wrong)}"

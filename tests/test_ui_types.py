"""The UI's JSDoc types, checked by the TypeScript compiler: ``tsc --noEmit --checkJs --strict``
over every module in src/taskline/web/static/js (tools/tsc/tsconfig.json), with the compiler
pinned in tools/tsc/package-lock.json and installed by ``npm ci`` on first use.

Without Node.js/npm or the registry the test is skipped, or fails under
TASKLINE_REQUIRE_SERVICES=1.
"""

import subprocess
from pathlib import Path

from tests.support.node import locked_node

TSC_DIR = Path(__file__).resolve().parents[1] / "tools" / "tsc"
TSC = TSC_DIR / "node_modules" / "typescript" / "bin" / "tsc"


def test_the_ui_modules_pass_the_typescript_compiler_in_strict_mode() -> None:
    """No type error in any UI module (an error prints as ``file(line,col): error TS…``)."""
    node = locked_node(TSC_DIR, TSC)
    done = subprocess.run(
        [node, str(TSC), "--project", "tsconfig.json", "--noEmit", "--checkJs", "--strict"],
        cwd=TSC_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"tsc found type errors:\n{done.stdout}{done.stderr}"

"""schemathesis against a real server, on SQLite and PostgreSQL: the server keeps what its own
``/openapi.json`` promises.

The run (settings in ``tests/schemathesis.toml``: fixed seed, case budget) takes the document
from the server, then goes through every phase — examples, coverage, fuzzing, and stateful,
which follows the document's links (create a task → read, change, delete it, add a section → …)
— with every check: no server error, every status and media type documented, every response
and header as documented, schema-violating requests refused, schema-valid ones accepted. The
server checks who asks (the admin's token is sent) and its rate limits are off, so that 429s do
not drown the run. Any failure fails the test, with schemathesis's report.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.auth import secure_server

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


# about 4,000 cases, most of them the coverage phase's (every operation's boundaries and
# violations): some 4 minutes per backend on two busy cores
@pytest.mark.timeout(900)
def test_the_server_conforms_to_its_openapi_document(database_url: str, tmp_path: Path) -> None:
    # a long poll on an open request (GET /requests/{id}?wait=30) answers within 0.2 s here:
    # the schema's bound is 30 s, and a case must not wait that long (nor the 2 s timeout)
    with secure_server(database_url, limits=False, request_max_wait=0.2) as server:
        env = {**os.environ, "TASKLINE_SCHEMATHESIS_TOKEN": server.tokens["admin"]}
        started = time.monotonic()
        run = subprocess.run(
            [
                str(SCHEMATHESIS),
                "--config-file",
                str(CONFIG),
                "run",
                f"{server.url}/openapi.json",
                "--no-color",
            ],
            env=env,
            cwd=tmp_path,  # its cache and reports stay out of the checkout
            capture_output=True,
            text=True,
            timeout=900,
        )
        seconds = time.monotonic() - started
    report = run.stdout + run.stderr
    summary = report[report.find("SUMMARY") :] if "SUMMARY" in report else report[-3000:]
    assert run.returncode == 0, report[-20000:]
    assert "No issues found" in summary, summary
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅\s+{phase}", summary), f"{phase} did not pass:\n{summary}"
    cases = re.search(r"(\d+) generated, \1 passed", summary)
    assert cases, summary
    print(f"schemathesis: {cases.group(1)} cases, 0 failures, {seconds:.0f} s")

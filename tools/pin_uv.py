"""Write tools/uv.txt: one uv release with the sha256 of every file PyPI has for it.

Usage: ``python3 tools/pin_uv.py 0.13.9`` (then set ``[tool.uv] required-version`` in
pyproject.toml to the same version, run ``make lock`` and commit the three files).

The hashes come from PyPI's JSON simple API (PEP 691), the one pip and uv read, so every wheel
(Linux x86_64 and aarch64, glibc and musl, macOS, Windows, ...) and the sdist are listed and
``pip install --require-hashes -r tools/uv.txt`` works on each platform.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

INDEX = "https://pypi.org/simple/uv/"
TARGET = Path(__file__).with_name("uv.txt")
HEADER = """\
# uv, the tool that installs Taskline's locked dependencies (uv.lock), pinned with the sha256
# of every file PyPI publishes for this release (all wheels and the sdist), so
# `pip install --require-hashes -r tools/uv.txt` installs the same uv on any platform.
# The Makefile installs it into .venv-tools/. Written by `python3 tools/pin_uv.py VERSION`;
# keep [tool.uv] required-version in pyproject.toml the same.
"""


def release_hashes(version: str) -> list[str]:
    """The sha256 of each file of uv ``version`` on PyPI (yanked files excluded), sorted."""
    request = urllib.request.Request(
        INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    prefixes = (f"uv-{version}-", f"uv-{version}.tar.gz")
    return sorted(
        entry["hashes"]["sha256"]
        for entry in files
        if entry["filename"].startswith(prefixes) and not entry.get("yanked")
    )


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python3 tools/pin_uv.py VERSION")
    version = sys.argv[1]
    hashes = release_hashes(version)
    if not hashes:
        raise SystemExit(f"no files of uv {version} on PyPI")
    lines = [f"uv=={version}", *(f"    --hash=sha256:{digest}" for digest in hashes)]
    TARGET.write_text(HEADER + " \\\n".join(lines) + "\n")
    print(f"{TARGET}: uv=={version}, {len(hashes)} files")


if __name__ == "__main__":
    main()

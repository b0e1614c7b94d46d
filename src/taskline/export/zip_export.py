"""The ZIP export: every format at once, plus one Markdown file per task and a manifest.

Layout of the archive (all members deflated)::

    manifest.json        {"format", "version", "exported_at", "count", "files": [...]}
    tasks.json           the JSON export (the one to re-import)
    tasks.csv            the CSV export
    tasks.md             the Markdown export of the whole bundle
    tasks/{task_id}.md   each task as a standalone Markdown document

``manifest.json`` lists every other member, exactly, with its ``name``, uncompressed
``size`` in bytes and ``sha256`` (hex). The archive is deterministic: every member is dated
``exported_at``, so the same bundle always gives the same bytes.
"""

import hashlib
import io
import zipfile
from datetime import UTC

import orjson

from taskline.export._text import iso_timestamp, safe_segment
from taskline.export.bundle import ExportBundle
from taskline.export.csv_export import render_csv
from taskline.export.json_export import EXPORT_VERSION, render_json
from taskline.export.markdown_export import render_markdown, render_task_markdown

__all__ = ["MANIFEST_FORMAT", "MANIFEST_NAME", "render_zip"]

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "taskline.export.manifest"

_EARLIEST_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # ZIP timestamps cannot go earlier
_FILE_MODE = 0o644 << 16


def _members(bundle: ExportBundle) -> dict[str, bytes]:
    members = {
        "tasks.json": render_json(bundle),
        "tasks.csv": render_csv(bundle),
        "tasks.md": render_markdown(bundle),
    }
    for task in bundle.tasks:
        name = _unique(f"tasks/{safe_segment(task.id, fallback='task')}", ".md", members)
        members[name] = render_task_markdown(
            task,
            bundle.messages_of(task.id),
            agents=bundle.agents,
            exported_at=bundle.exported_at,
        )
    return members


def _unique(stem: str, suffix: str, taken: dict[str, bytes]) -> str:
    """Return ``stem + suffix``, or ``stem-2 + suffix``, ... the first name not yet taken.

    Task ids are unique and file-name safe, so this only matters for unusual ids that
    reduce to the same safe name.
    """
    name = f"{stem}{suffix}"
    counter = 1
    while name in taken or name == MANIFEST_NAME:
        counter += 1
        name = f"{stem}-{counter}{suffix}"
    return name


def _manifest(bundle: ExportBundle, members: dict[str, bytes]) -> bytes:
    files = [
        {"name": name, "size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        for name, content in members.items()
    ]
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": iso_timestamp(bundle.exported_at),
        "count": len(bundle.tasks),
        "files": files,
    }
    return orjson.dumps(manifest, option=orjson.OPT_INDENT_2)


def render_zip(bundle: ExportBundle) -> bytes:
    """Return the ZIP export of ``bundle`` (see the module docstring for its layout).

    Members are dated ``exported_at`` in UTC (1980-01-01 if earlier, the ZIP minimum).
    """
    members = _members(bundle)
    archive = {MANIFEST_NAME: _manifest(bundle, members), **members}
    stamp = bundle.exported_at.astimezone(UTC).timetuple()[:6]
    date_time = max(stamp, _EARLIEST_ZIP_TIME)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zip_file:
        for name, content in archive.items():
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = _FILE_MODE
            zip_file.writestr(info, content)
    return buffer.getvalue()

"""Choosing a format: :func:`render` turns a bundle into a named, typed file.

``scope`` is ``"tasks"`` for the whole bundle or a task id for that task alone; it also
names the file: ``taskline-{scope}-{YYYYmmddTHHMMSSZ}.{ext}``, with the scope reduced to
``[A-Za-z0-9_-]`` so it is safe in a ``Content-Disposition`` header and on any disk.
"""

from collections.abc import Callable
from datetime import datetime

from taskline.domain.errors import UnsupportedFormatError
from taskline.export._text import compact_timestamp, safe_segment
from taskline.export.bundle import ExportBundle, ExportFile
from taskline.export.csv_export import render_csv
from taskline.export.json_export import render_json
from taskline.export.markdown_export import render_markdown, render_task_markdown
from taskline.export.zip_export import render_zip

__all__ = ["ALL_TASKS", "MEDIA_TYPES", "SUPPORTED_FORMATS", "export_filename", "render"]

SUPPORTED_FORMATS = ("json", "csv", "md", "zip")

#: The scope that means "every task of the bundle".
ALL_TASKS = "tasks"

MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "zip": "application/zip",
}


_WRITERS: dict[str, Callable[[ExportBundle], bytes]] = {
    "json": render_json,
    "csv": render_csv,
    "md": render_markdown,
    "zip": render_zip,
}


def _single_task_markdown(bundle: ExportBundle) -> bytes:
    task = bundle.tasks[0]
    return render_task_markdown(
        task, bundle.messages_of(task.id), agents=bundle.agents, exported_at=bundle.exported_at
    )


def export_filename(scope: str, exported_at: datetime, extension: str) -> str:
    """Return ``taskline-{scope}-{YYYYmmddTHHMMSSZ}.{extension}``, with a safe scope.

    Characters outside ``[A-Za-z0-9_-]`` are dropped from ``scope`` (an empty result becomes
    ``export``); the time is converted to UTC when aware.
    """
    return f"taskline-{safe_segment(scope)}-{compact_timestamp(exported_at)}.{extension}"


def render(bundle: ExportBundle, fmt: str, *, scope: str) -> ExportFile:
    """Render ``bundle`` in format ``fmt`` (one of :data:`SUPPORTED_FORMATS`).

    With ``scope=ALL_TASKS`` (``"tasks"``) every task of the bundle is exported. Any other
    scope is a task id: only that task (and its messages; all agents are kept) is exported,
    and ``md`` then gives the standalone single-task document. A bundle that already holds
    just that task is fine. ``fmt`` is matched case-insensitively.

    Raises:
        UnsupportedFormatError: ``fmt`` is not a supported format (checked first).
        NotFoundError: ``scope`` is a task id that is not in the bundle.
    """
    key = fmt.strip().lower()
    writer = _WRITERS.get(key)
    if writer is None:
        raise UnsupportedFormatError(fmt, SUPPORTED_FORMATS)
    if scope != ALL_TASKS:
        bundle = bundle.for_task(scope)
        if key == "md":
            writer = _single_task_markdown
    return ExportFile(
        content=writer(bundle),
        media_type=MEDIA_TYPES[key],
        filename=export_filename(scope, bundle.exported_at, key),
    )

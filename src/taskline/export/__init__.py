"""Exports of the board: JSON (complete, re-importable), CSV, Markdown and ZIP (all of them).

Every writer is a pure function from an :class:`ExportBundle` (a snapshot the caller reads
from the store) to bytes; nothing here touches the disk, the network or the database.
:func:`render` picks the writer by format name and names the file; :func:`parse_json_export`
reads a JSON export back for the importer.
"""

from taskline.export.bundle import ExportBundle, ExportFile
from taskline.export.formats import SUPPORTED_FORMATS, render
from taskline.export.json_export import ExportDocument, ExportedTask, parse_json_export

__all__ = [
    "SUPPORTED_FORMATS",
    "ExportBundle",
    "ExportDocument",
    "ExportFile",
    "ExportedTask",
    "parse_json_export",
    "render",
]

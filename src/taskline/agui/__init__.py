"""Translation between Taskline events and the AG-UI protocol (ag-ui-protocol 1.0)."""

from taskline.agui.translate import (
    AGUI_KEY,
    attribute_runs,
    event_json,
    from_agui,
    parse_agui,
    sse_frame,
    to_agui,
)

__all__ = [
    "AGUI_KEY",
    "attribute_runs",
    "event_json",
    "from_agui",
    "parse_agui",
    "sse_frame",
    "to_agui",
]

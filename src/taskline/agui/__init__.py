"""Translation between Taskline events and the AG-UI protocol (ag-ui-protocol 1.0)."""

from taskline.agui.translate import AGUI_KEY, from_agui, parse_agui, to_agui

__all__ = ["AGUI_KEY", "from_agui", "parse_agui", "to_agui"]

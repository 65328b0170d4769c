"""Small widget helpers shared by the panel and the dashboard views."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from .state import Status

__all__ = ["assign", "close_tree", "set_status_class"]


def assign(widget: Any, name: str, value: Any) -> None:
    """Set a trait only when the value differs, so an unchanged tick sends nothing."""
    if getattr(widget, name) != value:
        setattr(widget, name, value)


def set_status_class(widget: widgets.DOMWidget, base: str, status: Status) -> None:
    """Give ``widget`` the class ``{base}--{status}`` and drop the other status classes."""
    wanted = f"{base}--{status.value.replace('_', '-')}"
    prefix = f"{base}--"
    classes = (*(c for c in widget._dom_classes if not c.startswith(prefix)), wanted)
    assign(widget, "_dom_classes", classes)


def close_tree(widget: widgets.Widget) -> None:
    """Close ``widget``, its children, and their layout and style models."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    for part in ("layout", "style"):
        model = getattr(widget, part, None)
        if isinstance(model, widgets.Widget):
            model.close()
    widget.close()

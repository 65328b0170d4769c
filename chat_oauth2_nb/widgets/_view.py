"""Small helpers shared by the panel and the dashboard views."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from .state import ErrorInfo, Status

__all__ = ["assign", "close_tree", "error_html", "set_status_class", "text"]


def assign(widget: Any, name: str, value: Any) -> None:
    """Set a trait only when the value differs, so an unchanged tick sends nothing."""
    if getattr(widget, name) != value:
        setattr(widget, name, value)


def text(value: str) -> str:
    """Escape plain text for an HTML widget (providers' words end up here)."""
    return html.escape(value, quote=True)


def set_status_class(widget: widgets.DOMWidget, base: str, status: Status) -> None:
    """Give ``widget`` the class ``{base}--{status}`` and drop the other status classes."""
    wanted = f"{base}--{status.value.replace('_', '-')}"
    prefix = f"{base}--"
    classes = (*(c for c in widget._dom_classes if not c.startswith(prefix)), wanted)
    assign(widget, "_dom_classes", classes)


def error_html(error: ErrorInfo | None) -> str:
    """What failed, what the provider said, and what to change; empty without an error."""
    if error is None:
        return ""
    lines = [f"<b>What failed:</b> {text(error.message)}"]
    said = error.provider_text()
    if said:
        lines.append(f"<b>The provider said:</b> {text(said)}")
    if error.hint:
        lines.append(f"<b>What to change:</b> {text(error.hint)}")
    return "<br>".join(lines)


def close_tree(widget: widgets.Widget) -> None:
    """Close ``widget``, its children, and their layout and style models."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    for part in ("layout", "style"):
        model = getattr(widget, part, None)
        if isinstance(model, widgets.Widget):
            model.close()
    widget.close()

"""Finding a panel's child widgets by CSS class, as the tests of the panel all do."""

from __future__ import annotations

import re
from typing import Any

import ipywidgets


def find(root: ipywidgets.Widget, css_class: str) -> list[Any]:
    """Every widget under ``root`` (itself included) carrying ``css_class``."""
    found = [root] if css_class in getattr(root, "_dom_classes", ()) else []
    for child in getattr(root, "children", ()):
        found.extend(find(child, css_class))
    return found


def one(root: ipywidgets.Widget, css_class: str) -> Any:
    """The one widget under ``root`` carrying ``css_class`` (asserts there is exactly one)."""
    matches = find(root, css_class)
    assert len(matches) == 1, f"{len(matches)} widgets with class {css_class!r}"
    return matches[0]


def visible(root: ipywidgets.Widget, widget: ipywidgets.Widget) -> bool:
    """Whether ``widget`` under ``root`` shows: neither it nor a box around it is hidden."""

    def path(node: ipywidgets.Widget) -> list[ipywidgets.Widget] | None:
        if node is widget:
            return [node]
        for child in getattr(node, "children", ()):
            below = path(child)
            if below is not None:
                return [node, *below]
        return None

    chain = path(root)
    assert chain is not None, "not under root"
    return all(getattr(getattr(node, "layout", None), "display", None) != "none" for node in chain)


def primaries(root: ipywidgets.Widget) -> list[str]:
    """The primary actions a person sees: primary buttons, and links drawn as one."""
    found: list[str] = []

    def walk(node: ipywidgets.Widget) -> None:
        if getattr(getattr(node, "layout", None), "display", None) == "none":
            return
        if isinstance(node, ipywidgets.Button) and node.button_style == "primary":
            found.append(node.description)
        if isinstance(node, ipywidgets.HTML):
            found.extend(
                re.findall(r'<a [^>]*data-primary="true"[^>]*>([^<]*)</a>', str(node.value))
            )
        for child in getattr(node, "children", ()):
            walk(child)

    walk(root)
    return found


def revoke(panel: ipywidgets.Widget) -> None:
    """Revoke as a person does: Revoke, then the question's own Revoke."""
    one(panel, "chat-oauth2-revoke").click()
    question = one(panel, "chat-oauth2-confirm-box")
    assert question.layout.display != "none", "Revoke asked nothing"
    one(panel, "chat-oauth2-confirm-revoke").click()

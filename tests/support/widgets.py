"""Finding a panel's child widgets by CSS class, as the tests of the panel all do."""

from __future__ import annotations

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

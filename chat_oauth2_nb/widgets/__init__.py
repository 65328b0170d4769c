"""The ipywidgets panel (state model + view) and the token dashboard.

The views load lazily, so ``chat_oauth2_nb.widgets.state`` (the pure state model) can be
imported without ipywidgets. The dashboard lives in ``board.py`` because a submodule named
``dashboard`` would shadow the ``dashboard()`` function on this package once imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["OAuth2Panel", "TokenDashboard", "dashboard"]

_EXPORTS = {
    "OAuth2Panel": "panel",
    "TokenDashboard": "board",
    "dashboard": "board",
}

if TYPE_CHECKING:
    from .board import TokenDashboard, dashboard
    from .panel import OAuth2Panel


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chat_oauth2_nb.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

"""The two widgets whose views the package's labextension draws (CONTRACT part B).

``Countdown`` is a live countdown the browser ticks, so an idle panel needs no Python tick;
``CopyButton`` copies a public text (a redirect URI, a device user code) to the clipboard.
Without the labextension (classic Notebook 6, VS Code) their views don't render, so every
place that uses them keeps a readable text next to them (``render.expiry_fallback_html``, the
URI and the code as selectable text). No trait here may ever hold a secret: widget state can
be saved into the .ipynb.
"""

from __future__ import annotations

import datetime as dt
import time

import ipywidgets as widgets
import traitlets

__all__ = ["MODULE", "MODULE_VERSION", "CopyButton", "Countdown"]

#: The npm package that ships the views, and the version range its models answer to.
MODULE = "chat-oauth2-nb"
MODULE_VERSION = "^0.1.0"


class _Ours(widgets.DOMWidget):  # type: ignore[misc]  # ipywidgets ships no type hints
    """A DOM widget whose model and view come from the package's labextension."""

    _model_module = traitlets.Unicode(MODULE).tag(sync=True)
    _view_module = traitlets.Unicode(MODULE).tag(sync=True)
    _model_module_version = traitlets.Unicode(MODULE_VERSION).tag(sync=True)
    _view_module_version = traitlets.Unicode(MODULE_VERSION).tag(sync=True)


class Countdown(_Ours):
    """A countdown to ``expires_at`` (epoch s) that the browser redraws every second."""

    _model_name = traitlets.Unicode("CountdownModel").tag(sync=True)
    _view_name = traitlets.Unicode("CountdownView").tag(sync=True)
    expires_at = traitlets.Float(None, allow_none=True, help="Epoch seconds; None: empty_text").tag(
        sync=True
    )
    clock_offset = traitlets.Float(0.0, help="Kernel time minus browser time, if known").tag(
        sync=True
    )
    sent_at = traitlets.Float(0.0, help="The kernel's time.time() when expires_at was set").tag(
        sync=True
    )
    prefix = traitlets.Unicode("Expires in ").tag(sync=True)
    expired_text = traitlets.Unicode("Expired").tag(sync=True)
    empty_text = traitlets.Unicode("").tag(sync=True)
    soon_seconds = traitlets.Float(300.0, help="Below this, the view adds chat-oauth2-soon").tag(
        sync=True
    )

    def count_to(self, expires_at: dt.datetime | float | None) -> None:
        """Count down to ``expires_at``; sends nothing when it is already the target."""
        target = expires_at.timestamp() if isinstance(expires_at, dt.datetime) else expires_at
        if target == self.expires_at:
            return
        # One message: the view measures the kernel-to-browser skew from sent_at.
        with self.hold_sync():
            self.sent_at = time.time()
            self.expires_at = target


class CopyButton(_Ours):
    """A button that copies ``text`` (never a secret) to the clipboard, then says "Copied"."""

    _model_name = traitlets.Unicode("CopyButtonModel").tag(sync=True)
    _view_name = traitlets.Unicode("CopyButtonView").tag(sync=True)
    text = traitlets.Unicode("", help="What to copy: a redirect URI or a device user code").tag(
        sync=True
    )
    description = traitlets.Unicode("Copy").tag(sync=True)
    tooltip = traitlets.Unicode("Copy to the clipboard", allow_none=True).tag(sync=True)

"""Open a link in the person's browser without putting it on a command line.

``webbrowser.open(url)`` runs the browser with the URL as an argument, and every local user
can read a process's arguments (``/proc/<pid>/cmdline``, ``ps``): a start link read there
could be opened by someone else first. So the link goes into a 0600 page in a fresh 0700
folder of the user's (under Jupyter's runtime folder, as Jupyter does for its own token),
and the browser is given that page's ``file://`` address, which reveals nothing.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import tempfile
import threading
import webbrowser
from pathlib import Path

__all__ = ["open_in_browser", "redirect_page"]

#: Seconds the page stays on disk: long enough for a slow browser to start and read it.
PAGE_LIFETIME = 120.0


def _folder() -> Path:
    """A fresh folder only this user can enter, in Jupyter's runtime folder (0700 itself)."""
    from jupyter_core.paths import jupyter_runtime_dir

    runtime = Path(jupyter_runtime_dir())
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdtemp makes a new 0700 folder atomically: nothing another user planted is reused.
    return Path(tempfile.mkdtemp(prefix="chat-oauth2-open-", dir=runtime))


def redirect_page(url: str, folder: Path | None = None) -> Path:
    """Write a 0600 page that sends the browser on to ``url``; return its path."""
    where = Path(tempfile.mkdtemp(prefix="chat-oauth2-open-", dir=folder)) if folder else _folder()
    page = where / "open.html"
    target = html.escape(url, quote=True)
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='referrer' content='no-referrer'>"
        f"<meta http-equiv='refresh' content='0;url={target}'>"
        "<title>Opening the authorization…</title></head><body>"
        f"<script>location.replace({json.dumps(url)});</script>"
        f"<p><a href='{target}'>Continue to the authorization</a></p></body></html>"
    )
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(page, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(body)
    return page


def _remove(page: Path) -> None:
    with contextlib.suppress(OSError):
        page.unlink()
        page.parent.rmdir()


def open_in_browser(url: str, *, folder: Path | None = None) -> bool:
    """Open ``url`` in the browser through a private page; True when a browser was started.

    The browser's command line carries only the page's ``file://`` path, never ``url``.
    The page is removed after ``PAGE_LIFETIME`` seconds.
    """
    page = redirect_page(url, folder)
    try:
        opened = webbrowser.open(page.as_uri(), new=2)
    except Exception:
        _remove(page)
        raise
    timer = threading.Timer(PAGE_LIFETIME, _remove, args=(page,))
    timer.daemon = True
    timer.start()
    return opened

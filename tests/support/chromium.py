"""Debian's Chromium for the browser tests: where it is, when a test must skip, how to launch it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CHROMIUM", "REQUIRE_BROWSER", "launch_chromium", "require_chromium"]

CHROMIUM = Path("/usr/bin/chromium")
#: Set (by .ci/run) to make a missing Chromium a failure instead of a skip.
REQUIRE_BROWSER = "CHAT_OAUTH2_NB_REQUIRE_BROWSER"


def require_chromium() -> None:
    """Skip without Chromium, or fail when the environment says the browser tests must run."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return
    message = f"{CHROMIUM} is missing (Debian package 'chromium'): the browser tests cannot run"
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{message}, and {REQUIRE_BROWSER}=1 requires them")
    pytest.skip(message)


def launch_chromium(playwright: Any) -> Any:
    """Headless Chromium that reaches 127.0.0.1 only (no background traffic, no DNS)."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            # Resolve no host name at all: only 127.0.0.1 is reachable from the pages.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ],
    )

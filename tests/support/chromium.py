"""Debian's Chromium for the browser tests: where it is, when a test must skip, how to launch it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "CHROMIUM",
    "REQUIRE_BROWSER",
    "launch_chromium",
    "require_chromium",
    "write_lab_settings",
]

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


def write_lab_settings(settings: Path, *, save_widget_state: bool = False) -> None:
    """JupyterLab user settings for a test: no news or update checks (no network)."""
    files: dict[str, dict[str, object]] = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
            "doNotDisturbMode": True,
        },
    }
    if save_widget_state:
        # Widget state goes into the saved .ipynb, so a test sees what a person would share.
        files["@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings"] = {
            "saveState": True
        }
    for name, value in files.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value), encoding="utf-8")

"""Debian's Chromium for the browser tests: where it is, when a test must skip, how to launch it."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

__all__ = [
    "ARTIFACTS",
    "CHROMIUM",
    "REQUIRE_BROWSER",
    "UI_TIMEOUT_MS",
    "artifacts_on_failure",
    "launch_chromium",
    "module_browser",
    "new_context",
    "no_jupyter_cleanup",
    "no_jupyter_loop",
    "require_chromium",
    "write_lab_settings",
]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Generous: kernel start-up and the first JupyterLab load are slow on a 2-core machine.
UI_TIMEOUT_MS = 90_000
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


# pytest-jupyter (loaded by conftest.py for the server tests) makes every test share an asyncio
# loop and closes it afterwards; in a Playwright module it would find and close Playwright's
# loop instead. Such modules run no Jupyter server in-process, so they import these two
# overrides (``from support.chromium import no_jupyter_loop, no_jupyter_cleanup``).
@pytest.fixture(name="jp_asyncio_loop", autouse=True)
def no_jupyter_loop() -> Iterator[None]:
    """pytest-jupyter's loop fixture, overridden to do nothing (see above)."""
    yield None


@pytest.fixture(name="jp_server_cleanup", autouse=True)
def no_jupyter_cleanup() -> Iterator[None]:
    """pytest-jupyter's server clean-up fixture, overridden to do nothing (see above)."""
    yield None


@pytest.fixture(name="browser", scope="module")
def module_browser() -> Iterator[Browser]:
    """One headless Chromium for a test module (fixture ``browser``)."""
    from playwright.sync_api import expect, sync_playwright

    require_chromium()
    # Locator assertions wait this long (Playwright's default is 5 s).
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def new_context(
    browser: Browser, width: int = 1280, height: int = 900, clipboard_origin: str | None = None
) -> Iterator[BrowserContext]:
    """A browser context with the tests' timeout; it may read and write the clipboard."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(UI_TIMEOUT_MS)
    if clipboard_origin is not None:
        # Copy writes the clipboard; the test reads it back as a paste would.
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=clipboard_origin)
    try:
        yield context
    finally:
        context.close()


@contextlib.contextmanager
def artifacts_on_failure(
    context: BrowserContext, name: str, log_name: str, read_log: Callable[[], str]
) -> Iterator[None]:
    """On any failure, save a screenshot of every open tab and a server's log."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        for index, page in enumerate(context.pages):
            with contextlib.suppress(Exception):
                page.screenshot(path=str(ARTIFACTS / f"{name}-tab{index}.png"), full_page=True)
        with contextlib.suppress(OSError):
            (ARTIFACTS / log_name).write_text(read_log(), encoding="utf-8")
        raise

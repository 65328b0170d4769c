"""What the JupyterLab browser tests share: the server, the built labextension, its locators.

The tests load the labextension built from this checkout (``chat_oauth2_nb/labextension``,
made by ``pip install -e .`` or ``jlpm build``) through a link in the isolated Jupyter data
folder, as ``jupyter labextension develop`` would: what is tested is this checkout's build, not
a copy an earlier install left in the environment.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Locator, Page

from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from support.chromium import ARTIFACTS as ARTIFACTS
from support.chromium import artifacts_on_failure, write_lab_settings
from support.server import JupyterServer

ROOT = Path(__file__).resolve().parents[2]
#: Nothing may leave this machine: no news, no update check, no PyPI extension manager.
LAB_ARGS = (
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
)
SERVER_START_TIMEOUT = 120.0
BUILT = ROOT / "chat_oauth2_nb" / "labextension"
NAME = "chat-oauth2-nb"
SIDEBAR = "#chat-oauth2-sidebar"


def link_labextension(data_dir: Path) -> None:
    """Make this checkout's build the one a Jupyter with ``data_dir`` loads."""
    assert (BUILT / "static" / "style.js").is_file(), (
        f"{BUILT} is not built: run `python -m pip install -e .` or `jlpm install && jlpm build`"
    )
    target = data_dir / "labextensions" / NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(BUILT, target_is_directory=True)


def write_theme(user_settings: Path, theme: str) -> None:
    """Choose the Lab theme in the user settings (applied when the page loads)."""
    path = user_settings / "@jupyterlab" / "apputils-extension" / "themes.jupyterlab-settings"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"theme": theme}), encoding="utf-8")


def card(page: Page, alias: str) -> Locator:
    """The sidebar's card of one provider."""
    return page.locator(f"{SIDEBAR} .chat-oauth2-card[data-alias='{alias}']")


def luminance(css_color: str) -> float:
    """Relative luminance (0 black … 1 white) of an ``rgb()``/``rgba()`` computed colour."""
    match = re.match(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)", css_color)
    assert match, css_color

    def channel(value: str) -> float:
        c = float(value) / 255
        return c / 12.92 if c <= 0.03928 else float(((c + 0.055) / 1.055) ** 2.4)

    r, g, b = (channel(v) for v in match.groups())
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def colours(locator: Locator) -> tuple[float, float]:
    """(background, text) luminance of an element as drawn."""
    style = locator.evaluate(
        "e => { const s = getComputedStyle(e); return [s.backgroundColor, s.color]; }"
    )
    return luminance(style[0]), luminance(style[1])


@pytest.fixture(name="provider", scope="module")
def module_provider() -> Iterator[DemoProvider]:
    """The demo provider for a test module (fixture ``provider``), tokens valid for an hour."""
    demo = start_demo_provider(port=0, token_lifetime=3600)
    yield demo
    demo.stop()


def lab_server(
    root: Path,
    env: dict[str, str],
    config: dict[str, Any] | None = None,
    *,
    args: tuple[str, ...] = LAB_ARGS,
    save_widget_state: bool = False,
) -> JupyterServer:
    """A ``jupyter lab`` (not started) with this checkout's labextension and quiet settings.

    ``env`` reaches the server and its kernels; ``config`` is its jupyter_server_config.json.
    """
    server = JupyterServer(root, app="lab", args=list(args), env=env)
    if config is not None:
        (server.config_dir / "jupyter_server_config.json").write_text(json.dumps(config))
    write_lab_settings(
        server.config_dir / "lab" / "user-settings", save_widget_state=save_widget_state
    )
    link_labextension(server.data_dir)
    return server


@contextlib.contextmanager
def running(
    server: JupyterServer, timeout: float = SERVER_START_TIMEOUT
) -> Iterator[JupyterServer]:
    """Start the server (a start-up failure fails the test) and stop it afterwards."""
    try:
        server.start(timeout=timeout)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()


def lab_artifacts_on_failure(
    name: str, context: BrowserContext, server: JupyterServer
) -> contextlib.AbstractContextManager[None]:
    """On any failure, save a screenshot of every open tab and the Jupyter server's log."""
    return artifacts_on_failure(
        context,
        name,
        f"{name}-jupyter.log",
        lambda: server.log_path.read_text(encoding="utf-8", errors="replace"),
    )

"""What the sidebar's browser tests share: the built labextension, its locators, the themes.

The tests load the labextension built from this checkout (``chat_oauth2_nb/labextension``,
made by ``pip install -e .`` or ``jlpm build``) through a link in the isolated Jupyter data
folder, as ``jupyter labextension develop`` would: what is tested is this checkout's build, not
a copy an earlier install left in the environment.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import Locator, Page

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
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

"""The panel's states in JupyterLab, light and dark: what a person sees at each step.

A real JupyterLab (``python -m jupyter lab``, every folder in a temporary directory), the
demo provider on 127.0.0.1, Debian's Chromium through Playwright, as in test_browser.py. In
each theme the person runs the notebook and then checks, step by step, that the panel has
one primary action, copies the redirect URI, clicks Authorize and sees the panel wait for
the other tab, approves, sees the token with a live countdown the browser draws (and no
stale line), checks the configuration (the report fits the card), revokes (the panel asks
first), and, in a device-code notebook, copies the code. A screenshot of every state goes to
test-artifacts/panel-<theme>-<state>.png; with CHAT_OAUTH2_NB_UPDATE_DOCS=1 the authorized
light one also replaces docs/panel.png.

The countdown and the copy buttons are drawn by the package's labextension
(``chat-oauth2-nb``, CONTRACT part B): without it they don't render and this test fails.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import test_browser as lab
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect
from support.chromium import (  # noqa: F401 (fixtures: jp_asyncio_loop, jp_server_cleanup, browser)
    ARTIFACTS,
    UI_TIMEOUT_MS,
    module_browser,
    new_context,
    no_jupyter_cleanup,
    no_jupyter_loop,
)
from support.labext import lab_artifacts_on_failure as artifacts_on_failure
from support.labext import running, write_theme
from support.server import JupyterServer

from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from chat_oauth2_nb.oauth import AuthData, mask

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
DOCS_PICTURE = ROOT / "docs" / "panel.png"
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


@pytest.fixture(scope="module")
def provider() -> Iterator[DemoProvider]:
    demo = start_demo_provider(port=0, token_lifetime=3600)
    demo.device_interval = 1
    yield demo
    demo.stop()


@pytest.fixture(scope="module")
def jupyter(
    browser: Browser, provider: DemoProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterServer]:
    server = lab.lab_server(tmp_path_factory.mktemp("jupyter"), provider)
    for theme in THEMES:
        lab.write_notebook(server.root_dir / f"panel-{theme}.ipynb", provider, f"{theme}-user")
        lab.write_notebook(
            server.root_dir / f"device-{theme}.ipynb", provider, f"{theme}-device", "device"
        )
    with running(server) as started:
        yield started


def use_theme(server: JupyterServer, theme: str) -> None:
    """The Lab theme of the next page load (user settings are read at every load)."""
    write_theme(server.config_dir / "lab" / "user-settings", THEMES[theme])


@pytest.fixture
def context(browser: Browser, jupyter: JupyterServer) -> Iterator[BrowserContext]:
    with new_context(browser, height=1000, clipboard_origin=jupyter.base_url[:-1]) as ctx:
        yield ctx


def part(page: Page, css_class: str) -> Locator:
    return page.locator(f".chat-oauth2-panel .{css_class}")


def primaries(page: Page) -> Locator:
    """The primary actions on show: primary buttons, and links drawn as one."""
    return page.locator(".chat-oauth2-panel .mod-primary:visible")


def snap(page: Page, theme: str, state: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    card = page.locator(".chat-oauth2-panel")
    card.scroll_into_view_if_needed()
    path = ARTIFACTS / f"panel-{theme}-{state}.png"
    card.screenshot(path=str(path))
    return path


def clipboard(page: Page) -> str:
    return str(page.evaluate("navigator.clipboard.readText()"))


def copy_and_read(page: Page, button: Locator) -> str:
    page.evaluate("navigator.clipboard.writeText('')")
    button.click()
    expect(button).to_contain_text("Copied")
    return clipboard(page)


@pytest.mark.timeout(420)
@pytest.mark.parametrize("theme", list(THEMES))
def test_the_panel_guides_through_every_state(
    theme: str, jupyter: JupyterServer, provider: DemoProvider, context: BrowserContext
) -> None:
    notebook, user = f"panel-{theme}.ipynb", f"{theme}-user"
    use_theme(jupyter, theme)
    page = context.new_page()
    with artifacts_on_failure(f"panel-{theme}", context, jupyter):
        page.goto(jupyter.login_url(f"lab/tree/{notebook}", reset=True))
        light = "false" if theme == "dark" else "true"
        expect(page.locator("body")).to_have_attribute("data-jp-theme-light", light)
        lab.run_all_cells(page, jupyter, notebook)
        status = part(page, "chat-oauth2-status")

        # Not authorized: one primary action, Authorize; no Refresh or Revoke to look at.
        expect(status).to_have_text(re.compile(r"^Not authorized"))
        expect(primaries(page)).to_have_count(1)
        expect(primaries(page)).to_have_text("Authorize")
        expect(part(page, "chat-oauth2-revoke")).to_be_hidden()
        snap(page, theme, "1-not-authorized")

        # The redirect URI to register, copied from Details.
        card = page.locator(".chat-oauth2-panel")
        card.get_by_text("Details", exact=True).click()
        redirect = f"{jupyter.base_url}chat-oauth2/callback/{lab.ALIAS}"
        expect(part(page, "chat-oauth2-redirect")).to_contain_text(redirect)
        copy = part(page, "chat-oauth2-copy-redirect").locator("button, .chat-oauth2-copy").first
        assert copy_and_read(page, copy) == redirect
        card.get_by_text("Details", exact=True).click()

        # Authorize: the provider opens in a tab; the panel waits for it, with a spinner.
        link = page.locator(".chat-oauth2-panel a.chat-oauth2-authorize")
        with context.expect_page() as opened:
            link.click()
        tab = opened.value
        tab.wait_for_load_state()
        expect(tab.locator("form#consent")).to_be_visible()
        page.bring_to_front()
        expect(status).to_have_text(re.compile(r"^Waiting for the browser"))
        expect(status).to_contain_text("Waiting for you to approve in the other tab…")
        expect(part(page, "chat-oauth2-spinner")).to_be_visible()
        expect(primaries(page)).to_have_count(0)
        snap(page, theme, "2-waiting")

        # Approve: the waiting turns into the outcome by itself.
        tab.bring_to_front()
        tab.locator("button.approve").click()
        expect(tab.locator("h1#outcome")).to_have_text("Authorized")
        page.bring_to_front()
        expect(status).to_have_text(re.compile(r"^Authorized"))
        record = lab.stored_token(jupyter, user)
        assert record is not None
        expect(part(page, "chat-oauth2-token")).to_contain_text(mask(record.data.token))
        # The browser draws the countdown; the kernel's text beside it says only the time.
        countdown = part(page, "chat-oauth2-expiry-countdown")
        expect(countdown).to_have_text(re.compile(r"^Expires in (59|60) min"))
        first = countdown.inner_text()
        expect(countdown).not_to_have_text(first)  # it ticks, with no kernel involved
        expect(part(page, "chat-oauth2-expiry")).to_contain_text(re.compile(r"\(at \d\d:\d\d"))
        expect(part(page, "chat-oauth2-about").first).to_be_hidden()
        # Nothing left over from before, and no step to take: no primary action.
        expect(part(page, "chat-oauth2-link")).to_be_hidden()
        expect(part(page, "chat-oauth2-spinner")).to_have_count(0)
        expect(primaries(page)).to_have_count(0)
        expect(part(page, "chat-oauth2-again")).to_be_visible()
        picture = snap(page, theme, "3-authorized")
        if theme == "light" and os.environ.get("CHAT_OAUTH2_NB_UPDATE_DOCS") == "1":
            shutil.copyfile(picture, DOCS_PICTURE)

        # The doctor's report: inside the card, failures first, gone once the state changes.
        card.get_by_text("Details", exact=True).click()
        part(page, "chat-oauth2-check").click()
        report = part(page, "chat-oauth2-report")
        expect(report).to_contain_text(re.compile(r"\d+ checks passed or skipped"))
        report.locator("summary").click()  # what passed is folded away, and opens on a click
        expect(report.locator("table").first).to_be_visible()
        card_box, report_box = card.bounding_box(), report.bounding_box()
        assert card_box is not None and report_box is not None
        assert report_box["x"] + report_box["width"] <= card_box["x"] + card_box["width"] + 1
        snap(page, theme, "4-report")

        # Revoke asks first; Cancel keeps the token; the question's Revoke ends it.
        part(page, "chat-oauth2-revoke").click()
        question = part(page, "chat-oauth2-confirm-box")
        expect(question).to_be_visible()
        expect(question).to_contain_text(f"Revoke the token for {user}")
        snap(page, theme, "5-confirm-revoke")
        part(page, "chat-oauth2-cancel-revoke").click()
        expect(question).to_be_hidden()
        assert lab.stored_token(jupyter, user) is not None
        part(page, "chat-oauth2-revoke").click()
        part(page, "chat-oauth2-confirm-revoke").click()
        expect(status).to_have_text(re.compile(r"^Not authorized"))
        assert lab.stored_token(jupyter, user) is None
        expect(report).to_be_hidden()
        expect(part(page, "chat-oauth2-outcome")).to_contain_text("Revoked at the provider")
        expect(primaries(page)).to_have_text("Authorize")
        snap(page, theme, "6-revoked")
        lab.assert_no_secret(page.content(), jupyter, provider, f"the {theme} panel page")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("theme", list(THEMES))
def test_the_device_code_is_said_once_and_copied(
    theme: str, jupyter: JupyterServer, provider: DemoProvider, context: BrowserContext
) -> None:
    notebook = f"device-{theme}.ipynb"
    use_theme(jupyter, theme)
    page = context.new_page()
    with artifacts_on_failure(f"device-{theme}", context, jupyter):
        page.goto(jupyter.login_url(f"lab/tree/{notebook}", reset=True))
        lab.run_all_cells(page, jupyter, notebook)
        code_box = part(page, "chat-oauth2-code")
        expect(code_box).to_have_text(re.compile(r"^\s*[A-Z0-9-]{4,}\s*$"))
        code = code_box.inner_text().strip()
        expect(primaries(page)).to_have_count(1)
        expect(primaries(page)).to_have_text("Open the verification page")
        # The code's expiry, once: the browser's countdown (and the time beside it).
        expect(part(page, "chat-oauth2-code-countdown")).to_contain_text("The code expires in")
        panel_text = page.locator(".chat-oauth2-panel").inner_text()
        assert panel_text.count("expires in") == 1, panel_text
        copy = part(page, "chat-oauth2-copy-code").locator("button, .chat-oauth2-copy").first
        assert copy_and_read(page, copy) == code
        snap(page, theme, "device-code")
        lab.assert_no_secret(page.content(), jupyter, provider, f"the {theme} device page")


@pytest.mark.timeout(300)
def test_the_dashboard_is_a_table_that_fits_half_a_screen(
    jupyter: JupyterServer, provider: DemoProvider, browser: Browser
) -> None:
    notebook, user = "board.ipynb", "board-user"
    lab.write_notebook(jupyter.root_dir / notebook, provider, user)
    nb = nbformat.read(jupyter.root_dir / notebook, as_version=4)  # type: ignore[no-untyped-call]
    nb.cells[1] = nbformat.v4.new_code_cell(  # type: ignore[no-untyped-call]
        "from chat_oauth2_nb import dashboard\ndashboard()"
    )
    nbformat.write(nb, jupyter.root_dir / notebook)  # type: ignore[no-untyped-call]
    use_theme(jupyter, "light")
    # Half of a 1280-pixel screen, as a window beside another or a side-by-side split.
    ctx = browser.new_context(viewport={"width": 640, "height": 900})
    ctx.set_default_timeout(UI_TIMEOUT_MS)
    page = ctx.new_page()
    try:
        with artifacts_on_failure("dashboard", ctx, jupyter):
            page.goto(jupyter.login_url(f"lab/tree/{notebook}", reset=True))
            expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible()
            # The file browser folded away: the notebook has the window's width.
            page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
            lab.wait_for_server("an idle kernel", lambda: jupyter.kernel_idle(notebook), jupyter)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
            board = page.locator(".chat-oauth2-dashboard")
            expect(board.locator(".chat-oauth2-dashboard-header")).to_be_visible()
            # A token lands (as a callback's would): a row appears by itself.
            store = jupyter.store()
            try:
                store.put_token(ALIAS_OF_DEMO, user, demo_token())
            finally:
                store.close()
            row = board.locator(".chat-oauth2-dashboard-row")
            expect(row).to_have_count(1)
            headers = board.locator(".chat-oauth2-dashboard-columns > .widget-html")
            expect(headers).to_have_text(["Provider", "User", "Status", "Expires"])
            expect(row.locator(".chat-oauth2-status")).to_have_text("Authorized")
            expect(row.locator(".chat-oauth2-countdown")).to_have_text(re.compile(r"^in \d+ min"))
            # Columns line up: each cell starts where its header does.
            for index in range(4):
                head = headers.nth(index).bounding_box()
                cell = row.locator(".chat-oauth2-dashboard-cells > *").nth(index).bounding_box()
                assert head is not None and cell is not None
                # (a box cell has its own 2 px margin: the same column to the eye)
                assert abs(head["x"] - cell["x"]) <= 3, (index, head, cell)
            # The buttons show their whole words: nothing cut to "Refre…".
            for name in ("chat-oauth2-refresh", "chat-oauth2-revoke"):
                button = row.locator(f"button.{name}")
                expect(button).to_be_visible()
                fits = button.evaluate("b => b.scrollWidth <= b.clientWidth")
                assert fits, f"{name} is cut off"
            ARTIFACTS.mkdir(exist_ok=True)
            board.screenshot(path=str(ARTIFACTS / "dashboard-half-width.png"))
    finally:
        ctx.close()


ALIAS_OF_DEMO = lab.ALIAS


def demo_token() -> AuthData:
    now = dt.datetime.now(dt.timezone.utc)
    return AuthData(
        token="dashboard-test-access-token-0123456789",
        refresh_token="dashboard-test-refresh-token-0123456789",
        expires_at=now + dt.timedelta(hours=1),
        obtained_at=now,
    )

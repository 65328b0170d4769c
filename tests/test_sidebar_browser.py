"""The OAuth2 sidebar (the labextension) in a real browser: JupyterLab and Notebook 7.

A ``jupyter lab`` subprocess on 127.0.0.1 declares two providers in its config
(``c.ChatOAuth2App.providers``): ``demo`` (the demo provider, its secret only in the server's
environment) and ``broken`` (a wrong secret). Headless Chromium opens JupyterLab with no
notebook and no kernel, opens the sidebar (its icon, or the palette's command) and does what
a person would: Authorize (consent in a new tab; the sidebar turns authorized by itself, with
no page reload), watch the countdown tick, Refresh, Revoke (cancel, then confirm), Check
configuration of the broken provider, in the light and the dark theme; then the same in
Notebook 7's file browser page. Screenshots go to test-artifacts/ (always, for the record; on
a failure, every tab and the server log too). The secrets of the run are looked for in every
page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from support.chromium import (  # noqa: F401 (fixtures: jp_asyncio_loop, jp_server_cleanup, browser)
    UI_TIMEOUT_MS,
    module_browser,
    new_context,
    no_jupyter_cleanup,
    no_jupyter_loop,
)
from support.labext import (  # noqa: F401 (fixture: provider)
    ARTIFACTS,
    SIDEBAR,
    card,
    colours,
    lab_server,
    module_provider,
    running,
    write_theme,
)
from support.labext import lab_artifacts_on_failure as artifacts_on_failure
from support.scan import assert_no_secret, nasty_secret
from support.server import JupyterServer
from support.wait import wait_until

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.oauth import mask
from chat_oauth2_nb.store import TokenRecord

pytestmark = pytest.mark.browser

SECRET_ENV = "CHAT_OAUTH2_DEMO_CLIENT_SECRET"
WRONG_SECRET = "not-the-secret-at-all"


@pytest.fixture(scope="module")
def secret(provider: DemoProvider) -> str:
    _, value = provider.register_client(
        client_id="sidebar-client", client_secret=nasty_secret("GOCSPX-"), scopes=None
    )
    assert value is not None
    return value


@pytest.fixture(scope="module")
def jupyter(
    browser: Browser, provider: DemoProvider, secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterServer]:
    broken = {**provider.config(alias="broken"), "clientId": "sidebar-client"}
    broken["clientSecret"] = WRONG_SECRET
    config = {
        "ChatOAuth2App": {
            "providers": {
                "demo": {
                    **provider.config(alias="demo"),
                    "clientId": "sidebar-client",
                    # An id_token too: the sidebar shows its verified claims on request.
                    "defaultScopes": ["openid", "profile"],
                },
                "broken": broken,
            }
        }
    }
    server = lab_server(tmp_path_factory.mktemp("sidebar"), {SECRET_ENV: secret}, config)
    with running(server) as started:
        yield started


@pytest.fixture
def context(browser: Browser, jupyter: JupyterServer) -> Iterator[BrowserContext]:
    with new_context(browser, clipboard_origin=jupyter.url().rstrip("/")) as ctx:
        yield ctx


def keep(page: Page, name: str) -> None:
    """A screenshot of the sidebar for the record (test-artifacts/)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(SIDEBAR).screenshot(path=str(ARTIFACTS / f"sidebar-{name}.png"))


def api_state(server: JupyterServer) -> dict[str, object]:
    with httpx.Client(trust_env=False, timeout=10) as http:
        answer = http.get(server.url("chat-oauth2/api/state"), headers=server.headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def kernels(server: JupyterServer) -> list[object]:
    with httpx.Client(trust_env=False, timeout=10) as http:
        return list(http.get(server.url("api/kernels"), headers=server.headers).json())


def stored(server: JupyterServer, user: str) -> TokenRecord | None:
    store = server.store()
    try:
        return store.get_token("demo", user)
    finally:
        store.close()


def secrets_of(server: JupyterServer, provider: DemoProvider, secret: str) -> list[str]:
    """The client secrets, and every token and code the demo provider issued so far."""
    memory = provider._store
    with memory.lock:
        issued = [*memory.tokens, *memory.codes]
    return [secret, WRONG_SECRET, *issued]


def scan_page(
    page: Page, server: JupyterServer, provider: DemoProvider, secret: str, where: str
) -> None:
    found = secrets_of(server, provider, secret)
    assert len(found) >= 2, "the scan would look for nothing"
    assert_no_secret(page.content(), found, where)


def notebook_json(cells: list[dict[str, object]]) -> dict[str, object]:
    """A notebook with the Python kernel (no kernel dialog when it opens)."""
    kernelspec = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    return {
        "cells": cells,
        "metadata": {"kernelspec": kernelspec},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def open_by_icon(page: Page) -> None:
    """Click the sidebar's key icon in JupyterLab's left bar."""
    tab = page.locator(".jp-SideBar .lm-TabBar-tab[data-id='chat-oauth2-sidebar']")
    expect(tab).to_be_visible()
    expect(tab.locator("svg")).to_be_visible()
    tab.click()
    expect(page.locator(SIDEBAR)).to_be_visible()


def run_palette_command(page: Page, label: str) -> None:
    """Open the command palette from the View menu, pick a command by its label."""
    page.get_by_role("menuitem", name="View", exact=True).click()
    page.get_by_role("menuitem", name="Activate Command Palette").click()
    # Notebook 7 has a hidden palette besides the modal one it shows.
    field = page.locator(".lm-CommandPalette-input").locator("visible=true")
    expect(field).to_be_visible()
    field.fill(label)
    item = page.locator(".lm-CommandPalette-item", has_text=label).locator("visible=true")
    expect(item.first).to_be_visible()
    item.first.click()


def authorize_in_new_tab(page: Page, context: BrowserContext, server: JupyterServer) -> None:
    """Authorize in the sidebar, approve in the provider's tab, land on the server's callback."""
    with context.expect_page() as opened:
        card(page, "demo").locator("button.chat-oauth2-authorize").click()
    tab = opened.value
    tab.wait_for_load_state()
    expect(tab.locator("form#consent")).to_be_visible()
    tab.locator("button.approve").click()
    tab.wait_for_url(re.compile(re.escape(f"{server.base_url}chat-oauth2/callback/demo?") + ".*"))
    expect(tab.locator("h1#outcome")).to_have_text("Authorized")
    tab.close()


def revoke_with_confirmation(page: Page) -> None:
    """Revoke, cancel the dialog (nothing happens), Revoke again and confirm."""
    demo = card(page, "demo")
    demo.locator("button.chat-oauth2-revoke").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Revoke the token for demo?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(demo.locator(".chat-oauth2-status")).not_to_have_text("Not authorized")
    demo.locator("button.chat-oauth2-revoke").click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Revoke").click()
    expect(demo.locator(".chat-oauth2-status")).to_have_text("Not authorized")


@pytest.mark.timeout(400)
def test_jupyterlab_sidebar_authorize_countdown_refresh_revoke(
    jupyter: JupyterServer, provider: DemoProvider, secret: str, context: BrowserContext
) -> None:
    user = str(api_state(jupyter)["user"])
    page = context.new_page()
    with artifacts_on_failure("sidebar-lab", context, jupyter):
        page.goto(jupyter.login_url("lab", reset=True))
        open_by_icon(page)
        demo = card(page, "demo")
        status = demo.locator(".chat-oauth2-status")
        # Listed from the server's config: no notebook is open and no kernel ever started.
        expect(status).to_have_text("Not authorized")
        expect(card(page, "broken")).to_be_visible()
        assert kernels(jupyter) == []
        uri = f"{jupyter.base_url}chat-oauth2/callback/demo"
        expect(demo.locator(".chat-oauth2-redirect-uri")).to_have_text(uri)
        expect(demo.locator(".chat-oauth2-way")).not_to_be_empty()
        demo.locator(".chat-oauth2-copy-redirect").click()
        expect(demo.locator(".chat-oauth2-copy-redirect")).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == uri
        keep(page, "lab-not-authorized")

        # Only a page reload would clear this: the sidebar must change without one.
        page.evaluate("window.__sameDocument = 'yes'")
        authorize_in_new_tab(page, context, jupyter)
        page.bring_to_front()
        expect(status).to_have_text("Authorized")
        assert page.evaluate("window.__sameDocument") == "yes"
        record = stored(jupyter, user)
        assert record is not None, "the callback stored no token"
        expect(demo.locator(".chat-oauth2-masked")).to_have_text(mask(record.data.token))
        expect(demo.locator(".chat-oauth2-scope-granted")).to_have_text(["openid", "profile"])
        expect(demo.locator(".chat-oauth2-claims")).to_have_count(0)
        demo.locator("button.chat-oauth2-claims-toggle").click()
        claims = demo.locator(".chat-oauth2-claims")
        expect(claims.locator("dt", has_text=re.compile("^iss$"))).to_be_visible()
        expect(claims).to_contain_text(provider.issuer)
        expect(claims).to_contain_text("demo-user")
        clock = demo.locator(".chat-oauth2-token .chat-oauth2-countdown")
        expect(clock).to_have_text(re.compile(r"^Expires in (59 min \d\d s|1 h 00 min)$"))
        # Drawn by the browser: the seconds move with no request and no state change.
        first = clock.inner_text()
        if first.startswith("Expires in 59 min"):
            expect(clock).not_to_have_text(first)
        keep(page, "lab-authorized")
        scan_page(page, jupyter, provider, secret, "the JupyterLab page, authorized")

        demo.locator("button.chat-oauth2-refresh").click()
        expect(demo.locator(".chat-oauth2-outcome")).to_contain_text("Refreshed at")
        refreshed = stored(jupyter, user)
        assert refreshed is not None and refreshed.data.token != record.data.token
        expect(demo.locator(".chat-oauth2-masked")).to_have_text(mask(refreshed.data.token))
        expect(status).to_have_text("Authorized")
        assert provider.introspect(refreshed.data.token)["active"] is True

        # The palette's "Refresh all tokens" does the same for every token.
        run_palette_command(page, "OAuth2: Refresh all tokens")
        before = refreshed.version
        wait_until(
            lambda: (r := stored(jupyter, user)) is not None and r.version > before,
            "Refresh all to store a new token",
            UI_TIMEOUT_MS / 1000,
            0.2,
            jupyter.log_tail,
        )
        refreshed = stored(jupyter, user)
        assert refreshed is not None
        expect(demo.locator(".chat-oauth2-masked")).to_have_text(mask(refreshed.data.token))

        revoke_with_confirmation(page)
        assert stored(jupyter, user) is None
        assert provider.introspect(refreshed.data.token) == {"active": False}
        expect(demo.locator("button.chat-oauth2-authorize")).to_have_text("Authorize")
        scan_page(page, jupyter, provider, secret, "the JupyterLab page after Revoke")

        # The person removes the app at the provider; Refresh then fails with a typed error
        # that says what to change.
        authorize_in_new_tab(page, context, jupyter)
        page.bring_to_front()
        expect(status).to_have_text("Authorized")
        assert provider.remove_app(client_id="sidebar-client") == 1
        demo.locator("button.chat-oauth2-refresh").click()
        error = demo.locator(".chat-oauth2-error")
        expect(error).to_be_visible()
        expect(error.locator(".chat-oauth2-error-what")).not_to_be_empty()
        expect(error.locator(".chat-oauth2-error-todo")).to_contain_text("What to change: ")
        keep(page, "lab-typed-error")
        scan_page(page, jupyter, provider, secret, "the JupyterLab page with the error")
        # What is left of it here goes too (the next tests start with no token).
        revoke_with_confirmation(page)
        assert stored(jupyter, user) is None


@pytest.mark.timeout(400)
def test_jupyterlab_palette_doctor_report_light_and_dark(
    jupyter: JupyterServer, provider: DemoProvider, secret: str, context: BrowserContext
) -> None:
    settings = jupyter.config_dir / "lab" / "user-settings"
    page = context.new_page()
    with artifacts_on_failure("sidebar-doctor", context, jupyter):
        drawn: dict[str, tuple[float, float]] = {}
        for theme, light in (("JupyterLab Light", "true"), ("JupyterLab Dark", "false")):
            write_theme(settings, theme)
            page.goto(jupyter.login_url("lab", reset=True))
            expect(page.locator("body")).to_have_attribute("data-jp-theme-light", light)
            run_palette_command(page, "OAuth2: Show providers and tokens")
            expect(page.locator(SIDEBAR)).to_be_visible()
            broken = card(page, "broken")
            broken.locator("button.chat-oauth2-check").click()
            report = broken.locator(".chat-oauth2-report")
            expect(report.locator("table")).to_be_visible()
            statuses = report.locator("tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.status)"
            )
            assert statuses[0] == "fail", statuses
            order = {"fail": 0, "warn": 1, "ok": 2, "skip": 3}
            assert [order[s] for s in statuses] == sorted(order[s] for s in statuses)
            expect(report.locator("tbody tr").first).to_contain_text("credentials")
            expect(broken.locator(".chat-oauth2-outcome")).to_contain_text("something to fix")
            keep(page, f"doctor-{'light' if light == 'true' else 'dark'}")
            drawn[light] = colours(broken)
            scan_page(page, jupyter, provider, secret, f"the doctor's report ({theme})")
        # The card follows the theme: dark text on a light card, light text on a dark one.
        light_bg, light_text = drawn["true"]
        dark_bg, dark_text = drawn["false"]
        assert light_bg > 0.6 and light_text < 0.3, drawn
        assert dark_bg < 0.2 and dark_text > 0.4, drawn
    write_theme(settings, "JupyterLab Light")


@pytest.mark.timeout(400)
def test_notebook7_sidebar_in_the_file_browser_page(
    jupyter: JupyterServer, provider: DemoProvider, secret: str, context: BrowserContext
) -> None:
    user = str(api_state(jupyter)["user"])
    (jupyter.root_dir / "empty.ipynb").write_text(json.dumps(notebook_json([])))
    # The settings editor's "expires soon" threshold, set above the token's hour.
    setting = jupyter.config_dir / "lab" / "user-settings" / "chat-oauth2-nb"
    setting.mkdir(parents=True, exist_ok=True)
    (setting / "sidebar.jupyterlab-settings").write_text(json.dumps({"expiresSoonSeconds": 7200}))
    page = context.new_page()
    with artifacts_on_failure("sidebar-nb7", context, jupyter):
        page.goto(jupyter.login_url("tree"))
        # Notebook 7's file browser page has no side areas: the sidebar is a tab there.
        tab = page.locator(".jp-TreePanel .lm-TabBar-tab", has_text="OAuth2")
        expect(tab).to_be_visible()
        tab.click()
        demo = card(page, "demo")
        status = demo.locator(".chat-oauth2-status")
        expect(status).to_have_text("Not authorized")
        page.evaluate("window.__sameDocument = 'yes'")
        authorize_in_new_tab(page, context, jupyter)
        page.bring_to_front()
        expect(status).to_have_text("Expires soon")
        expect(demo.locator(".chat-oauth2-countdown.chat-oauth2-soon").first).to_be_visible()
        assert page.evaluate("window.__sameDocument") == "yes"
        record = stored(jupyter, user)
        assert record is not None
        expect(demo.locator(".chat-oauth2-masked")).to_have_text(mask(record.data.token))
        expect(demo.locator(".chat-oauth2-token .chat-oauth2-countdown")).to_have_text(
            re.compile(r"^Expires in ")
        )
        keep(page, "notebook7-tree")
        scan_page(page, jupyter, provider, secret, "Notebook 7's file browser page")

        # In a notebook's page it is a left side panel: View > Left Sidebar > OAuth2.
        notebook = context.new_page()
        notebook.goto(jupyter.login_url("notebooks/empty.ipynb"))
        expect(notebook.locator(".jp-Notebook")).to_be_visible()
        notebook.get_by_role("menuitem", name="View", exact=True).click()
        notebook.locator(".lm-Menu-item", has_text="Left Sidebar").click()
        notebook.locator(".lm-Menu-item", has_text="OAuth2").click()
        expect(notebook.locator(SIDEBAR)).to_be_visible()
        expect(card(notebook, "demo").locator(".chat-oauth2-status")).to_have_text("Expires soon")
        keep(notebook, "notebook7-notebook")

        page.bring_to_front()
        (setting / "sidebar.jupyterlab-settings").unlink()
        revoke_with_confirmation(page)
        assert stored(jupyter, user) is None
        # The other page learns it from the change feed too.
        expect(card(notebook, "demo").locator(".chat-oauth2-status")).to_have_text("Not authorized")


WIDGETS_CELL = """
import time
import ipywidgets as widgets
from IPython.display import display

from chat_oauth2_nb.widgets._views import Countdown, CopyButton

later = Countdown(empty_text="no expiry")
soon = Countdown(expires_at=time.time() + 125, sent_at=time.time())
copy = CopyButton(text=REDIRECT, description="Copy URI", tooltip="Copy the redirect URI")
display(widgets.VBox([later, soon, copy]))
# A kernel whose clock is an hour behind the browser's: the view counts from sent_at.
with later.hold_sync():
    later.sent_at = time.time() - 3600
    later.expires_at = time.time() - 3600 + 3725
"""


@pytest.mark.timeout(400)
@pytest.mark.parametrize("where", ["lab/tree/widgets-{}.ipynb", "notebooks/widgets-{}.ipynb"])
def test_countdown_and_copy_button_views_in_a_notebook(
    jupyter: JupyterServer, context: BrowserContext, where: str
) -> None:
    app = where.split("/")[0]
    name = f"widgets-{app}.ipynb"
    redirect = f"{jupyter.base_url}chat-oauth2/callback/demo"
    cell = f"REDIRECT = {redirect!r}\n" + WIDGETS_CELL
    code: dict[str, object] = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {},
        "outputs": [],
    }
    (jupyter.root_dir / name).write_text(json.dumps(notebook_json([{**code, "source": cell}])))
    page = context.new_page()
    with artifacts_on_failure(f"widgets-{app}", context, jupyter):
        page.goto(jupyter.login_url(where.format(app), reset=app == "lab"))
        expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible()
        wait_until(
            lambda: jupyter.kernel_idle(name),
            f"an idle kernel for {name}",
            UI_TIMEOUT_MS / 1000,
            0.3,
            jupyter.log_tail,
        )
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()

        output = page.locator(".jp-OutputArea-output")
        clocks = output.locator(".chat-oauth2-countdown")
        expect(clocks).to_have_count(2)
        # Corrected by sent_at: 1 h 02 min left on the browser's clock (2 min by the kernel's).
        expect(clocks.nth(0)).to_have_text(re.compile(r"^Expires in 1 h 0[12] min$"))
        soon = clocks.nth(1)
        expect(soon).to_have_text(re.compile(r"^Expires in 2 min 0\d s$"))
        expect(soon).to_have_class(re.compile(r"\bchat-oauth2-soon\b"))
        ticking = soon.inner_text()
        expect(soon).not_to_have_text(ticking)

        button = output.locator("button.chat-oauth2-copy")
        expect(button).to_have_text("Copy URI")
        expect(button).to_have_class(re.compile(r"\bjp-Button\b"))
        expect(button).to_have_attribute("title", "Copy the redirect URI")
        button.click()
        expect(button).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == redirect
        expect(button).to_have_text("Copy URI")
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator(".jp-OutputArea-output:has(.chat-oauth2-countdown)").first.screenshot(
            path=str(ARTIFACTS / f"widgets-{app}.png")
        )


@pytest.mark.timeout(300)
def test_sidebar_loads_without_the_widgets_manager(
    browser: Browser, provider: DemoProvider, secret: str, tmp_path: Path
) -> None:
    """@jupyter-widgets/base is optional: with the widgets manager disabled the sidebar works."""
    declared = {**provider.config(alias="demo"), "clientId": "sidebar-client"}
    config = {"ChatOAuth2App": {"providers": {"demo": declared}}}
    server = lab_server(
        tmp_path,
        {SECRET_ENV: secret},
        config,
        args=("--LabApp.news_url=None", "--LabApp.extension_manager=readonly"),
    )
    labconfig = server.config_dir / "labconfig"
    labconfig.mkdir(parents=True)
    disabled = {"disabledExtensions": {"@jupyter-widgets/jupyterlab-manager": True}}
    (labconfig / "page_config.json").write_text(json.dumps(disabled))
    server.start(timeout=120)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    errors: list[str] = []
    try:
        with artifacts_on_failure("sidebar-no-widgets", context, server):
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(server.login_url("lab", reset=True))
            open_by_icon(page)
            expect(card(page, "demo").locator(".chat-oauth2-status")).to_have_text("Not authorized")
            ours = [e for e in errors if "chat-oauth2" in e or "chat_oauth2" in e]
            assert ours == [], ours
    finally:
        context.close()
        server.stop()

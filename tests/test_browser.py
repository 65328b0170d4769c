"""The panel in a real browser: JupyterLab and Notebook 7 in headless Chromium, clicked through.

The tests start everything themselves, on 127.0.0.1 only: the demo provider (in this
process), a Jupyter server (``python -m jupyter lab`` as a subprocess, with every Jupyter and
home folder in a temporary directory, so its kernels write the token store there) and
Debian's Chromium driven by Playwright. A person's path is followed: run the notebook, click
Authorize, approve in the provider's tab, which lands on the Jupyter server's callback
(logged in by the token URL's cookie), and watch the panel change by itself; then Refresh,
Revoke and save the notebook. The secrets of the run (read from the store file and from the
demo provider's memory) are looked for in every page and in the saved notebook.

- JupyterLab: authorize, masked token, screenshot to docs/panel.png, save with widget
  state, HTTP log, refresh (rotation), revoke.
- Notebook 7: authorize, masked token, save.
- notebooks/01-quickstart.ipynb in JupyterLab: its last cell waits for the person's click.

Without /usr/bin/chromium the tests skip, unless CHAT_OAUTH2_NB_REQUIRE_BROWSER=1 (CI),
which turns the skip into a failure. On failure, screenshots of every tab and the server
log go to test-artifacts/.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect
from support.chromium import (  # noqa: F401 (fixtures: jp_asyncio_loop, jp_server_cleanup, browser)
    ARTIFACTS,
    UI_TIMEOUT_MS,
    module_browser,
    new_context,
    no_jupyter_cleanup,
    no_jupyter_loop,
)
from support.labext import SERVER_START_TIMEOUT, module_provider, running  # noqa: F401 (provider)
from support.labext import lab_artifacts_on_failure as artifacts_on_failure
from support.labext import lab_server as new_lab_server
from support.scan import assert_no_secret as scan
from support.server import JupyterServer
from support.wait import wait_until

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.oauth import mask
from chat_oauth2_nb.store import TokenRecord

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
# The README's picture is refreshed only on request, so a test run leaves the tree clean.
SCREENSHOT = (
    ROOT / "docs" / "panel.png"
    if os.environ.get("CHAT_OAUTH2_NB_UPDATE_DOCS") == "1"
    else ARTIFACTS / "panel.png"
)
ALIAS = "demo"
LAB_USER = "lab-tester"
NB7_USER = "notebook7-tester"
DEVICE_USER = "device-tester"
PASTE_USER = "paste-tester"


# -- the parts ---------------------------------------------------------------------------------


def write_notebook(path: Path, provider: DemoProvider, user: str, mode: str = "auto") -> None:
    """A two-cell notebook: create the client (credentials from the environment), show the panel."""
    setup = (
        "# Written by tests/test_browser.py. The client id and secret come from the\n"
        "# environment (CHAT_OAUTH2_DEMO_CLIENT_ID / _CLIENT_SECRET): never saved here.\n"
        "from chat_oauth2_nb import create_oauth2_client\n"
        "\n"
        f"client = create_oauth2_client({provider.config(alias=ALIAS)!r}, mode={mode!r})\n"
        "client.setup()"
    )
    nb = nbformat.v4.new_notebook(  # type: ignore[no-untyped-call]
        cells=[
            nbformat.v4.new_code_cell(setup),  # type: ignore[no-untyped-call]
            nbformat.v4.new_code_cell(f"client.panel(user={user!r})"),  # type: ignore[no-untyped-call]
        ],
        metadata={
            "kernelspec": {
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
                "name": "python3",
            }
        },
    )
    nbformat.write(nb, path)  # type: ignore[no-untyped-call]


def lab_server(tmp: Path, provider: DemoProvider) -> JupyterServer:
    """JupyterLab with the two test notebooks; kernels get the demo credentials from its env."""
    # Kernels inherit the server's environment: this is how the credentials reach them. The
    # panel's countdown and copy buttons are views of this checkout's labextension.
    server = new_lab_server(
        tmp,
        {
            "CHAT_OAUTH2_DEMO_CLIENT_ID": provider.client_id,
            "CHAT_OAUTH2_DEMO_CLIENT_SECRET": provider.client_secret,
        },
        # Widget state goes into the saved notebook: the test checks what would be shared.
        save_widget_state=True,
    )
    write_notebook(server.root_dir / "test.ipynb", provider, LAB_USER)
    write_notebook(server.root_dir / "test-nb7.ipynb", provider, NB7_USER)
    write_notebook(server.root_dir / "test-device.ipynb", provider, DEVICE_USER, "device")
    write_notebook(server.root_dir / "test-paste.ipynb", provider, PASTE_USER, "paste")
    return server


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jupyter(
    browser: Browser, provider: DemoProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterServer]:
    with running(lab_server(tmp_path_factory.mktemp("jupyter"), provider)) as server:
        yield server


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    with new_context(browser) as ctx:
        yield ctx


# -- steps a person takes ----------------------------------------------------------------------


def wait_for_server(what: str, predicate: Callable[[], bool], server: JupyterServer) -> None:
    """Wait as long as the UI may take, with the server's log in the failure message."""
    wait_until(predicate, what, UI_TIMEOUT_MS / 1000, 0.2, server.log_tail)


def run_all_cells(page: Page, server: JupyterServer, notebook: str) -> None:
    """Wait for the kernel, then Run → Run All Cells from the menu bar (Lab and Notebook 7)."""
    expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible()
    wait_for_server(f"an idle kernel for {notebook}", lambda: server.kernel_idle(notebook), server)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()


def panel(page: Page, css_class: str) -> Locator:
    """One part of the (only) chat_oauth2_nb panel on the page, by its CSS class."""
    return page.locator(f".chat-oauth2-panel .{css_class}")


def authorize_in_new_tab(page: Page, context: BrowserContext, server: JupyterServer) -> Page:
    """Click Authorize, approve at the provider, land on the Jupyter server's callback."""
    link = page.locator(".chat-oauth2-panel a.chat-oauth2-authorize")
    expect(link).to_have_attribute("target", "_blank")
    with context.expect_page() as opened:
        link.click()
    tab = opened.value
    tab.wait_for_load_state()
    # The provider's consent page: who asks, and an Approve button.
    expect(tab.locator("form#consent")).to_be_visible()
    expect(tab.locator("#client-name")).to_have_text("chat_oauth2_nb demo client")
    tab.locator("button.approve").click()
    # Back at the Jupyter server (not a loopback listener in the kernel), logged in by cookie.
    tab.wait_for_url(
        re.compile(re.escape(f"{server.base_url}chat-oauth2/callback/{ALIAS}?") + ".*")
    )
    expect(tab.locator("h1#outcome")).to_have_text("Authorized")
    expect(tab.locator("h1#outcome")).to_have_attribute("data-status", "200")
    return tab


def resolve_kernel_user() -> str:
    """The user a kernel of the test's server stores tokens for (no JUPYTERHUB_USER there)."""
    return getpass.getuser()


def stored_token(server: JupyterServer, user: str, alias: str = ALIAS) -> TokenRecord | None:
    store = server.store()
    try:
        return store.get_token(alias, user)
    finally:
        store.close()


def secrets_of_the_run(server: JupyterServer, provider: DemoProvider | None) -> set[str]:
    """Every secret so far: the store's client secrets, PKCE verifiers and tokens, and every
    token, code and client secret the test's demo provider issued (read from its memory)."""
    found: set[str] = set()
    with sqlite3.connect(server.store_path) as db:
        found.update(row[0] for row in db.execute("SELECT client_secret FROM providers"))
        found.update(row[0] for row in db.execute("SELECT code_verifier FROM flows"))
        for (data,) in db.execute("SELECT data FROM tokens"):
            record = json.loads(data)
            found.update(record.get(key) for key in ("token", "refresh_token", "id_token"))
    db.close()
    if provider is not None:
        memory = provider._store
        with memory.lock:
            found.update(memory.tokens)
            found.update(memory.codes)
            found.update(d.device_code for d in memory.devices.values())
            found.update(c.client_secret for c in memory.clients.values() if c.client_secret)
    return {value for value in found if value}


def assert_no_secret(
    text: str, server: JupyterServer, provider: DemoProvider | None, where: str
) -> None:
    secrets_now = secrets_of_the_run(server, provider)
    assert len(secrets_now) >= 4, "the scan would look for nothing"
    scan(text, secrets_now, where)


def save_and_check(
    page: Page,
    server: JupyterServer,
    provider: DemoProvider | None,
    notebook: str,
    record: TokenRecord,
) -> None:
    """Save from the browser (widget state included): the file has the mask, never a secret."""
    path = server.root_dir / notebook
    token_mask = mask(record.data.token)
    # Select the first cell by its prompt (a click elsewhere might land on a panel button).
    page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").first.click()
    page.keyboard.press("Control+s")
    wait_for_server(
        f"{notebook} saved with its widget state",
        lambda: token_mask in path.read_text(encoding="utf-8"),
        server,
    )
    saved = path.read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-state+json" in saved
    assert_no_secret(saved, server, provider, f"the saved {notebook}")


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_jupyterlab_authorize_refresh_revoke(
    jupyter: JupyterServer, provider: DemoProvider, context: BrowserContext
) -> None:
    page = context.new_page()
    with artifacts_on_failure("jupyterlab", context, jupyter):
        page.goto(jupyter.login_url("lab/tree/test.ipynb", reset=True))
        run_all_cells(page, jupyter, "test.ipynb")

        # The kernel was told the server's callback: that is the redirect URI in use.
        expect(page.locator(".jp-OutputArea-output").first).to_contain_text(
            f"'{jupyter.base_url}chat-oauth2/callback/{ALIAS}'"
        )
        status = panel(page, "chat-oauth2-status")
        expect(status).to_have_text(re.compile(r"^Not authorized"))
        assert stored_token(jupyter, LAB_USER) is None

        tab = authorize_in_new_tab(page, context, jupyter)
        page.bring_to_front()
        # The panel learns about the callback by itself: no cell runs after Run All.
        expect(status).to_have_text(re.compile(r"^Authorized"))
        record = stored_token(jupyter, LAB_USER)
        assert record is not None, "the callback stored no token"
        token_mask = mask(record.data.token)
        token_line = panel(page, "chat-oauth2-token")
        expect(token_line).to_contain_text(token_mask)
        expect(panel(page, "chat-oauth2-expiry-countdown")).to_contain_text("Expires in")
        html = page.content()
        assert token_mask in html  # the scanned HTML holds the widgets' DOM
        assert_no_secret(html, jupyter, provider, "the notebook page")
        assert_no_secret(tab.content(), jupyter, provider, "the callback page")
        assert provider.introspect(record.data.token)["active"] is True

        SCREENSHOT.parent.mkdir(exist_ok=True)
        panel_box = page.locator(".chat-oauth2-panel")
        panel_box.scroll_into_view_if_needed()
        panel_box.screenshot(path=str(SCREENSHOT))

        save_and_check(page, jupyter, provider, "test.ipynb", record)

        # Details (collapsed) hold the endpoints, the claims (only on request) and the HTTP log,
        # which lists the callback's code exchange with every secret masked.
        card = page.locator(".chat-oauth2-panel")
        card.get_by_text("Details", exact=True).click()
        expect(panel(page, "chat-oauth2-provider")).to_contain_text("Token endpoint")
        expect(panel(page, "chat-oauth2-claims-toggle")).to_be_visible()
        card.get_by_text(re.compile(r"^HTTP log \(\d+\)$")).click()
        log_body = panel(page, "chat-oauth2-http-log-body")
        expect(log_body).to_contain_text("grant_type=authorization_code")
        assert_no_secret(page.content(), jupyter, provider, "the page with the HTTP log open")

        # Check configuration: the doctor's report, in place, as a table (issue: provider doctor).
        panel(page, "chat-oauth2-check").click()
        report = panel(page, "chat-oauth2-report")
        report.locator("summary").click()  # what passed is folded away
        expect(report.locator("table")).to_be_visible()
        expect(report).to_contain_text("credentials")
        expect(panel(page, "chat-oauth2-outcome")).to_contain_text("Checked the configuration")
        assert_no_secret(page.content(), jupyter, provider, "the page with the doctor's report")

        # Refresh: a new token (the provider rotates the refresh token), a new mask.
        panel(page, "chat-oauth2-refresh").click()
        expect(panel(page, "chat-oauth2-outcome")).to_contain_text("Refreshed at")
        expect(token_line).not_to_contain_text(token_mask)
        refreshed = stored_token(jupyter, LAB_USER)
        assert refreshed is not None
        assert refreshed.version > record.version
        assert refreshed.data.token != record.data.token
        assert refreshed.data.expires_at is not None and record.data.expires_at is not None
        assert refreshed.data.expires_at >= record.data.expires_at
        expect(token_line).to_contain_text(mask(refreshed.data.token))
        expect(panel(page, "chat-oauth2-expiry-countdown")).to_contain_text("Expires in")
        expect(status).to_have_text(re.compile(r"^Authorized"))
        assert record.data.refresh_token is not None
        assert provider.introspect(record.data.refresh_token) == {"active": False}
        expect(log_body).to_contain_text("grant_type=refresh_token")
        assert_no_secret(page.content(), jupyter, provider, "the page after Refresh")

        # Revoke (the panel asks first): gone at the provider and here; a fresh link.
        panel(page, "chat-oauth2-revoke").click()
        panel(page, "chat-oauth2-confirm-revoke").click()
        expect(status).to_have_text(re.compile(r"^Not authorized"))
        expect(panel(page, "chat-oauth2-authorize")).to_be_visible()
        assert stored_token(jupyter, LAB_USER) is None
        assert provider.introspect(refreshed.data.token) == {"active": False}
        assert refreshed.data.refresh_token is not None
        assert provider.introspect(refreshed.data.refresh_token) == {"active": False}
        assert_no_secret(page.content(), jupyter, provider, "the page after Revoke")


@pytest.mark.timeout(300)
def test_notebook7_authorize(
    jupyter: JupyterServer, provider: DemoProvider, context: BrowserContext
) -> None:
    page = context.new_page()
    with artifacts_on_failure("notebook7", context, jupyter):
        page.goto(jupyter.login_url("notebooks/test-nb7.ipynb"))
        run_all_cells(page, jupyter, "test-nb7.ipynb")
        status = panel(page, "chat-oauth2-status")
        expect(status).to_have_text(re.compile(r"^Not authorized"))

        tab = authorize_in_new_tab(page, context, jupyter)
        page.bring_to_front()
        expect(status).to_have_text(re.compile(r"^Authorized"))
        record = stored_token(jupyter, NB7_USER)
        assert record is not None, "the callback stored no token"
        expect(panel(page, "chat-oauth2-token")).to_contain_text(mask(record.data.token))
        assert_no_secret(page.content(), jupyter, provider, "the Notebook 7 page")
        assert_no_secret(tab.content(), jupyter, provider, "the callback page")
        save_and_check(page, jupyter, provider, "test-nb7.ipynb", record)


@pytest.mark.timeout(300)
def test_quickstart_notebook_in_jupyterlab(jupyter: JupyterServer, context: BrowserContext) -> None:
    """01-quickstart as a learner runs it: its last cell waits for the person's click.

    The notebook starts its own demo provider in the kernel; with the Jupyter server's
    callback as redirect URI, its automation stays off and the person approves instead.
    """
    shutil.copyfile(
        ROOT / "notebooks" / "01-quickstart.ipynb", jupyter.root_dir / "quickstart.ipynb"
    )
    user = resolve_kernel_user()
    page = context.new_page()
    with artifacts_on_failure("quickstart", context, jupyter):
        page.goto(jupyter.login_url("lab/tree/quickstart.ipynb", reset=True))
        run_all_cells(page, jupyter, "quickstart.ipynb")
        status = panel(page, "chat-oauth2-status")
        expect(status).to_have_text(re.compile(r"^Not authorized"))
        # The last cell runs and waits for the person; the panel stays live meanwhile.
        waiting = page.locator(
            ".jp-OutputArea-output", has_text="Click Authorize in the panel above"
        )
        expect(waiting).to_be_visible()
        tab = authorize_in_new_tab(page, context, jupyter)
        page.bring_to_front()
        expect(status).to_have_text(re.compile(r"^Authorized"))
        # The waiting cell went on and printed the protected API's answer.
        answer = page.locator(".jp-OutputArea-output", has_text='"user": "demo-user"')
        expect(answer).to_be_visible()
        wait_for_server(
            "the kernel to finish", lambda: jupyter.kernel_idle("quickstart.ipynb"), jupyter
        )
        record = stored_token(jupyter, user)
        assert record is not None, f"no token stored for {user!r}"
        html = page.content()
        assert mask(record.data.token) in html
        # The notebook's provider lives in the kernel: the store's secrets are what we can check.
        assert_no_secret(html, jupyter, None, "the quickstart page")
        assert_no_secret(tab.content(), jupyter, None, "the callback page")


@pytest.mark.timeout(300)
def test_device_code_panel_in_jupyterlab(
    jupyter: JupyterServer, provider: DemoProvider, context: BrowserContext
) -> None:
    provider.device_interval = 1
    page = context.new_page()
    with artifacts_on_failure("device", context, jupyter):
        page.goto(jupyter.login_url("lab/tree/test-device.ipynb", reset=True))
        run_all_cells(page, jupyter, "test-device.ipynb")
        status = panel(page, "chat-oauth2-status")
        code_box = panel(page, "chat-oauth2-code")
        expect(code_box).to_have_text(re.compile(r"^\s*[A-Z0-9-]{4,}\s*$"))
        code = code_box.inner_text().strip()
        expect(status).to_have_text(re.compile(r"^Not authorized"))
        expect(panel(page, "chat-oauth2-code-countdown")).to_contain_text("The code expires in")

        # The person opens the verification page in a second tab, types the code, approves.
        verify = page.locator(".chat-oauth2-panel a.chat-oauth2-verify-link")
        expect(verify).to_have_attribute("target", "_blank")
        expect(verify).to_have_text("Open the verification page")
        # The page's address is said beside the button: the person types it (and the code).
        tab = context.new_page()
        tab.goto(panel(page, "chat-oauth2-verify").locator("code").inner_text().strip())
        tab.locator("input[name=user_code]").fill(code)
        tab.locator("form#device-entry button.approve").click()
        expect(tab.locator("#user-code")).to_have_text(code)
        tab.locator("form#consent button.approve").click()
        expect(tab.locator("#outcome")).to_contain_text("approved")

        page.bring_to_front()
        # Nobody waits in a cell: the panel polled the provider itself.
        expect(status).to_have_text(re.compile(r"^Authorized"))
        record = stored_token(jupyter, DEVICE_USER)
        assert record is not None, "polling stored no token"
        expect(panel(page, "chat-oauth2-token")).to_contain_text(mask(record.data.token))
        assert_no_secret(page.content(), jupyter, provider, "the device notebook page")
        save_and_check(page, jupyter, provider, "test-device.ipynb", record)


@pytest.mark.timeout(300)
def test_paste_back_panel_in_jupyterlab(
    jupyter: JupyterServer, provider: DemoProvider, context: BrowserContext
) -> None:
    page = context.new_page()
    with artifacts_on_failure("paste", context, jupyter):
        page.goto(jupyter.login_url("lab/tree/test-paste.ipynb", reset=True))
        run_all_cells(page, jupyter, "test-paste.ipynb")
        status = panel(page, "chat-oauth2-status")
        expect(status).to_have_text(re.compile(r"^Not authorized"))
        expect(panel(page, "chat-oauth2-paste-help")).to_contain_text("127.0.0.1:53682")

        # A paste-back link is the provider's URL (state, PKCE challenge): it reaches the page
        # only when asked for (test_paste_state_hygiene.py).
        expect(page.locator(".chat-oauth2-panel a.chat-oauth2-authorize")).to_have_count(0)
        panel(page, "chat-oauth2-show-link").click()
        link = page.locator(".chat-oauth2-panel a.chat-oauth2-authorize")
        with context.expect_page() as opened:
            link.click()
        tab = opened.value
        tab.wait_for_load_state()
        failed: list[str] = []
        tab.on("requestfailed", lambda request: failed.append(request.url))
        tab.locator("form#consent button.approve").click()
        # The browser lands on an address nothing serves: Chromium shows its error page.
        landing = re.compile(re.escape(f"http://127.0.0.1:53682/chat-oauth2/callback/{ALIAS}?"))
        wait_until(
            lambda: bool(landing.match(tab.url)) or any(landing.match(u) for u in failed),
            "the browser to land on the unreachable redirect URI",
            UI_TIMEOUT_MS / 1000,
        )
        # What the person copies from the address bar.
        address = tab.url if landing.match(tab.url) else next(u for u in failed if landing.match(u))
        assert "code=" in address and "state=" in address

        page.bring_to_front()
        field = page.locator(".chat-oauth2-panel .chat-oauth2-paste input")
        field.fill(address)
        panel(page, "chat-oauth2-paste-finish").click()
        expect(status).to_have_text(re.compile(r"^Authorized"))
        expect(field).to_have_value("")
        record = stored_token(jupyter, PASTE_USER)
        assert record is not None, "the pasted address stored no token"
        code = re.search(r"[?&]code=([^&]+)", address)
        assert code is not None
        html = page.content()
        assert code.group(1) not in html
        assert_no_secret(html, jupyter, provider, "the paste notebook page")
        save_and_check(page, jupyter, provider, "test-paste.ipynb", record)
        saved = (jupyter.root_dir / "test-paste.ipynb").read_text(encoding="utf-8")
        assert code.group(1) not in saved
        # Neither the used flow nor the standby one now offered: no state, no challenge.
        with sqlite3.connect(jupyter.store_path) as db:
            states = [
                r[0] for r in db.execute("SELECT state FROM flows WHERE user = ?", (PASTE_USER,))
            ]
        db.close()
        assert len(states) >= 2, states
        store = jupyter.store()
        try:
            verifiers = [store.get_flow(state).code_verifier for state in states]  # type: ignore[union-attr]
        finally:
            store.close()
        digests = [hashlib.sha256(verifier.encode()).digest() for verifier in verifiers]
        challenges = [base64.urlsafe_b64encode(d).decode().rstrip("=") for d in digests]
        scan(saved, [*states, *challenges], "the saved paste notebook")

"""The whole flow through a real JupyterHub in headless Chromium, as alice would click it.

The hub's login page (DummyAuthenticator), alice's JupyterLab, a notebook that creates the
client for the demo provider (started in this process; its config in the notebook, its
credentials in the spawner's environment) and shows ``client.panel()``; Authorize, consent at
the provider, back through the hub's chat-oauth2 router to alice's server, and the panel in
the first tab turns "Authorized". Skips without Chromium (unless
CHAT_OAUTH2_NB_REQUIRE_BROWSER=1) or without configurable-http-proxy (unless
CHAT_OAUTH2_NB_REQUIRE_HUB=1). On failure, screenshots and the hub's log go to test-artifacts/.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nbformat
import pytest
from playwright.sync_api import BrowserContext, expect, sync_playwright
from support.chromium import launch_chromium, require_chromium, write_lab_settings
from support.hub import RealHub, require_hub
from support.scan import assert_no_secret

from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from chat_oauth2_nb.oauth import mask

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
UI_TIMEOUT_MS = 90_000
NOTEBOOK = "hub-test.ipynb"


# pytest-jupyter's loop fixtures would close Playwright's loop (see tests/test_browser.py).
@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[None]:
    yield None


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    yield None


def _prepare_home(hub: RealHub, provider: DemoProvider) -> None:
    home = hub.home("alice")
    write_lab_settings(home / ".jupyter" / "lab" / "user-settings")
    setup = (
        "# The client id and secret come from the environment the hub gives the server.\n"
        "from chat_oauth2_nb import create_oauth2_client\n"
        f"client = create_oauth2_client({provider.config(alias='demo')!r})\n"
        "client.setup()"
    )
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell("client.panel()")],
        metadata={
            "kernelspec": {
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
                "name": "python3",
            }
        },
    )
    nbformat.write(nb, home / NOTEBOOK)


def _kernel_idle(hub: RealHub) -> bool:
    answer = httpx.get(
        f"{hub.url}user/alice/api/sessions",
        headers={"Authorization": f"token {hub.admin_token}"},
        timeout=10,
    )
    return any(
        s.get("path") == NOTEBOOK and (s.get("kernel") or {}).get("execution_state") == "idle"
        for s in answer.json()
    )


@contextlib.contextmanager
def _artifacts_on_failure(context: BrowserContext, hub: RealHub) -> Iterator[None]:
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        for index, page in enumerate(context.pages):
            with contextlib.suppress(Exception):
                page.screenshot(path=str(ARTIFACTS / f"hub-tab{index}.png"), full_page=True)
        with contextlib.suppress(OSError):
            (ARTIFACTS / "hub.log").write_text(hub.log(full=True))
        raise


def test_alice_authorizes_from_jupyterlab_through_the_hub(tmp_path: Path) -> None:
    require_chromium()
    require_hub()
    # The hub's single-user servers run in this Python: JupyterLab must be installed here.
    pytest.importorskip("jupyterlab")
    provider = start_demo_provider(port=0, token_lifetime=3600)
    hub = RealHub(tmp_path / "hub", base_url="/jh/")
    # The one redirect URI of the whole hub, registered at the provider.
    client_id, secret = provider.register_client(redirect_uris=[f"{hub.callback_base}/demo"])
    hub.extra_config = (
        "c.Spawner.default_url = '/lab'\n"
        "c.Spawner.args = ['--allow-root', '--LabApp.news_url=None',"
        " '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',"
        " '--LabApp.extension_manager=readonly']\n"
        f"c.Spawner.environment = {{'CHAT_OAUTH2_DEMO_CLIENT_ID': {client_id!r},"
        f" 'CHAT_OAUTH2_DEMO_CLIENT_SECRET': {secret!r}}}\n"
    ).replace("\n", "\n            ")
    try:
        hub.start()
        _prepare_home(hub, provider)
        expect.set_options(timeout=UI_TIMEOUT_MS)
        with sync_playwright() as playwright:
            chromium = launch_chromium(playwright)
            context = chromium.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(UI_TIMEOUT_MS)
            with _artifacts_on_failure(context, hub):
                _click_through(hub, provider, context)
            context.close()
            chromium.close()
        record = hub.store("alice").get_token("demo", "alice")
        assert record is not None
        assert provider.introspect(record.data.token)["username"] == "alice-at-the-provider"
        assert_no_secret(hub.log(full=True), [record.data.token, secret or ""], "the hub's log")
    finally:
        hub.stop()
        provider.stop()


def _click_through(hub: RealHub, provider: DemoProvider, context: BrowserContext) -> None:
    page = context.new_page()
    # The hub's login page, as alice (DummyAuthenticator takes any password).
    page.goto(f"{hub.url}hub/login?next={hub.base_url}hub/spawn")
    page.locator("#username_input").fill("alice")
    page.locator("#password_input").fill("any password")
    page.locator("#login_submit").click()
    # The hub starts her server and opens JupyterLab.
    page.wait_for_url(re.compile(re.escape(f"{hub.url}user/alice/lab") + ".*"), timeout=120_000)
    page.goto(f"{hub.url}user/alice/lab/tree/{NOTEBOOK}")
    expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible()
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while not _kernel_idle(hub):
        assert time.monotonic() < deadline, f"no idle kernel for {NOTEBOOK}:\n{hub.log()}"
        time.sleep(0.3)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()

    status = page.locator(".chat-oauth2-panel .chat-oauth2-status")
    expect(status).to_have_text(re.compile(r"^Not authorized"))
    expect(page.locator(".chat-oauth2-panel .chat-oauth2-redirect")).to_contain_text(
        f"{hub.callback_base}/demo"
    )
    expect(page.locator(".chat-oauth2-panel .chat-oauth2-provider")).to_contain_text(
        "Token store: encrypted (hub key)"
    )
    link = page.locator(".chat-oauth2-panel a.chat-oauth2-authorize")
    expect(link).to_have_attribute("href", re.compile(re.escape(f"{hub.url}user/alice/")))
    with context.expect_page() as opened:
        link.click()
    tab = opened.value
    tab.wait_for_load_state()
    # Consent at the provider.
    expect(tab.locator("form#consent")).to_be_visible()
    tab.locator("form#consent input[name=username]").fill("alice-at-the-provider")
    tab.locator("button.approve").click()
    # Through the router, to alice's own server's callback.
    tab.wait_for_url(
        re.compile(re.escape(f"{hub.url}user/alice/chat-oauth2/callback/demo?") + ".*")
    )
    expect(tab.locator("h1#outcome")).to_have_text("Authorized")
    # The panel in the notebook's tab turns by itself.
    expect(status).to_have_text(re.compile(r"^Authorized"))
    record = hub.store("alice").get_token("demo", "alice")
    assert record is not None
    expect(page.locator(".chat-oauth2-panel")).to_contain_text(mask(record.data.token))
    assert record.data.token not in page.content() and record.data.token not in tab.content()

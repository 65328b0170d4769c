"""The OAuth2 sidebar through a real JupyterHub, in headless Chromium, as alice would click it.

The hub declares the demo provider (``configure_hub(c, providers=...)``, its secret in the
hub's config only, ONE redirect URI for the whole hub). Alice logs in, her JupyterLab opens
with no notebook and no kernel; the sidebar lists the hub's provider with the hub-wide
redirect URI; Authorize opens the start link in a new tab, she consents, the hub's router
sends the redirect to her own server, and the sidebar turns authorized by itself. Then
Revoke, confirmed. Skips like tests/test_hub_browser.py (Chromium, configurable-http-proxy).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect, sync_playwright
from support.chromium import launch_chromium, require_chromium, write_lab_settings
from support.hub import RealHub, require_hub
from support.labext import ARTIFACTS, SIDEBAR, card, link_labextension
from support.scan import assert_no_secret, nasty_secret

from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from chat_oauth2_nb.oauth import mask

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

UI_TIMEOUT_MS = 90_000


# pytest-jupyter's loop fixtures would close Playwright's loop (see tests/test_browser.py).
@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[None]:
    yield None


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    yield None


@contextlib.contextmanager
def _artifacts_on_failure(context: BrowserContext, hub: RealHub) -> Iterator[None]:
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        for index, page in enumerate(context.pages):
            with contextlib.suppress(Exception):
                page.screenshot(path=str(ARTIFACTS / f"hub-sidebar-tab{index}.png"), full_page=True)
        with contextlib.suppress(OSError):
            (ARTIFACTS / "hub-sidebar.log").write_text(hub.log(full=True))
        raise


def test_alice_authorizes_and_revokes_from_the_sidebar_through_the_hub(tmp_path: Path) -> None:
    require_chromium()
    require_hub()
    pytest.importorskip("jupyterlab")
    provider = start_demo_provider(port=0, token_lifetime=3600)
    hub = RealHub(tmp_path / "hub", base_url="/jh/")
    client_id, secret = provider.register_client(
        client_secret=nasty_secret("GOCSPX-"),
        redirect_uris=[f"{hub.callback_base}/demo"],
        scopes=None,
    )
    assert secret is not None
    declaration = {**provider.config(alias="demo"), "clientId": client_id, "clientSecret": secret}
    hub.hub_args = f", providers={{'demo': {declaration!r}}}"
    hub.extra_config = (
        "c.Spawner.default_url = '/lab'\n"
        "c.Spawner.args = ['--allow-root', '--LabApp.news_url=None',"
        " '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',"
        " '--LabApp.extension_manager=readonly']\n"
    ).replace("\n", "\n            ")
    try:
        hub.start()
        home = hub.home("alice")
        write_lab_settings(home / ".jupyter" / "lab" / "user-settings")
        link_labextension(home / ".local" / "share" / "jupyter")
        expect.set_options(timeout=UI_TIMEOUT_MS)
        with sync_playwright() as playwright:
            chromium = launch_chromium(playwright)
            context = chromium.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(UI_TIMEOUT_MS)
            with _artifacts_on_failure(context, hub):
                _click_through(hub, provider, context, secret)
            context.close()
            chromium.close()
        assert hub.store("alice").get_token("demo", "alice") is None
        assert_no_secret(hub.log(full=True), [secret], "the hub's log")
    finally:
        hub.stop()
        provider.stop()


def _click_through(
    hub: RealHub, provider: DemoProvider, context: BrowserContext, secret: str
) -> None:
    page = context.new_page()
    page.goto(f"{hub.url}hub/login?next={hub.base_url}hub/spawn")
    page.locator("#username_input").fill("alice")
    page.locator("#password_input").fill("any password")
    page.locator("#login_submit").click()
    page.wait_for_url(re.compile(re.escape(f"{hub.url}user/alice/lab") + ".*"), timeout=120_000)

    tab = page.locator(".jp-SideBar .lm-TabBar-tab[data-id='chat-oauth2-sidebar']")
    tab.click()
    expect(page.locator(SIDEBAR)).to_be_visible()
    demo = card(page, "demo")
    status = demo.locator(".chat-oauth2-status")
    expect(status).to_have_text("Not authorized")
    # The hub's provider, with the hub-wide redirect URI to register at the provider.
    expect(demo.locator(".chat-oauth2-source")).to_have_text("hub")
    expect(demo.locator(".chat-oauth2-redirect-uri")).to_have_text(f"{hub.callback_base}/demo")

    page.evaluate("window.__sameDocument = 'yes'")
    with context.expect_page() as opened:
        demo.locator("button.chat-oauth2-authorize").click()
    consent = opened.value
    consent.wait_for_load_state()
    expect(consent.locator("form#consent")).to_be_visible()
    consent.locator("form#consent input[name=username]").fill("alice-at-the-provider")
    consent.locator("button.approve").click()
    consent.wait_for_url(
        re.compile(re.escape(f"{hub.url}user/alice/chat-oauth2/callback/demo?") + ".*")
    )
    expect(consent.locator("h1#outcome")).to_have_text("Authorized")
    consent.close()

    page.bring_to_front()
    expect(status).to_have_text("Authorized")
    assert page.evaluate("window.__sameDocument") == "yes"
    record = hub.store("alice").get_token("demo", "alice")
    assert record is not None
    assert provider.introspect(record.data.token)["username"] == "alice-at-the-provider"
    expect(demo.locator(".chat-oauth2-masked")).to_have_text(mask(record.data.token))
    expect(demo.locator(".chat-oauth2-token .chat-oauth2-countdown")).to_have_text(
        re.compile(r"^Expires in ")
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(SIDEBAR).screenshot(path=str(ARTIFACTS / "sidebar-hub.png"))
    assert_no_secret(page.content(), [record.data.token, secret], "alice's JupyterLab page")

    demo.locator("button.chat-oauth2-revoke").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Revoke").click()
    expect(status).to_have_text("Not authorized")
    assert provider.introspect(record.data.token) == {"active": False}

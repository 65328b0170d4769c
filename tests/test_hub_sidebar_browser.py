"""The OAuth2 sidebar through a real JupyterHub, in headless Chromium, as alice would click it.

The hub declares the demo provider (``configure_hub(c, providers=...)``, its secret in the
hub's config only, ONE redirect URI for the whole hub). Alice logs in, her JupyterLab opens
with no notebook and no kernel; the sidebar lists the hub's provider with the hub-wide
redirect URI; Authorize opens the start link in a new tab, she consents, the hub's router
sends the redirect to her own server, and the sidebar turns authorized by itself. Then
Revoke, confirmed. Skips like tests/test_hub_browser.py (Chromium, configurable-http-proxy).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect
from support.chromium import (  # noqa: F401 (fixtures: jp_asyncio_loop, jp_server_cleanup)
    no_jupyter_cleanup,
    no_jupyter_loop,
)
from support.hub import (
    RealHub,
    consent_in_new_tab,
    lab_browser,
    lab_home,
    lab_spawner_config,
    log_in_to_lab,
    require_hub_lab,
)
from support.labext import ARTIFACTS, SIDEBAR, card
from support.scan import assert_no_secret, nasty_secret

from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from chat_oauth2_nb.oauth import mask

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def test_alice_authorizes_and_revokes_from_the_sidebar_through_the_hub(tmp_path: Path) -> None:
    require_hub_lab()
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
    hub.extra_config = lab_spawner_config()
    try:
        hub.start()
        lab_home(hub, labextension=True)
        with lab_browser(hub, "hub-sidebar") as context:
            _click_through(hub, provider, context, secret)
        assert hub.store("alice").get_token("demo", "alice") is None
        assert_no_secret(hub.log(full=True), [secret], "the hub's log")
    finally:
        hub.stop()
        provider.stop()


def _click_through(
    hub: RealHub, provider: DemoProvider, context: BrowserContext, secret: str
) -> None:
    page = context.new_page()
    log_in_to_lab(page, hub)

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
    consent_in_new_tab(context, hub, demo.locator("button.chat-oauth2-authorize")).close()

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

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

import re
import time
from pathlib import Path

import httpx
import nbformat
import pytest
from playwright.sync_api import BrowserContext, expect
from support.chromium import (  # noqa: F401 (fixtures: jp_asyncio_loop, jp_server_cleanup)
    UI_TIMEOUT_MS,
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
from support.scan import assert_no_secret

from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from chat_oauth2_nb.oauth import mask

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "hub-test.ipynb"


def _prepare_home(hub: RealHub, provider: DemoProvider) -> None:
    home = lab_home(hub)
    setup = (
        "# The client id and secret come from the environment the hub gives the server.\n"
        "from chat_oauth2_nb import create_oauth2_client\n"
        f"client = create_oauth2_client({provider.config(alias='demo')!r})\n"
        "client.setup()"
    )
    nb = nbformat.v4.new_notebook(  # type: ignore[no-untyped-call]
        cells=[
            nbformat.v4.new_code_cell(setup),  # type: ignore[no-untyped-call]
            nbformat.v4.new_code_cell("client.panel()"),  # type: ignore[no-untyped-call]
        ],
        metadata={
            "kernelspec": {
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
                "name": "python3",
            }
        },
    )
    nbformat.write(nb, home / NOTEBOOK)  # type: ignore[no-untyped-call]


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


def test_alice_authorizes_from_jupyterlab_through_the_hub(tmp_path: Path) -> None:
    require_hub_lab()
    provider = start_demo_provider(port=0, token_lifetime=3600)
    hub = RealHub(tmp_path / "hub", base_url="/jh/")
    # The one redirect URI of the whole hub, registered at the provider.
    client_id, secret = provider.register_client(redirect_uris=[f"{hub.callback_base}/demo"])
    hub.extra_config = lab_spawner_config(
        f"c.Spawner.environment = {{'CHAT_OAUTH2_DEMO_CLIENT_ID': {client_id!r},"
        f" 'CHAT_OAUTH2_DEMO_CLIENT_SECRET': {secret!r}}}\n"
    )
    try:
        hub.start()
        _prepare_home(hub, provider)
        with lab_browser(hub, "hub") as context:
            _click_through(hub, provider, context)
        record = hub.store("alice").get_token("demo", "alice")
        assert record is not None
        assert provider.introspect(record.data.token)["username"] == "alice-at-the-provider"
        assert_no_secret(hub.log(full=True), [record.data.token, secret or ""], "the hub's log")
    finally:
        hub.stop()
        provider.stop()


def _click_through(hub: RealHub, provider: DemoProvider, context: BrowserContext) -> None:
    page = context.new_page()
    log_in_to_lab(page, hub)
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
    # Consent at the provider, through the router, to alice's own server's callback.
    tab = consent_in_new_tab(context, hub, link)
    # The panel in the notebook's tab turns by itself.
    expect(status).to_have_text(re.compile(r"^Authorized"))
    record = hub.store("alice").get_token("demo", "alice")
    assert record is not None
    expect(page.locator(".chat-oauth2-panel")).to_contain_text(mask(record.data.token))
    assert record.data.token not in page.content() and record.data.token not in tab.content()

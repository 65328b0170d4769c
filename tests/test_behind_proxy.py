"""The redirect URI behind a proxy or JupyterHub: the extension's word, never a kernel's probe.

A real Jupyter server with the extension (pytest-jupyter), configured as an administrator
would; the kernel side is a client created in the test process, which inherits the
server's environment as a kernel does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from support.jupyter import Browser, jupyter_client

from chat_oauth2_nb import create_oauth2_client
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.store import open_store

Fetch = Callable[..., Awaitable[Any]]

EXT = {"chat_oauth2_nb": True}
# Port 9 (discard) on 127.0.0.1: nothing answers there, as a proxied address can't be
# reached from a kernel inside a container.
UNREACHABLE = "http://127.0.0.1:9/user/ada/"
HUB = "https://hub.example.org/prefix/services/chat-oauth2/callback"


async def hub_client(provider: DemoProvider) -> OAuth2Client:
    """A client registered at the provider with the hub-wide redirect URI only."""
    client_id, secret = provider.register_client(redirect_uris=[f"{HUB}/demo"])
    client = create_oauth2_client(
        provider.config(alias="demo"), client_id=client_id, client_secret=secret
    )
    await client.asetup()
    return client


@pytest.fixture
def on_a_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment JupyterHub gives a single-user server (requested before the server)."""
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:9/hub/api")
    yield


@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": {"jpserver_extensions": EXT}, "ChatOAuth2App": {"public_url": UNREACHABLE}}],
)
async def test_auto_uses_the_public_url_even_when_the_kernel_cannot_reach_it(
    jp_serverapp: Any, http_server_client: Any, provider: DemoProvider
) -> None:
    client = await jupyter_client(provider)
    # Before: setup() probed this URL from the kernel, failed, and silently chose a
    # 127.0.0.1 loopback URI the person's browser can't reach.
    assert client.redirect_uri == f"{UNREACHABLE}chat-oauth2/callback/demo"
    assert client.way == "jupyter"
    link = client.get_user_authorization_url("ada")
    assert str(link).startswith(f"{UNREACHABLE}chat-oauth2/start/")


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {
                "jpserver_extensions": EXT,
                "custom_display_url": "https://lab.example.org/jupyter/",
            }
        }
    ],
)
async def test_custom_display_url_is_honoured(
    jp_serverapp: Any, http_server_client: Any, provider: DemoProvider
) -> None:
    client = await jupyter_client(provider)
    assert client.redirect_uri == "https://lab.example.org/jupyter/chat-oauth2/callback/demo"


async def test_internal_address_behind_a_hub_is_reported_with_the_setting_to_change(
    on_a_hub: None,
    jp_serverapp: Any,
    http_server_client: Any,
    provider: DemoProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        client = await jupyter_client(provider)
    # No silent switch: the extension's URI is kept, and the kernel says what to fix.
    assert client.way == "jupyter"
    assert client.redirect_uri is not None and "/chat-oauth2/callback/demo" in client.redirect_uri
    warnings = [r.getMessage() for r in caplog.records if r.name == "chat_oauth2_nb"]
    assert any("c.ChatOAuth2App.public_url" in w and "configure_hub" in w for w in warnings)


@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": {"jpserver_extensions": EXT}, "ChatOAuth2App": {"hub_callback_url": HUB}}],
)
async def test_hub_wide_uri_is_used_and_its_flows_finish_at_this_server(
    jp_fetch: Fetch,
    jp_serverapp: Any,
    jp_base_url: str,
    provider: DemoProvider,
) -> None:
    client = await hub_client(provider)
    assert client.redirect_uri == f"{HUB}/demo"
    assert client.way_reason is not None and "JupyterHub" in client.way_reason
    link = client.get_user_authorization_url("ada")
    # The start link is on this server (under the hub's public origin), so the binding
    # cookie reaches this server's callback, where the router sends the browser.
    assert str(link).startswith(f"https://hub.example.org{jp_base_url}chat-oauth2/start/")
    browser = Browser(jp_fetch, provider)
    params = await browser.params(link)
    assert (await browser.callback(params)).code == 200
    data = await client.await_for_authorization("ada", timeout=5)
    assert open_store().get_token("demo", "ada").data.token == data.token  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": {"jpserver_extensions": EXT}, "ChatOAuth2App": {"hub_callback_url": HUB}}],
)
@pytest.mark.parametrize(
    "foreign",
    [
        "https://evil.example/prefix/services/chat-oauth2/callback/demo",
        f"{HUB}-evil/demo",
        f"{HUB}/demo/more",
        "https://hub.example.org/prefix/services/other/callback/demo",
    ],
)
async def test_flows_for_any_other_uri_are_still_refused(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider, foreign: str
) -> None:
    client = await hub_client(provider)
    store = open_store()
    browser = Browser(jp_fetch, provider)

    def issued_for_foreign(start_id: str) -> None:
        # As if the flow had been issued for another endpoint (another hub, a look-alike).
        with store._transaction() as db:
            db.execute("UPDATE flows SET redirect_uri = ? WHERE start_id = ?", (foreign, start_id))

    # Its start link is refused here…
    link = client.get_user_authorization_url("ada")
    issued_for_foreign(link.start_id)
    answer = await jp_fetch(
        "chat-oauth2", "start", link.start_id, follow_redirects=False, raise_error=False
    )
    assert answer.code == 400 and b"unknown here" in answer.body
    # …and so is its redirect, which leaves the flow pending and sends no code anywhere.
    link = client.get_user_authorization_url("ada")
    params = await browser.params(link)
    issued_for_foreign(link.start_id)
    answer = await browser.callback(params, raise_error=False)
    assert answer.code == 400 and b"not started for" in answer.body
    assert store.get_token("demo", "ada") is None
    assert provider.token_requests["authorization_code"] == 0
    assert store.flow_by_start_id(link.start_id).status == "pending"  # type: ignore[union-attr]

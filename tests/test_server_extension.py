"""The callback route in a real Jupyter server (pytest-jupyter) with the real demo provider."""

from __future__ import annotations

import asyncio
import html
import os
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from support.jupyter import Browser, jupyter_client
from tornado.httpclient import HTTPClientError

from chat_oauth2_nb import (
    AuthorizationDeniedError,
    StateError,
    TokenExchangeError,
    create_oauth2_client,
)
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.store import default_store_path, open_store

Fetch = Callable[..., Awaitable[Any]]


@pytest.fixture
def browser(jp_fetch: Fetch, provider: DemoProvider) -> Browser:
    return Browser(jp_fetch, provider)


async def test_redirect_uri_is_the_servers_callback(
    jp_serverapp: Any,
    http_server_client: Any,  # makes the test server accept connections, as a real one does
    provider: DemoProvider,
    jp_base_url: str,
    jp_http_port: int,
) -> None:
    client = await jupyter_client(provider)
    assert (
        client.redirect_uri
        == f"http://localhost:{jp_http_port}{jp_base_url}chat-oauth2/callback/demo"
    )
    assert client.mode == "auto"


async def test_full_flow_through_callback(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider, browser: Browser
) -> None:
    client = await jupyter_client(provider)
    assert client.redirect_uri is not None and "/a%40b/chat-oauth2/callback" in client.redirect_uri
    url = client.get_user_authorization_url("ada")
    params = await browser.params(url)
    response = await browser.callback(params)
    assert response.code == 200
    page = response.body.decode()
    assert "Authorized" in page and "close this tab" in page
    data = await client.await_for_authorization("ada", timeout=5)
    assert provider.introspect(data.token)["active"] is True
    for secret in (data.token, data.refresh_token, params["code"]):
        assert secret not in page
    # The same state again: single use.
    with pytest.raises(HTTPClientError) as info:
        await browser.callback(params)
    assert info.value.code == 400
    assert b"already used" in info.value.response.body  # type: ignore[union-attr]
    assert (await client.aget_access_token_for_user("ada")) == data


@pytest.mark.parametrize(
    "params",
    [
        {"state": "forged-" + "x" * 40, "code": "abc"},
        {"code": "abc"},
        {"state": "", "code": "abc"},
    ],
)
async def test_forged_or_missing_state_rejected(
    jp_fetch: Fetch, jp_serverapp: Any, params: dict[str, str], browser: Browser
) -> None:
    with pytest.raises(HTTPClientError) as info:
        await browser.callback(params)
    assert info.value.code == 400
    assert open_store().list_tokens() == []


async def test_expired_state_rejected(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider, browser: Browser
) -> None:
    client = await jupyter_client(provider, flow_ttl=0.3)
    url = client.get_user_authorization_url("ada")
    params = await browser.params(url)
    await asyncio.sleep(0.5)
    with pytest.raises(HTTPClientError) as info:
        await browser.callback(params)
    assert info.value.code == 400 and b"expired" in info.value.response.body  # type: ignore[union-attr]
    with pytest.raises(StateError, match="expired"):
        await client.await_for_authorization("ada", timeout=2)


async def test_callback_requires_jupyter_login(
    jp_serverapp: Any,
    http_server_client: Any,
    jp_base_url: str,
    provider: DemoProvider,
    browser: Browser,
) -> None:
    client = await jupyter_client(provider)
    params = await browser.params(client.get_user_authorization_url("ada"))
    from urllib.parse import urlencode

    url = f"{jp_base_url}chat-oauth2/callback/demo?{urlencode(params)}"
    with pytest.raises(HTTPClientError) as info:
        await http_server_client.fetch(url, follow_redirects=False)
    assert info.value.code in (302, 403)
    if info.value.code == 302:
        assert "/login" in info.value.response.headers["Location"]  # type: ignore[union-attr]
    assert open_store().get_token("demo", "ada") is None
    # The flow was not used up by the rejected request: the person can still log in and finish.
    assert open_store().get_flow(params["state"]).status == "pending"  # type: ignore[union-attr]


async def test_provider_error_is_escaped_and_reaches_kernel(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider, browser: Browser
) -> None:
    client = await jupyter_client(provider)
    url = client.get_user_authorization_url("ada")
    state = parse_qs(urlsplit(url.provider_url).query)["state"][0]
    await browser.open(url)
    params = {
        "state": state,
        "error": "access_denied",
        "error_description": '<script>alert("x")</script> & <b>bold</b>',
    }
    with pytest.raises(HTTPClientError) as info:
        await browser.callback(params)
    assert info.value.code == 400
    page = info.value.response.body.decode()  # type: ignore[union-attr]
    assert "<script>" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;" in page and "access_denied" in page
    with pytest.raises(AuthorizationDeniedError) as denied:
        await client.await_for_authorization("ada", timeout=5)
    assert denied.value.error == "access_denied"


async def test_token_endpoint_failure_is_502(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider, browser: Browser
) -> None:
    client = await jupyter_client(provider)
    params = await browser.params(client.get_user_authorization_url("ada"))
    provider.inject_fault("token", status=500, body="<html>boom</html>", content_type="text/html")
    with pytest.raises(HTTPClientError) as info:
        await browser.callback(params)
    assert info.value.code == 502
    assert b"HTTP 500" in info.value.response.body  # type: ignore[union-attr]
    with pytest.raises(TokenExchangeError, match="HTTP 500"):
        await client.await_for_authorization("ada", timeout=5)
    assert open_store().get_token("demo", "ada") is None


async def test_wrong_client_secret_shows_invalid_client(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider, browser: Browser
) -> None:
    client = create_oauth2_client(
        provider.config(alias="demo"),
        client_id=provider.client_id,
        client_secret="wrong-secret-xyz",
    )
    await client.asetup()
    params = await browser.params(client.get_user_authorization_url("ada"))
    with pytest.raises(HTTPClientError) as info:
        await browser.callback(params)
    page = info.value.response.body.decode()  # type: ignore[union-attr]
    assert info.value.code == 502 and "invalid_client" in page
    # The advice names where the refused secret came from (the server exchanged the code).
    assert "the client secret (it came from the client_secret= argument)" in html.unescape(page)
    assert "wrong-secret-xyz" not in page


async def test_store_file_modes(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider, browser: Browser
) -> None:
    """The store the server writes a token into is private: folder 0700, files 0600."""
    client = await jupyter_client(provider)
    assert client.way == "jupyter", client.way_reason  # not a silent loopback fallback
    response = await browser.callback(
        await browser.params(client.get_user_authorization_url("ada"))
    )
    assert response.code == 200
    data = await client.await_for_authorization("ada", timeout=10)
    path = default_store_path()
    assert str(path).startswith(os.environ["JUPYTER_DATA_DIR"])
    assert open_store().get_token("demo", "ada") is not None  # written by the server
    assert data.token
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    files = list(path.parent.iterdir())
    assert path in files
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_extension_is_enabled_by_install() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "JUPYTER_PLATFORM_DIRS": "1"},
    )
    out = result.stdout + result.stderr
    line = next(x for x in out.splitlines() if "chat_oauth2_nb" in x and "enabled" in x)
    assert "enabled" in line
    assert "chat_oauth2_nb" in out and "OK" in out.split("chat_oauth2_nb", 1)[1][:200]

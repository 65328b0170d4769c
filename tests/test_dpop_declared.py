"""DPoP for a provider declared on the Jupyter server: the key stays with the server.

A real Jupyter server declares the demo provider with ``dpop: True``. Its code exchange and
refreshes prove the key it holds; a kernel that does not share its store gets no key, only
a proof per API request from the server (``…/chat-oauth2/proof/<alias>``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.jupyter import Browser
from support.scan import assert_no_secret, nasty_secret

from chat_oauth2_nb import NotAuthorizedError, create_oauth2_client
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.lifecycle.remote import RemoteGrants
from chat_oauth2_nb.oauth.dpop import DPoPKey
from chat_oauth2_nb.store import Store, open_store

Fetch = Callable[..., Awaitable[Any]]
SECRET_ENV = "CHAT_OAUTH2_DEMO_CLIENT_SECRET"


@pytest.fixture
def declared(provider: DemoProvider, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    client_id, secret = provider.register_client(client_secret=nasty_secret("GOCSPX-"), scopes=None)
    assert secret is not None
    monkeypatch.setenv(SECRET_ENV, secret)
    return client_id, secret


@pytest.fixture
def jp_server_config(provider: DemoProvider, declared: tuple[str, str]) -> dict[str, Any]:
    config = {**provider.config(alias="demo"), "clientId": declared[0], "dpop": True}
    return {
        "ServerApp": {"jpserver_extensions": {"chat_oauth2_nb": True}},
        "ChatOAuth2App": {"providers": {"demo": config}},
    }


async def test_a_kernel_gets_proofs_from_the_server_that_holds_the_key(
    jp_serverapp: Any,
    http_server_client: Any,
    jp_fetch: Fetch,
    provider: DemoProvider,
    tmp_path: Path,
) -> None:
    browser = Browser(jp_fetch, provider)
    client = await asyncio.to_thread(create_oauth2_client, "demo")
    assert isinstance(client.grants, RemoteGrants) and client.config.dpop
    url = await asyncio.to_thread(client.get_user_authorization_url, "ada")
    response = await browser.callback(await browser.params(url))
    assert response.code == 200
    await client.await_for_authorization("ada", timeout=60)
    held = open_store().get_token("demo", "ada")
    assert held is not None and held.data.dpop_key is not None
    jkt = DPoPKey.from_json(held.data.dpop_key).thumbprint

    # A store the holder does not share (as a Jupyter server's own store is for a provider
    # the hub holds): it has the token as the holder hands it out, without its key.
    own = Store(tmp_path / "kernel" / "store.sqlite3")
    copy = dataclasses.replace(held.data, dpop_key=None, refresh_token=None)
    own.put_token("demo", "ada", copy, provider=held.provider)
    apart = await asyncio.to_thread(create_oauth2_client, "demo", store=own)
    token = await apart.aget_access_token_for_user("ada")
    assert token is not None and token.token_type == "DPoP" and token.dpop_key is None
    assert provider.introspect(token.token)["cnf"] == {"jkt": jkt}
    proofs_before = len(provider.dpop.proofs)
    async with httpx.AsyncClient(auth=apart.auth("ada")) as http:
        answer = await http.get(provider.api_url)
    assert answer.status_code == 200, answer.text
    assert len(provider.dpop.proofs) == proofs_before + 1
    answer = await asyncio.to_thread(
        httpx.get,
        provider.api_url,
        auth=apart.auth("ada"),  # the sync flow too
    )
    assert answer.status_code == 200
    # As a Bearer token, it is refused.
    leaked = httpx.get(provider.api_url, headers={"Authorization": f"Bearer {token.token}"})
    assert leaked.status_code == 401
    # The server refreshes with the same key; the kernel's next proof comes from it again.
    fresh = await apart.arefresh_user_access_token("ada")
    assert fresh.token != token.token and provider.introspect(fresh.token)["cnf"] == {"jkt": jkt}
    async with httpx.AsyncClient(auth=apart.auth("ada")) as http:
        assert (await http.get(provider.api_url)).status_code == 200
    # The shared-store kernel kept the server's key through the holder's answers.
    shared = open_store().get_token("demo", "ada")
    assert shared is not None and shared.data.dpop_key == held.data.dpop_key
    # No key or proof on the kernel side's channels.
    seen = repr(apart) + repr(fresh) + json.dumps([e.__dict__ for e in apart.http_log], default=str)
    assert_no_secret(seen, [held.data.dpop_key, *provider.dpop.proofs], "the kernel side")


async def test_the_server_signs_only_for_the_token_it_holds(
    jp_serverapp: Any, http_server_client: Any, jp_fetch: Fetch, provider: DemoProvider
) -> None:
    browser = Browser(jp_fetch, provider)
    client = await asyncio.to_thread(create_oauth2_client, "demo")
    url = await asyncio.to_thread(client.get_user_authorization_url, "ada")
    assert (await browser.callback(await browser.params(url))).code == 200
    await client.await_for_authorization("ada", timeout=60)
    request = {"method": "GET", "url": provider.api_url, "have": "0" * 64, "nonce": None}
    with pytest.raises(NotAuthorizedError, match="changed since the caller read it"):
        await asyncio.to_thread(client.grants.proof, "ada", request)
    with pytest.raises(NotAuthorizedError, match="No DPoP-bound token"):
        await asyncio.to_thread(client.grants.proof, "bob", request)

"""A provider declared on the Jupyter server: its alias mistyped, and its secret refused.

A real Jupyter server (pytest-jupyter) declares ``corp-sso`` (c.ChatOAuth2App.providers),
its secret in the server's environment, a stale one. The kernel side (this process) types
the alias wrong in create_oauth2_client() and in ``%oauth2``, and gets the declared alias
suggested; the magic shows the declared provider's panel; the refused secret's advice says
it came from the server's environment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from IPython.core.error import UsageError
from support.jupyter import Browser

from chat_oauth2_nb import ConfigurationError, TokenExchangeError, create_oauth2_client
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.notebook.magic import _clients as magic_clients
from chat_oauth2_nb.notebook.magic import oauth2_magic

Fetch = Callable[..., Awaitable[Any]]
SECRET_ENV = "CHAT_OAUTH2_CORP_SSO_CLIENT_SECRET"


@pytest.fixture
def jp_server_config(provider: DemoProvider, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv(SECRET_ENV, "a-stale-secret-from-last-year")
    return {
        "ServerApp": {"jpserver_extensions": {"chat_oauth2_nb": True}},
        "ChatOAuth2App": {
            "providers": {
                "corp-sso": {**provider.config(alias="corp-sso"), "clientId": provider.client_id}
            }
        },
    }


async def test_a_mistyped_declared_alias_gets_the_declared_one(
    jp_serverapp: Any, http_server_client: Any
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await asyncio.to_thread(create_oauth2_client, "corp-ssso")
    assert str(caught.value) == (
        "Argument 'config' is 'corp-ssso', which is neither a preset nor a declared provider. "
        "Did you mean 'corp-sso'? The presets are: github, gitlab, google, keycloak, "
        "microsoft, oidc, rocketchat; declared on this Jupyter server "
        "(c.ChatOAuth2App.providers): corp-sso; or pass a config dict."
    )
    with pytest.raises(UsageError) as magic:
        await asyncio.to_thread(oauth2_magic, "corp-ssso")
    assert str(magic.value).startswith(
        "No preset named 'corp-ssso' nor a declared provider. Did you mean 'corp-sso'?"
    )
    panel = await asyncio.to_thread(oauth2_magic, "corp-sso")
    try:
        assert panel._client.held_elsewhere and panel._client.alias == "corp-sso"
    finally:
        for key in [k for k in magic_clients if k[1] == "corp-sso"]:
            magic_clients.pop(key).close()


async def test_a_refused_declared_secret_says_it_came_from_the_servers_environment(
    jp_fetch: Fetch, jp_serverapp: Any, http_server_client: Any, provider: DemoProvider
) -> None:
    client = await asyncio.to_thread(create_oauth2_client, "corp-sso")
    try:
        browser = Browser(jp_fetch, provider)
        params = await browser.params(client.get_user_authorization_url("ada"))
        await browser.callback(params, alias="corp-sso", raise_error=False)
        with pytest.raises(TokenExchangeError) as caught:
            await asyncio.to_thread(client.wait_for_authorization, "ada", 60)
        assert caught.value.error == "invalid_client"
        assert (
            "the client secret (it came from the environment variable "
            f"{SECRET_ENV} of the Jupyter server)" in str(caught.value)
        )
        assert "a-stale-secret" not in str(caught.value)
    finally:
        client.close()

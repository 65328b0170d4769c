"""Errors that point at the typo, and say where a value came from: the texts a person reads.

Each entry point a person types a name into gets "Did you mean …": a config dict's keys,
create_oauth2_client()'s keywords, a preset's name and parameters, a provider declared on the
server. A refused client secret's advice names where the secret came from. The client's HTTP
log slices like a list while other threads write to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from chat_oauth2_nb import ConfigurationError, NotAuthorizedError, TokenExchangeError
from chat_oauth2_nb.declarations import resolve_declarations
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.kernel.httplog import HttpLog
from chat_oauth2_nb.lifecycle.declared import DeclaredProviders
from chat_oauth2_nb.notebook.client import OAuth2Client, create_oauth2_client
from chat_oauth2_nb.oauth import HttpExchange

ENDPOINTS = {"alias": "acme", "authUri": "https://a.example/auth"}


def _refused(call: Callable[[], Any]) -> str:
    with pytest.raises(ConfigurationError) as caught:
        call()
    return str(caught.value)


def test_a_misspelled_config_key_gets_the_key_it_meant_without_the_list() -> None:
    config = {**ENDPOINTS, "acessTokenUri": "https://a.example/token"}
    said = _refused(lambda: create_oauth2_client(config, client_id="id", client_secret="s"))
    assert said == (
        "Config field 'acessTokenUri' is not a known config key. Did you mean 'accessTokenUri'?"
    )
    snake = {**ENDPOINTS, "access_token_uri": "https://a.example/t", "client_secert": "x"}
    assert _refused(lambda: create_oauth2_client(snake, client_id="id")).endswith(
        "Did you mean 'client_secret'?"
    )
    # Nothing close: the keys, so the person can pick.
    odd = {**ENDPOINTS, "accessTokenUri": "https://a.example/t", "zzz": 1}
    assert "The keys are: acceptedIssuers, accessTokenUri, alias" in _refused(
        lambda: create_oauth2_client(odd, client_id="id", client_secret="s")
    )


def test_a_misspelled_keyword_is_not_called_a_preset_parameter() -> None:
    config = {**ENDPOINTS, "accessTokenUri": "https://a.example/token"}
    said = _refused(lambda: create_oauth2_client(config, clientid="id", client_secret="s"))
    assert said == (
        "Keyword argument 'clientid' is not a keyword of create_oauth2_client(). "
        "Did you mean 'client_id='?"
    )
    with_preset = _refused(lambda: create_oauth2_client("google", redirect_url="https://x/cb"))
    assert with_preset == (
        "Keyword argument 'redirect_url' is neither a keyword of create_oauth2_client() nor "
        "of the 'google' preset. Did you mean 'redirect_uri='?"
    )


def test_a_misspelled_preset_or_preset_parameter_gets_the_name_it_meant() -> None:
    said = _refused(lambda: create_oauth2_client("gihtub"))
    assert said.startswith(
        "Argument 'config' names the preset 'gihtub', which does not exist. "
        "Did you mean 'github'? The presets are: github, gitlab, google"
    )
    param = _refused(lambda: create_oauth2_client("microsoft", tennant="contoso.example"))
    assert param == (
        "Preset parameter 'tennant' is not a parameter of the 'microsoft' preset. "
        "Did you mean 'tenant'? Its parameters are: tenant."
    )


def test_an_undeclared_alias_on_the_server_gets_the_declared_one_it_meant(
    provider: DemoProvider,
) -> None:
    declared = resolve_declarations(
        {
            "corp-sso": {
                **provider.config(alias="corp-sso"),
                "clientId": provider.client_id,
                "clientSecret": provider.client_secret,
            }
        },
        {},
    )
    providers = DeclaredProviders(declared)
    with pytest.raises(NotAuthorizedError) as caught:
        providers.config_for("corp-ssso")
    assert str(caught.value) == (
        "No provider is declared as 'corp-ssso' here. Did you mean 'corp-sso'? Declared "
        "(c.ChatOAuth2App.providers): corp-sso. Ask the administrator to declare it there, or "
        "pass a config and credentials to create_oauth2_client()."
    )


def _exchange_refused(client: OAuth2Client, provider: DemoProvider) -> TokenExchangeError:
    url = client.get_user_authorization_url("ada")
    provider.approve(url)
    with pytest.raises(TokenExchangeError) as caught:
        client.wait_for_authorization("ada", timeout=60)
    return caught.value


def test_a_refused_secret_says_it_came_from_the_argument(
    make_client: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = make_client(client_secret="not-the-secret")
    refused = _exchange_refused(client, provider)
    assert refused.error == "invalid_client"
    assert refused.hint == (
        f"Check the client id {provider.client_id!r} (from the client_id= argument) and the "
        "client secret (it came from the client_secret= argument): copy it again from the "
        "provider's app page. The client authenticates by 'client_secret_basic'; "
        "'client_secret_basic' and 'client_secret_post' are the two usual ones "
        "(client_auth_method=)."
    )
    assert "not-the-secret" not in str(refused)


def test_a_refused_secret_says_it_came_from_the_environment(
    make_client: Callable[..., OAuth2Client],
    provider: DemoProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAT_OAUTH2_DEMO_CLIENT_ID", provider.client_id)
    monkeypatch.setenv("CHAT_OAUTH2_DEMO_CLIENT_SECRET", "stale-secret")
    client = make_client(client_id=None, client_secret=None)
    refused = _exchange_refused(client, provider)
    assert "(from the environment variable CHAT_OAUTH2_DEMO_CLIENT_ID)" in str(refused)
    assert (
        "the client secret (it came from the environment variable CHAT_OAUTH2_DEMO_CLIENT_SECRET)"
        in str(refused)
    )
    assert "stale-secret" not in str(refused)


def test_a_declared_providers_credentials_name_the_server_or_hub_config(
    provider: DemoProvider,
) -> None:
    entry = {**provider.config(alias="corp"), "clientId": provider.client_id}
    environ = {"CHAT_OAUTH2_CORP_CLIENT_SECRET": "s3cret"}
    on_server = resolve_declarations({"corp": entry}, environ)["corp"]
    assert on_server.origins == {
        "client_id": "c.ChatOAuth2App.providers['corp'] (clientId)",
        "client_secret": "the environment variable CHAT_OAUTH2_CORP_CLIENT_SECRET of the "
        "Jupyter server",
    }
    on_hub = resolve_declarations(
        {"corp": {**entry, "clientSecret": "s3cret"}},
        {},
        where="configure_hub(providers=...)",
        holder="JupyterHub",
    )["corp"]
    assert on_hub.origins["client_secret"] == "configure_hub(providers=...)['corp'] (clientSecret)"
    # The origins travel with the config through the store (the server exchanges the code).
    assert "s3cret" not in str(on_hub.to_mapping()["origins"])


def _exchange(n: int) -> HttpExchange:
    return HttpExchange(
        method="GET",
        url=f"https://a.example/{n}",
        status=200,
        elapsed_ms=1.0,
        request_body="",
        response_body="",
        started_at=0.0,
    )


def test_the_http_log_slices_like_a_list_and_stays_bounded_while_threads_append() -> None:
    log = HttpLog(50)
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            log.append(_exchange(n))
            n += 1

    writers = [threading.Thread(target=write) for _ in range(3)]
    for thread in writers:
        thread.start()
    try:
        for _ in range(2000):
            last = log[-6:]
            assert isinstance(last, list) and len(last) <= 6
            assert len(list(log)) <= 50
    finally:
        stop.set()
        for thread in writers:
            thread.join()
    assert len(log) == 50 and log.maxlen == 50
    assert [e.url for e in log[-2:]] == [log[-2].url, log[-1].url]


def test_the_clients_http_log_slices(
    make_client: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = make_client()
    provider.approve(client.get_user_authorization_url("ada"))
    client.wait_for_authorization("ada", timeout=60)
    client.refresh_user_access_token("ada")
    last = client.http_log[-6:]
    assert isinstance(last, list)
    assert [e.url for e in last][-1] == provider.config()["accessTokenUri"]


def test_a_misspelled_mode_names_where_it_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {**ENDPOINTS, "accessTokenUri": "https://a.example/token"}
    said = _refused(
        lambda: create_oauth2_client(config, client_id="id", client_secret="s", mode="devcie")  # type: ignore[arg-type]
    )
    assert said == (
        "Argument 'mode' is 'devcie'. Did you mean 'device'? Use 'auto', 'jupyter', "
        "'loopback', 'device' or 'paste'."
    )
    monkeypatch.setenv("CHAT_OAUTH2_NB_MODE", "loopbak")
    from_env = _refused(lambda: create_oauth2_client(config, client_id="id", client_secret="s"))
    assert from_env.startswith(
        "Environment variable 'CHAT_OAUTH2_NB_MODE' is 'loopbak'. Did you mean 'loopback'?"
    )

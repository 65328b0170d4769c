"""Each preset's whole flow, refresh and revoke against the demo provider emulating it.

The demo's address differs from the real one, so a preset that takes a base URL gets the
demo's, and the fixed-URL presets (Google, GitHub, Microsoft) get their endpoints moved onto
the demo while everything else (revokeStyle, authUriParams, scopes, client authentication,
where people revoke) stays the preset's: the quirk behaviour is what is tested.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from chat_oauth2_nb import TokenRefreshError, create_oauth2_client
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.demo._quirks import KEYCLOAK_REALM
from chat_oauth2_nb.errors import TokenExchangeError
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth import parse_token_response
from chat_oauth2_nb.presets import config as preset
from chat_oauth2_nb.store import Store

Run = Callable[..., tuple[DemoProvider, OAuth2Client]]


def _moved(name: str, issuer: str, **params: Any) -> dict[str, Any]:
    """The preset with its endpoints on the demo provider (fixed-URL presets only)."""
    data = preset(name, **params)
    moves = {
        "authUri": "/authorize",
        "accessTokenUri": "/token",
        "refreshTokenUri": "/token",
        "deviceAuthorizationUri": "/device_authorization",
        "jwksUri": "/jwks.json",
    }
    for key, path in moves.items():
        if key in data:
            data[key] = issuer + path
    if "issuer" in data:
        data["issuer"] = issuer
    if data.get("revokeStyle") == "github":
        data["revokeTokenUri"] = issuer + "/applications/{client_id}/token"
    elif "revokeTokenUri" in data:
        data["revokeTokenUri"] = issuer + "/revoke"
    return data


def _config(name: str, issuer: str) -> dict[str, Any]:
    if name == "gitlab":
        data = preset("gitlab", base_url=issuer)
        data["issuer"] = issuer
        return data
    if name == "keycloak":
        return preset("keycloak", base_url=issuer, realm=KEYCLOAK_REALM)
    if name == "rocketchat":
        return preset("rocketchat", server_url=issuer)
    return _moved(name, issuer)


@pytest.fixture
def run(store: Store) -> Iterator[Run]:
    """Start a demo provider with a quirk profile and authorize 'ada' through a preset."""
    started: list[tuple[DemoProvider, OAuth2Client]] = []

    def go(
        name: str,
        change: Callable[[dict[str, Any]], None] = lambda _: None,
        setup: Callable[[DemoProvider], None] = lambda _: None,
    ) -> tuple[DemoProvider, OAuth2Client]:
        provider = DemoProvider(quirks=name).start()
        setup(provider)
        data = _config(name, provider.issuer)
        change(data)
        client = create_oauth2_client(
            data,
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            mode="loopback",
            store=store,
        )
        started.append((provider, client))
        answer = provider.approve(client.get_user_authorization_url("ada"))
        assert answer.status_code == 200, answer.text
        client.wait_for_authorization("ada", timeout=10)
        return provider, client

    yield go
    for provider, client in started:
        client.close()
        provider.stop()


def _api_ok(provider: DemoProvider, client: OAuth2Client) -> bool:
    return httpx.get(provider.api_url, auth=client.auth("ada"), timeout=5).status_code == 200


def _requests(client: OAuth2Client, path: str) -> list[str]:
    return [f"{e.method} {e.url}" for e in client.http_log if path in e.url]


@pytest.mark.parametrize(
    "name", ["google", "github", "microsoft", "gitlab", "keycloak", "rocketchat"]
)
def test_every_preset_flow_refresh_revoke(run: Run, name: str) -> None:
    def setup(provider: DemoProvider) -> None:
        # A GitHub App with expiring user tokens: the only GitHub tokens that refresh.
        provider.quirks.github_expiring_tokens = name == "github"

    provider, client = run(name, setup=setup)
    first = client.get_access_token_for_user("ada")
    assert first is not None and first.refresh_token
    assert _api_ok(provider, client)

    refreshed = client.refresh_user_access_token("ada")
    assert refreshed.token != first.token
    assert _api_ok(provider, client)

    assert client.revoke_user_access_token("ada") is True
    assert client.get_access_token_for_user("ada") is None
    revocable = name not in ("microsoft", "rocketchat")
    # Revoked at the provider exactly where it has an endpoint; deleted here in every case.
    assert (provider.introspect(refreshed.token)["active"] is False) is revocable
    if revocable:
        assert client.revoke_advice() is None
    else:
        assert _requests(client, "/revoke") == []


def test_google_refresh_token_needs_offline_access_and_consent(run: Run) -> None:
    _, client = run("google", change=lambda d: d.update(authUriParams={}))
    data = client.get_access_token_for_user("ada")
    assert data is not None and data.refresh_token is None
    with pytest.raises(TokenRefreshError) as caught:
        client.refresh_user_access_token("ada")
    assert "access_type" in (caught.value.hint or "")


def test_google_revokes_with_one_token_request(run: Run) -> None:
    provider, client = run("google")
    data = client.get_access_token_for_user("ada")
    assert data is not None
    assert client.revoke_user_access_token("ada") is True
    sent = [e for e in client.http_log if e.url.endswith("/revoke")]
    assert len(sent) == 1 and sent[0].status == 200
    assert "token_type_hint" not in sent[0].request_body
    assert provider.introspect(data.token)["active"] is False  # the whole grant went


def test_rfc7009_style_on_google_counts_the_already_revoked_token_as_revoked(run: Run) -> None:
    # RFC 7009 revokes the refresh token, then the access token: Google already revoked the
    # grant with the first and answers 400 invalid_token to the second. A token the provider
    # says is already invalid is revoked (issue 17, finding 15): the revocation succeeds.
    provider, client = run("google", change=lambda d: d.update(revokeStyle="rfc7009"))
    data = client.get_access_token_for_user("ada")
    assert data is not None
    assert client.revoke_user_access_token("ada") is True
    sent = [e for e in client.http_log if e.url.endswith("/revoke")]
    assert [e.status for e in sent] == [200, 400] and "invalid_token" in sent[1].response_body
    assert provider.introspect(data.token)["active"] is False
    assert client.get_access_token_for_user("ada") is None


def test_github_oauth_app_tokens_do_not_expire_and_have_no_refresh_token(run: Run) -> None:
    provider, client = run("github", change=lambda d: d.update(defaultScopes=["read:user", "gist"]))
    data = client.get_access_token_for_user("ada")
    assert data is not None
    assert data.refresh_token is None and data.expires_at is None
    # GitHub's "read:user,gist" reads as two scopes.
    assert data.scopes == ("read:user", "gist")
    with pytest.raises(TokenRefreshError):
        client.refresh_user_access_token("ada")
    assert _api_ok(provider, client)


def test_github_revokes_with_delete_basic_auth_and_json(run: Run) -> None:
    provider, client = run("github")
    data = client.get_access_token_for_user("ada")
    assert data is not None
    assert client.revoke_user_access_token("ada") is True
    (sent,) = [e for e in client.http_log if "/applications/" in e.url]
    assert sent.method == "DELETE" and sent.status == 204
    assert sent.url == f"{provider.issuer}/applications/{provider.client_id}/token"
    assert data.token not in sent.request_body and "access_token" in sent.request_body
    assert provider.introspect(data.token)["active"] is False


def test_github_answers_form_encoded_unless_asked_for_json(run: Run) -> None:
    provider, client = run(
        "github", setup=lambda p: setattr(p.quirks, "github_expiring_tokens", True)
    )
    stored = client.get_access_token_for_user("ada")
    assert stored is not None and stored.refresh_token
    answer = httpx.post(
        f"{provider.issuer}/token",
        data={"grant_type": "refresh_token", "refresh_token": stored.refresh_token},
        auth=(provider.client_id, provider.client_secret),
        headers={"Accept": "*/*"},
    )
    assert answer.headers["content-type"].startswith("application/x-www-form-urlencoded")
    data = parse_token_response(
        TokenExchangeError,
        "Refreshing",
        answer.status_code,
        answer.headers,
        answer.content,
        received_at=dt.datetime.now(dt.timezone.utc),
    )
    assert data.refresh_token and data.scopes == ("read:user",)


def test_microsoft_needs_offline_access_for_a_refresh_token(run: Run) -> None:
    _, client = run("microsoft", change=lambda d: d.update(defaultScopes=["User.Read"]))
    data = client.get_access_token_for_user("ada")
    assert data is not None and data.refresh_token is None
    with pytest.raises(TokenRefreshError) as caught:
        client.refresh_user_access_token("ada")
    assert "offline_access" in (caught.value.hint or "")


def test_microsoft_revoke_deletes_here_and_says_where_people_revoke(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    _, client = run("microsoft")
    with caplog.at_level(logging.WARNING, logger="chat_oauth2_nb"):
        assert client.revoke_user_access_token("ada") is True
    assert client.get_access_token_for_user("ada") is None
    assert "https://myapplications.microsoft.com/" in caplog.text
    assert "https://myapplications.microsoft.com/" in (client.revoke_advice() or "")
    assert _requests(client, "/revoke") == []

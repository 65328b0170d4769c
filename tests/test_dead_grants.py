"""Dead and orphaned grants (issue 17, finding 15), performed against the demo provider.

A grant the person ended at the provider (its "connected apps" page) must stop being used
and say "authorize again" everywhere; each new authorization ends the grant it replaces; a
revocation goes as far as it can; a client that can never revoke says so.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from support.scan import assert_no_secret
from support.wait import wait_until

from chat_oauth2_nb import GrantRevokedError, TokenRefreshError, TokenRevokeError
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.store import Store

Make = Callable[..., OAuth2Client]
PATIENCE = 60.0


def authorize(client: OAuth2Client, provider: DemoProvider, user: str = "ada") -> None:
    answer = provider.approve(client.get_user_authorization_url(user))
    assert answer.status_code == 200, answer.text
    client.wait_for_authorization(user, timeout=PATIENCE)


def widgets_of(root: Any) -> list[Any]:
    return [root, *(w for child in getattr(root, "children", ()) for w in widgets_of(child))]


def api_status(provider: DemoProvider, token: str) -> int:
    answer = httpx.get(
        provider.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=PATIENCE
    )
    return answer.status_code


# -- a grant the provider ended is dead ---------------------------------------------------------


def test_a_grant_removed_at_the_provider_stops_being_used_and_says_authorize_again(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, store: Store
) -> None:
    client = authorized()
    dead = client.get_access_token_for_user("ada")
    assert dead is not None
    assert provider.remove_app() == 1  # the person removes the app at the provider
    with pytest.raises(GrantRevokedError) as caught:
        client.refresh_user_access_token("ada")
    assert caught.value.error == "invalid_grant" and "authorize again" in str(caught.value)
    assert isinstance(caught.value, TokenRefreshError)  # code that caught refusals still does
    # Reads stop handing out the dead token, in this client and in any other on the store.
    for reader in (client, OAuth2Client(client.config, store=store, mode="loopback")):
        with pytest.raises(GrantRevokedError, match="authorize again"):
            reader.get_access_token_for_user("ada")
    record = store.get_token("demo", "ada")
    assert record is not None and dead.token not in record.data.to_json()
    assert dead.refresh_token and dead.refresh_token not in record.data.to_json()


def test_an_invalid_grant_that_echoes_the_refresh_token_masks_it_everywhere(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, secret_log: Any
) -> None:
    client = authorized()
    data = client.get_access_token_for_user("ada")
    assert data is not None and data.refresh_token
    echo = f"refresh token {data.refresh_token} is revoked"
    body = json.dumps({"error": "invalid_grant", "error_description": echo})
    provider.inject_fault("token", status=400, body=body, content_type="application/json")
    with pytest.raises(GrantRevokedError) as caught:
        client.refresh_user_access_token("ada")
    texts = f"{caught.value!s} {caught.value!r} {caught.value.error_description} {secret_log.text}"
    assert_no_secret(texts, [data.token, data.refresh_token], "the dead grant's error and log")


def test_a_stale_token_of_a_dead_grant_is_not_returned_by_a_plain_read(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    provider.set_token_lifetime(2)
    client = authorized(leeway=30.0)
    record = client.stored_token("ada")
    assert record is not None
    wait_until(lambda: record.data.is_expired(30.0), "the token to go stale", PATIENCE)
    provider.remove_app()
    # The token is stale: the read refreshes, hears invalid_grant, and marks the grant dead.
    with pytest.raises(GrantRevokedError):
        client.get_access_token_for_user("ada")
    refreshes = provider.token_requests["refresh_token"]
    with pytest.raises(GrantRevokedError):
        client.get_access_token_for_user("ada")
    assert provider.token_requests["refresh_token"] == refreshes  # no request for a dead grant


def test_a_provider_that_fails_otherwise_keeps_the_token(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = authorized()
    before = client.get_access_token_for_user("ada")
    provider.inject_fault("token", status=503, body="<html>down</html>")
    with pytest.raises(TokenRefreshError) as caught:
        client.refresh_user_access_token("ada")
    assert not isinstance(caught.value, GrantRevokedError)
    assert client.get_access_token_for_user("ada") == before


def test_a_dead_grant_does_not_block_a_new_authorization(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = authorized()
    provider.remove_app()
    with pytest.raises(GrantRevokedError):
        client.refresh_user_access_token("ada")
    # Asking for more scopes reads the stored grant's scopes: a dead one is no obstacle.
    url = client.get_user_authorization_url("ada", scopes=["email"])
    assert provider.approve(url).status_code == 200
    fresh = client.wait_for_authorization("ada", timeout=PATIENCE)
    assert api_status(provider, fresh.token) == 200
    assert client.get_access_token_for_user("ada") == fresh
    assert client.revoke_user_access_token("ada") is True


def test_revoking_a_dead_grant_deletes_it_without_asking_the_provider(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, store: Store
) -> None:
    client = authorized()
    provider.remove_app()
    with pytest.raises(GrantRevokedError):
        client.refresh_user_access_token("ada")
    sent = len(client.http_log)
    assert client.revoke_user_access_token("ada") is True
    assert store.get_token("demo", "ada") is None and len(client.http_log) == sent


# -- a 401 after a refresh is a sign too ----------------------------------------------------------


def refusing_api() -> tuple[httpx.MockTransport, list[str]]:
    """An API on 127.0.0.1 that refuses every token it is sent (the grant died for it)."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    return httpx.MockTransport(answer), seen


def test_an_api_that_refuses_the_refreshed_token_too_ends_the_grant(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = authorized()
    transport, seen = refusing_api()
    with httpx.Client(transport=transport) as http:
        first = http.get("http://127.0.0.1:9/me", auth=client.auth("ada"))
        assert first.status_code == 401 and len(seen) == 2  # refreshed once, retried once
        assert provider.token_requests["refresh_token"] == 1
        # The refreshed token was refused too: not refreshed again at every call, for ever.
        for _ in range(3):
            with pytest.raises(GrantRevokedError, match="authorize again"):
                http.get("http://127.0.0.1:9/me", auth=client.auth("ada"))
    assert provider.token_requests["refresh_token"] == 1 and len(seen) == 2


def test_the_async_flow_ends_the_grant_the_same_way(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = authorized()
    transport, seen = refusing_api()

    async def calls() -> None:
        async with httpx.AsyncClient(transport=transport) as http:
            auth = client.auth("ada")
            assert (await http.get("http://127.0.0.1:9/me", auth=auth)).status_code == 401
            with pytest.raises(GrantRevokedError):
                await http.get("http://127.0.0.1:9/me", auth=auth)

    asyncio.run(calls())
    assert provider.token_requests["refresh_token"] == 1 and len(seen) == 2


# -- the panel says so ----------------------------------------------------------------------------


def test_the_panel_says_the_grant_is_dead_and_offers_to_authorize_again(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    from chat_oauth2_nb.widgets import OAuth2Panel

    client = authorized()
    provider.remove_app()
    with pytest.raises(GrantRevokedError):
        client.refresh_user_access_token("ada")
    panel = OAuth2Panel(client, "ada")
    try:

        def words() -> str:
            texts = [
                str(w.value) for w in widgets_of(panel) if "chat-oauth2-status" in w._dom_classes
            ]
            return html.unescape(re.sub(r"<[^>]+>", " ", " ".join(texts)))

        wait_until(lambda: "authorize again" in words(), "the dead grant", PATIENCE, detail=words)
        assert not words().strip().startswith("Authorized")
        assert panel.state.link is not None  # a fresh Authorize link is on offer
    finally:
        panel.close()


# -- "Authorize again" ends the grant it replaces -------------------------------------------------


def test_each_new_authorization_revokes_the_grant_it_replaces(
    make_client: Make, provider: DemoProvider
) -> None:
    client = make_client()
    tokens = []
    for _ in range(3):
        authorize(client, provider)
        data = client.get_access_token_for_user("ada")
        assert data is not None
        tokens.append(data)
    assert provider.grants_active("demo-user") == 1  # not 3
    assert [api_status(provider, t.token) for t in tokens] == [401, 401, 200]
    assert client.revoke_user_access_token("ada") is True
    assert provider.grants_active("demo-user") == 0


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="chat_oauth2_nb"):
        yield caplog


def test_a_replaced_grant_without_a_revocation_endpoint_is_logged_and_advised(
    make_client: Make, provider: DemoProvider, warnings: pytest.LogCaptureFixture
) -> None:
    config = provider.config(alias="demo")
    del config["revokeTokenUri"]
    client = make_client(config=config)
    authorize(client, provider)
    authorize(client, provider)
    assert provider.grants_active("demo-user") == 2
    assert "stays active at the provider" in warnings.text
    assert "no revokeTokenUri" in warnings.text
    assert "no revokeTokenUri" in (client.revoke_advice() or "")


def test_a_replaced_grant_that_fails_to_revoke_leaves_the_new_one_stored(
    make_client: Make, provider: DemoProvider, warnings: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    authorize(client, provider)
    provider.inject_fault("revoke", status=503, body="<html>down</html>")
    authorize(client, provider)
    data = client.get_access_token_for_user("ada")
    assert data is not None and api_status(provider, data.token) == 200
    assert "could not be revoked" in warnings.text and "HTTP 503" in warnings.text


# -- a revocation goes as far as it can -------------------------------------------------------------


class FailSecondRevoke(httpx.BaseTransport):
    """The network to 127.0.0.1, except that the second revocation request gets 503."""

    def __init__(self) -> None:
        self._real = httpx.HTTPTransport()
        self.revokes = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/revoke":
            self.revokes += 1
            if self.revokes == 2:
                return httpx.Response(503, text="<html>down</html>")
        return self._real.handle_request(request)

    def close(self) -> None:
        self._real.close()


def test_a_revocation_keeps_only_what_is_not_revoked_and_says_so(
    make_client: Make, provider: DemoProvider, store: Store
) -> None:
    transport = FailSecondRevoke()
    client = make_client(transport=transport)
    authorize(client, provider)
    data = client.get_access_token_for_user("ada")
    assert data is not None and data.refresh_token
    with pytest.raises(TokenRevokeError) as caught:
        client.revoke_user_access_token("ada")
    # The refresh token went at the provider (and the grant with it): it is gone here too;
    # the access token the 503 kept is what remains, and the error says so.
    assert "refresh token" in str(caught.value) and "HTTP 503" in str(caught.value)
    assert provider.introspect(data.refresh_token)["active"] is False
    left = store.get_token("demo", "ada")
    assert left is not None and left.data.refresh_token is None
    assert left.data.token == data.token
    # A second call ends what remains (already invalid there counts as revoked).
    assert client.revoke_user_access_token("ada") is True
    assert store.get_token("demo", "ada") is None


def test_a_token_the_provider_says_is_already_invalid_counts_as_revoked(
    make_client: Make, provider: DemoProvider, store: Store
) -> None:
    def already_gone(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, json={"error": "invalid_token", "error_description": "Token expired or revoked"}
        )

    real = httpx.HTTPTransport()

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/revoke":
            return already_gone(request)
        return real.handle_request(request)

    client = make_client(transport=httpx.MockTransport(route))
    authorize(client, provider)
    provider.remove_app()
    assert client.revoke_user_access_token("ada") is True
    assert store.get_token("demo", "ada") is None


# -- a client that can never revoke says so ---------------------------------------------------------


def test_a_github_client_without_a_secret_says_it_cannot_revoke(
    make_client: Make, store: Store, warnings: pytest.LogCaptureFixture
) -> None:
    github = DemoProvider(quirks="github").start()
    try:
        client_id, _ = github.register_client(auth_method="none", scopes=None)
        config = github.config(alias="gh")
        config.update(
            revokeStyle="github",
            revokeTokenUri=f"{github.issuer}/applications/{{client_id}}/token",
        )
        client = make_client(
            config=config, client_id=client_id, client_secret=None, client_auth_method="none"
        )
        authorize(client, github)
        advice = client.revoke_advice() or ""
        assert "client secret" in advice and "remove it" in advice
        assert client.revoke_user_access_token("ada") is True  # deleted here, and said so
        assert "client secret" in warnings.text
        assert not [e for e in client.http_log if "/applications/" in e.url]  # no 404 to read
        assert store.get_token("gh", "ada") is None
    finally:
        github.stop()

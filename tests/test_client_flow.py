"""The Python API end to end against the real demo provider (loopback callback)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from support.scan import assert_no_secret

from chat_oauth2_nb import (
    AuthorizationDeniedError,
    AuthorizationTimeoutError,
    ConfigurationError,
    GrantRevokedError,
    NotAuthorizedError,
    OAuth2Error,
    TokenRefreshError,
    TokenRevokeError,
    create_oauth2_client,
)
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.notebook.client import OAuth2Client, resolve_user
from chat_oauth2_nb.oauth import AuthData, mask
from chat_oauth2_nb.store import Store

Make = Callable[..., OAuth2Client]


def query(url: str) -> dict[str, list[str]]:
    """The query of the provider URL behind an authorization link (or of ``url`` itself)."""
    return parse_qs(urlsplit(getattr(url, "provider_url", url)).query)


# -- configuration -------------------------------------------------------------------------


def test_seed_config_verbatim_and_snake_case_twins(provider: DemoProvider, store: Store) -> None:
    seed = provider.config(alias="demo")
    snake = {
        "alias": "demo",
        "auth_uri": seed["authUri"],
        "access_token_uri": seed["accessTokenUri"],
        "refresh_token_uri": seed["refreshTokenUri"],
        "revoke_token_uri": seed["revokeTokenUri"],
        "default_scopes": seed["defaultScopes"],
    }
    a = create_oauth2_client(seed, client_id="id", client_secret="s", store=store)
    b = create_oauth2_client(snake, client_id="id", client_secret="s", store=store)
    assert a.config.access_token_uri == b.config.access_token_uri == seed["accessTokenUri"]
    assert a.config.revoke_token_uri == b.config.revoke_token_uri == seed["revokeTokenUri"]
    assert a.config.default_scopes == tuple(seed["defaultScopes"])


def test_credentials_from_environment(
    provider: DemoProvider, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_OAUTH2_MY_DEMO_CLIENT_ID", "env-id")
    monkeypatch.setenv("CHAT_OAUTH2_MY_DEMO_CLIENT_SECRET", "env-secret-value")
    client = create_oauth2_client(provider.config(alias="my-demo"), store=store)
    assert client.config.client_id == "env-id"
    assert client.config.client_secret == "env-secret-value"
    assert client.config.client_auth_method == "client_secret_basic"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"alias": None}, "alias", "letters"),
        ({"alias": "has space"}, "alias", "letters"),
        ({"accessTokenUri": None}, "accessTokenUri", "endpoint URL"),
        ({"authUri": "not a url"}, "authUri", "https://"),
        ({"authUri": "http://provider.example/auth"}, "authUri", "https://"),
        ({"defaultScopes": "openid email"}, None, None),
        ({"defaultScopes": [1, 2]}, "defaultScopes", "['openid', 'email']"),
        ({"authUriParams": {"state": "x"}}, "authUriParams", "Remove them"),
        ({"authorizationCallback": 3}, "authorizationCallback", "function"),
        ({"tokenUri": "https://x"}, "tokenUri", "known"),
    ],
)
def test_bad_config_names_the_field(
    provider: DemoProvider,
    store: Store,
    change: dict[str, Any],
    field: str | None,
    words: str | None,
) -> None:
    config = provider.config(alias="demo")
    for key, value in change.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    if field is None:
        create_oauth2_client(config, client_id="i", client_secret="s", store=store)
        return
    with pytest.raises(ConfigurationError) as info:
        create_oauth2_client(config, client_id="i", client_secret="s", store=store)
    assert info.value.field == field
    assert field in str(info.value) and words is not None and words in str(info.value)


def test_missing_credentials_say_which_variable(provider: DemoProvider, store: Store) -> None:
    with pytest.raises(ConfigurationError, match="CHAT_OAUTH2_DEMO_CLIENT_ID"):
        create_oauth2_client(provider.config(alias="demo"), store=store)
    with pytest.raises(ConfigurationError, match="CHAT_OAUTH2_DEMO_CLIENT_SECRET"):
        create_oauth2_client(
            provider.config(alias="demo"),
            client_id="x",
            client_auth_method="client_secret_post",
            store=store,
        )


def test_user_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_user("u1") == "u1"
    assert resolve_user(SimpleNamespace(id="rc-id", username="ada")) == "rc-id"
    assert resolve_user(SimpleNamespace(username="ada")) == "ada"
    monkeypatch.setenv("JUPYTERHUB_USER", "hub-user")
    assert resolve_user(None) == "hub-user"
    with pytest.raises(ConfigurationError, match="user"):
        resolve_user(object())


# -- the authorization URL -------------------------------------------------------------------


def test_authorization_url_parameters(make_client: Make, store: Store) -> None:
    client = make_client()
    redirect = client.setup()
    assert redirect.startswith("http://127.0.0.1:")
    assert redirect.endswith("/chat-oauth2/callback/demo")  # one path per alias (mix-up)
    link = client.get_user_authorization_url("ada", scopes=["email"])
    # The link the person opens binds the browser and names the flow by an opaque id only.
    assert link.startswith(redirect.split("/chat-oauth2/")[0] + "/chat-oauth2/start/")
    assert "?" not in link and link.start_id in link
    q = query(link.provider_url)
    assert q["response_type"] == ["code"]
    assert q["client_id"] == [client.config.client_id]
    assert q["redirect_uri"] == [redirect]
    assert q["scope"] == [" ".join((*client.config.default_scopes, "email"))]
    assert q["code_challenge_method"] == ["S256"]
    assert "access_type" not in q and "prompt" not in q
    state = q["state"][0]
    assert len(state) >= 43  # >= 128 bits of randomness even at 5.9 bits a character
    flow = store.get_flow(state)
    assert flow is not None and flow.alias == "demo" and flow.user == "ada"
    assert q["code_challenge"] == [create_s256_code_challenge(flow.code_verifier)]
    assert flow.expires_at - flow.created_at == pytest.approx(600)
    again = query(client.get_user_authorization_url("ada").provider_url)
    assert again["state"] != q["state"] and again["code_challenge"] != q["code_challenge"]


def test_extra_authorization_params_from_config(make_client: Make, provider: DemoProvider) -> None:
    config = provider.config(alias="demo")
    config["authUriParams"] = {"access_type": "offline", "prompt": "consent"}
    q = query(make_client(config=config).get_user_authorization_url("ada"))
    assert q["access_type"] == ["offline"] and q["prompt"] == ["consent"]


# -- the whole flow ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "none"])
def test_full_flow_refresh_and_revoke(
    make_client: Make, provider: DemoProvider, method: str
) -> None:
    """Each client authentication method: authorize through the loopback, refresh, revoke.

    The demo provider accepts a client only by the method it was registered with, so a
    client that sent its credentials another way would be refused at every step.
    """
    client_id, client_secret = provider.register_client(auth_method=method)
    client = make_client(
        client_id=client_id, client_secret=client_secret, client_auth_method=method
    )
    assert client.config.client_auth_method == method
    assert client.get_access_token_for_user("ada") is None
    url = client.get_user_authorization_url("ada")
    assert urlsplit(url).hostname == "127.0.0.1"  # the real loopback callback
    page = provider.approve(url)
    assert page.status_code == 200 and "Authorized" in page.text
    data = client.wait_for_authorization("ada", timeout=10)
    assert data.token and data.refresh_token and data.token_type.lower() == "bearer"
    assert data.expires_at is not None and data.expires_at.tzinfo is not None
    assert 3500 < data.expires_in() <= 3600  # type: ignore[operator]
    assert client.get_access_token_for_user("ada") == data
    me = httpx.get(provider.api_url, auth=client.auth("ada"))
    assert me.status_code == 200 and me.json()["user"]
    assert provider.introspect(data.token)["active"] is True
    # The callback's code exchange shows in the kernel's HTTP log, redacted.
    exchange = next(e for e in client.http_log if "authorization_code" in e.request_body)
    assert exchange.status == 200 and exchange.url == provider.config()["accessTokenUri"]
    assert data.token not in exchange.response_body and mask(data.token) in exchange.response_body
    assert "code_verifier=" in exchange.request_body
    # Basic sends the id in a header; post and a public client send it in the form.
    assert ("client_id=" in exchange.request_body) is (method != "client_secret_basic")
    assert ("client_secret=" in exchange.request_body) is (method == "client_secret_post")
    flow_state = query(url)["state"][0]
    verifier = client.store.get_flow(flow_state).code_verifier  # type: ignore[union-attr]
    assert verifier not in exchange.request_body
    if client_secret is not None:
        assert client_secret not in repr(client.http_log)

    refreshed = client.refresh_user_access_token("ada")
    assert refreshed.token != data.token and refreshed.refresh_token != data.refresh_token
    assert provider.introspect(data.refresh_token or "")["active"] is False  # rotated out
    assert httpx.get(provider.api_url, auth=client.auth("ada")).status_code == 200

    assert client.revoke_user_access_token("ada") is True
    assert provider.introspect(refreshed.token)["active"] is False
    assert provider.introspect(refreshed.refresh_token or "")["active"] is False
    assert client.get_access_token_for_user("ada") is None


def test_denied_authorization_raises_typed_error(make_client: Make, provider: DemoProvider) -> None:
    client = make_client()
    url = client.get_user_authorization_url("ada")
    page = provider.approve(url, deny=True)
    assert page.status_code == 400 and "access_denied" in page.text
    with pytest.raises(AuthorizationDeniedError) as info:
        client.wait_for_authorization("ada", timeout=10)
    assert info.value.error == "access_denied"
    assert client.get_access_token_for_user("ada") is None


def test_wait_times_out(make_client: Make) -> None:
    client = make_client()
    client.get_user_authorization_url("ada")
    with pytest.raises(AuthorizationTimeoutError, match=r"within 0\.2 s"):
        client.wait_for_authorization("ada", timeout=0.2)
    with pytest.raises(NotAuthorizedError, match="get_user_authorization_url"):
        client.wait_for_authorization("nobody", timeout=0.2)


def test_authorization_callback_runs_with_new_token(
    make_client: Make, provider: DemoProvider
) -> None:
    seen: list[tuple[Any, str]] = []
    done = threading.Event()

    def callback(data: Any, user: str) -> None:
        seen.append((data, user))
        done.set()

    config = provider.config(alias="demo")
    config["authorizationCallback"] = callback
    client = make_client(config=config)
    provider.approve(client.get_user_authorization_url("ada"))
    assert done.wait(5)
    assert seen[0][1] == "ada"
    assert seen[0][0] == client.get_access_token_for_user("ada")


def test_two_aliases_and_two_users_side_by_side(authorized: Callable[..., OAuth2Client]) -> None:
    a_ada = authorized("ada", alias="one")
    a_bob = authorized("bob", alias="one")
    b_ada = authorized("ada", alias="two")
    tokens = {
        a_ada.get_access_token_for_user("ada").token,  # type: ignore[union-attr]
        a_bob.get_access_token_for_user("bob").token,  # type: ignore[union-attr]
        b_ada.get_access_token_for_user("ada").token,  # type: ignore[union-attr]
    }
    assert len(tokens) == 3
    assert a_ada.revoke_user_access_token("ada") is True
    assert a_ada.get_access_token_for_user("ada") is None
    assert a_bob.get_access_token_for_user("bob") is not None
    assert b_ada.get_access_token_for_user("ada") is not None


# -- refresh -------------------------------------------------------------------------------


def test_refresh_rotates_and_old_refresh_token_dies(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = authorized()
    before = client.get_access_token_for_user("ada")
    assert before is not None
    after = client.refresh_user_access_token("ada")
    assert after.token != before.token and after.refresh_token != before.refresh_token
    assert client.get_access_token_for_user("ada") == after
    assert provider.introspect(before.refresh_token or "")["active"] is False
    assert provider.introspect(after.token)["active"] is True


def test_sixteen_threads_refresh_once_and_grant_survives(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 threads that all saw the same token ask for a refresh at once: one request is sent.

    Not left to timing: the threads start together on a barrier, and no refresh goes out
    before every one of them has read the old token and is on its way to refresh it.
    """
    client = authorized()
    before = provider.token_requests["refresh_token"]
    start = threading.Barrier(16)
    all_saw_the_old_token = threading.Barrier(16)
    refresh_once = client.grants._refresh  # after reading the stored record it is about to refresh

    def refresh_when_all_arrived(key: str, seen: Any) -> Any:
        all_saw_the_old_token.wait(30)
        return refresh_once(key, seen)

    monkeypatch.setattr(client.grants, "_refresh", refresh_when_all_arrived)
    results: list[Any] = []
    errors: list[BaseException] = []

    def refresh() -> None:
        start.wait(30)
        try:
            results.append(client.refresh_user_access_token("ada"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=refresh) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(results) == 16
    assert provider.token_requests["refresh_token"] - before == 1
    assert len({r.token for r in results}) == 1
    assert provider.introspect(results[0].token)["active"] is True
    assert httpx.get(provider.api_url, auth=client.auth("ada")).status_code == 200
    # The grant is intact: the rotated refresh token still works.
    monkeypatch.undo()
    assert client.refresh_user_access_token("ada").token != results[0].token


def test_expired_token_refreshes_automatically(make_client: Make, provider: DemoProvider) -> None:
    provider.set_token_lifetime(2)
    client = make_client()
    provider.approve(client.get_user_authorization_url("ada"))
    first = client.wait_for_authorization("ada", timeout=10)
    time.sleep(1.2)  # leeway is capped at half the lifetime: 1 s here
    second = client.get_access_token_for_user("ada")
    assert second is not None and second.token != first.token
    assert provider.token_requests["refresh_token"] == 1


def test_leeway_is_capped_at_half_the_lifetime() -> None:
    """A 30 s leeway on a 20 s token: usable for its first 10 s, expired after that."""
    obtained = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    data = AuthData(
        token="short-lived-token-0123456789",
        obtained_at=obtained,
        expires_at=obtained + dt.timedelta(seconds=20),
    )
    # Without the cap a 30 s leeway would call the token expired the moment it arrived.
    assert not data.is_expired(leeway=30, now=obtained + dt.timedelta(seconds=5))
    assert data.is_expired(leeway=30, now=obtained + dt.timedelta(seconds=11))
    # A leeway below half the lifetime is used as given.
    assert not data.is_expired(leeway=3, now=obtained + dt.timedelta(seconds=16))
    assert data.is_expired(leeway=3, now=obtained + dt.timedelta(seconds=17.5))


def test_failed_refresh_keeps_stored_token(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = authorized()
    before = client.get_access_token_for_user("ada")
    provider.inject_fault(
        "token",
        status=400,
        content_type="application/json",
        body='{"error": "invalid_grant", "error_description": "refresh token revoked"}',
    )
    with pytest.raises(TokenRefreshError) as info:
        client.refresh_user_access_token("ada")
    assert info.value.error == "invalid_grant" and info.value.status_code == 400
    assert "authorize again" in str(info.value)
    # invalid_grant ends the grant (issue 17, finding 15): its token is no longer handed out;
    # a provider that fails otherwise keeps it (tests/test_dead_grants.py).
    assert before is not None
    with pytest.raises(GrantRevokedError):
        client.get_access_token_for_user("ada")


def test_refresh_keeps_refresh_token_when_response_omits_it(store: Store) -> None:
    # A provider that does not rotate: the demo always rotates, so this one is a mock.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "access_token": "new-access-token-0123456789",
                "token_type": "bearer",
                "expires_in": 60,
            },
        )

    client = create_oauth2_client(
        {
            "alias": "norot",
            "authUri": "https://p.example/a",
            "accessTokenUri": "https://p.example/t",
        },
        client_id="c",
        client_secret="s",
        store=store,
        transport=httpx.MockTransport(handler),
    )
    from chat_oauth2_nb.oauth import AuthData

    store.put_token(
        "norot",
        "ada",
        AuthData(
            token="old-access-token-0123456789",
            refresh_token="keep-me-refresh-0123456789",
            scope="a b",
        ),
    )
    data = client.refresh_user_access_token("ada")
    assert data.token == "new-access-token-0123456789"
    assert data.refresh_token == "keep-me-refresh-0123456789" and data.scope == "a b"
    client.close()


# -- revoke --------------------------------------------------------------------------------


def test_revoke_at_provider(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = authorized()
    data = client.get_access_token_for_user("ada")
    assert data is not None
    assert client.revoke_user_access_token("ada") is True
    assert provider.introspect(data.token)["active"] is False
    assert provider.introspect(data.refresh_token or "")["active"] is False
    assert client.get_access_token_for_user("ada") is None
    assert client.revoke_user_access_token("ada") is False


def test_revoke_without_endpoint_deletes_locally(
    make_client: Make, provider: DemoProvider, secret_log: Any
) -> None:
    config = provider.config(alias="demo")
    del config["revokeTokenUri"]
    client = make_client(config=config)
    provider.approve(client.get_user_authorization_url("ada"))
    client.wait_for_authorization("ada", timeout=10)
    assert client.revoke_user_access_token("ada") is True
    assert client.get_access_token_for_user("ada") is None
    assert "no revokeTokenUri" in secret_log.text


def test_revoke_failure_keeps_token(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = authorized()
    before = client.get_access_token_for_user("ada")
    provider.inject_fault("revoke", status=503, body="<html>down</html>", content_type="text/html")
    with pytest.raises(TokenRevokeError, match="HTTP 503"):
        client.revoke_user_access_token("ada")
    assert client.get_access_token_for_user("ada") == before
    provider.stop()  # now the network fails outright
    with pytest.raises(TokenRevokeError, match="could not reach"):
        client.revoke_user_access_token("ada")
    assert client.get_access_token_for_user("ada") == before


# -- secrets -------------------------------------------------------------------------------


def test_secrets_never_in_repr_log_or_errors(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, secret_log: Any
) -> None:
    client = authorized()
    data = client.get_access_token_for_user("ada")
    assert data is not None
    texts = [repr(data), str(data), repr(client), repr(client.config), repr(client.auth("ada"))]
    provider.inject_fault(
        "token",
        status=400,
        content_type="application/json",
        body='{"error": "invalid_grant", "error_description": "bad"}',
    )
    with pytest.raises(OAuth2Error) as info:
        client.refresh_user_access_token("ada")
    texts += [str(info.value), repr(info.value), secret_log.text]
    texts += [repr(x) for x in client.http_log]
    secrets = [data.token, data.refresh_token, data.id_token, provider.client_secret]
    for text in texts:
        for secret in secrets:
            if secret:
                assert secret not in text


# -- async twins ---------------------------------------------------------------------------


def test_async_twins(authorized: Callable[..., OAuth2Client], provider: DemoProvider) -> None:
    import asyncio

    client = authorized()

    async def main() -> None:
        data = await client.aget_access_token_for_user("ada")
        assert data is not None
        fresh = await client.arefresh_user_access_token("ada")
        assert fresh.token != data.token
        async with httpx.AsyncClient(auth=client.auth("ada")) as http:
            assert (await http.get(provider.api_url)).status_code == 200
        assert await client.arevoke_user_access_token("ada") is True

    asyncio.run(main())


def test_auth_retries_once_after_401(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = authorized()
    auth = client.auth("ada")
    assert httpx.get(provider.api_url, auth=auth).status_code == 200
    data = client.get_access_token_for_user("ada")
    assert data is not None
    # Revoke the access token behind the client's back: the API answers 401, auth refreshes.
    httpx.post(
        provider.issuer + "/revoke",
        data={"token": data.token},
        auth=(provider.client_id, provider.client_secret),
    )
    assert httpx.get(provider.api_url, auth=auth).status_code == 200
    assert client.get_access_token_for_user("ada").token != data.token  # type: ignore[union-attr]


def test_expires_at_uses_local_clock(make_client: Make, provider: DemoProvider) -> None:
    client = make_client()
    provider.approve(client.get_user_authorization_url("ada"))
    data = client.wait_for_authorization("ada", timeout=10)
    assert data.expires_at is not None
    assert abs((data.expires_at - dt.datetime.now(dt.timezone.utc)).total_seconds() - 3600) < 30


def test_discovery_builds_a_working_config(make_client: Make, provider: DemoProvider) -> None:
    from chat_oauth2_nb import discover_config

    config = discover_config(provider.issuer, alias="found", default_scopes=["profile"])
    assert config["accessTokenUri"] == provider.config()["accessTokenUri"]
    assert config["revokeTokenUri"] == provider.config()["revokeTokenUri"]
    client = make_client(config=config)
    provider.approve(client.get_user_authorization_url("ada"))
    assert client.wait_for_authorization("ada", timeout=10).token


def test_discovery_of_a_wrong_issuer_is_a_configuration_error(provider: DemoProvider) -> None:
    from chat_oauth2_nb import discover_config

    with pytest.raises(ConfigurationError, match="issuer"):
        discover_config(provider.issuer + "/nope", alias="x")


def test_same_alias_for_two_providers_exchanges_where_issued(store: Store) -> None:
    # Two notebooks, one alias, two providers: each code goes back to its own provider.
    from chat_oauth2_nb.demo import start_demo_provider

    first, second = start_demo_provider(), start_demo_provider()
    try:
        clients = [
            create_oauth2_client(
                p.config(alias="same"),
                client_id=p.client_id,
                client_secret=p.client_secret,
                mode="loopback",
                store=store,
            )
            for p in (first, second)
        ]
        urls = [c.get_user_authorization_url("ada") for c in clients]  # second setup() wins
        assert first.approve(urls[0]).status_code == 200
        data = clients[0].wait_for_authorization("ada", timeout=10)
        assert first.introspect(data.token)["active"] is True
    finally:
        for c in clients:
            c.close()
        first.stop()
        second.stop()


def test_wait_returns_when_another_link_for_the_user_completes(
    make_client: Make, provider: DemoProvider
) -> None:
    client = make_client()
    waited = client.get_user_authorization_url("ada")
    other = client.start_flow("ada", None, origin="panel")[1]  # e.g. the panel's link
    provider.approve(other)
    data = client.wait_for_authorization("ada", timeout=5)
    assert data == client.get_access_token_for_user("ada")
    assert query(waited)["state"] != query(other)["state"]


def test_introspection_asks_the_provider_and_shows_no_token(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, secret_log: Any
) -> None:
    client = authorized()
    data = client.get_access_token_for_user("ada")
    assert data is not None
    info = client.introspect_user_token("ada")
    assert info["active"] is True and info["client_id"] == provider.client_id
    assert "profile" in info.get("scope", "")
    client.revoke_user_access_token("ada")
    client.store.put_token("demo", "ada", data, provider=client.provider)  # stale copy
    assert client.introspect_user_token("ada") == {"active": False}
    text = repr(info) + repr(list(client.http_log)) + secret_log.text
    assert_no_secret(
        text, [data.token, data.refresh_token, provider.client_secret], "introspection"
    )

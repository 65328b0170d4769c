"""Secrets shaped like real ones (``/ + = ~ %``) and hostile provider answers, in every channel.

Each test performs an attack from the security review: a Google-shaped refresh token that a
form body percent-encodes, a provider that echoes the request back, an answer too large or
too slow to be a token response, one that makes the callback fail after the state was used.
The scanner (tests/support/scan.py) looks for every encoding of every secret.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import ipywidgets
import pytest
from conftest import SecretLog
from support.scan import assert_no_secret, encodings, nasty_secret

from chat_oauth2_nb import (
    ConfigurationError,
    OAuth2Client,
    ProviderConfig,
    TokenExchangeError,
    TokenRefreshError,
)
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.oauth import (
    MAX_EXPIRES_IN,
    AuthData,
    HttpExchange,
    ProviderAnswer,
    code_exchange_request,
    redact,
    redact_response_body,
    refresh_request,
    utcnow,
)
from chat_oauth2_nb.store import Store

Make = Callable[..., OAuth2Client]
JSON = "application/json"


def secrets_of(provider: DemoProvider, store: Store) -> list[str]:
    """Every secret of the run: what the provider issued and what the store keeps."""
    found: list[str] = []
    memory = provider._store
    with memory.lock:
        found += list(memory.tokens) + list(memory.codes)
        found += [c.client_secret for c in memory.clients.values() if c.client_secret]
    with sqlite3.connect(store.path) as db:
        found += [row[0] for row in db.execute("SELECT code_verifier FROM flows")]
    db.close()
    return [value for value in found if value]


def widget_state() -> str:
    """What a notebook saves of every live widget (the .ipynb's widget-state)."""
    return json.dumps(ipywidgets.Widget.get_manager_state(drop_defaults=False), default=str)


def expire_now(store: Store, alias: str = "demo", user: str = "ada") -> None:
    record = store.get_token(alias, user)
    assert record is not None
    past = utcnow().replace(year=utcnow().year - 1)
    store.put_token(
        alias, user, dataclasses.replace(record.data, expires_at=past, obtained_at=past)
    )


# -- the encodings themselves ----------------------------------------------------------------


def test_redact_masks_every_encoding_of_a_google_shaped_secret() -> None:
    secret = nasty_secret("1//0g")
    text = " | ".join(encodings(secret, ["my-client"]).values())
    cleaned = redact(text, [secret], client_id="my-client")
    assert_no_secret(cleaned, [secret], "redacted text", client_ids=["my-client"])


def test_request_body_is_redacted_by_field_before_encoding() -> None:
    refresh, client_secret = nasty_secret("1//0g"), nasty_secret("GOCSPX-")
    config = ProviderConfig.from_mapping(
        {
            "alias": "g",
            "authUri": "https://a.example/auth",
            "accessTokenUri": "https://a.example/t",
        },
        client_id="cid",
        client_secret=client_secret,
        client_auth_method="client_secret_post",
    )
    request = refresh_request(config, refresh_token=refresh)
    assert quote_plus(refresh) in request.body  # the attack's premise: the body encodes it
    shown = request.redacted_body()
    assert "grant_type=refresh_token" in shown and "client_id=cid" in shown
    assert_no_secret(shown, [refresh, client_secret], "the logged body", client_ids=["cid"])


# -- every channel, with the real provider issuing Google-shaped values -----------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_google_shaped_secrets_reach_no_channel(
    make_client: Make, provider: DemoProvider, store: Store, secret_log: SecretLog, method: str
) -> None:
    client_id, client_secret = provider.register_client(auth_method=method, scopes=None)
    assert client_secret is not None and "/" in client_secret and "+" in client_secret
    client = make_client(
        client_id=client_id, client_secret=client_secret, client_auth_method=method
    )
    url = client.get_user_authorization_url("ada")
    assert provider.approve(url).status_code == 200
    first = client.wait_for_authorization("ada", timeout=10)
    assert first.refresh_token is not None and "/" in first.refresh_token
    second = client.refresh_user_access_token("ada")
    # A provider that echoes the request back in its error, in every encoding it might use.
    assert second.refresh_token is not None
    echoed = " ".join(
        [
            quote_plus(second.refresh_token),
            quote(client_secret, safe=""),
            base64.b64encode(f"{client_id}:{client_secret}".encode()).decode(),
        ]
    )
    provider.inject_fault(
        "token",
        status=400,
        body=json.dumps({"error": "invalid_grant", "error_description": f"bad: {echoed}"}),
        content_type=JSON,
    )
    with pytest.raises(TokenRefreshError) as info:
        client.refresh_user_access_token("ada")
    assert "invalid_grant" in str(info.value)
    panel = client.panel("ada")
    try:
        assert client.revoke_user_access_token("ada") is True
        channels = {
            "the exception": f"{info.value!s} {info.value!r} {info.value.error_description}",
            "client.http_log": repr(list(client.http_log)),
            "the log at DEBUG": secret_log.text,
            "the saved widget state": widget_state(),
            "the client's repr": repr(client) + repr(first) + repr(second),
        }
    finally:
        panel.close()
    secrets = secrets_of(provider, store)
    assert len(secrets) >= 6
    for where, text in channels.items():
        assert_no_secret(text, secrets, where, client_ids=[client_id])
    # And the log still says something useful: the grant type and the masked token.
    assert "grant_type=refresh_token" in channels["client.http_log"]


# -- provider answers: large, nested, form-encoded, unparseable --------------------------------


def entra_sized_answer(access: str, refresh: str, provider: DemoProvider) -> str:
    return json.dumps(
        {
            "token_type": "Bearer",
            "scope": "profile",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": access,
            "refresh_token": refresh,
            # Entra's id_tokens run to a few KB; a refreshed one is verified (Core §12.2), so
            # this one is the provider's, for this client and person, padded to that size.
            "id_token": sized_id_token(provider, 4000),
        }
    )


def sized_id_token(provider: DemoProvider, size: int) -> str:
    from joserfc import jwt

    from chat_oauth2_nb.demo._authserver import signing_key

    now = int(time.time())
    claims = {"iss": provider.issuer, "aud": [provider.client_id], "sub": "ada", "iat": now}
    claims |= {"exp": now + 300, "pad": "y" * size}
    return jwt.encode({"alg": "RS256", "kid": str(signing_key().kid)}, claims, signing_key())


def test_large_token_answer_is_parsed_whole_and_masked(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, store: Store
) -> None:
    client = authorized()
    access = "eyJ0eXAiOiJKV1Qi." + nasty_secret("", 3000) + ".sig"
    refresh = nasty_secret("0.AX", 600)
    provider.inject_fault(
        "token", status=200, body=entra_sized_answer(access, refresh, provider), content_type=JSON
    )
    data = client.refresh_user_access_token("ada")
    assert data.token == access and data.refresh_token == refresh
    logged = client.http_log[-1].response_body
    assert '"token_type": "Bearer"' in logged and '"ext_expires_in": 3599' in logged
    assert_no_secret(logged, [access, refresh], "the logged token answer")


def test_nested_and_form_encoded_credentials_are_masked() -> None:
    nested = nasty_secret("xoxp-")
    body = json.dumps(
        {
            "ok": True,
            "authed_user": {"id": "U1", "access_token": nested},
            "list": [{"refresh_token": nested}],
        }
    ).encode()
    shown = redact_response_body(body, [], content_type=JSON, status=200)
    assert '"id": "U1"' in shown
    assert_no_secret(shown, [nested], "a nested answer")
    form_secret = nasty_secret("gho_")
    form = f"access_token={quote_plus(form_secret)}&scope=repo%2Cgist&token_type=bearer".encode()
    shown = redact_response_body(
        form, [], content_type="application/x-www-form-urlencoded", status=200
    )
    assert "token_type=bearer" in shown and "scope=repo%2Cgist" in shown
    assert_no_secret(shown, [form_secret], "a form-encoded answer")


def test_unparseable_success_answer_is_logged_by_size_only() -> None:
    secret = nasty_secret("ya29.")
    body = f"<html>your token is {secret}</html>".encode()
    shown = redact_response_body(body, [], content_type="text/html", status=200)
    assert shown.startswith(f"({len(body)} bytes of text/html, not shown")
    assert_no_secret(shown, [secret], "an unparseable 200")


def test_form_encoded_token_answers_work_end_to_end(
    make_client: Make, provider: DemoProvider, store: Store, secret_log: SecretLog
) -> None:
    provider.answer_format = "form"  # GitHub's default without Accept: application/json
    client = make_client()
    url = client.get_user_authorization_url("ada")
    assert provider.approve(url).status_code == 200
    first = client.wait_for_authorization("ada", timeout=10)
    assert provider.introspect(first.token)["active"] is True
    second = client.refresh_user_access_token("ada")
    assert second.token != first.token and provider.introspect(second.token)["active"] is True
    flow = store.latest_flow("demo", "ada")
    assert flow is not None and flow.exchange is not None
    texts = json.dumps(flow.exchange) + repr(list(client.http_log)) + secret_log.text
    assert_no_secret(texts, secrets_of(provider, store), "logs of form-encoded answers")


# -- bounded answers: size and total time -------------------------------------------------------


def test_oversized_answer_is_refused_and_the_token_kept(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, store: Store
) -> None:
    client = authorized()
    before = store.get_token("demo", "ada")
    huge = json.dumps({"access_token": "x" * (5 << 20), "token_type": "Bearer"})
    provider.inject_fault("token", status=200, body=huge, content_type=JSON)
    with pytest.raises(TokenRefreshError, match="larger than 64 KiB"):
        client.refresh_user_access_token("ada")
    assert store.get_token("demo", "ada") == before
    assert client.http_log[-1].error == "too_large"


def test_oversized_code_exchange_answer_ends_the_flow(
    make_client: Make, provider: DemoProvider, store: Store
) -> None:
    client = make_client()
    url = client.get_user_authorization_url("ada")
    huge = json.dumps({"access_token": "x" * (5 << 20), "token_type": "Bearer"})
    provider.inject_fault("token", status=200, body=huge, content_type=JSON)
    page = provider.approve(url)
    assert page.status_code == 502 and "larger than 64 KiB" in page.text
    with pytest.raises(TokenExchangeError, match="larger than 64 KiB"):
        client.wait_for_authorization("ada", timeout=5)
    assert store.get_token("demo", "ada") is None
    row = store.latest_flow("demo", "ada")
    assert row is not None and len(json.dumps(row.exchange)) < 2000


def test_trickling_provider_hits_the_total_deadline_on_refresh(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = authorized(timeout=1.0)
    body = token_answer_padded(400)
    # One byte every 0.2 s: each read is quick, the whole answer would take 80 s.
    provider.inject_fault("token", status=200, body=body, content_type=JSON, trickle=0.2)
    started = time.monotonic()
    with pytest.raises(TokenRefreshError, match="took more than 1 s in all"):
        client.refresh_user_access_token("ada")
    # Generous: the point is 'about the deadline', not the 80 s the trickle would take.
    assert time.monotonic() - started < 15


def test_trickling_provider_hits_the_total_deadline_at_the_callback(
    make_client: Make, provider: DemoProvider, store: Store
) -> None:
    client = make_client(timeout=1.0)
    url = client.get_user_authorization_url("ada")
    provider.inject_fault(
        "token", status=200, body=token_answer_padded(400), content_type=JSON, trickle=0.2
    )
    started = time.monotonic()
    page = provider.approve(url, timeout=60)
    assert page.status_code == 502 and "took more than 1 s in all" in page.text
    assert time.monotonic() - started < 15
    with pytest.raises(TokenExchangeError, match="took more than"):
        client.wait_for_authorization("ada", timeout=5)


def token_answer_padded(size: int) -> str:
    body = {"access_token": "a" * 40, "token_type": "Bearer", "pad": "p" * size}
    return json.dumps(body)


def test_overlong_token_field_is_refused(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, store: Store
) -> None:
    client = authorized()
    before = store.get_token("demo", "ada")
    body = json.dumps({"access_token": "t" * 20_000, "token_type": "Bearer"})
    provider.inject_fault("token", status=200, body=body, content_type=JSON)
    with pytest.raises(TokenRefreshError, match="access_token is 20000 characters long"):
        client.refresh_user_access_token("ada")
    assert store.get_token("demo", "ada") == before


# -- after the state is used, every failure ends the flow ---------------------------------------


def test_huge_expires_in_is_bounded_not_a_crash(
    make_client: Make, provider: DemoProvider, store: Store
) -> None:
    client = make_client()
    url = client.get_user_authorization_url("ada")
    body = json.dumps({"access_token": "a" * 40, "token_type": "Bearer", "expires_in": 1e300})
    provider.inject_fault("token", status=200, body=body, content_type=JSON)
    page = provider.approve(url)
    assert page.status_code == 200, page.text
    data = client.wait_for_authorization("ada", timeout=5)
    remaining = data.expires_in()
    assert remaining is not None and MAX_EXPIRES_IN - 60 < remaining <= MAX_EXPIRES_IN


def test_unexpected_failure_after_consume_finishes_the_flow(
    make_client: Make,
    provider: DemoProvider,
    store: Store,
    secret_log: SecretLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A bug no provider can trigger on purpose any more: make the parser itself blow up.
    from chat_oauth2_nb.lifecycle import local

    def broken(*args: Any, **kwargs: Any) -> AuthData:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(local, "token_from_answer", broken)
    client = make_client()
    url = client.get_user_authorization_url("ada")
    page = provider.approve(url)
    assert page.status_code == 502 and "failed unexpectedly (OverflowError)" in page.text
    started = time.monotonic()
    with pytest.raises(TokenExchangeError, match="unexpectedly"):
        client.wait_for_authorization("ada", timeout=30)
    assert time.monotonic() - started < 5  # the flow ended: nobody waits for the timeout
    flow = store.latest_flow("demo", "ada")
    assert flow is not None and flow.status == "error"
    assert_no_secret(secret_log.text + page.text, secrets_of(provider, store), "logs and page")


# -- the exchange record and messages are the same on both sides -------------------------------


def test_exchange_record_masks_the_code_and_verifier() -> None:
    code, verifier = nasty_secret("4/0A"), nasty_secret("v", 60)
    config = ProviderConfig.from_mapping(
        {
            "alias": "g",
            "authUri": "https://a.example/auth",
            "accessTokenUri": "https://a.example/t",
        },
        client_id="cid",
        client_secret=nasty_secret("GOCSPX-"),
    )
    request = code_exchange_request(
        config, code=code, redirect_uri="http://127.0.0.1:1/cb", code_verifier=verifier
    )
    echo = json.dumps({"error": "invalid_grant", "error_description": request.body}).encode()
    answer = ProviderAnswer(400, httpx.Headers({"content-type": JSON}), echo, 0.0, 1.0)
    record = json.dumps(dataclasses.asdict(HttpExchange.of(request, answer)))
    assert "grant_type=authorization_code" in record
    secrets = [code, verifier, config.client_secret]
    assert_no_secret(record, secrets, "the exchange record", client_ids=["cid"])


def test_a_hand_built_config_is_checked_by_the_client() -> None:
    fields: dict[str, Any] = {
        "alias": "x",
        "auth_uri": "http://auth.example.org/authorize",
        "access_token_uri": "https://auth.example.org/token",
        "refresh_token_uri": "https://auth.example.org/token",
        "client_id": "cid",
    }
    # A ProviderConfig is checked when it is built, so a bad one never reaches a client.
    with pytest.raises(ConfigurationError, match="plain http"):
        OAuth2Client(ProviderConfig(**fields))
    config = ProviderConfig(**fields, allow_insecure_http=True)
    with pytest.raises(ConfigurationError, match="plain http"):
        OAuth2Client(config)  # the client's own rule counts
    with pytest.raises(ConfigurationError, match="timeout"):
        OAuth2Client(dataclasses.replace(config, auth_uri="https://a.example/x"), timeout=0)
    # A config may travel without its secret; a client that must send one asks for it.
    with pytest.raises(ConfigurationError, match="client_secret"):
        OAuth2Client(dataclasses.replace(config, auth_uri="https://a.example/x"))

"""Faults at the provider and in the store: every one is a typed error, nothing half-written.

The demo provider produces what a real provider can (``inject_fault``: 5xx, 429, HTML,
bad JSON, slow answers; ``stop()``: a provider that is down). ``httpx.MockTransport`` is
used only where the demo cannot lie: a single ``Date`` header far off this machine's clock.
Both token paths are covered: the refresh in the kernel (``refresh_user_access_token``)
and the code exchange at the callback (loopback mode, the same logic the Jupyter
extension runs), whose error the kernel sees in ``wait_for_authorization``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import email.utils
import html
import inspect
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from support.browser import Browser
from support.scan import assert_no_secret
from support.server import free_port
from support.wait import wait_until

from chat_oauth2_nb import (
    OAuth2Error,
    ProviderError,
    StoreLockedError,
    TokenExchangeError,
    TokenRefreshError,
    create_oauth2_client,
)
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth import AuthData, utcnow
from chat_oauth2_nb.store import Store, TokenRecord

Make = Callable[..., OAuth2Client]

FAKE_ACCESS = "fake-access-token-from-a-faulty-provider-0123456789"
JSON = "application/json"


# -- helpers -------------------------------------------------------------------------------


def no_secret_in(texts: list[str], secrets: list[str | None]) -> None:
    assert_no_secret("\n".join(texts), secrets, "an error, page or log")


def closed_port_url(path: str = "/token") -> str:
    """A URL on 127.0.0.1 where nothing listens (bound, then closed)."""
    return f"http://127.0.0.1:{free_port()}{path}"


def expire(store: Store, alias: str, user: str) -> TokenRecord:
    """Make the stored token look expired here (the provider still honours it)."""
    record = store.get_token(alias, user)
    assert record is not None
    past = utcnow() - dt.timedelta(seconds=10)
    data = dataclasses.replace(
        record.data, expires_at=past, obtained_at=past - dt.timedelta(seconds=3600)
    )
    stored = store.put_token(alias, user, data, expect_version=record.version)
    assert stored is not None
    return stored


# One browser for the module: each flow's binding cookie has its own name.
BROWSER = Browser()


def callback_location(provider: DemoProvider, url: str) -> tuple[str, str]:
    """Approve in the 'browser' but stop before the callback: (callback URL, code)."""
    return BROWSER.callback_location(provider, url)


def open_callback(location: str) -> httpx.Response:
    return BROWSER.get(location)


def token_body(**fields: Any) -> str:
    body: dict[str, Any] = {"access_token": FAKE_ACCESS, "token_type": "Bearer"}
    body.update(fields)
    return json.dumps(body)


# -- one table of bad token endpoint answers, for the refresh and the code exchange ---------

# (id, status, body, content type, extra headers, words in the error, provider error code)
# ``{RT}`` in a body becomes the stored refresh token: a provider that echoes a secret back.
BAD_ANSWERS: list[tuple[str, int, str | bytes, str, dict[str, str] | None, str, str | None]] = [
    (
        "500-html",
        500,
        "<html>Internal error</html>",
        "text/html",
        None,
        "the provider failed (HTTP 500, text/html)",
        None,
    ),
    ("502-empty", 502, "", "text/html", None, "the provider failed (HTTP 502", None),
    (
        "504-text",
        504,
        "upstream timed out",
        "text/plain",
        None,
        "the provider failed (HTTP 504, text/plain)",
        None,
    ),
    (
        "500-json-error",
        500,
        '{"error": "server_error", "error_description": "db down"}',
        JSON,
        None,
        "'server_error': db down",
        "server_error",
    ),
    (
        "503-json-error",
        503,
        '{"error": "temporarily_unavailable", "error_description": "maintenance"}',
        JSON,
        None,
        "try again in a moment",
        "temporarily_unavailable",
    ),
    (
        "200-html-login-page",
        200,
        "<html><form>Log in</form></html>",
        "text/html",
        None,
        "with text/html that is not a JSON object",
        None,
    ),
    ("200-plain-text", 200, "not json at all", "text/plain", None, "not a JSON object", None),
    ("200-json-array", 200, '["access_token", "Bearer"]', JSON, None, "not a JSON object", None),
    ("200-truncated-json", 200, '{"access_token": "abc', JSON, None, "not a JSON object", None),
    (
        "200-invalid-utf8",
        200,
        b'{"access_token": "\xff\xfe"}',
        JSON,
        None,
        "not a JSON object",
        None,
    ),
    ("200-empty", 200, "", JSON, None, "not a JSON object", None),
    (
        "200-error-member",
        200,
        '{"error": "invalid_grant", "error_description": "token {RT} revoked"}',
        JSON,
        None,
        "'invalid_grant'",
        "invalid_grant",
    ),
    (
        "400-plain-text",
        400,
        "plain words",
        "text/plain",
        None,
        "HTTP 400 with text/plain instead of a JSON error",
        None,
    ),
    ("400-error-not-a-string", 400, '{"error": 42}', JSON, None, "instead of a JSON error", None),
    (
        # (invalid_grant, which ends the grant, echoes it in test_dead_grants.py)
        "400-echoes-refresh-token",
        400,
        '{"error": "invalid_request", "error_description": "refresh token {RT} is malformed"}',
        JSON,
        None,
        "rejected the request's parameters",
        "invalid_request",
    ),
    (
        "no-access-token",
        200,
        '{"token_type": "Bearer", "expires_in": 60}',
        JSON,
        None,
        "no access_token",
        None,
    ),
    (
        "access-token-number",
        200,
        '{"access_token": 12345, "token_type": "Bearer"}',
        JSON,
        None,
        "no access_token",
        None,
    ),
    (
        "no-token-type",
        200,
        json.dumps({"access_token": FAKE_ACCESS, "expires_in": 60}),
        JSON,
        None,
        "no token_type",
        None,
    ),
    ("token-type-null", 200, token_body(token_type=None), JSON, None, "no token_type", None),
    (
        "expires-in-word",
        200,
        token_body(expires_in="soon"),
        JSON,
        None,
        "expires_in is str 'soon'",
        None,
    ),
    (
        "expires-in-negative",
        200,
        token_body(expires_in=-5),
        JSON,
        None,
        "expires_in is int -5",
        None,
    ),
    (
        "expires-in-bool",
        200,
        token_body(expires_in=True),
        JSON,
        None,
        "expires_in is bool True",
        None,
    ),
    (
        "expires-in-nan",
        200,
        token_body(expires_in=float("nan")),
        JSON,
        None,
        "expires_in is float nan",
        None,
    ),
    (
        "expires-in-infinity-string",
        200,
        token_body(expires_in="Infinity"),
        JSON,
        None,
        "not a number of seconds",
        None,
    ),
    (
        "expires-in-object",
        200,
        token_body(expires_in={"seconds": 60}),
        JSON,
        None,
        "expires_in is dict",
        None,
    ),
    (
        "expires-in-is-the-token",
        200,
        token_body(expires_in=FAKE_ACCESS),
        JSON,
        None,
        "expires_in is str",
        None,
    ),
]


def _bad_answer_params() -> list[Any]:
    return [pytest.param(*row[1:], id=row[0]) for row in BAD_ANSWERS]


def _fill(body: str | bytes, secret: str) -> str | bytes:
    """Put a secret of the request into the provider's answer, as a careless provider does."""
    return body.replace("{RT}", secret) if isinstance(body, str) else body


@pytest.mark.parametrize(
    ("status", "body", "ctype", "headers", "words", "error"), _bad_answer_params()
)
def test_refresh_bad_answer_is_typed_and_keeps_token(
    authorized: Callable[..., OAuth2Client],
    provider: DemoProvider,
    store: Store,
    secret_log: Any,
    status: int,
    body: str | bytes,
    ctype: str,
    headers: dict[str, str] | None,
    words: str,
    error: str | None,
) -> None:
    client = authorized()
    before = store.get_token("demo", "ada")
    assert before is not None and before.data.refresh_token
    sent = provider.token_requests["refresh_token"]
    provider.inject_fault(
        "token",
        status=status,
        body=_fill(body, before.data.refresh_token),
        content_type=ctype,
        headers=headers,
    )
    with pytest.raises(TokenRefreshError) as info:
        client.refresh_user_access_token("ada")
    exc = info.value
    assert isinstance(exc, ProviderError) and isinstance(exc, OAuth2Error)
    assert words in str(exc)
    assert str(exc).startswith("Refreshing the token failed")
    assert exc.error == error
    assert exc.status_code == (400 if error and status == 200 else status)
    # The request did reach the provider, and nothing of the answer reached the store.
    assert provider.token_requests["refresh_token"] == sent + 1
    assert store.get_token("demo", "ada") == before
    no_secret_in(
        [str(exc), repr(exc), exc.error_description or "", secret_log.text]
        + [repr(x) for x in client.http_log],
        [before.data.token, before.data.refresh_token, provider.client_secret, FAKE_ACCESS],
    )
    # The grant is intact: the kept refresh token still works once the fault is gone.
    after = client.refresh_user_access_token("ada")
    assert after.token != before.data.token
    assert provider.introspect(after.token)["active"] is True


@pytest.mark.parametrize(
    ("status", "body", "ctype", "headers", "words", "error"), _bad_answer_params()
)
def test_code_exchange_bad_answer_is_typed_and_keeps_previous_token(
    authorized: Callable[..., OAuth2Client],
    provider: DemoProvider,
    store: Store,
    secret_log: Any,
    status: int,
    body: str | bytes,
    ctype: str,
    headers: dict[str, str] | None,
    words: str,
    error: str | None,
) -> None:
    client = authorized()  # ada already has a token: a failed re-authorization keeps it
    before = store.get_token("demo", "ada")
    assert before is not None and before.data.refresh_token
    url = client.get_user_authorization_url("ada")
    state = parse_qs(urlsplit(url.provider_url).query)["state"][0]
    location, code = callback_location(provider, url)
    verifier = store.get_flow(state).code_verifier  # type: ignore[union-attr]
    sent = provider.token_requests["authorization_code"]
    provider.inject_fault(
        "token", status=status, body=_fill(body, code), content_type=ctype, headers=headers
    )
    page = open_callback(location)
    assert page.status_code == 502
    assert provider.token_requests["authorization_code"] == sent + 1
    with pytest.raises(TokenExchangeError) as info:
        client.wait_for_authorization("ada", timeout=10)
    exc = info.value
    assert words in str(exc)
    assert exc.error == error
    assert exc.status_code == (400 if error and status == 200 else status)
    # The tab shows the same message and provider error the kernel gets.
    assert exc.message in html.unescape(page.text)
    assert error is None or f"<code>{error}</code>" in page.text
    assert store.get_token("demo", "ada") == before
    flow = store.get_flow(state)
    assert flow is not None and flow.status == "error"
    no_secret_in(
        [page.text, str(exc), repr(exc), secret_log.text],
        [
            code,
            verifier,
            before.data.token,
            before.data.refresh_token,
            provider.client_secret,
            FAKE_ACCESS,
        ],
    )
    # The state is used up; the same callback again is refused and stores nothing.
    again = open_callback(location)
    assert again.status_code == 400 and "already used" in html.unescape(again.text)
    assert store.get_token("demo", "ada") == before


# -- valid but unusual answers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "lifetime"),
    [
        pytest.param({"expires_in": "3600"}, 3600, id="expires-in-numeric-string"),
        pytest.param({"expires_in": " 3600 "}, 3600, id="expires-in-padded-string"),
        pytest.param({"expires_in": 3599.5}, 3599.5, id="expires-in-float"),
        pytest.param({}, None, id="no-expires-in"),
        pytest.param({"expires_in": None}, None, id="expires-in-null"),
    ],
)
def test_refresh_accepts_valid_expiry_forms(
    authorized: Callable[..., OAuth2Client],
    provider: DemoProvider,
    store: Store,
    fields: dict[str, Any],
    lifetime: float | None,
) -> None:
    client = authorized()
    before = store.get_token("demo", "ada")
    assert before is not None
    provider.inject_fault("token", status=200, body=token_body(**fields), content_type=JSON)
    t0 = utcnow()
    data = client.refresh_user_access_token("ada")
    t1 = utcnow()
    assert data.token == FAKE_ACCESS
    assert data.refresh_token == before.data.refresh_token  # omitted: the old one is kept
    if lifetime is None:
        assert data.expires_at is None  # RFC 6749 §5.1: expires_in is only RECOMMENDED
        assert data.is_expired() is False
    else:
        assert data.expires_at is not None
        span = dt.timedelta(seconds=lifetime)
        assert t0 + span <= data.expires_at <= t1 + span
    stored = store.get_token("demo", "ada")
    assert stored is not None and stored.data == data and stored.version == before.version + 1
    sent = provider.token_requests["refresh_token"]
    assert client.get_access_token_for_user("ada") == data  # not expired: no new request
    assert provider.token_requests["refresh_token"] == sent


@pytest.mark.parametrize(
    ("fields", "lifetime"),
    [
        pytest.param({"expires_in": "3600"}, 3600, id="expires-in-numeric-string"),
        pytest.param({}, None, id="no-expires-in"),
    ],
)
def test_code_exchange_accepts_valid_expiry_forms(
    make_client: Make,
    provider: DemoProvider,
    store: Store,
    fields: dict[str, Any],
    lifetime: float | None,
) -> None:
    client = make_client()
    location, _ = callback_location(provider, client.get_user_authorization_url("ada"))
    provider.inject_fault("token", status=200, body=token_body(**fields), content_type=JSON)
    t0 = utcnow()
    page = open_callback(location)
    t1 = utcnow()
    assert page.status_code == 200, page.text
    data = client.wait_for_authorization("ada", timeout=10)
    assert data.token == FAKE_ACCESS and data.refresh_token is None
    if lifetime is None:
        assert data.expires_at is None
    else:
        assert data.expires_at is not None
        span = dt.timedelta(seconds=lifetime)
        assert t0 + span <= data.expires_at <= t1 + span


# -- the provider is down or slow ----------------------------------------------------------


def test_refresh_with_provider_stopped(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, store: Store
) -> None:
    client = authorized()
    before = store.get_token("demo", "ada")
    provider.stop()
    with pytest.raises(TokenRefreshError) as info:
        client.refresh_user_access_token("ada")
    assert "could not reach" in str(info.value) and provider.issuer in str(info.value)
    assert "that the provider is up" in str(info.value)  # what to do
    assert info.value.status_code is None
    assert store.get_token("demo", "ada") == before
    provider.start()  # same port: the kept refresh token still works
    assert client.refresh_user_access_token("ada").token != before.data.token  # type: ignore[union-attr]


def test_refresh_with_closed_port(
    authorized: Callable[..., OAuth2Client], make_client: Make, provider: DemoProvider, store: Store
) -> None:
    authorized()
    before = store.get_token("demo", "ada")
    config = provider.config(alias="demo")
    config["refreshTokenUri"] = closed_port_url()
    client = make_client(config=config)
    with pytest.raises(
        TokenRefreshError, match=r"could not reach http://127\.0\.0\.1:\d+/token \(ConnectError\)"
    ):
        client.refresh_user_access_token("ada")
    assert store.get_token("demo", "ada") == before


def test_auto_refresh_failure_reaches_api_caller_typed(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, store: Store
) -> None:
    client = authorized()
    before = expire(store, "demo", "ada")
    provider.inject_fault("token", status=503, body="<html>down</html>", content_type="text/html")
    with pytest.raises(TokenRefreshError, match=r"HTTP 503, text/html"):
        httpx.get(provider.api_url, auth=client.auth("ada"))
    assert store.get_token("demo", "ada") == before
    provider.inject_fault("token", status=500)
    with pytest.raises(TokenRefreshError, match=r"HTTP 500"):
        client.get_access_token_for_user("ada")
    assert store.get_token("demo", "ada") == before
    # Once the provider is back, the same expired token refreshes and the API call works.
    assert httpx.get(provider.api_url, auth=client.auth("ada")).status_code == 200


def test_code_exchange_with_provider_stopped(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, store: Store
) -> None:
    client = authorized()
    before = store.get_token("demo", "ada")
    location, code = callback_location(provider, client.get_user_authorization_url("ada"))
    provider.stop()
    page = open_callback(location)
    assert page.status_code == 502
    assert "could not reach" in page.text and code not in page.text
    with pytest.raises(TokenExchangeError, match="could not reach"):
        client.wait_for_authorization("ada", timeout=10)
    assert store.get_token("demo", "ada") == before


def test_code_exchange_with_closed_port(
    make_client: Make, provider: DemoProvider, store: Store
) -> None:
    config = provider.config(alias="demo")
    config["accessTokenUri"] = closed_port_url()
    client = make_client(config=config)
    page = provider.approve(client.get_user_authorization_url("ada"))
    assert page.status_code == 502 and "could not reach http://127.0.0.1:" in page.text
    with pytest.raises(TokenExchangeError, match="ConnectError"):
        client.wait_for_authorization("ada", timeout=10)
    assert store.get_token("demo", "ada") is None


def test_refresh_timeout(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, store: Store
) -> None:
    client = authorized(timeout=0.3)
    before = store.get_token("demo", "ada")
    provider.inject_fault(
        "token", status=200, body=token_body(expires_in=60), content_type=JSON, delay=3
    )
    with pytest.raises(TokenRefreshError) as info:
        client.refresh_user_access_token("ada")
    assert r"did not answer within 0.3 s" in str(info.value)
    assert "raise timeout=" in str(info.value)  # what to do
    assert client.http_log[-1].error == "timeout" and client.http_log[-1].status is None
    assert store.get_token("demo", "ada") == before
    after = client.refresh_user_access_token("ada")  # the fault is used up
    assert after.token not in (before.data.token, FAKE_ACCESS)  # type: ignore[union-attr]


def test_code_exchange_timeout(make_client: Make, provider: DemoProvider, store: Store) -> None:
    client = make_client(timeout=0.3)
    location, _ = callback_location(provider, client.get_user_authorization_url("ada"))
    provider.inject_fault(
        "token", status=200, body=token_body(expires_in=60), content_type=JSON, delay=3
    )
    page = open_callback(location)
    assert page.status_code == 502 and "did not answer within 0.3 s" in page.text
    with pytest.raises(TokenExchangeError, match=r"did not answer within 0\.3 s"):
        client.wait_for_authorization("ada", timeout=10)
    assert store.get_token("demo", "ada") is None


# -- rate limiting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "ctype", "retry_after", "expected", "error"),
    [
        pytest.param(429, "Too Many Requests", "text/plain", "7", 7.0, None, id="429-text"),
        pytest.param(429, '{"error": "slow_down"}', JSON, "2.5", 2.5, "slow_down", id="429-json"),
        pytest.param(429, "", "text/plain", "http-date+120", 120.0, None, id="429-http-date"),
        pytest.param(
            503,
            '{"error": "temporarily_unavailable"}',
            JSON,
            "30",
            30.0,
            "temporarily_unavailable",
            id="503-json",
        ),
    ],
)
def test_refresh_rate_limited_carries_retry_after(
    authorized: Callable[..., OAuth2Client],
    provider: DemoProvider,
    store: Store,
    status: int,
    body: str,
    ctype: str,
    retry_after: str,
    expected: float,
    error: str | None,
) -> None:
    client = authorized()
    before = store.get_token("demo", "ada")
    header = retry_after
    # An HTTP date (whole seconds) counts down while the refresh runs: bound it by the clock.
    when = (utcnow() + dt.timedelta(seconds=expected)).replace(microsecond=0)
    if retry_after == "http-date+120":
        header = email.utils.format_datetime(when, usegmt=True)
    provider.inject_fault(
        "token", status=status, body=body, content_type=ctype, headers={"Retry-After": header}
    )
    t0 = utcnow()
    with pytest.raises(TokenRefreshError) as info:
        client.refresh_user_access_token("ada")
    t1 = utcnow()
    exc = info.value
    assert exc.retry_after is not None
    if retry_after == "http-date+120":
        assert (when - t1).total_seconds() <= exc.retry_after <= (when - t0).total_seconds()
    else:
        assert exc.retry_after == expected
        assert f"retry after {expected:g} s" in str(exc)
    assert "retry after" in str(exc) and f"(HTTP {status})" in str(exc)
    assert exc.error == error
    if status == 429 and error is None:
        assert "rate limiting" in str(exc)
    assert store.get_token("demo", "ada") == before


def test_code_exchange_rate_limited_carries_retry_after(
    make_client: Make, provider: DemoProvider, store: Store
) -> None:
    client = make_client()
    location, _ = callback_location(provider, client.get_user_authorization_url("ada"))
    provider.inject_fault(
        "token",
        status=429,
        body="Too Many Requests",
        content_type="text/plain",
        headers={"Retry-After": "7"},
    )
    page = open_callback(location)
    assert page.status_code == 502 and "retry after 7 s" in page.text
    with pytest.raises(TokenExchangeError) as info:
        client.wait_for_authorization("ada", timeout=10)
    assert info.value.status_code == 429
    assert info.value.retry_after == 7.0 and "retry after 7 s" in str(info.value)
    assert store.get_token("demo", "ada") is None


# -- clock skew ----------------------------------------------------------------------------

SKEWED_DATES = [
    pytest.param(dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc), id="provider-clock-25y-behind"),
    pytest.param(dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc), id="provider-clock-73y-ahead"),
    pytest.param(None, id="provider-clock-2h-ahead"),
]


@pytest.mark.parametrize("provider_now", SKEWED_DATES)
def test_refresh_expiry_counts_from_local_receive_time(
    store: Store, provider_now: dt.datetime | None
) -> None:
    # One single Date header that lies: only a mock transport can send exactly that.
    date = provider_now or utcnow() + dt.timedelta(hours=2)
    calls: list[httpx.Request] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            200,
            headers={"Date": email.utils.format_datetime(date, usegmt=True)},
            json={"access_token": FAKE_ACCESS, "token_type": "Bearer", "expires_in": 3600},
        )

    client = create_oauth2_client(
        {
            "alias": "skew",
            "authUri": "https://p.example/a",
            "accessTokenUri": "https://p.example/t",
        },
        client_id="c",
        client_secret="client-secret-value-0123",
        store=store,
        transport=httpx.MockTransport(token_endpoint),
    )
    try:
        store.put_token(
            "skew",
            "ada",
            AuthData(token="old-access-0123456789", refresh_token="old-refresh-0123456789"),
        )
        t0 = utcnow()
        data = client.refresh_user_access_token("ada")
        t1 = utcnow()
        assert data.expires_at is not None
        assert t0 + dt.timedelta(seconds=3600) <= data.expires_at <= t1 + dt.timedelta(seconds=3600)
        assert t0 <= data.obtained_at <= t1
        assert not data.is_expired()
        assert client.get_access_token_for_user("ada") == data
        assert len(calls) == 1  # a skewed Date never makes a fresh token look expired
    finally:
        client.close()


@pytest.mark.parametrize("provider_now", SKEWED_DATES)
def test_code_exchange_expiry_ignores_provider_date(
    make_client: Make, provider: DemoProvider, provider_now: dt.datetime | None
) -> None:
    # The demo adds its own Date header; the skewed one comes second, as a lying proxy's would.
    date = provider_now or utcnow() + dt.timedelta(hours=2)
    client = make_client()
    location, _ = callback_location(provider, client.get_user_authorization_url("ada"))
    provider.inject_fault(
        "token",
        status=200,
        body=token_body(expires_in=3600),
        content_type=JSON,
        headers={"Date": email.utils.format_datetime(date, usegmt=True)},
    )
    t0 = utcnow()
    assert open_callback(location).status_code == 200
    t1 = utcnow()
    data = client.wait_for_authorization("ada", timeout=10)
    assert data.expires_at is not None
    assert t0 + dt.timedelta(seconds=3600) <= data.expires_at <= t1 + dt.timedelta(seconds=3600)
    assert not data.is_expired()


# -- the store locked by another process -------------------------------------------------

_LOCK_HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
db.close()
"""


@contextlib.contextmanager
def store_locked(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds ``BEGIN EXCLUSIVE`` on the store until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write("\n")
            proc.stdin.flush()
        proc.stdin.close()
        proc.stdout.close()
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


class PatientWrites:
    """Watches ``Store.patiently``, the writes that must survive a locked store.

    After ``hold_next()``, the next such write (the provider's token already in hand) waits
    until the test has locked the store, so the lock is certainly met; ``refused`` counts the
    attempts SQLite turned away because another process held the lock.
    """

    def __init__(self) -> None:
        self.armed = False
        self.arrived = threading.Event()
        self.proceed = threading.Event()
        self.refused = 0
        self._count = threading.Lock()

    def hold_next(self) -> None:
        """Park the next patient write until ``proceed`` is set."""
        self.refused, self.armed = 0, True

    def refuse(self) -> None:
        with self._count:
            self.refused += 1


@pytest.fixture
def patient_writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[PatientWrites]:
    watch = PatientWrites()
    original = Store.patiently

    def patiently(store: Store, write: Callable[[], Any], patience: float) -> Any:
        if watch.armed and not watch.arrived.is_set():
            watch.arrived.set()
            assert watch.proceed.wait(30), "the test never locked the store"

        def counted() -> Any:
            try:
                return write()
            except StoreLockedError:
                watch.refuse()
                raise

        return original(store, counted, patience)

    monkeypatch.setattr(Store, "patiently", patiently)
    yield watch
    watch.proceed.set()  # never leave a worker parked


def test_refresh_with_store_locked(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, store: Store, tmp_path: Path
) -> None:
    impatient = Store(store.path, busy_timeout=0.2)
    client = authorized(store=impatient)
    before = store.get_token("demo", "ada")
    sent = provider.token_requests["refresh_token"]
    with store_locked(store.path):
        # Readers are not blocked (WAL): the token stays readable while the lock is held.
        assert impatient.get_token("demo", "ada") == before
        with pytest.raises(StoreLockedError) as info:
            client.refresh_user_access_token("ada")
        message = str(info.value)
        assert str(store.path) in message and "locked by another process" in message
        assert "retry, or end that process" in message  # what to do
        assert provider.token_requests["refresh_token"] == sent  # nothing was sent
    after_lock = store.get_token("demo", "ada")
    assert after_lock == before
    assert provider.introspect(after_lock.data.refresh_token or "")["active"] is True  # type: ignore[union-attr]
    assert client.refresh_user_access_token("ada").token != before.data.token  # type: ignore[union-attr]


def test_store_locked_while_refresh_is_in_flight(
    authorized: Callable[..., OAuth2Client],
    provider: DemoProvider,
    store: Store,
    patient_writes: PatientWrites,
) -> None:
    """The provider already rotated the refresh token: its answer must not be lost."""
    impatient = Store(store.path, busy_timeout=0.2)
    client = authorized(store=impatient)
    before = store.get_token("demo", "ada")
    assert before is not None
    sent = provider.token_requests["refresh_token"]
    patient_writes.hold_next()
    outcome: list[AuthData | BaseException] = []

    def refresh() -> None:
        try:
            outcome.append(client.refresh_user_access_token("ada"))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=refresh)
    worker.start()
    try:
        assert patient_writes.arrived.wait(30), "the provider's answer never came"
        with store_locked(store.path):
            patient_writes.proceed.set()
            wait_until(lambda: patient_writes.refused >= 1, "the token write to meet the lock")
    finally:
        patient_writes.proceed.set()
        worker.join(30)
    assert provider.token_requests["refresh_token"] == sent + 1
    assert len(outcome) == 1
    data = outcome[0]
    assert isinstance(data, AuthData), repr(data)
    stored = store.get_token("demo", "ada")
    assert stored is not None and stored.data == data and stored.version == before.version + 1
    # The rotated refresh token was kept, so the grant survives.
    assert provider.introspect(data.refresh_token or "")["active"] is True
    assert client.refresh_user_access_token("ada").token != data.token
    assert provider.token_requests["refresh_token"] == sent + 2


def test_callback_with_store_locked_answers_503_and_can_be_reloaded(
    make_client: Make, provider: DemoProvider, store: Store
) -> None:
    impatient = Store(store.path, busy_timeout=0.2)
    client = make_client(store=impatient)
    url = client.get_user_authorization_url("ada")
    state = parse_qs(urlsplit(url.provider_url).query)["state"][0]
    location, code = callback_location(provider, url)
    with store_locked(store.path):
        page = open_callback(location)
        assert page.status_code == 503
        text = html.unescape(page.text)
        assert "locked by another process" in text and "retry" in text and code not in text
    flow = store.get_flow(state)
    assert flow is not None and flow.status == "pending"  # the state is not used up
    assert store.get_token("demo", "ada") is None
    # Reloading the page once the lock is gone finishes the authorization.
    assert open_callback(location).status_code == 200
    data = client.wait_for_authorization("ada", timeout=10)
    assert provider.introspect(data.token)["active"] is True


_OPEN_LOCK_CLOSE = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
db.execute("ROLLBACK")
db.close()
"""


def test_second_store_on_the_same_file_keeps_the_first_ones_locks(tmp_path: Path) -> None:
    """Opening a Store must not drop SQLite's POSIX locks of another Store in this process.

    If it did, another process closing its connection would think it was the last one,
    checkpoint and delete the WAL under our open connections: a corrupt store.
    """
    path = tmp_path / "store" / "store.sqlite3"
    first = Store(path)
    for i in range(50):
        first.put_token("demo", f"user{i}", AuthData(token=f"access-{i}-" + "t" * 500))
    second = Store(path, busy_timeout=0.5)
    subprocess.run([sys.executable, "-c", _OPEN_LOCK_CLOSE, str(path)], check=True, timeout=30)
    first.put_token("demo", "late", AuthData(token="late-access-token-0123456789"))
    assert len(second.list_tokens()) == 51
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()


def test_store_locked_while_code_exchange_is_in_flight(
    make_client: Make, provider: DemoProvider, store: Store, patient_writes: PatientWrites
) -> None:
    """The code is used up at the provider: the token it bought must still be stored."""
    impatient = Store(store.path, busy_timeout=0.2)
    client = make_client(store=impatient)
    location, _ = callback_location(provider, client.get_user_authorization_url("ada"))
    sent = provider.token_requests["authorization_code"]
    patient_writes.hold_next()
    pages: list[httpx.Response | BaseException] = []

    def browser() -> None:
        try:
            pages.append(open_callback(location))
        except BaseException as exc:
            pages.append(exc)

    tab = threading.Thread(target=browser)
    tab.start()
    try:
        assert patient_writes.arrived.wait(30), "the provider's answer never came"
        with store_locked(store.path):
            patient_writes.proceed.set()
            wait_until(lambda: patient_writes.refused >= 1, "the token write to meet the lock")
    finally:
        patient_writes.proceed.set()
        tab.join(60)
    assert provider.token_requests["authorization_code"] == sent + 1
    assert len(pages) == 1
    page = pages[0]
    assert isinstance(page, httpx.Response), repr(page)
    assert page.status_code == 200, page.text
    data = client.wait_for_authorization("ada", timeout=10)
    assert provider.introspect(data.token)["active"] is True
    stored = store.get_token("demo", "ada")
    assert stored is not None and stored.data == data


def test_store_locked_for_good_after_code_exchange_says_what_to_do(
    make_client: Make,
    provider: DemoProvider,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    patient_writes: PatientWrites,
) -> None:
    """When the store never frees up, the tab gets a 503 that says so (not a dropped page)."""
    from chat_oauth2_nb.lifecycle import grants

    monkeypatch.setattr(grants, "STORE_PATIENCE", 0.3)  # instead of 30 s
    impatient = Store(store.path, busy_timeout=0.1)
    client = make_client(store=impatient)
    location, code = callback_location(provider, client.get_user_authorization_url("ada"))
    sent = provider.token_requests["authorization_code"]
    patient_writes.hold_next()
    pages: list[httpx.Response | BaseException] = []

    def browser() -> None:
        try:
            pages.append(open_callback(location))
        except BaseException as exc:
            pages.append(exc)

    tab = threading.Thread(target=browser)
    tab.start()
    try:
        assert patient_writes.arrived.wait(30), "the provider's answer never came"
        with store_locked(store.path):
            patient_writes.proceed.set()
            tab.join(60)  # the lock outlasts the callback's patience
    finally:
        patient_writes.proceed.set()
        tab.join(60)
    assert provider.token_requests["authorization_code"] == sent + 1
    # Retried while patience lasted (0.3 s, each attempt waiting 0.1 s), then gave up.
    assert patient_writes.refused >= 2
    assert len(pages) == 1
    page = pages[0]
    assert isinstance(page, httpx.Response), repr(page)
    assert page.status_code == 503
    text = html.unescape(page.text)
    assert "issued a token, but it could not be stored" in text
    assert "locked by another process" in text and "authorize again" in text
    assert code not in text
    assert store.get_token("demo", "ada") is None


# -- SIGKILL in the middle of token writes ---------------------------------------------------


def written_token(i: int) -> AuthData:
    """The i-th token the writer stores: deterministic, so the test can rebuild it."""
    import datetime as dt_

    from chat_oauth2_nb.oauth import AuthData as AuthData_

    base = dt_.datetime(2030, 1, 1, tzinfo=dt_.timezone.utc)
    return AuthData_(
        token=f"access-{i:09d}-" + "a" * (1000 + (i * 7919) % 20000),
        token_type="Bearer",
        expires_at=base + dt_.timedelta(seconds=i),
        scope=f"profile s{i % 7}",
        refresh_token=f"refresh-{i:09d}-" + "r" * ((i * 104729) % 9000),
        id_token=f"id-{i:09d}-" + "y" * ((i * 31) % 30000) if i % 2 else None,
        obtained_at=base,
    )


_USERS = ("ada", "bob", "eve")
_WRITER = (
    "from __future__ import annotations\n"
    "import sys\n"
    "from chat_oauth2_nb.store import Store\n"
    + inspect.getsource(written_token)
    + """
store = Store(sys.argv[1])
users = ("ada", "bob", "eve")
i = int(sys.argv[2])
first = True
while True:
    store.put_token("demo", users[i % 3], written_token(i))
    if first:
        print("writing", flush=True)
        first = False
    i += 1
"""
)


@pytest.mark.timeout(120)
def test_sigkill_during_token_writes_leaves_a_whole_token(tmp_path: Path) -> None:
    path = tmp_path / "store" / "store.sqlite3"
    Store(path)  # created as the kernel would (0600, WAL)
    rng = random.Random()  # noqa: S311 - picks kill moments, not secrets
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    for round_ in range(6):
        start = round_ * 10_000_000
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        try:
            assert writer.stdout.readline().strip() == "writing"
            time.sleep(rng.uniform(0.0, 0.4))  # a random moment in the write loop
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait(timeout=20)
        finally:
            writer.stdout.close()
            if writer.poll() is None:
                writer.kill()
                writer.wait()
        assert writer.returncode == -signal.SIGKILL

        db = sqlite3.connect(path)
        try:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], seed
            rows = db.execute("SELECT user, data, version FROM tokens").fetchall()
        finally:
            db.close()
        assert {user for user, _, _ in rows} <= set(_USERS)
        records = {r.user: r for r in Store(path).list_tokens()}
        assert set(records) == {user for user, _, _ in rows}
        this_round = 0
        for user, record in records.items():
            index = int(record.data.token.split("-")[1])
            assert _USERS[index % 3] == user, seed
            assert record.data == written_token(index), f"torn token for {user} (seed {seed})"
            this_round += index >= start
        assert this_round >= 1, seed  # the write announced before the kill is there

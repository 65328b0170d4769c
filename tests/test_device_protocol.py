"""The device authorization grant (RFC 8628): the sans-I/O protocol against the demo provider.

The demo's device endpoint and verification page run over real HTTP on 127.0.0.1; a small
test-side poller drives them with the protocol functions and plain httpx, as the client's
poller will. Every repr, error and log line is scanned for the device code.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from support.scan import assert_no_secret, nasty_secret

from chat_oauth2_nb.config import ProviderConfig, discover_config
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.errors import (
    AuthorizationDeniedError,
    AuthorizationTimeoutError,
    ConfigurationError,
    DeviceAuthorizationError,
    DeviceCodeExpiredError,
    OAuth2Error,
    TokenExchangeError,
)
from chat_oauth2_nb.oauth import (
    DEVICE_CODE_GRANT_TYPE,
    MAX_FIELD_CHARS,
    SLOW_DOWN_STEP,
    AuthData,
    DeviceAuthorization,
    DevicePending,
    DevicePollOutcome,
    HttpRequest,
    classify_device_poll,
    device_authorization_request,
    device_poll_backoff,
    device_token_request,
    parse_device_authorization,
    parse_token_response,
    refresh_request,
    utcnow,
)
from chat_oauth2_nb.oauth import device as device_module

INTERVAL = 0.2
JSON = {"content-type": "application/json"}


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoProvider]:
    # These tests are about the polling mechanics, at a fast pace: the 5 s floor a client
    # keeps against any provider (tests/test_device_hardening.py) is lowered for them only.
    monkeypatch.setattr(device_module, "MIN_POLL_INTERVAL", INTERVAL)
    provider = DemoProvider(device_interval=INTERVAL).start()
    yield provider
    provider.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as client:
        yield client


def config_of(provider: DemoProvider, **kwargs: Any) -> ProviderConfig:
    kwargs.setdefault("client_id", provider.client_id)
    kwargs.setdefault("client_secret", provider.client_secret)
    return ProviderConfig.from_mapping(provider.config(), **kwargs)


def send(http: httpx.Client, request: HttpRequest) -> httpx.Response:
    return http.request(request.method, request.url, headers=request.headers, content=request.body)


def start(http: httpx.Client, config: ProviderConfig) -> DeviceAuthorization:
    request = device_authorization_request(config, config.default_scopes)
    response = send(http, request)
    return parse_device_authorization(
        response.status_code,
        response.headers,
        response.content,
        received_at=utcnow(),
        secrets=request.secrets,
        client_id=config.client_id,
    )


@dataclass
class Poller:
    """What the client's poller will do, without threads or a store: poll, classify, wait."""

    http: httpx.Client
    config: ProviderConfig
    auth: DeviceAuthorization
    outcomes: list[DevicePollOutcome] = field(default_factory=list)

    def poll_once(self, interval: float, failures: int = 0) -> DevicePollOutcome:
        request = device_token_request(self.config, self.auth.device_code)
        try:
            response = send(self.http, request)
        except httpx.TransportError as error:
            outcome: DevicePollOutcome = device_poll_backoff(interval, failures)
            del error
        else:
            outcome = classify_device_poll(
                response.status_code,
                response.headers,
                response.content,
                interval=interval,
                failures=failures,
                received_at=utcnow(),
                requested_scopes=self.config.default_scopes,
                secrets=request.secrets,
                client_id=self.config.client_id,
            )
        self.outcomes.append(outcome)
        return outcome

    def run(
        self, deadline: float = 30, on_pending: Callable[[int], None] | None = None
    ) -> AuthData | OAuth2Error:
        interval, failures = self.auth.interval, 0
        stop = time.monotonic() + deadline
        while time.monotonic() < stop:
            outcome = self.poll_once(interval, failures)
            if not isinstance(outcome, DevicePending):
                return outcome
            if on_pending is not None:
                on_pending(len(self.outcomes))
            interval, failures = outcome.interval, outcome.failures
            time.sleep(outcome.wait)
        raise AssertionError(f"still polling after {deadline} s: {self.outcomes[-3:]}")


def secrets_of(*values: object) -> list[str]:
    found: list[str] = []
    for value in values:
        if isinstance(value, DeviceAuthorization):
            found.append(value.device_code)
        elif isinstance(value, AuthData):
            found.append(value.token)
            if value.refresh_token:
                found.append(value.refresh_token)
        elif isinstance(value, str):
            found.append(value)
    return found


# -- end to end over HTTP --------------------------------------------------------------------


def test_approved_device_gets_a_token_that_works_and_refreshes(
    demo: DemoProvider, http: httpx.Client
) -> None:
    config = config_of(demo)
    auth = start(http, config)
    assert auth.verification_uri == f"{demo.issuer}/device"
    assert auth.verification_uri_complete == f"{demo.issuer}/device?user_code={auth.user_code}"
    assert auth.interval == INTERVAL
    assert 1790 < auth.expires_in() <= 1800

    def approve_after_three(count: int) -> None:
        if count == 3:
            # The person types the code the way people do: lower case, no dash.
            typed = auth.user_code.lower().replace("-", " ")
            page = demo.approve_device(typed, username="grace")
            assert page.status_code == 200 and "Device authorized" in page.text

    poller = Poller(http, config, auth)
    data = poller.run(on_pending=approve_after_three)
    assert isinstance(data, AuthData), data
    assert [o.reason for o in poller.outcomes[:3] if isinstance(o, DevicePending)] == [
        "authorization_pending"
    ] * 3
    assert data.token.startswith("ya29.") and data.refresh_token
    assert data.scope == "profile"

    me = http.get(demo.api_url, headers={"Authorization": f"Bearer {data.token}"})
    assert me.json()["user"] == "grace"

    # The provider saw polls no closer than the interval, and told nobody to slow down.
    polls = demo.device_polls[auth.user_code]
    assert len(polls) == len(poller.outcomes) == 4
    assert min(b - a for a, b in itertools.pairwise(polls)) >= INTERVAL * 0.9
    assert demo.device_slow_downs[auth.user_code] == 0

    assert data.refresh_token is not None
    request = refresh_request(config, refresh_token=data.refresh_token)
    answer = send(http, request)
    refreshed = parse_token_response(
        TokenExchangeError,
        "Refresh",
        answer.status_code,
        answer.headers,
        answer.content,
        received_at=utcnow(),
        previous=data,
        secrets=request.secrets,
    )
    assert refreshed.token != data.token
    me = http.get(demo.api_url, headers={"Authorization": f"Bearer {refreshed.token}"})
    assert me.status_code == 200 and me.json()["user"] == "grace"

    # A device code is good for one token: a second poll after success is refused.
    again = poller.poll_once(INTERVAL)
    assert isinstance(again, TokenExchangeError) and again.error == "invalid_grant"
    assert "start again" in str(again)
    assert_no_secret(str(again), secrets_of(auth), "the reused code's error")


def test_denied_device_is_an_authorization_denied_error(
    demo: DemoProvider, http: httpx.Client
) -> None:
    config = config_of(demo)
    auth = start(http, config)
    assert demo.approve_device(auth.user_code, deny=True).status_code == 200
    outcome = Poller(http, config, auth).run()
    assert isinstance(outcome, AuthorizationDeniedError)
    assert outcome.error == "access_denied"
    assert "authorize again" in str(outcome)
    assert_no_secret(str(outcome), secrets_of(auth), "the denial")
    # The answer is final: the same code cannot be approved afterwards.
    page = demo.approve_device(auth.user_code)
    assert page.status_code == 400 and "already answered" in page.text


def test_expired_device_code_says_to_start_again(demo: DemoProvider, http: httpx.Client) -> None:
    demo.device_code_lifetime = 0.6
    config = config_of(demo)
    auth = start(http, config)
    assert auth.expires_in() <= 0.6
    outcome = Poller(http, config, auth).run(deadline=10)
    assert isinstance(outcome, DeviceCodeExpiredError)
    assert isinstance(outcome, AuthorizationTimeoutError)  # what a timeout handler catches
    assert outcome.error == "expired_token"
    assert "start again" in str(outcome) and "start_device_authorization" in str(outcome)
    assert auth.is_expired()
    assert_no_secret(str(outcome), secrets_of(auth), "the expiry")
    # A person arriving late is told so, and cannot approve any more.
    page = demo.approve_device(auth.user_code)
    assert page.status_code == 400 and "expired" in page.text


def test_slow_down_adds_five_seconds_and_the_provider_sees_it_honoured(
    demo: DemoProvider, http: httpx.Client
) -> None:
    config = config_of(demo)
    auth = start(http, config)
    poller = Poller(http, config, auth)
    first = poller.poll_once(auth.interval)
    assert isinstance(first, DevicePending) and first.reason == "authorization_pending"
    # A poller that ignores the interval is told to slow down, and its interval grows by 5 s.
    second = poller.poll_once(first.interval)
    assert isinstance(second, DevicePending) and second.reason == "slow_down"
    assert second.interval == second.wait == INTERVAL + SLOW_DOWN_STEP
    assert demo.device_slow_downs[auth.user_code] == 1

    demo.approve_device(auth.user_code)
    time.sleep(second.wait)
    third = poller.poll_once(second.interval)
    assert isinstance(third, AuthData)
    polls = demo.device_polls[auth.user_code]
    assert len(polls) == 3
    assert polls[2] - polls[1] >= INTERVAL + SLOW_DOWN_STEP - 0.1
    assert demo.device_slow_downs[auth.user_code] == 1


def test_slow_down_is_cumulative() -> None:
    # RFC 8628 §3.5: "for this and all subsequent requests".
    body = json.dumps({"error": "slow_down"}).encode()
    interval = 5.0
    for expected in (10.0, 15.0, 20.0):
        outcome = classify_device_poll(400, JSON, body, interval=interval, received_at=utcnow())
        assert isinstance(outcome, DevicePending)
        assert outcome.interval == expected
        interval = outcome.interval
    pending = json.dumps({"error": "authorization_pending"}).encode()
    outcome = classify_device_poll(400, JSON, pending, interval=interval, received_at=utcnow())
    assert isinstance(outcome, DevicePending) and outcome.interval == outcome.wait == 20.0


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "none"])
def test_every_client_authentication_method(
    demo: DemoProvider, http: httpx.Client, method: str
) -> None:
    client_id, secret = demo.register_client(auth_method=method, scopes=None)
    config = ProviderConfig.from_mapping(
        demo.config(), client_id=client_id, client_secret=secret, client_auth_method=method
    )
    request = device_authorization_request(config, ["profile"])
    assert ("client_id=" in request.body) == (method != "client_secret_basic")
    auth = start(http, config)
    demo.approve_device(auth.user_code)
    data = Poller(http, config, auth).run()
    assert isinstance(data, AuthData), data
    me = http.get(demo.api_url, headers={"Authorization": f"Bearer {data.token}"})
    assert me.json()["client_id"] == client_id


def test_another_client_cannot_redeem_a_device_code(demo: DemoProvider, http: httpx.Client) -> None:
    # The attack: a second client that learnt the device code polls with it first.
    victim = config_of(demo)
    auth = start(http, victim)
    other_id, other_secret = demo.register_client(auth_method="client_secret_basic")
    thief = ProviderConfig.from_mapping(
        demo.config(), client_id=other_id, client_secret=other_secret
    )
    demo.approve_device(auth.user_code)
    stolen = Poller(http, thief, auth).poll_once(INTERVAL)
    assert isinstance(stolen, TokenExchangeError) and stolen.error == "unauthorized_client"
    assert_no_secret(str(stolen), secrets_of(auth), "the refusal")
    time.sleep(INTERVAL)
    assert isinstance(Poller(http, victim, auth).poll_once(INTERVAL), AuthData)


def test_google_style_answer_has_verification_url_and_no_complete_uri(
    demo: DemoProvider, http: httpx.Client
) -> None:
    demo.device_style = "google"
    config = config_of(demo)
    request = device_authorization_request(config, ())
    raw = send(http, request).json()
    assert "verification_url" in raw and "verification_uri" not in raw
    auth = parse_device_authorization(200, JSON, json.dumps(raw).encode(), received_at=utcnow())
    assert auth.verification_uri == f"{demo.issuer}/device"
    assert auth.verification_uri_complete is None
    demo.approve_device(auth.user_code)
    assert isinstance(Poller(http, config, auth).run(), AuthData)


def test_provider_failures_back_off_and_polling_goes_on(
    demo: DemoProvider, http: httpx.Client
) -> None:
    config = config_of(demo)
    auth = start(http, config)
    demo.inject_fault("token", status=503, body="<html>down</html>", times=2)
    demo.inject_fault(
        "token", status=500, body='{"error": "server_error"}', content_type="application/json"
    )
    demo.approve_device(auth.user_code)
    poller = Poller(http, config, auth)
    data = poller.run()
    assert isinstance(data, AuthData)
    retries = [o for o in poller.outcomes if isinstance(o, DevicePending)]
    assert [(o.reason, o.failures, o.wait) for o in retries] == [
        ("retry", 1, INTERVAL * 2),
        ("retry", 2, INTERVAL * 4),
        ("retry", 3, INTERVAL * 8),
    ]
    assert all(isinstance(o.error, TokenExchangeError) for o in retries)
    polls = demo.device_polls[auth.user_code]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert gaps[2] >= INTERVAL * 8 * 0.9 and demo.device_slow_downs[auth.user_code] == 0


def test_retry_after_and_the_cap_are_honoured() -> None:
    outcome = classify_device_poll(
        429, {"retry-after": "42"}, b"", interval=5, failures=0, received_at=utcnow()
    )
    assert isinstance(outcome, DevicePending) and outcome.reason == "retry"
    assert outcome.wait == 42 and outcome.interval == 5
    backoff = device_poll_backoff(5, failures=30)
    assert backoff.wait == 300 and backoff.failures == 31


def test_device_endpoint_errors_are_typed(demo: DemoProvider, http: httpx.Client) -> None:
    wrong = config_of(demo, client_secret=nasty_secret("GOCSPX-"))
    with pytest.raises(DeviceAuthorizationError) as caught:
        start(http, wrong)
    assert caught.value.error == "invalid_client" and caught.value.status_code == 401
    assert_no_secret(str(caught.value), [wrong.client_secret], "the error", [wrong.client_id])

    restricted_id, restricted_secret = demo.register_client(scopes=["profile"])
    restricted = ProviderConfig.from_mapping(
        {**demo.config(), "defaultScopes": ["admin"]},
        client_id=restricted_id,
        client_secret=restricted_secret,
    )
    with pytest.raises(DeviceAuthorizationError) as caught:
        start(http, restricted)
    assert caught.value.error == "invalid_scope"

    demo.inject_fault("device_authorization", status=502, body="<html>Bad gateway</html>")
    with pytest.raises(DeviceAuthorizationError, match="provider failed"):
        start(http, config_of(demo))
    demo.inject_fault("device_authorization", status=200, body="<html>Sign in</html>")
    with pytest.raises(DeviceAuthorizationError, match="not a JSON object"):
        start(http, config_of(demo))


# -- the verification page -------------------------------------------------------------------


def test_verification_page_flow_like_a_browser(demo: DemoProvider, http: httpx.Client) -> None:
    auth = start(http, config_of(demo))
    entry = http.get(f"{demo.issuer}/device")
    assert entry.status_code == 200 and 'name="user_code"' in entry.text
    assert entry.headers["X-Frame-Options"] == "DENY"
    assert auth.verification_uri_complete is not None
    consent = http.get(auth.verification_uri_complete)
    assert consent.status_code == 200
    assert f'id="user-code">{auth.user_code}<' in consent.text
    assert "chat_oauth2_nb demo client" in consent.text
    unknown = http.get(f"{demo.issuer}/device", params={"user_code": "ZZZZ-ZZZZ"})
    assert unknown.status_code == 400 and "not known" in unknown.text


def test_verification_page_escapes_what_it_shows(demo: DemoProvider, http: httpx.Client) -> None:
    hostile = '<script>alert("x")</script>'
    client_id, secret = demo.register_client(client_name=hostile, scopes=None)
    config = ProviderConfig.from_mapping(demo.config(), client_id=client_id, client_secret=secret)
    auth = start(http, config)
    for page in (
        http.get(f"{demo.issuer}/device", params={"user_code": auth.user_code}),
        http.get(f"{demo.issuer}/device", params={"user_code": hostile}),
        demo.approve_device(auth.user_code),
    ):
        assert "<script>" not in page.text, page.text
    assert "&lt;script&gt;" in page.text


def test_verification_answer_needs_the_ticket_of_that_code(
    demo: DemoProvider, http: httpx.Client
) -> None:
    # The attack: a page elsewhere posts an approval for a code it knows (login CSRF), or
    # replays the ticket of the victim's code for the attacker's own code.
    config = config_of(demo)
    mine, theirs = start(http, config), start(http, config)
    forged = http.post(
        f"{demo.issuer}/device",
        data={"user_code": theirs.user_code, "decision": "approve", "consent_ticket": "guess"},
    )
    assert forged.status_code == 400
    page = http.get(f"{demo.issuer}/device", params={"user_code": mine.user_code})
    ticket = page.text.split('name="consent_ticket" value="')[1].split('"')[0]
    swapped = http.post(
        f"{demo.issuer}/device",
        data={"user_code": theirs.user_code, "decision": "approve", "consent_ticket": ticket},
    )
    assert swapped.status_code == 400
    still = Poller(http, config, theirs).poll_once(INTERVAL)
    assert isinstance(still, DevicePending) and still.reason == "authorization_pending"


# -- config and discovery --------------------------------------------------------------------


def test_discovery_fills_the_device_endpoint(demo: DemoProvider) -> None:
    found = discover_config(demo.issuer, alias="found", default_scopes=["profile"])
    assert found["deviceAuthorizationUri"] == f"{demo.issuer}/device_authorization"
    config = ProviderConfig.from_mapping(
        found, client_id=demo.client_id, client_secret=demo.client_secret
    )
    assert config.device_authorization_uri == found["deviceAuthorizationUri"]
    assert config.to_mapping()["device_authorization_uri"] == config.device_authorization_uri
    assert ProviderConfig.from_mapping(config) == config


def test_device_uri_is_validated_like_the_others() -> None:
    base = {"alias": "x", "authUri": "https://p.example/a", "accessTokenUri": "https://p.example/t"}
    ok = ProviderConfig.from_mapping(
        {**base, "device_authorization_uri": "https://p.example/device/code"},
        client_id="c",
        client_auth_method="none",
    )
    assert ok.device_authorization_uri == "https://p.example/device/code"
    for bad in ("javascript:alert(1)", "p.example/device", "http://p.example/device"):
        with pytest.raises(ConfigurationError) as caught:
            ProviderConfig.from_mapping(
                {**base, "deviceAuthorizationUri": bad}, client_id="c", client_auth_method="none"
            )
        assert caught.value.field == "deviceAuthorizationUri"
    without = ProviderConfig.from_mapping(base, client_id="c", client_auth_method="none")
    with pytest.raises(ConfigurationError, match="deviceAuthorizationUri"):
        device_authorization_request(without)


# -- parsing ----------------------------------------------------------------------------------

DEVICE_CODE = nasty_secret("AH-1Ng")
GOOD: dict[str, Any] = {
    "device_code": DEVICE_CODE,
    "user_code": "WDJB-MJHT",
    "verification_uri": "https://example.com/device",
    "verification_uri_complete": "https://example.com/device?user_code=WDJB-MJHT",
    "expires_in": 1800,
    "interval": 5,
}


def parse(body: Any, status: int = 200, headers: dict[str, str] = JSON) -> DeviceAuthorization:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_device_authorization(
        status, headers, content, received_at=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    )


def test_parse_a_good_answer_and_its_variants() -> None:
    auth = parse(GOOD)
    assert auth.expires_at == dt.datetime(2030, 1, 1, 0, 30, tzinfo=dt.timezone.utc)
    assert (auth.user_code, auth.interval) == ("WDJB-MJHT", 5.0)
    assert DeviceAuthorization.from_json(auth.to_json()) == auth
    # Providers send numbers as strings, leave out interval (5 s) and the complete URI.
    loose = parse({**GOOD, "expires_in": "900", "interval": None, "verification_uri_complete": ""})
    assert loose.interval == 5.0 and loose.verification_uri_complete is None
    # An interval longer than the codes live would never poll.
    assert parse({**GOOD, "expires_in": 3, "interval": 60}).interval == 3
    form = parse(
        b"device_code=abc&user_code=X&verification_uri=https%3A%2F%2Fg.example%2Fd&expires_in=9",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.verification_uri == "https://g.example/d"


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("no device_code", {"device_code": None}, "device_code"),
    ("device_code not a string", {"device_code": 12345}, "device_code"),
    ("device_code huge", {"device_code": "A" * (MAX_FIELD_CHARS + 1)}, "device_code"),
    ("no user_code", {"user_code": None}, "user_code"),
    ("user_code a number", {"user_code": 1234}, "user_code"),
    ("user_code huge", {"user_code": "W" * 129}, "user_code"),
    ("user_code control chars", {"user_code": "AB\u202e\x1bCD"}, "user_code"),
    ("no verification_uri", {"verification_uri": None}, "verification_uri"),
    ("javascript uri", {"verification_uri": "javascript:alert(1)"}, "verification_uri"),
    ("relative uri", {"verification_uri": "/device"}, "verification_uri"),
    ("data complete uri", {"verification_uri_complete": "data:text/html,x"}, "complete"),
    ("no expires_in", {"expires_in": None}, "expires_in"),
    ("expires_in zero", {"expires_in": 0}, "expires_in"),
    ("expires_in text", {"expires_in": "soon"}, "expires_in"),
    ("expires_in bool", {"expires_in": True}, "expires_in"),
    ("expires_in nan", {"expires_in": "nan"}, "expires_in"),
    ("interval negative", {"interval": -1}, "interval"),
    ("interval text", {"interval": "often"}, "interval"),
    # A bad field that carries the device code must not leak it in the error's preview.
    ("uri carrying the code", {"verification_uri": f"javascript:{DEVICE_CODE}"}, "verification"),
    ("user_code carrying the code", {"user_code": DEVICE_CODE * 6}, "user_code"),
    ("interval carrying the code", {"interval": DEVICE_CODE}, "interval"),
]


@pytest.mark.parametrize(("case", "change", "named"), BAD, ids=[c for c, _, _ in BAD])
def test_parse_rejects_malformed_answers(case: str, change: dict[str, Any], named: str) -> None:
    with pytest.raises(DeviceAuthorizationError, match=named) as caught:
        parse({**GOOD, **change})
    assert "deviceAuthorizationUri" in str(caught.value)
    # The device code of the answer is never repeated, even when another field is the bad one.
    assert_no_secret(str(caught.value), [DEVICE_CODE], f"the error for {case}")


def test_parse_errors_and_non_json() -> None:
    with pytest.raises(DeviceAuthorizationError) as caught:
        parse({"error": "invalid_client", "error_description": "Unknown client"}, status=401)
    assert (caught.value.error, caught.value.status_code) == ("invalid_client", 401)
    with pytest.raises(DeviceAuthorizationError) as caught:
        parse({"error": "unauthorized_client"}, status=200)  # an error sent with 200
    assert caught.value.error == "unauthorized_client"
    with pytest.raises(DeviceAuthorizationError, match="text/html"):
        parse(b"<html>login</html>", headers={"content-type": "text/html"})


def test_a_provider_echoing_the_device_code_is_masked() -> None:
    # The attack: a buggy or hostile provider repeats the request in its error text.
    config = ProviderConfig.from_mapping(
        {"alias": "x", "authUri": "https://p.example/a", "accessTokenUri": "https://p.example/t"},
        client_id="c",
        client_auth_method="none",
    )
    request = device_token_request(config, DEVICE_CODE)
    echoed = json.dumps(
        {"error": "invalid_request", "error_description": f"bad device_code {DEVICE_CODE}"}
    ).encode()
    outcome = classify_device_poll(
        400, JSON, echoed, interval=5, received_at=utcnow(), secrets=request.secrets
    )
    assert isinstance(outcome, TokenExchangeError) and outcome.error == "invalid_request"
    assert_no_secret(str(outcome), [DEVICE_CODE], "the echoed error")
    for status in (200, 503):  # GitHub-style errors with 200, and a failing provider
        pending = classify_device_poll(
            status,
            JSON,
            echoed.replace(b"invalid_request", b"server_error"),
            interval=5,
            received_at=utcnow(),
            secrets=request.secrets,
        )
        assert isinstance(pending, DevicePending)
        assert_no_secret(repr(pending), [DEVICE_CODE], "the retry's error")


def test_classify_covers_every_answer() -> None:
    def classify(status: int, body: dict[str, Any] | bytes, **kwargs: Any) -> DevicePollOutcome:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return classify_device_poll(
            status, JSON, content, interval=5, received_at=utcnow(), **kwargs
        )

    github = classify(200, {"error": "authorization_pending"})
    assert github == DevicePending("authorization_pending", 5.0, 5.0)
    token = classify(200, {"access_token": "ya29.x", "token_type": "Bearer", "expires_in": 60})
    assert isinstance(token, AuthData) and token.token == "ya29.x"
    assert isinstance(classify(200, {"token_type": "Bearer"}), TokenExchangeError)
    assert isinstance(classify(200, b"<html>portal</html>"), TokenExchangeError)
    assert isinstance(classify(400, {"error": "access_denied"}), AuthorizationDeniedError)
    assert isinstance(classify(400, {"error": "expired_token"}), DeviceCodeExpiredError)
    assert isinstance(classify(401, {"error": "invalid_client"}), TokenExchangeError)
    unavailable = classify(400, {"error": "temporarily_unavailable"}, failures=1)
    assert isinstance(unavailable, DevicePending) and unavailable.wait == 20.0


# -- no device code anywhere -------------------------------------------------------------------


def test_device_code_never_in_a_repr_body_or_log(
    demo: DemoProvider, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = config_of(demo)
    auth = start(http, config)
    request = device_token_request(config, auth.device_code)
    assert request.body.count("device_code=") == 1 and f"grant_type={DEVICE_CODE_GRANT_TYPE}" in (
        request.body.replace("%3A", ":")
    )
    demo.approve_device(auth.user_code)
    poller = Poller(http, config, auth)
    data = poller.run()
    assert isinstance(data, AuthData)
    secrets = [*secrets_of(auth, data), demo.client_secret]
    shown = "\n".join(
        [
            repr(auth),
            str(auth),
            repr(request),
            request.redacted_body(),
            *(repr(o) for o in poller.outcomes),
        ]
    )
    assert auth.user_code in repr(auth) and auth.verification_uri in repr(auth)
    assert_no_secret(shown, secrets, "reprs and the redacted poll", [config.client_id])
    # The provider's log and Authlib's ("Issue token {...}") — the test's httpx logs URLs only.
    ours = [r for r in caplog.records if r.name.startswith(("chat_oauth2_nb", "authlib"))]
    text = "\n".join(r.getMessage() for r in ours)
    assert "approved device code" in text
    assert_no_secret(text, secrets, "the provider's log", [config.client_id])


def test_the_demo_knobs_are_checked() -> None:
    provider = DemoProvider()
    for name, value in (("device_code_lifetime", 0), ("device_interval", -1)):
        with pytest.raises(ValueError, match=name):
            setattr(provider, name, value)
    with pytest.raises(ValueError, match="device_interval"):
        DemoProvider(device_interval=float("nan"))


def test_approve_device_concurrently_with_polling(demo: DemoProvider, http: httpx.Client) -> None:
    config = config_of(demo)
    auth = start(http, config)
    timer = threading.Timer(0.5, demo.approve_device, args=(auth.user_code,))
    timer.start()
    try:
        assert isinstance(Poller(http, config, auth).run(deadline=15), AuthData)
    finally:
        timer.cancel()

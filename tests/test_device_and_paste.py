"""The two ways that need no reachable callback: device code (RFC 8628) and paste-back.

Both run against the real demo provider on 127.0.0.1. Device code: the person types a code
at the provider while the kernel polls the token endpoint. Paste-back: the browser ends on
a loopback address nothing serves, and the person pastes that address into the notebook.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from support.scan import assert_no_secret

from chat_oauth2_nb import (
    AuthorizationDeniedError,
    ConfigurationError,
    StateError,
)
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.errors import DeviceCodeExpiredError
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth import device as device_module
from chat_oauth2_nb.store import Store

Make = Callable[..., OAuth2Client]


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll at the 1 s these tests ask the demo for, below the 5 s floor kept against any
    provider (tests/test_device_hardening.py proves the floor): they test the poller."""
    monkeypatch.setattr(device_module, "MIN_POLL_INTERVAL", 1.0)


def approve_later(provider: DemoProvider, user_code: str, delay: float, **kw: object) -> None:
    threading.Timer(delay, lambda: provider.approve_device(user_code, **kw)).start()  # type: ignore[arg-type]


def device_codes(provider: DemoProvider) -> list[str]:
    with provider._store.lock:
        return [d.device_code for d in provider._store.devices.values()]


# -- device code ----------------------------------------------------------------------------


def test_device_flow_end_to_end_then_refresh_and_revoke(
    make_client: Make, provider: DemoProvider, store: Store
) -> None:
    provider.device_interval = 1
    client = make_client(mode="device")
    assert client.setup() == "" and client.way == "device"
    device = client.start_device_authorization("ada")
    assert device.user_code and device.verification_uri.startswith(provider.issuer)
    assert "device_code" not in repr(device)
    approve_later(provider, device.user_code, 1.5)
    data = client.wait_for_authorization("ada", timeout=30)
    assert provider.introspect(data.token)["active"] is True
    # Polls kept the provider's interval (the kernel's side of RFC 8628 §3.5).
    polls = provider.device_polls[device.user_code]
    assert len(polls) >= 2
    assert all(b - a >= 0.9 for a, b in itertools.pairwise(polls))
    assert provider.device_slow_downs[device.user_code] == 0
    fresh = client.refresh_user_access_token("ada")
    assert fresh.token != data.token and provider.introspect(fresh.token)["active"]
    assert client.revoke_user_access_token("ada") is True
    assert provider.introspect(fresh.token)["active"] is False
    logged = repr(list(client.http_log)) + repr(store.latest_flow("demo", "ada"))
    assert_no_secret(logged, device_codes(provider), "the HTTP log and the flow")


def test_the_seed_api_works_in_device_mode(make_client: Make, provider: DemoProvider) -> None:
    provider.device_interval = 1
    client = make_client(mode="device")
    link = client.get_user_authorization_url("ada")
    assert link.user_code and link.user_code in link  # the page with the code filled in
    approve_later(provider, link.user_code, 1.0)
    assert client.wait_for_authorization("ada", timeout=30).token


def test_device_denied_is_a_typed_error(make_client: Make, provider: DemoProvider) -> None:
    provider.device_interval = 1
    client = make_client(mode="device")
    device = client.start_device_authorization("ada")
    approve_later(provider, device.user_code, 1.0, deny=True)
    with pytest.raises(AuthorizationDeniedError, match="access_denied"):
        client.wait_for_authorization("ada", timeout=30)


def test_device_code_expiry_says_to_start_again(make_client: Make, provider: DemoProvider) -> None:
    provider.device_interval = 1
    provider.device_code_lifetime = 2
    client = make_client(mode="device")
    client.start_device_authorization("ada")
    started = time.monotonic()
    with pytest.raises(DeviceCodeExpiredError) as info:
        client.wait_for_authorization("ada", timeout=30)
    assert time.monotonic() - started < 10
    assert "start" in str(info.value).lower()


def test_slow_down_adds_five_seconds(make_client: Make, provider: DemoProvider) -> None:
    provider.device_interval = 1
    client = make_client(mode="device")
    device = client.start_device_authorization("ada")
    provider.inject_fault(
        "token",
        status=400,
        body=json.dumps({"error": "slow_down"}),
        content_type="application/json",
    )
    approve_later(provider, device.user_code, 2.0)
    client.wait_for_authorization("ada", timeout=60)
    polls = provider.device_polls[device.user_code]
    # The first poll got slow_down: the next one came at least 1 + 5 s later.
    assert polls[1] - polls[0] >= 5.8, polls


def test_two_waiters_share_one_poller(make_client: Make, provider: DemoProvider) -> None:
    provider.device_interval = 1
    client = make_client(mode="device")
    device = client.start_device_authorization("ada")
    results: list[object] = []

    def wait() -> None:
        results.append(client.wait_for_authorization("ada", timeout=30))

    waiters = [threading.Thread(target=wait) for _ in range(4)]
    for waiter in waiters:
        waiter.start()
    approve_later(provider, device.user_code, 3.0)
    for waiter in waiters:
        waiter.join(30)
    assert len(results) == 4 and len({id(r) for r in results}) >= 1
    polls = provider.device_polls[device.user_code]
    # Four waiters, and still no two polls closer than the interval.
    assert all(b - a >= 0.9 for a, b in itertools.pairwise(polls)), polls
    assert provider.device_slow_downs[device.user_code] == 0


def test_close_stops_polling(make_client: Make, provider: DemoProvider) -> None:
    provider.device_interval = 1
    client = make_client(mode="device")
    device = client.start_device_authorization("ada")
    ended: list[BaseException] = []

    def wait() -> None:
        try:
            client.wait_for_authorization("ada", timeout=30)
        except BaseException as exc:
            ended.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.5)
    client.close()
    waiter.join(2)
    assert not waiter.is_alive() and "closed" in str(ended[0])
    count = len(provider.device_polls[device.user_code])
    time.sleep(2.5)
    assert len(provider.device_polls[device.user_code]) == count


def test_device_mode_without_a_device_endpoint_says_what_to_do(
    make_client: Make, provider: DemoProvider
) -> None:
    config = provider.config(alias="demo")
    config.pop("deviceAuthorizationUri")
    client = make_client(config=config, mode="device")
    with pytest.raises(ConfigurationError, match="deviceAuthorizationUri"):
        client.setup()


# -- paste-back ----------------------------------------------------------------------------


def pasted_address(provider: DemoProvider, link: str, **kw: object) -> str:
    """Approve; return the address the browser ends on (nothing serves it)."""
    redirect = provider.approve(link, follow_redirect=False, **kw)  # type: ignore[arg-type]
    assert redirect.status_code in (302, 303), redirect.text
    return str(redirect.headers["location"])


def with_query(address: str, **changes: str) -> str:
    parts = urlsplit(address)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_paste_back_success_replay_and_forgery(
    make_client: Make, provider: DemoProvider, store: Store
) -> None:
    client = make_client(mode="paste")
    redirect_uri = client.setup()
    assert client.way == "paste" and redirect_uri.endswith("/chat-oauth2/callback/demo")
    link = client.get_user_authorization_url("ada")
    assert link == link.provider_url  # no start page: nothing serves the redirect URI
    address = pasted_address(provider, link)
    assert address.startswith(redirect_uri)
    # A forged state first: refused, nothing stored, and the real address still works.
    with pytest.raises(StateError):
        client.complete_authorization(with_query(address, state="x" * 43), "ada")
    assert store.get_token("demo", "ada") is None
    data = client.complete_authorization(address, "ada")
    assert provider.introspect(data.token)["active"] is True
    with pytest.raises(StateError, match="already used"):
        client.complete_authorization(address, "ada")
    # Only the query pasted works as well.
    second = client.get_user_authorization_url("ada")
    query = urlsplit(pasted_address(provider, second)).query
    assert client.complete_authorization("?" + query, "ada").token != data.token


def test_paste_back_of_a_denial_is_a_typed_error(
    make_client: Make, provider: DemoProvider, store: Store
) -> None:
    client = make_client(mode="paste")
    address = pasted_address(provider, client.get_user_authorization_url("ada"), deny=True)
    with pytest.raises(AuthorizationDeniedError, match="access_denied"):
        client.complete_authorization(address, "ada")
    assert store.get_token("demo", "ada") is None


def test_paste_back_for_another_alias_or_user_is_refused(
    make_client: Make, provider: DemoProvider, store: Store
) -> None:
    work = make_client("work", mode="paste")
    home = make_client("home", mode="paste")
    address = pasted_address(provider, work.get_user_authorization_url("ada"))
    with pytest.raises(StateError, match="another authorization"):
        home.complete_authorization(address, "ada")
    with pytest.raises(StateError, match="another authorization"):
        work.complete_authorization(address, "bob")
    # The address, moved to the other alias's path, is a mix-up: refused too.
    moved = address.replace("/callback/work", "/callback/home")
    with pytest.raises(StateError):
        work.complete_authorization(moved, "ada")
    assert store.list_tokens() == []
    assert work.complete_authorization(address, "ada").token


def test_a_redirect_flow_cannot_be_finished_by_pasting(
    make_client: Make, provider: DemoProvider, store: Store
) -> None:
    """A loopback flow (bound to a browser cookie) pasted instead: refused, still pending."""
    client = make_client()  # loopback
    link = client.get_user_authorization_url("ada")
    redirect = provider.approve(link, follow_redirect=False)
    address = str(redirect.headers["location"])
    with pytest.raises(StateError):
        client.complete_authorization(address, "ada")
    state = parse_qs(urlsplit(address).query)["state"][0]
    flow = store.get_flow(state)
    assert flow is not None and flow.status == "pending"


def test_polling_survives_a_provider_that_fails_mid_poll(
    make_client: Make, provider: DemoProvider, store: Store
) -> None:
    """5xx, an HTML error page and a dropped connection while polling: it backs off, keeps
    polling, and finishes once the person approved; every failure is in the HTTP log."""
    provider.device_interval = 1
    client = make_client(mode="device", timeout=2)
    device = client.start_device_authorization("ada")
    provider.inject_fault("token", status=503, body="busy", content_type="text/plain")
    provider.inject_fault(
        "token", status=500, body="<html><h1>Oops</h1></html>", content_type="text/html"
    )
    provider.inject_fault("token", status=200, body="{}", delay=3)  # longer than timeout=2
    approve_later(provider, device.user_code, 1.0)
    data = client.wait_for_authorization("ada", timeout=90)
    assert provider.introspect(data.token)["active"] is True
    outcomes = [e.status or e.error for e in client.http_log]
    assert 503 in outcomes and 500 in outcomes and "timeout" in outcomes, outcomes
    polls = provider.device_polls[device.user_code]
    # Backing off: the gap after each failure grew (1 s interval, doubled per failure).
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert max(gaps) >= 3.5, gaps
    assert_no_secret(repr(list(client.http_log)), device_codes(provider), "the HTTP log")

"""A hostile device authorization endpoint (RFC 8628), performed against the demo provider.

The provider answers with a ``verification_uri_complete`` on another origin than the
``verification_uri`` the panel names (a phishing link under trusted text), or with
``interval: 0`` (a kernel that polls the token endpoint as fast as it can). Both go through
the real client in device mode, so what a person would see and what the kernel would do are
what the test checks.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import chat_oauth2_nb.oauth.device as device_module
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.errors import DeviceAuthorizationError
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth import (
    DeviceAuthorization,
    device_authorization_request,
    parse_device_authorization,
    utcnow,
)
from chat_oauth2_nb.oauth.transport import send
from chat_oauth2_nb.store import Store

Make = Callable[..., OAuth2Client]
EVIL = "https://accounts.example.evil.test/device?user_code=WDJB-MJHT"


def hostile_answer(provider: DemoProvider, **change: Any) -> None:
    """The next device authorization answer is this one (a provider gone bad)."""
    answer = {
        "device_code": "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS",
        "user_code": "WDJB-MJHT",
        "verification_uri": f"{provider.issuer}/device",
        "verification_uri_complete": f"{provider.issuer}/device?user_code=WDJB-MJHT",
        "expires_in": 1800,
        "interval": 5,
        **change,
    }
    body = json.dumps({k: v for k, v in answer.items() if v is not None})
    provider.inject_fault(
        "device_authorization", status=200, body=body, content_type="application/json"
    )


def ask(provider: DemoProvider, make_client: Make) -> DeviceAuthorization:
    """Ask the provider for a device code over HTTP and read the answer, as the kernel does."""
    config = make_client(mode="device").config
    request = device_authorization_request(config, ("profile",))
    with httpx.Client(trust_env=False, timeout=10) as http:
        answer = send(http, request, deadline=10)
    return parse_device_authorization(
        answer.status or 0,
        answer.headers,
        answer.content,
        received_at=utcnow(),
        secrets=request.secrets,
        client_id=request.client_id,
    )


# -- finding 12: the complete URI links only where the plain one goes ----------------------


def test_a_complete_uri_on_another_origin_is_never_linked(
    make_client: Make, provider: DemoProvider, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    hostile_answer(provider, verification_uri_complete=EVIL)
    client = make_client(mode="device")
    with caplog.at_level(logging.WARNING, "chat_oauth2_nb"):
        device = client.start_device_authorization("ada")
    # Dropped, not followed: the person is sent to the page the text names, and types the code.
    assert device.verification_uri_complete is None
    assert device.link == f"{provider.issuer}/device"
    assert device.verification_host == provider.issuer.removeprefix("http://")
    # What the panel and the seed API read (the flow's public record, the returned link)
    # holds no trace of the other origin.
    flow = store.latest_flow("demo", "ada")
    assert flow is not None and flow.device is not None
    assert flow.device["verification_uri_complete"] is None
    assert "evil" not in json.dumps(flow.device)
    hostile_answer(provider, verification_uri_complete=EVIL)
    assert "evil" not in client.get_user_authorization_url("ada")
    assert "another origin" in caplog.text and "accounts.example.evil.test" in caplog.text


@pytest.mark.parametrize(
    "complete",
    [
        # Another scheme, another port, another host that merely starts the same way.
        "https://{host}/device?user_code=WDJB-MJHT",
        "http://{hostname}:1/device?user_code=WDJB-MJHT",
        "http://{hostname}.evil.test:{port}/device?user_code=WDJB-MJHT",
        "http://localhost:{port}/device?user_code=WDJB-MJHT",
    ],
)
def test_every_other_origin_is_dropped(
    make_client: Make, provider: DemoProvider, complete: str
) -> None:
    host = provider.issuer.removeprefix("http://")
    hostname, port = host.rsplit(":", 1)
    hostile_answer(
        provider,
        verification_uri_complete=complete.format(host=host, hostname=hostname, port=port),
    )
    assert ask(provider, make_client).verification_uri_complete is None


def test_the_same_origin_written_otherwise_is_kept(
    make_client: Make, provider: DemoProvider
) -> None:
    host = provider.issuer.removeprefix("http://")
    # Host names are case-insensitive (RFC 3986 §3.2.2): still the same origin.
    complete = f"http://{host.upper()}/device?user_code=WDJB-MJHT"
    hostile_answer(provider, verification_uri_complete=complete)
    device = ask(provider, make_client)
    assert device.verification_uri_complete == complete and device.link == complete


def test_a_verification_uri_with_user_info_is_refused(
    make_client: Make, provider: DemoProvider
) -> None:
    # Reads as accounts.google.com, opens 127.0.0.1: RFC 3986 §7.6's semantic attack.
    port = provider.issuer.rsplit(":", 1)[1]
    hostile_answer(
        provider,
        verification_uri=f"http://accounts.google.com@127.0.0.1:{port}/device",
        verification_uri_complete=None,
    )
    with pytest.raises(DeviceAuthorizationError, match="user info"):
        ask(provider, make_client)


def test_the_shown_host_is_the_ascii_form_of_a_look_alike() -> None:
    # Cyrillic letters that look like "apple.com": shown as the punycode a browser would show.
    body = {
        "device_code": "d" * 20,
        "user_code": "AB-CD",
        "verification_uri": "https://\u0430\u0440\u0440\u04cf\u0435.com/device",
        "expires_in": 600,
    }
    device = parse_device_authorization(
        200,
        {"content-type": "application/json"},
        json.dumps(body).encode(),
        received_at=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc),
    )
    assert device.verification_host == "xn--80ak6aa92e.com"


# -- finding 16: interval 0 does not make the kernel poll as fast as it can -----------------


@pytest.mark.parametrize("interval", [0, 0.05, "0", 4.9])
def test_a_provider_asking_for_fast_polls_gets_the_five_second_floor(
    make_client: Make, provider: DemoProvider, store: Store, interval: object
) -> None:
    hostile_answer(provider, interval=interval)
    client = make_client(mode="device")
    device = client.start_device_authorization("ada")
    assert device.interval >= 5
    # What the kernel's poller reads: the first poll is at least 5 s away.
    flow = store.latest_flow("demo", "ada")
    assert flow is not None and flow.device is not None
    assert flow.device["interval"] >= 5
    assert flow.device["next_poll_at"] - flow.created_at >= 4.9


def test_the_demo_provider_with_interval_zero_is_polled_at_five_seconds(
    make_client: Make, provider: DemoProvider
) -> None:
    provider.device_interval = 0  # the provider's own knob, not an injected answer
    assert ask(provider, make_client).interval == 5


def test_the_floor_is_one_constant_that_tests_of_the_mechanics_may_lower(
    monkeypatch: pytest.MonkeyPatch, make_client: Make, provider: DemoProvider
) -> None:
    assert device_module.MIN_POLL_INTERVAL == 5
    monkeypatch.setattr(device_module, "MIN_POLL_INTERVAL", 0.2)
    provider.device_interval = 0
    assert ask(provider, make_client).interval == 0.2

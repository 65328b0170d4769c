"""client.diagnose() against the real demo provider, made to misbehave the way providers do.

Each test breaks one thing a person gets wrong when setting up a provider (the secret, the
client authentication method, the redirect URI, an endpoint that redirects, metadata that
disagrees, a clock that is off, no metadata at all) and checks that the report names that
mistake, with the value to change, and nothing else fails. Every report is scanned, as text
and as HTML, for every secret in every encoding.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Callable, Iterable
from urllib.parse import quote_plus

import pytest
from support.scan import assert_no_secret, nasty_secret

from chat_oauth2_nb.config import ProviderConfig
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.doctor import Report, Subject, diagnose
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth import HttpExchange
from chat_oauth2_nb.store import Store

MakeClient = Callable[..., OAuth2Client]


def scanned(
    report: Report, client: OAuth2Client, secrets: Iterable[str | None], *, ids: Iterable[str] = ()
) -> Report:
    """The report, after checking neither its text, its HTML nor the HTTP log holds a secret."""
    secrets = [*secrets, client.config.client_secret]
    ids = [*ids, client.config.client_id]
    assert_no_secret(str(report), secrets, "the report's text", client_ids=ids)
    assert_no_secret(report._repr_html_(), secrets, "the report's HTML", client_ids=ids)
    assert_no_secret(repr(report), secrets, "the report's repr", client_ids=ids)
    log = "\n".join(f"{x.url} {x.request_body} {x.response_body}" for x in client.http_log)
    assert_no_secret(log, secrets, "the HTTP log", client_ids=ids)
    return report


def verdicts(report: Report) -> dict[str, str]:
    return {check.id: check.verdict for check in report}


def test_a_correct_config_is_all_ok_and_leaves_nothing_behind(
    provider: DemoProvider, make_client: MakeClient, store: Store
) -> None:
    secret = nasty_secret("GOCSPX-")
    client_id, _ = provider.register_client(client_secret=secret, scopes=None)
    client = make_client(client_id=client_id, client_secret=secret)
    report = scanned(client.diagnose("ada"), client, [secret])

    assert report.ok, str(report)
    assert set(verdicts(report).values()) <= {"ok", "skipped"}, str(report)
    for check_id in (
        "endpoint:authUri",
        "endpoint:accessTokenUri",
        "endpoint:revokeTokenUri",
        "endpoint:introspectionUri",
        "endpoint:deviceAuthorizationUri",
        "metadata",
        "metadata:endpoints",
        "metadata:pkce",
        "metadata:client_auth",
        "metadata:scopes",
        "credentials",
        "redirect_uri",
        "clock",
    ):
        assert report[check_id].verdict == "ok", report[check_id]
    assert "invalid_grant" in report["credentials"].evidence
    # Nothing stored for ada yet: the token checks say so instead of guessing.
    assert report["scopes"].verdict == report["refresh"].verdict == "skipped"
    # Exactly one credentials probe, and no pending flow left in the shared store.
    assert provider.token_requests["authorization_code"] == 1
    assert store.latest_flow("demo", "ada") is None
    # The person sees every request the doctor made.
    assert any(x.url == client.config.access_token_uri for x in client.http_log)


def test_a_wrong_secret_fails_the_credentials_with_the_providers_words(
    provider: DemoProvider, make_client: MakeClient
) -> None:
    right, wrong = nasty_secret("right"), nasty_secret("wrong")
    client_id, _ = provider.register_client(client_secret=right)
    client = make_client(client_id=client_id, client_secret=wrong)
    report = scanned(client.diagnose(), client, [right, wrong])

    check = report["credentials"]
    assert check.verdict == "fail"
    assert "invalid_client" in check.evidence
    assert "client secret" in check.action
    assert [c.id for c in report.failed] == ["credentials"], str(report)
    assert "invalid_client" in report._repr_html_()
    assert provider.token_requests["authorization_code"] == 1  # never retried


def test_a_wrong_client_auth_method_is_named(
    provider: DemoProvider, make_client: MakeClient
) -> None:
    secret = nasty_secret()
    client_id, _ = provider.register_client(client_secret=secret, auth_method="client_secret_post")
    client = make_client(client_id=client_id, client_secret=secret)  # basic by default
    # The provider says which methods it takes, too.
    provider.metadata_overrides["token_endpoint_auth_methods_supported"] = ["client_secret_post"]
    report = scanned(client.diagnose(), client, [secret])

    assert report["credentials"].verdict == "fail"
    assert "client_auth_method" in report["credentials"].action
    auth = report["metadata:client_auth"]
    assert auth.verdict == "fail"
    assert "client_auth_method='client_secret_post'" in auth.action

    fixed = make_client(
        alias="fixed",
        client_id=client_id,
        client_secret=secret,
        client_auth_method="client_secret_post",
    )
    assert scanned(fixed.diagnose(), fixed, [secret]).ok


def test_an_unregistered_redirect_uri_fails_naming_the_uri_to_register(
    provider: DemoProvider, make_client: MakeClient, store: Store
) -> None:
    registered = "http://127.0.0.1:8765/chat-oauth2/callback/demo"
    used = "http://localhost:8888/chat-oauth2/callback/demo"
    client_id, secret = provider.register_client(redirect_uris=[registered])
    client = make_client(client_id=client_id, client_secret=secret, redirect_uri=used)
    report = scanned(client.diagnose("ada"), client, [secret])

    check = report["redirect_uri"]
    assert check.verdict == "fail", str(report)
    assert "heuristic" in check.title
    assert f"Register exactly {used} " in check.action
    assert "redirect_uri" in check.evidence  # the provider's own words
    assert html.escape(used) in report._repr_html_()
    assert store.latest_flow("demo", "ada") is None  # the probe recorded no flow

    good = make_client(
        alias="good", client_id=client_id, client_secret=secret, redirect_uri=registered
    )
    assert scanned(good.diagnose(), good, [secret])["redirect_uri"].verdict == "ok"


def test_a_token_endpoint_that_redirects_fails_with_where_it_goes(
    provider: DemoProvider, make_client: MakeClient
) -> None:
    target = "https://login.example.org/oauth2/token"
    provider.inject_fault("token", status=302, headers={"Location": target}, times=2)
    client = make_client()
    report = scanned(client.diagnose(), client, [])

    endpoint = report["endpoint:accessTokenUri"]
    assert endpoint.verdict == "fail"
    assert target in endpoint.evidence
    assert "accessTokenUri" in endpoint.action
    assert report["credentials"].verdict == "fail"
    assert target in report["credentials"].evidence


def test_an_endpoint_nobody_listens_on_fails_and_its_probe_is_skipped(
    provider: DemoProvider, make_client: MakeClient
) -> None:
    config = provider.config()
    config["accessTokenUri"] = config["refreshTokenUri"] = "http://127.0.0.1:1/token"
    client = make_client(config=config)
    report = scanned(client.diagnose(), client, [])
    assert report["endpoint:accessTokenUri"].verdict == "fail"
    assert "connection refused" in report["endpoint:accessTokenUri"].evidence
    assert report["credentials"].verdict == "skipped"
    assert "accessTokenUri is http://127.0.0.1:1/token" in report["metadata:endpoints"].evidence


def test_metadata_that_disagrees_with_the_config(
    provider: DemoProvider, make_client: MakeClient
) -> None:
    advertised = f"{provider.issuer}/oauth2/v2/token"
    provider.metadata_overrides.update(
        {
            "token_endpoint": advertised,
            "code_challenge_methods_supported": ["plain"],
            "scopes_supported": ["openid"],
            "revocation_endpoint": None,
        }
    )
    provider.send_iss = True  # advertises RFC 9207 iss; the config does not expect it
    client = make_client()
    report = scanned(client.diagnose(), client, [])

    endpoints = report["metadata:endpoints"]
    assert endpoints.verdict == "fail"
    assert f"accessTokenUri={advertised}" in endpoints.action
    assert f"refreshTokenUri={advertised}" in endpoints.action
    assert report["metadata:pkce"].verdict == "fail"
    assert "S256" in report["metadata:pkce"].evidence
    assert report["metadata:scopes"].verdict == "warn"
    assert "'profile'" in report["metadata:scopes"].evidence
    assert report["metadata:iss"].verdict == "warn"
    assert "authorizationResponseIssParameterSupported" in report["metadata:iss"].action


@pytest.mark.parametrize("offset", [90, -90])
def test_a_clock_90_seconds_off_warns(
    provider: DemoProvider, make_client: MakeClient, offset: int
) -> None:
    provider.date_offset = offset
    client = make_client()
    report = scanned(client.diagnose(), client, [])
    clock = report["clock"]
    assert clock.verdict == "warn"
    assert ("ahead of" if offset > 0 else "behind") in clock.evidence
    assert any(f"{n} s" in clock.evidence for n in (89, 90, 91)), clock.evidence
    assert report.ok  # a warning, not a failure


def test_a_provider_without_metadata_skips_the_metadata_checks(
    provider: DemoProvider, make_client: MakeClient
) -> None:
    provider.publish_metadata = False
    client = make_client()
    report = scanned(client.diagnose(), client, [])
    found = verdicts(report)
    assert found["metadata"] == "skipped"
    assert "404" in report["metadata"].evidence
    assert all(v == "skipped" for k, v in found.items() if k.startswith("metadata:")), found
    assert report.ok, str(report)


def test_the_stored_token_is_checked_for_scopes_and_refresh(
    provider: DemoProvider,
    authorized: Callable[..., OAuth2Client],
    make_client: MakeClient,
) -> None:
    client = authorized("ada")
    report = client.diagnose("ada")
    data = client.get_access_token_for_user("ada")
    assert data is not None
    scanned(report, client, [data.token, data.refresh_token, data.id_token])
    assert report["scopes"].verdict == "ok"
    assert report["refresh"].verdict == "ok"

    # The same provider and client, now asking for a scope the stored token lacks.
    config = provider.config(scopes=("profile", "email"))
    wider = make_client(config=config)
    scopes = scanned(wider.diagnose("ada"), wider, [data.token, data.refresh_token])["scopes"]
    assert scopes.verdict == "warn"
    assert "['email']" in scopes.evidence


def test_adiagnose_is_the_async_twin(provider: DemoProvider, make_client: MakeClient) -> None:
    client = make_client()
    report = asyncio.run(client.adiagnose())
    assert report.ok and "credentials" in report


def test_provider_values_are_escaped_in_the_html(
    provider: DemoProvider, make_client: MakeClient
) -> None:
    provider.inject_fault(
        "token",
        status=401,
        body='{"error": "invalid_client", "error_description": "<script>alert(1)</script>"}',
        content_type="application/json",
        times=2,
    )
    client = make_client()
    report = client.diagnose()
    assert report["credentials"].verdict == "fail"
    assert "<script>" not in report._repr_html_()
    assert "&lt;script&gt;" in report._repr_html_()


def test_a_provider_echoing_the_secret_does_not_put_it_in_the_report(
    provider: DemoProvider, make_client: MakeClient
) -> None:
    """A hostile or buggy provider repeats the client secret in its error page and answer."""
    secret = nasty_secret("GOCSPX-")
    client_id, _ = provider.register_client(client_secret=secret)
    client = make_client(client_id=client_id, client_secret=secret)
    page = (
        f"<html><body><h1>redirect_uri mismatch</h1><p>client {client_id} with secret "
        f"{secret} and {quote_plus(secret)} may not use this redirect_uri</p></body></html>"
    )
    provider.inject_fault("authorize", status=400, body=page, times=2)
    echo = json.dumps({"error": "invalid_client", "error_description": f"bad secret {secret}"})
    provider.inject_fault("token", status=401, body=echo, content_type="application/json", times=2)
    report = scanned(client.diagnose(), client, [secret])
    assert report["redirect_uri"].verdict == "fail"
    assert "redirect_uri" in report["redirect_uri"].evidence  # the words are there, masked
    assert report["credentials"].verdict == "fail"


def test_the_doctor_needs_no_client(provider: DemoProvider) -> None:
    """The doctor sits below the notebook's client: a Subject is all it takes."""
    secret = nasty_secret("GOCSPX-")
    client_id, _ = provider.register_client(client_secret=secret, scopes=None)
    config = ProviderConfig.from_mapping(
        provider.config(), client_id=client_id, client_secret=secret
    )
    redirect = "http://127.0.0.1:9/chat-oauth2/callback/demo"
    seen: list[HttpExchange] = []
    report = diagnose(Subject(config, redirect, log=seen.append), "ada")

    assert report["credentials"].verdict == "ok", str(report)
    assert report.redirect_uri == redirect
    # Without a store nothing is stored, and the token checks say so.
    assert report["scopes"].verdict == report["refresh"].verdict == "skipped"
    assert any(x.url == config.access_token_uri for x in seen)
    log = "\n".join(f"{x.url} {x.request_body} {x.response_body}" for x in seen)
    assert_no_secret(log, [secret], "the log", client_ids=[client_id])
    assert_no_secret(repr(Subject(config, redirect)), [secret], "the subject's repr")

"""The demo OAuth2 provider, over real HTTP on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.jwk import KeySet

from chat_oauth2_nb.demo import DemoProvider, start_demo_provider

REDIRECT = "http://127.0.0.1:8999/callback"


@pytest.fixture
def demo() -> Iterator[DemoProvider]:
    provider = start_demo_provider(port=0, token_lifetime=3600)
    yield provider
    provider.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as client:
        yield client


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def auth_url(provider: DemoProvider, **params: str) -> str:
    return f"{provider.issuer}/authorize?{urlencode(params)}"


@dataclass
class Flow:
    code: str
    state: str
    verifier: str
    client_id: str


def start_flow(
    provider: DemoProvider,
    *,
    client_id: str | None = None,
    scope: str = "openid profile",
    redirect_uri: str = REDIRECT,
    username: str | None = None,
) -> Flow:
    verifier, challenge = pkce()
    cid = client_id or provider.client_id
    state = secrets.token_urlsafe(16)
    url = auth_url(
        provider,
        response_type="code",
        client_id=cid,
        redirect_uri=redirect_uri,
        scope=scope,
        state=state,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    redirect = provider.approve(url, follow_redirect=False, username=username)
    assert redirect.status_code == 302, redirect.text
    location = redirect.headers["location"]
    assert location.startswith(redirect_uri + "?")
    params = parse_qs(urlsplit(location).query)
    assert params["state"] == [state]
    return Flow(params["code"][0], state, verifier, cid)


def exchange(
    http: httpx.Client,
    provider: DemoProvider,
    flow: Flow,
    *,
    verifier: str | None = None,
    redirect_uri: str = REDIRECT,
    secret: str | None = None,
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": flow.code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier or flow.verifier,
    }
    if flow.client_id == provider.client_id:
        auth: Any = (provider.client_id, provider.client_secret)
    elif secret is not None:
        auth = (flow.client_id, secret)
    else:
        auth = None
        data["client_id"] = flow.client_id
    return http.post(f"{provider.issuer}/token", data=data, auth=auth)


def refresh(http: httpx.Client, provider: DemoProvider, refresh_token: str) -> httpx.Response:
    return http.post(
        f"{provider.issuer}/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(provider.client_id, provider.client_secret),
    )


def tokens(http: httpx.Client, provider: DemoProvider, **kw: Any) -> dict[str, Any]:
    response = exchange(http, provider, start_flow(provider, **kw))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def api_status(http: httpx.Client, provider: DemoProvider, access_token: str) -> int:
    return http.get(
        provider.api_url, headers={"Authorization": f"Bearer {access_token}"}
    ).status_code


# -- metadata ------------------------------------------------------------------------------


def test_metadata_validates(demo: DemoProvider, http: httpx.Client) -> None:
    doc = http.get(f"{demo.issuer}/.well-known/oauth-authorization-server").json()
    metadata = AuthorizationServerMetadata(doc)
    metadata.validate()
    assert doc["issuer"] == demo.issuer
    assert doc["code_challenge_methods_supported"] == ["S256"]
    config = demo.config(alias="demo", scopes=("profile", "email"))
    assert config == {
        "alias": "demo",
        "authUri": doc["authorization_endpoint"],
        "accessTokenUri": doc["token_endpoint"],
        "refreshTokenUri": doc["token_endpoint"],
        "revokeTokenUri": doc["revocation_endpoint"],
        "introspectionUri": doc["introspection_endpoint"],
        "deviceAuthorizationUri": doc["device_authorization_endpoint"],
        "issuer": doc["issuer"],
        "jwksUri": doc["jwks_uri"],
        "defaultScopes": ["profile", "email"],
    }
    oidc = http.get(f"{demo.issuer}/.well-known/openid-configuration").json()
    OpenIDProviderMetadata(oidc).validate()


# -- the authorization code flow -----------------------------------------------------------


def test_full_code_flow_with_pkce(demo: DemoProvider, http: httpx.Client) -> None:
    flow = start_flow(demo, scope="openid profile email", username="ada")
    response = exchange(http, demo, flow)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["scope"] == "openid profile email"
    assert body["access_token"] and body["refresh_token"]
    # The id_token verifies with the published key and names the user.
    keys = KeySet.import_key_set(http.get(f"{demo.issuer}/jwks.json").json())
    claims = jwt.decode(body["id_token"], keys).claims
    assert claims["iss"] == demo.issuer and claims["aud"] == [demo.client_id]
    assert claims["sub"] == "ada" and claims["email"] == "ada@example.com"
    me = http.get(demo.api_url, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json() == {
        "user": "ada",
        "scope": "openid profile email",
        "client_id": demo.client_id,
    }
    assert demo.grants_active() == 1


def test_no_id_token_without_openid_scope(demo: DemoProvider, http: httpx.Client) -> None:
    body = tokens(http, demo, scope="profile")
    assert "id_token" not in body and body["scope"] == "profile"


def test_approve_follows_redirect_to_callback(demo: DemoProvider) -> None:
    seen: list[tuple[str, str | None, str | None]] = []

    # A tiny real callback server, as a client's loopback redirect would be.
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("X-Test"), self.headers.get("Cookie")))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/cb"
        _, challenge = pkce()
        url = auth_url(
            demo,
            response_type="code",
            client_id=demo.client_id,
            redirect_uri=redirect_uri,
            state="s1",
            code_challenge=challenge,
            code_challenge_method="S256",
        )
        answer = demo.approve(url, headers={"X-Test": "yes"}, cookies={"session": "abc"})
        assert answer.status_code == 200 and answer.text == "ok"
        path, header, cookie = seen[0]
        assert path.startswith("/cb?code=") and "state=s1" in path
        assert header == "yes" and cookie == "session=abc"
    finally:
        server.shutdown()
        server.server_close()


def test_wrong_verifier_is_rejected(demo: DemoProvider, http: httpx.Client) -> None:
    flow = start_flow(demo)
    wrong, _ = pkce()
    response = exchange(http, demo, flow, verifier=wrong)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert demo.grants_active() == 0


def test_code_reuse_is_rejected_and_revokes_its_tokens(
    demo: DemoProvider, http: httpx.Client
) -> None:
    flow = start_flow(demo)
    first = exchange(http, demo, flow)
    assert first.status_code == 200
    again = exchange(http, demo, flow)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # RFC 6749 §4.1.2: what the leaked code produced is revoked.
    assert demo.introspect(first.json()["access_token"])["active"] is False
    assert demo.grants_active() == 0


def test_redirect_uri_must_match_at_token_endpoint(demo: DemoProvider, http: httpx.Client) -> None:
    flow = start_flow(demo)
    response = exchange(http, demo, flow, redirect_uri="http://127.0.0.1:8999/other")
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert exchange(http, demo, flow).status_code == 200


def test_deny_redirects_with_access_denied(demo: DemoProvider) -> None:
    _, challenge = pkce()
    url = auth_url(
        demo,
        response_type="code",
        client_id=demo.client_id,
        redirect_uri=REDIRECT,
        state="st4te",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    redirect = demo.approve(url, deny=True, follow_redirect=False)
    assert redirect.status_code == 302
    params = parse_qs(urlsplit(redirect.headers["location"]).query)
    assert params["error"] == ["access_denied"] and params["state"] == ["st4te"]
    assert "code" not in params


def test_public_client_needs_pkce_s256(demo: DemoProvider, http: httpx.Client) -> None:
    client_id, secret = demo.register_client(auth_method="none")
    assert secret is None
    base = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT}
    for extra in ({}, {"code_challenge": pkce()[0], "code_challenge_method": "plain"}):
        page = http.get(auth_url(demo, **base, **extra))
        assert page.status_code == 302  # the client and its redirect URI are valid
        assert parse_qs(urlsplit(page.headers["location"]).query)["error"] == ["invalid_request"]
    flow = start_flow(demo, client_id=client_id)
    response = exchange(http, demo, flow)  # no secret: client_id in the body, auth "none"
    assert response.status_code == 200, response.text
    body = response.json()
    rotated = http.post(
        f"{demo.issuer}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": client_id,
        },
    )
    assert rotated.status_code == 200
    # Public clients cannot introspect.
    denied = http.post(
        f"{demo.issuer}/introspect", data={"token": body["access_token"], "client_id": client_id}
    )
    assert denied.status_code in (400, 401) and denied.json()["error"] == "invalid_client"


def test_client_authentication_methods(demo: DemoProvider, http: httpx.Client) -> None:
    # The default client may send its secret either way.
    flow = start_flow(demo)
    response = http.post(
        f"{demo.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": flow.code,
            "redirect_uri": REDIRECT,
            "code_verifier": flow.verifier,
            "client_id": demo.client_id,
            "client_secret": demo.client_secret,
        },
    )
    assert response.status_code == 200
    # A registered client uses the method it registered, and a wrong secret fails.
    client_id, secret = demo.register_client(auth_method="client_secret_basic")
    assert secret
    flow = start_flow(demo, client_id=client_id)
    as_post = http.post(
        f"{demo.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": flow.code,
            "redirect_uri": REDIRECT,
            "code_verifier": flow.verifier,
            "client_id": client_id,
            "client_secret": secret,
        },
    )
    assert as_post.status_code == 401 and as_post.json()["error"] == "invalid_client"
    wrong = exchange(http, demo, flow, secret="not-the-secret")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert "www-authenticate" in wrong.headers
    assert exchange(http, demo, flow, secret=secret).status_code == 200


def test_unknown_scope_of_restricted_client_is_redirected(demo: DemoProvider) -> None:
    client_id, _ = demo.register_client(scopes="profile")
    _, challenge = pkce()
    url = auth_url(
        demo,
        response_type="code",
        client_id=client_id,
        redirect_uri=REDIRECT,
        scope="profile admin",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    redirect = demo.approve(url, follow_redirect=False)
    assert redirect.status_code == 302
    assert parse_qs(urlsplit(redirect.headers["location"]).query)["error"] == ["invalid_scope"]


# -- refresh, rotation, reuse detection ----------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_grant(
    demo: DemoProvider, http: httpx.Client
) -> None:
    first = tokens(http, demo)
    second = refresh(http, demo, first["refresh_token"])
    assert second.status_code == 200
    new = second.json()
    assert new["refresh_token"] != first["refresh_token"]
    assert new["access_token"] != first["access_token"]
    assert new["scope"] == first["scope"] and "id_token" in new
    assert demo.introspect(first["refresh_token"])["active"] is False
    assert demo.introspect(new["access_token"])["active"] is True
    assert api_status(http, demo, new["access_token"]) == 200
    # The old refresh token again: reuse detected, the whole grant dies.
    reused = refresh(http, demo, first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert demo.introspect(new["access_token"])["active"] is False
    assert demo.introspect(new["refresh_token"])["active"] is False
    assert api_status(http, demo, new["access_token"]) == 401
    assert refresh(http, demo, new["refresh_token"]).status_code == 400
    assert demo.grants_active() == 0


def test_refresh_may_narrow_the_scope(demo: DemoProvider, http: httpx.Client) -> None:
    first = tokens(http, demo, scope="openid profile email")
    narrow = http.post(
        f"{demo.issuer}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "scope": "email",
        },
        auth=(demo.client_id, demo.client_secret),
    )
    assert narrow.status_code == 200 and narrow.json()["scope"] == "email"
    wider = http.post(
        f"{demo.issuer}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": narrow.json()["refresh_token"],
            "scope": "email admin",
        },
        auth=(demo.client_id, demo.client_secret),
    )
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    # The grant still holds everything originally approved.
    back = refresh(http, demo, narrow.json()["refresh_token"])
    assert back.status_code == 200 and back.json()["scope"] == "openid profile email"


def test_32_concurrent_refreshes_exactly_one_wins(demo: DemoProvider) -> None:
    with httpx.Client(trust_env=False, timeout=30) as http:
        first = tokens(http, demo)
    demo.token_delay = 0.2  # all 32 are in flight together
    barrier = threading.Barrier(32)

    def attempt(_: int) -> httpx.Response:
        with httpx.Client(trust_env=False, timeout=30) as client:
            barrier.wait()
            return refresh(client, demo, first["refresh_token"])

    with ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(attempt, range(32)))
    demo.token_delay = 0
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * 31
    assert {r.json()["error"] for r in responses if r.status_code == 400} == {"invalid_grant"}
    assert demo.token_requests["refresh_token"] == 32
    # The losers reused a rotated token, so the grant is gone (as at a real provider).
    assert demo.grants_active() == 0


def test_many_concurrent_flows(demo: DemoProvider) -> None:
    def one(i: int) -> str:
        with httpx.Client(trust_env=False, timeout=30) as client:
            body = tokens(client, demo, username=f"user{i}")
            me = client.get(
                demo.api_url, headers={"Authorization": f"Bearer {body['access_token']}"}
            )
            assert me.status_code == 200
            user: str = me.json()["user"]
            return user

    with ThreadPoolExecutor(32) as pool:
        users = list(pool.map(one, range(32)))
    assert users == [f"user{i}" for i in range(32)]
    assert demo.grants_active() == 32


def test_token_requests_are_counted(demo: DemoProvider, http: httpx.Client) -> None:
    assert demo.token_requests["authorization_code"] == 0
    body = tokens(http, demo)
    refresh(http, demo, body["refresh_token"])
    refresh(http, demo, "no-such-token")
    http.post(f"{demo.issuer}/token", data={"grant_type": "password"})
    assert demo.token_requests["authorization_code"] == 1
    assert demo.token_requests["refresh_token"] == 2
    assert demo.token_requests["password"] == 1


def test_expired_access_token(demo: DemoProvider, http: httpx.Client) -> None:
    demo.set_token_lifetime(1)
    body = tokens(http, demo)
    assert body["expires_in"] == 1
    time.sleep(1.1)
    assert demo.introspect(body["access_token"])["active"] is False
    response = http.get(demo.api_url, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    demo.set_token_lifetime(3600)
    assert refresh(http, demo, body["refresh_token"]).json()["expires_in"] == 3600
    with pytest.raises(ValueError):
        demo.set_token_lifetime(-1)


def test_api_without_token(demo: DemoProvider, http: httpx.Client) -> None:
    response = http.get(demo.api_url)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    bad = http.get(demo.api_url, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]


# -- revocation and introspection ----------------------------------------------------------


def test_revoke_access_token_keeps_the_grant(demo: DemoProvider, http: httpx.Client) -> None:
    body = tokens(http, demo)
    revoked = http.post(
        f"{demo.issuer}/revoke",
        data={"token": body["access_token"], "token_type_hint": "access_token"},
        auth=(demo.client_id, demo.client_secret),
    )
    assert revoked.status_code == 200
    assert demo.introspect(body["access_token"])["active"] is False
    assert api_status(http, demo, body["access_token"]) == 401
    assert demo.grants_active() == 1
    assert refresh(http, demo, body["refresh_token"]).status_code == 200


def test_revoke_refresh_token_revokes_the_grant(demo: DemoProvider, http: httpx.Client) -> None:
    body = tokens(http, demo)
    revoked = http.post(
        f"{demo.issuer}/revoke",
        data={"token": body["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(demo.client_id, demo.client_secret),
    )
    assert revoked.status_code == 200
    assert demo.introspect(body["refresh_token"])["active"] is False
    assert demo.introspect(body["access_token"])["active"] is False
    assert api_status(http, demo, body["access_token"]) == 401
    assert demo.grants_active() == 0
    assert refresh(http, demo, body["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoke_unknown_token_and_client_auth(demo: DemoProvider, http: httpx.Client) -> None:
    url = f"{demo.issuer}/revoke"
    ok = http.post(url, data={"token": "never-issued"}, auth=(demo.client_id, demo.client_secret))
    assert ok.status_code == 200
    # RFC 7009 §2.1: an invalid token_type_hint is ignored.
    hint = {"token": "never-issued", "token_type_hint": "bogus"}
    assert http.post(url, data=hint, auth=(demo.client_id, demo.client_secret)).status_code == 200
    body = tokens(http, demo)
    unauthenticated = http.post(url, data={"token": body["access_token"]})
    assert unauthenticated.status_code in (400, 401)
    assert unauthenticated.json()["error"] == "invalid_client"
    wrong = http.post(url, data={"token": body["access_token"]}, auth=(demo.client_id, "wrong"))
    assert wrong.status_code == 401
    assert demo.introspect(body["access_token"])["active"] is True


def test_introspection_endpoint(demo: DemoProvider, http: httpx.Client) -> None:
    body = tokens(http, demo, username="bob")
    url = f"{demo.issuer}/introspect"
    creds = (demo.client_id, demo.client_secret)
    answer = http.post(url, data={"token": body["access_token"]}, auth=creds)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    info = answer.json()
    assert info["active"] is True and info["username"] == "bob"
    assert info["client_id"] == demo.client_id and info["scope"] == "openid profile"
    assert info["token_type"] == "access_token"
    assert 3590 < info["exp"] - time.time() <= 3600
    assert info == demo.introspect(body["access_token"])
    as_refresh = http.post(url, data={"token": body["refresh_token"]}, auth=creds).json()
    assert as_refresh["active"] is True and as_refresh["token_type"] == "refresh_token"
    assert http.post(url, data={"token": "nope"}, auth=creds).json() == {"active": False}
    assert http.post(url, data={"token": body["access_token"]}).status_code in (400, 401)


# -- faults --------------------------------------------------------------------------------


def test_inject_fault_once_then_normal(demo: DemoProvider, http: httpx.Client) -> None:
    body = tokens(http, demo)
    demo.inject_fault("token", status=503, body="<html>down</html>", headers={"Retry-After": "7"})
    faulty = refresh(http, demo, body["refresh_token"])
    assert faulty.status_code == 503 and faulty.text == "<html>down</html>"
    assert faulty.headers["content-type"] == "text/html"
    assert faulty.headers["retry-after"] == "7"
    assert demo.token_requests["refresh_token"] == 1
    normal = refresh(http, demo, body["refresh_token"])
    assert normal.status_code == 200  # the fault answered instead: nothing was rotated


def test_inject_fault_times_and_other_endpoints(demo: DemoProvider, http: httpx.Client) -> None:
    demo.inject_fault("revoke", status=500, body=b"boom", content_type="text/plain", times=2)
    creds = (demo.client_id, demo.client_secret)
    for _ in range(2):
        assert (
            http.post(f"{demo.issuer}/revoke", data={"token": "x"}, auth=creds).status_code == 500
        )
    assert http.post(f"{demo.issuer}/revoke", data={"token": "x"}, auth=creds).status_code == 200
    demo.inject_fault("introspect", status=200, body="{}", content_type="application/json")
    assert http.post(f"{demo.issuer}/introspect", data={"token": "x"}, auth=creds).json() == {}
    demo.inject_fault("authorize", status=502, body="bad gateway", content_type="text/plain")
    url = auth_url(demo, response_type="code", client_id=demo.client_id, redirect_uri=REDIRECT)
    assert demo.approve(url).status_code == 502
    with pytest.raises(ValueError):
        demo.inject_fault("nowhere")


def test_inject_fault_delay_times_out_the_client(demo: DemoProvider) -> None:
    demo.inject_fault("token", status=200, body="{}", content_type="application/json", delay=1.0)
    with httpx.Client(trust_env=False, timeout=0.2) as quick, pytest.raises(httpx.ReadTimeout):
        quick.post(f"{demo.issuer}/token", data={"grant_type": "refresh_token"})
    with httpx.Client(trust_env=False, timeout=5) as http:
        body = tokens(http, demo)
        assert refresh(http, demo, body["refresh_token"]).status_code == 200


# -- the consent page ----------------------------------------------------------------------


def test_consent_page_escapes_hostile_name_and_scope(
    demo: DemoProvider, http: httpx.Client
) -> None:
    hostile = '<script>alert("name")</script>'
    client_id, _ = demo.register_client(client_name=hostile, scopes=None)
    _, challenge = pkce()
    url = auth_url(
        demo,
        response_type="code",
        client_id=client_id,
        redirect_uri=REDIRECT,
        scope="profile <img/src=x/onerror=alert(1)>",
        state='"><script>alert(2)</script>',
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    page = http.get(url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none'
    text = page.text
    assert "<script" not in text and "<img" not in text
    assert "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;" in text
    assert "&lt;img/src=x/onerror=alert(1)&gt;" in text
    assert 'value="demo-user"' in text and ">Approve</button>" in text and ">Deny</button>" in text
    # The hostile state survives the round trip unchanged.
    redirect = demo.approve(url, follow_redirect=False)
    assert parse_qs(urlsplit(redirect.headers["location"]).query)["state"] == [
        '"><script>alert(2)</script>'
    ]


def test_bad_requests_are_shown_not_redirected(demo: DemoProvider, http: httpx.Client) -> None:
    client_id, _ = demo.register_client(redirect_uris=["http://127.0.0.1:9000/cb"])
    _, challenge = pkce()
    common = {"response_type": "code", "code_challenge": challenge, "code_challenge_method": "S256"}
    cases = [
        {"client_id": client_id, "redirect_uri": "http://127.0.0.1:9000/other"},
        {"client_id": client_id, "redirect_uri": 'http://127.0.0.1:9000/cb"<b>'},
        {"client_id": "<b>nobody</b>", "redirect_uri": REDIRECT},
        {"client_id": demo.client_id, "redirect_uri": "https://evil.example/cb"},
        {"client_id": demo.client_id},  # a loopback-any client must name its redirect URI
    ]
    for params in cases:
        page = http.get(auth_url(demo, **common, **params))
        assert page.status_code == 400, params
        assert "location" not in page.headers
        assert page.headers["content-type"].startswith("text/html")
        assert "<b>" not in page.text
        assert ("invalid_request" in page.text) or ("invalid_client" in page.text)
    # A response_type with characters OAuth forbids in messages still gets a page.
    odd = http.get(auth_url(demo, **{**common, "response_type": 'co"de'}, client_id=client_id))
    assert odd.status_code == 400 and "invalid_request" in odd.text
    # The registered URI itself works, and may be left out (it is the only one).
    ok = http.get(auth_url(demo, **common, client_id=client_id))
    assert ok.status_code == 200 and "http://127.0.0.1:9000/cb" in ok.text


def test_consent_form_is_single_use(demo: DemoProvider, http: httpx.Client) -> None:
    _, challenge = pkce()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": demo.client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    page = http.get(f"{demo.issuer}/authorize?{query}")
    ticket = page.text.split('name="consent_ticket" value="')[1].split('"')[0]
    form = {"username": "ada", "consent_ticket": ticket, "decision": "approve"}
    first = http.post(f"{demo.issuer}/authorize?{query}", data=form)
    assert first.status_code == 302
    replay = http.post(f"{demo.issuer}/authorize?{query}", data=form)
    assert replay.status_code == 400 and "location" not in replay.headers
    forged = http.post(f"{demo.issuer}/authorize?{query}", data={**form, "consent_ticket": "x"})
    assert forged.status_code == 400


# -- lifecycle, logging, command line ------------------------------------------------------


def test_lifecycle_context_manager_and_port_reuse() -> None:
    with DemoProvider() as provider:
        port = urlsplit(provider.issuer).port
        assert provider.running and provider.start() is provider
        assert httpx.get(provider.metadata_url, trust_env=False).status_code == 200
    assert not provider.running
    provider.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(provider.metadata_url, trust_env=False)
    with socket.socket() as sock:  # the port is free again
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port or 0))
    with pytest.raises(ValueError):
        DemoProvider(host="0.0.0.0")  # noqa: S104 - the point is that it refuses
    with pytest.raises(RuntimeError):
        _ = DemoProvider().issuer


def test_stop_wakes_delayed_fault(demo: DemoProvider) -> None:
    demo.inject_fault("token", delay=30)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(
                f"{demo.issuer}/token", data={"grant_type": "x"}, trust_env=False, timeout=20
            )
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    demo.stop()
    thread.join(10)
    assert time.monotonic() - started < 5 and errors


def test_logs_never_show_secrets(
    demo: DemoProvider, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    flow = start_flow(demo)
    body = exchange(http, demo, flow).json()
    refresh(http, demo, body["refresh_token"])
    refresh(http, demo, body["refresh_token"])  # reuse: logs a warning
    assert any("reuse" in r.getMessage() for r in caplog.records)
    # The provider's records and Authlib's (the test's own httpx client logs its URLs).
    ours = [r for r in caplog.records if r.name.startswith(("chat_oauth2_nb", "authlib"))]
    text = "\n".join(r.getMessage() for r in ours)
    assert "/authorize" in text
    for secret in (
        flow.code,
        flow.verifier,
        flow.state,
        body["access_token"],
        body["refresh_token"],
        demo.client_secret,
    ):
        assert secret not in text


def test_command_line_runs_until_sigterm() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "chat_oauth2_nb.demo", "--port", "0", "--token-lifetime", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = []
        while not any("Ctrl-C" in line for line in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            lines.append(line)
        out = "".join(lines)
        issuer = out.split("issuer:")[1].split()[0]
        config = json.loads(out[out.index("{") : out.rindex("}") + 1])
        assert config["accessTokenUri"] == f"{issuer}/token"
        assert (
            httpx.get(f"{issuer}/.well-known/oauth-authorization-server", trust_env=False).json()[
                "issuer"
            ]
            == issuer
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

"""DPoP and resource indicators against an independent provider: node's oidc-provider.

Its ``dPoP`` feature (with and without server nonces) and ``resourceIndicators`` (JWT access
tokens whose ``aud`` is the resource) check what the kit sends, so these tests do not rely
on the demo provider agreeing with the client it was written next to.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.oidc import DEFAULT_SECRET, OidcProvider, client, start_oidc_provider

from chat_oauth2_nb.notebook.client import OAuth2Client, create_oauth2_client
from chat_oauth2_nb.oauth.dpop import DPoPKey
from chat_oauth2_nb.store import Store

API = "https://api.example/"
OTHER = "https://other.example/"


def payload(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def introspect(provider: OidcProvider, token: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{provider.issuer}/token/introspection",
        data={"token": token},
        auth=("op-client", DEFAULT_SECRET),
        trust_env=False,
    )
    answer.raise_for_status()
    return dict(answer.json())


def start(tmp_path: Path, **config: Any) -> Iterator[OidcProvider]:
    provider = start_oidc_provider(tmp_path / "op", {"clients": [client()], **config})
    yield provider
    provider.stop()


@pytest.fixture
def op_dpop(tmp_path: Path) -> Iterator[OidcProvider]:
    yield from start(tmp_path)


@pytest.fixture
def op_nonce(tmp_path: Path) -> Iterator[OidcProvider]:
    yield from start(tmp_path, dpop={"nonce": True})


@pytest.fixture
def op_resources(tmp_path: Path) -> Iterator[OidcProvider]:
    resources = {API: {"scope": "api:read"}, OTHER: {"scope": "other:read"}}
    yield from start(tmp_path, resources=resources)


def signed_in(
    provider: OidcProvider, store: Store, scopes: tuple[str, ...] = ("openid",), **kwargs: Any
) -> OAuth2Client:
    made = create_oauth2_client(
        provider.client_config("op", scopes=scopes),
        client_id="op-client",
        client_secret=DEFAULT_SECRET,
        mode="loopback",
        store=store,
        allow_insecure_http=True,
        **kwargs,
    )
    link = made.get_user_authorization_url("ada")
    assert provider.approve(link, "ada").status_code == 200
    made.wait_for_authorization("ada", timeout=60)
    return made


def test_a_bound_token_is_refused_without_its_key(op_dpop: OidcProvider, store: Store) -> None:
    op_client = signed_in(op_dpop, store, dpop=True)
    try:
        token = op_client.get_access_token_for_user("ada")
        assert token is not None and token.token_type == "DPoP" and token.dpop_key
        key = DPoPKey.from_json(token.dpop_key)
        assert introspect(op_dpop, token.token)["cnf"] == {"jkt": key.thumbprint}
        me = f"{op_dpop.issuer}/me"
        with httpx.Client(auth=op_client.auth("ada"), trust_env=False) as http:
            answer = http.get(me)
        assert answer.status_code == 200 and answer.json()["sub"] == "ada"
        # Replayed as a Bearer token, or with another key's proof: refused by the provider.
        bearer = httpx.get(me, headers={"Authorization": f"Bearer {token.token}"})
        assert bearer.status_code in (400, 401)
        thief = DPoPKey.generate().proof("GET", me, access_token=token.token)
        stolen = httpx.get(me, headers={"Authorization": f"DPoP {token.token}", "DPoP": thief})
        assert stolen.status_code == 401
        # The refresh proves the same key; the refreshed token is bound to it too.
        fresh = op_client.refresh_user_access_token("ada")
        assert fresh.token_type == "DPoP" and fresh.token != token.token
        assert introspect(op_dpop, fresh.token)["cnf"] == {"jkt": key.thumbprint}
        counted = op_dpop.counters()["tokens"]
        assert counted == {"authorization_code:200": 1, "refresh_token:200": 1}
    finally:
        op_client.close()


def test_the_nonce_challenge_is_answered(op_nonce: OidcProvider, store: Store) -> None:
    op_client = signed_in(op_nonce, store, dpop=True)
    try:
        with httpx.Client(auth=op_client.auth("ada"), trust_env=False) as http:
            assert http.get(f"{op_nonce.issuer}/me").status_code == 200
        assert op_client.refresh_user_access_token("ada").token_type == "DPoP"
        counted = op_nonce.counters()
        # The first token request was asked for a nonce (400 use_dpop_nonce) and answered it.
        assert counted["tokens"]["authorization_code:400"] == 1
        assert counted["tokens"]["authorization_code:200"] == 1
        assert counted["tokens"]["refresh_token:200"] == 1
        assert any(e["error"] == "use_dpop_nonce" for e in counted["errors"])
    finally:
        op_client.close()


def test_a_token_per_resource_from_one_grant(op_resources: OidcProvider, store: Store) -> None:
    scopes = ("openid", "api:read", "other:read")
    op_client = signed_in(op_resources, store, scopes, resource=[API, OTHER])
    try:
        own = op_client.get_access_token_for_user("ada")
        assert own is not None and own.resource == API
        assert payload(own.token)["aud"] == API and payload(own.token)["scope"] == "api:read"
        other = op_client.get_access_token_for_resource("ada", resource=OTHER)
        assert other is not None and other.token != own.token
        assert payload(other.token)["aud"] == OTHER
        assert payload(other.token)["scope"] == "other:read"
        again = op_client.get_access_token_for_resource("ada", resource=OTHER)
        assert again is not None and again.token == other.token  # kept, not asked again
        assert op_resources.counters()["tokens"] == {
            "authorization_code:200": 1,
            "refresh_token:200": 1,
        }
        stored = store.get_resource_token("op", "ada", OTHER)
        assert stored is not None and stored.data.refresh_token is None
        # The rotated refresh token went back to the grant: its own refresh still works.
        assert payload(op_client.refresh_user_access_token("ada").token)["aud"] == API
    finally:
        op_client.close()


def test_resource_and_dpop_together(op_resources: OidcProvider, store: Store) -> None:
    scopes = ("openid", "api:read", "other:read")
    op_client = signed_in(op_resources, store, scopes, resource=[API, OTHER], dpop=True)
    try:
        own = op_client.get_access_token_for_user("ada")
        other = op_client.get_access_token_for_resource("ada", resource=OTHER)
        assert own is not None and other is not None and own.dpop_key
        jkt = DPoPKey.from_json(own.dpop_key).thumbprint
        assert payload(own.token)["cnf"] == {"jkt": jkt}
        assert payload(other.token)["cnf"] == {"jkt": jkt} and other.token_type == "DPoP"
    finally:
        op_client.close()

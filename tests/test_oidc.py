"""id_token verification (oidc.py) against the demo provider's real JWKS at /jwks.json."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.demo._authserver import signing_key
from chat_oauth2_nb.errors import IdTokenError
from chat_oauth2_nb.oauth import HttpRequest, ProviderAnswer
from chat_oauth2_nb.oauth.oidc import JwksCache, verify_id_token
from chat_oauth2_nb.oauth.transport import send


@pytest.fixture
def keys() -> Iterator[JwksCache]:
    with httpx.Client(timeout=5) as http:

        def fetch(request: HttpRequest) -> ProviderAnswer:
            return send(http, request, deadline=5)

        yield JwksCache(fetch)


def _claims(provider: DemoProvider, **change: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "aud": [provider.client_id],
        "sub": "ada",
        "iat": now,
        "exp": now + 300,
        "nonce": "n-0123456789",
    }
    claims.update(change)
    return claims


def _sign(claims: dict[str, Any], key: RSAKey | None = None, kid: str | None = None) -> str:
    key = key or signing_key()
    return jwt.encode({"alg": "RS256", "kid": kid or str(signing_key().kid)}, claims, key)


def _verify(provider: DemoProvider, keys: JwksCache, token: str) -> dict[str, Any]:
    return verify_id_token(
        token,
        issuer=provider.issuer,
        client_id=provider.client_id,
        jwks_uri=f"{provider.issuer}/jwks.json",
        nonce="n-0123456789",
        keys=keys,
    )


def test_valid_id_token_verifies(provider: DemoProvider, keys: JwksCache) -> None:
    claims = _verify(provider, keys, _sign(_claims(provider)))
    assert claims["sub"] == "ada"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"aud": ["another-app"]}, "another client"),
        ({"iss": "http://127.0.0.1:1/evil"}, "issued by"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nonce": "replayed"}, "nonce"),
    ],
)
def test_each_bad_claim_is_refused(
    provider: DemoProvider, keys: JwksCache, change: dict[str, Any], words: str
) -> None:
    with pytest.raises(IdTokenError) as caught:
        _verify(provider, keys, _sign(_claims(provider, **change)))
    assert words in caught.value.message


def test_a_forged_signature_is_refused(provider: DemoProvider, keys: JwksCache) -> None:
    # Same kid as the provider's key, signed with the attacker's own key.
    forged = _sign(_claims(provider), key=RSAKey.generate_key(2048))
    with pytest.raises(IdTokenError) as caught:
        _verify(provider, keys, forged)
    assert "signature" in caught.value.message
    assert forged not in str(caught.value)


def test_unknown_kid_fetches_the_keys_again(provider: DemoProvider, keys: JwksCache) -> None:
    url = f"{provider.issuer}/jwks.json"
    _verify(provider, keys, _sign(_claims(provider)))
    _verify(provider, keys, _sign(_claims(provider)))
    assert keys.fetches[url] == 1  # cached
    # The provider rotated to a key the cache has not seen: one more fetch, then a verdict.
    rotated = RSAKey.generate_key(2048, auto_kid=True)
    with pytest.raises(IdTokenError):
        _verify(provider, keys, _sign(_claims(provider), key=rotated, kid=str(rotated.kid)))
    assert keys.fetches[url] == 2


# -- end to end: the callback verifies what the token endpoint returns ----------------------


def _id_token_answer(provider: DemoProvider, id_token: str) -> str:
    import json

    return json.dumps(
        {"access_token": "a" * 40, "token_type": "Bearer", "expires_in": 60, "id_token": id_token}
    )


def test_an_openid_flow_sends_a_nonce_and_stores_verified_claims(
    make_client: Any, provider: DemoProvider, store: Any
) -> None:
    client = make_client(config=provider.config(alias="demo", scopes=("openid", "profile")))
    link = client.get_user_authorization_url("ada")
    assert "nonce=" in link.provider_url
    flow = store.latest_flow("demo", "ada")
    assert flow is not None and flow.nonce
    assert provider.approve(link).status_code == 200
    data = client.wait_for_authorization("ada", timeout=10)
    assert data.claims is not None
    assert data.claims["nonce"] == flow.nonce and data.claims["iss"] == provider.issuer
    assert "claims=<verified>" in repr(data)
    # Kept through a refresh that returns no new id_token, lost with one that does.
    refreshed = client.refresh_user_access_token("ada")
    assert refreshed.id_token is not None


@pytest.mark.parametrize(
    "case",
    ["forged-signature", "wrong-nonce", "wrong-audience", "wrong-issuer", "expired"],
)
def test_a_bad_id_token_fails_the_flow_and_stores_nothing(
    make_client: Any, provider: DemoProvider, store: Any, case: str
) -> None:
    client = make_client(config=provider.config(alias="demo", scopes=("openid", "profile")))
    link = client.get_user_authorization_url("ada")
    flow = store.latest_flow("demo", "ada")
    assert flow is not None and flow.nonce
    claims = _claims(provider, nonce=flow.nonce)
    key = None
    if case == "forged-signature":
        key = RSAKey.generate_key(2048)
    elif case == "wrong-nonce":
        claims["nonce"] = "replayed-from-another-login"
    elif case == "wrong-audience":
        claims["aud"] = ["another-app"]
    elif case == "wrong-issuer":
        claims["iss"] = "https://evil.example"
    else:
        claims["exp"] = int(time.time()) - 3600
    provider.inject_fault(
        "token",
        status=200,
        body=_id_token_answer(provider, _sign(claims, key=key)),
        content_type="application/json",
    )
    page = provider.approve(link)
    assert page.status_code == 502 and "Authorization refused" in page.text
    with pytest.raises(IdTokenError):
        client.wait_for_authorization("ada", timeout=10)
    assert store.get_token("demo", "ada") is None

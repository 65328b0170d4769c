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
from chat_oauth2_nb.oidc import JwksCache, verify_id_token
from chat_oauth2_nb.protocol import HttpRequest, ProviderAnswer
from chat_oauth2_nb.transport import send


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

"""OpenID Connect checks a hostile provider must not slip past (issue 17, finding 13).

Issuers are compared as exact strings (RFC 9207 §2.4, RFC 8414 §3.3, Discovery §4.3); ``azp``
names this client whenever it is present (Core §3.1.3.7); an id_token that cannot be verified
says so; and an id_token from a refresh is verified and must continue the first one (Core
§12.2). Each attack is performed against the demo provider: its real JWKS, its real token
endpoint, and its fault injection for the answers a hostile provider would give.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

import chat_oauth2_nb.config as config_module
import chat_oauth2_nb.oauth.oidc as oidc
from chat_oauth2_nb import presets
from chat_oauth2_nb.config import ProviderConfig
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.demo._authserver import signing_key
from chat_oauth2_nb.errors import IdTokenError, TokenRefreshError
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth import AuthData, HttpRequest, ProviderAnswer, refresh_request
from chat_oauth2_nb.oauth.answers import token_from_answer
from chat_oauth2_nb.oauth.oidc import JwksCache, verify_for_config, verify_id_token
from chat_oauth2_nb.oauth.transport import send

Make = Callable[..., OAuth2Client]


@pytest.fixture
def keys() -> Iterator[JwksCache]:
    with httpx.Client(timeout=5, trust_env=False) as http:

        def fetch(request: HttpRequest) -> ProviderAnswer:
            return send(http, request, deadline=5)

        yield JwksCache(fetch)


def claims_of(provider: DemoProvider, **change: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "aud": [provider.client_id],
        "sub": "ada",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(change)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], key: RSAKey | None = None) -> str:
    header = {"alg": "RS256", "kid": str(signing_key().kid)}
    return jwt.encode(header, claims, key or signing_key())


def verify(provider: DemoProvider, keys: JwksCache, token: str, issuer: str = "") -> dict[str, Any]:
    return verify_id_token(
        token,
        issuer=issuer or provider.issuer,
        client_id=provider.client_id,
        jwks_uri=f"{provider.issuer}/jwks.json",
        nonce=None,
        keys=keys,
    )


def config_of(provider: DemoProvider, **change: Any) -> ProviderConfig:
    seed = {**provider.config(alias="demo", scopes=("openid", "profile")), **change}
    return ProviderConfig.from_mapping(
        {k: v for k, v in seed.items() if v is not None},
        client_id=provider.client_id,
        client_secret=provider.client_secret,
    )


# -- (a) issuers are exact strings ----------------------------------------------------------


def test_same_issuer_is_exact() -> None:
    same = config_module.same_issuer
    assert same("https://a.example", "https://a.example")
    for a, b in [
        ("https://a.example", "https://a.example/"),
        ("https://a.example/", "https://a.example"),
        ("https://A.example", "https://a.example"),
        ("https://a.example", "https://a.example:443"),
        ("accounts.google.com", "https://accounts.google.com"),
        ("", ""),
        (None, None),
    ]:
        assert not same(a, b), (a, b)


def test_an_id_token_from_the_issuer_with_a_slash_added_is_refused(
    provider: DemoProvider, keys: JwksCache
) -> None:
    # Signed with the provider's own key: only the issuer string differs.
    token = sign(claims_of(provider, iss=provider.issuer + "/"))
    with pytest.raises(IdTokenError, match="issued by"):
        verify(provider, keys, token)
    # And the other way round: a config whose issuer ends in '/' wants exactly that.
    with pytest.raises(IdTokenError, match="issued by"):
        verify(provider, keys, sign(claims_of(provider)), issuer=provider.issuer + "/")


def test_the_configured_issuer_is_kept_exactly(provider: DemoProvider) -> None:
    config = config_of(provider, issuer=provider.issuer + "/")
    assert config.issuer == provider.issuer + "/"
    assert config.to_mapping()["issuer"] == provider.issuer + "/"
    with pytest.raises(IdTokenError, match="issued by"):
        verify_for_config(config, sign(claims_of(provider)), None)


def test_accepted_issuers_are_exact_alternatives_for_id_tokens(provider: DemoProvider) -> None:
    legacy = "demo-legacy-issuer"
    config = config_of(provider, acceptedIssuers=[legacy])
    assert config.accepted_issuers == (legacy,)
    claims = verify_for_config(config, sign(claims_of(provider, iss=legacy)), None)
    assert claims is not None and claims["iss"] == legacy
    for other in (legacy + "/", "https://" + legacy):
        with pytest.raises(IdTokenError, match="issued by"):
            verify_for_config(config, sign(claims_of(provider, iss=other)), None)
    # Without the alias the legacy spelling is another issuer.
    with pytest.raises(IdTokenError, match="issued by"):
        verify_for_config(config_of(provider), sign(claims_of(provider, iss=legacy)), None)


def test_the_google_preset_accepts_googles_documented_legacy_issuer() -> None:
    seed = presets.config("google")
    config = ProviderConfig.from_mapping(seed, client_id="cid", client_secret="GOCSPX-x")
    assert config.issuer == "https://accounts.google.com"
    assert config.accepted_issuers == ("accounts.google.com",)


# -- (b) azp names this client, with one audience too ---------------------------------------


@pytest.mark.parametrize("aud", ["string", "list"])
def test_an_azp_naming_another_client_is_refused_with_a_single_audience(
    provider: DemoProvider, keys: JwksCache, aud: str
) -> None:
    audience: Any = provider.client_id if aud == "string" else [provider.client_id]
    forged = sign(claims_of(provider, aud=audience, azp="another-app"))
    with pytest.raises(IdTokenError, match="azp"):
        verify(provider, keys, forged)
    honest = sign(claims_of(provider, aud=audience, azp=provider.client_id))
    assert verify(provider, keys, honest)["azp"] == provider.client_id


# -- (c) an id_token that cannot be verified says so ------------------------------------------


def test_an_id_token_without_a_jwks_uri_is_marked_unverified_and_the_doctor_warns(
    make_client: Make, provider: DemoProvider, caplog: pytest.LogCaptureFixture
) -> None:
    seed = provider.config(alias="demo", scopes=("openid", "profile"))
    del seed["jwksUri"]
    client = make_client(config=seed)
    link = client.get_user_authorization_url("ada")
    with caplog.at_level(logging.WARNING, "chat_oauth2_nb"):
        assert provider.approve(link).status_code == 200
        data = client.wait_for_authorization("ada", timeout=60)
    assert data.id_token is not None and data.claims is None
    assert data.id_token_verified is False
    assert "claims=<unverified>" in repr(data)
    assert "kept unverified" in caplog.text and "jwksUri" in caplog.text

    report = client.diagnose("ada")
    check = report["id_token"]
    assert check.verdict == "warn", check
    assert "unverified" in check.evidence
    assert f"jwksUri={provider.issuer}/jwks.json" in check.action


def test_a_verified_and_a_missing_id_token_read_as_such(
    make_client: Make, provider: DemoProvider
) -> None:
    assert AuthData(token="t" * 20).id_token_verified is None
    assert AuthData(token="t" * 20, id_token="x.y.z", claims={"sub": "a"}).id_token_verified
    client = make_client(config=provider.config(alias="demo", scopes=("openid", "profile")))
    assert client.diagnose()["id_token"].verdict == "ok"


# -- (d) an id_token from a refresh is verified and continues the first one -----------------


def first_login(make_client: Make, provider: DemoProvider) -> tuple[OAuth2Client, AuthData]:
    client = make_client(config=provider.config(alias="demo", scopes=("openid", "profile")))
    assert provider.approve(client.get_user_authorization_url("ada")).status_code == 200
    data = client.wait_for_authorization("ada", timeout=60)
    assert data.claims is not None and data.refresh_token
    return client, data


def refresh_at(config: ProviderConfig, previous: AuthData) -> AuthData:
    """One refresh against the provider, read and verified as the lifecycle must."""
    assert previous.refresh_token is not None
    request = refresh_request(config, refresh_token=previous.refresh_token)
    with httpx.Client(trust_env=False, timeout=10) as http:
        answer = send(http, request, deadline=10)
    data = token_from_answer(
        TokenRefreshError, "Refreshing", request, answer, timeout=10, previous=previous
    )
    return oidc.with_verified_claims(config, data, previous=previous)


def test_an_honest_refreshed_id_token_is_verified(
    make_client: Make, provider: DemoProvider
) -> None:
    client, first = first_login(make_client, provider)
    fresh = refresh_at(client.config, first)
    assert fresh.id_token is not None and fresh.id_token != first.id_token
    assert fresh.id_token_verified is True
    assert fresh.claims is not None and first.claims is not None
    assert fresh.claims["sub"] == first.claims["sub"]


CLIENT = "<this client's id>"
HOSTILE_REFRESHES: dict[str, tuple[dict[str, Any], bool, str]] = {
    # name: (claims changed, signed with the attacker's key, words of the refusal)
    "another person": ({"sub": "mallory"}, False, "subject"),
    "another issuer": ({"iss": "http://127.0.0.1:1"}, False, "issued by"),
    "a forged signature": ({}, True, "signature"),
    "another audience": ({"aud": [CLIENT, "another-app"], "azp": CLIENT}, False, "other clients"),
    "another azp": ({"azp": "another-app"}, False, "azp"),
    "a replayed nonce": ({"nonce": "from-another-login"}, False, "nonce"),
}


def answer_next_refresh_with(provider: DemoProvider, first: AuthData, case: str) -> tuple[str, str]:
    """Make the provider's next token answer carry the ``case`` id_token; (it, the refusal's words)."""
    assert first.claims is not None
    change, attacker_key, words = HOSTILE_REFRESHES[case]
    claims = {**claims_of(provider, sub=first.claims["sub"]), **change}
    claims = json.loads(
        json.dumps(claims).replace(json.dumps(CLIENT), json.dumps(provider.client_id))
    )
    token = sign(claims, RSAKey.generate_key(2048) if attacker_key else None)
    answer = {"access_token": "A" * 40, "token_type": "Bearer", "expires_in": 60, "id_token": token}
    provider.inject_fault(
        "token", status=200, body=json.dumps(answer), content_type="application/json"
    )
    return token, words


@pytest.mark.parametrize("case", sorted(HOSTILE_REFRESHES))
def test_a_hostile_refreshed_id_token_is_refused(
    make_client: Make, provider: DemoProvider, case: str
) -> None:
    client, first = first_login(make_client, provider)
    token, words = answer_next_refresh_with(provider, first, case)
    with pytest.raises(IdTokenError, match=words) as caught:
        refresh_at(client.config, first)
    assert token not in str(caught.value)


def test_the_refresh_comparison_alone() -> None:
    first = {"iss": "https://a.example", "sub": "ada", "aud": ["c", "d"], "azp": "c"}
    # Audiences in another order, a new iat and auth_time (providers write the refresh's).
    oidc.check_refreshed_id_token(first, {**first, "aud": ["d", "c"], "iat": 99, "auth_time": 2})
    for change in (
        {"iss": "https://a.example/"},
        {"sub": "mallory"},
        {"aud": ["c"]},
        {"azp": "d"},
        {"nonce": "n"},
    ):
        with pytest.raises(IdTokenError):
            oidc.check_refreshed_id_token(first, {**first, **change})


def test_a_device_code_id_token_is_verified_without_a_nonce(provider: DemoProvider) -> None:
    config = config_of(provider)
    honest = AuthData(token="t" * 20, id_token=sign(claims_of(provider)))
    assert oidc.with_verified_claims(config, honest).id_token_verified is True
    forged = AuthData(token="t" * 20, id_token=sign(claims_of(provider), RSAKey.generate_key(2048)))
    with pytest.raises(IdTokenError, match="signature"):
        oidc.with_verified_claims(config, forged)
    # An id_token a refresh answer repeats keeps the claims verified with it.
    kept = AuthData(token="u" * 20, id_token=honest.id_token)
    previous = AuthData(token="t" * 20, id_token=honest.id_token, claims={"sub": "ada"})
    assert oidc.with_verified_claims(config, kept, previous=previous).claims == {"sub": "ada"}


@pytest.mark.parametrize("case", sorted(HOSTILE_REFRESHES))
def test_the_client_refuses_a_hostile_refreshed_id_token_and_keeps_its_token(
    make_client: Make, provider: DemoProvider, case: str
) -> None:
    """The same answers through the client's own refresh (the lifecycle's one refresh)."""
    client, first = first_login(make_client, provider)
    token, words = answer_next_refresh_with(provider, first, case)
    with pytest.raises(IdTokenError, match=words) as caught:
        client.refresh_user_access_token("ada")
    assert token not in str(caught.value)
    stored = client.stored_token("ada")
    assert stored is not None and stored.data.token == first.token  # nothing hostile stored


def test_the_client_verifies_an_honest_refreshed_id_token(
    make_client: Make, provider: DemoProvider
) -> None:
    client, first = first_login(make_client, provider)
    fresh = client.refresh_user_access_token("ada")
    assert fresh.id_token != first.id_token and fresh.id_token_verified is True


def test_a_device_flow_with_a_forged_id_token_ends_in_an_error_and_stores_nothing(
    make_client: Make, provider: DemoProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The device poll verifies the id_token before storing (Core §3.1.3.7, no nonce)."""
    import chat_oauth2_nb.oauth.device as device_module

    monkeypatch.setattr(device_module, "MIN_POLL_INTERVAL", 0.2)  # the mechanics, not the floor
    provider.device_interval = 0
    config = provider.config(alias="demo", scopes=("openid", "profile"))
    client = make_client(config=config, mode="device")
    client.start_device_authorization("ada")
    forged = sign(claims_of(provider), RSAKey.generate_key(2048))
    answer = {
        "access_token": "A" * 40,
        "token_type": "Bearer",
        "expires_in": 60,
        "id_token": forged,
    }
    provider.inject_fault(
        "token", status=200, body=json.dumps(answer), content_type="application/json"
    )
    with pytest.raises(IdTokenError, match="signature") as caught:
        client.wait_for_authorization("ada", timeout=60)
    assert forged not in str(caught.value)
    assert client.stored_token("ada") is None

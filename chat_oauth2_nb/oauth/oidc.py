"""OpenID Connect id_token verification (Core 1.0 §3.1.3.7), with joserfc.

The signature is checked against the provider's JWKS (fetched through the bounded transport,
cached, fetched again when a token names a key id the cache does not know: providers rotate
keys), then ``iss`` (exactly, as a string), ``aud``/``azp``, ``exp`` and ``nonce``. Every
failure is an :class:`~chat_oauth2_nb.errors.IdTokenError` that says which check failed, never
the token. An id_token from a refresh or a device code is checked the same way, and one from
a refresh must also name the same ``iss``, ``sub`` and ``aud`` as the first (Core §12.2).
No server or widget imports: the lifecycle calls these after each token answer.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..config import ProviderConfig, same_issuer
from ..errors import IdTokenError
from .models import AuthData, HttpRequest, ProviderAnswer
from .transport import send

__all__ = [
    "ALGORITHMS",
    "JwksCache",
    "check_refreshed_id_token",
    "same_issuer",
    "unverifiable_reason",
    "verify_for_config",
    "verify_id_token",
    "verify_refreshed_id_token",
    "with_verified_claims",
]

log = logging.getLogger("chat_oauth2_nb.oidc")

#: Signature algorithms accepted for id_tokens (never "none", never HMAC with a public key).
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
# Clock skew tolerated on exp and iat, seconds.
_LEEWAY = 60

Fetch = Callable[[HttpRequest], ProviderAnswer]


class JwksCache:
    """The key sets of JWKS URLs, fetched on first use and again for an unknown ``kid``."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._sets: dict[str, KeySet] = {}
        self._lock = threading.Lock()
        #: How many times each JWKS URL was fetched (a test looks; no secrets in it).
        self.fetches: dict[str, int] = {}

    def keys(self, url: str, kid: str | None) -> KeySet:
        """The key set of ``url``, fetched again once when it lacks ``kid``."""
        with self._lock:
            cached = self._sets.get(url)
        if cached is not None and (kid is None or _has(cached, kid)):
            return cached
        answer = self._fetch(HttpRequest("GET", url, {"Accept": "application/json"}, "", (), None))
        self.fetches[url] = self.fetches.get(url, 0) + 1
        if answer.failure is not None or answer.status != 200:
            raise IdTokenError(
                f"The provider's signing keys could not be read from {url} "
                f"({answer.failure or f'HTTP {answer.status}'})",
                hint="Check jwksUri (discover_config() fills it), then authorize again.",
            )
        try:
            keys: KeySet = KeySet.import_key_set(json.loads(answer.content))
        except (ValueError, JoseError, TypeError):
            raise IdTokenError(
                f"The provider's key set at {url} is not a valid JWKS",
                hint="Check jwksUri points at the provider's jwks_uri.",
            ) from None
        with self._lock:
            self._sets[url] = keys
        return keys


def _has(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)


def _header(id_token: str) -> Mapping[str, Any]:
    import base64

    try:
        head = id_token.split(".")[0]
        data = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, IndexError):
        data = None
    if not isinstance(data, dict):
        raise IdTokenError(
            "The id_token is not a signed JWT", hint="The provider sent a malformed id_token."
        )
    return data


def verify_id_token(
    id_token: str,
    *,
    issuer: str,
    client_id: str,
    jwks_uri: str,
    nonce: str | None,
    keys: JwksCache,
    now: float | None = None,
    accepted_issuers: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Verify ``id_token`` and return its claims; raise IdTokenError naming the failed check.

    ``iss`` must equal ``issuer`` (or one of ``accepted_issuers``) exactly (Core §3.1.3.7
    step 2); ``azp``, when present, must be ``client_id`` whatever the audience (step 5).
    """
    header = _header(id_token)
    kid = header.get("kid")
    key_set = keys.keys(jwks_uri, kid if isinstance(kid, str) else None)
    try:
        token = jwt.decode(id_token, key_set, algorithms=ALGORITHMS)
    except JoseError as exc:
        raise IdTokenError(
            f"The id_token's signature does not verify against {jwks_uri} ({exc.error})",
            hint="Someone may have forged or altered it; authorize again. If it persists, "
            "check jwksUri and issuer belong to the same provider.",
        ) from None
    claims = dict(token.claims)
    when = time.time() if now is None else now
    iss = claims.get("iss")
    if not any(same_issuer(iss, accepted) for accepted in (issuer, *accepted_issuers)):
        raise IdTokenError(
            f"The id_token was issued by {str(claims.get('iss'))[:200]!r}, not {issuer}",
            hint="Another provider issued it (mix-up) or the config's issuer is wrong.",
        )
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if client_id not in audiences:
        raise IdTokenError(
            f"The id_token is meant for another client, not {client_id!r}",
            hint="A token issued to another app was replayed here; authorize again.",
        )
    # Core §3.1.3.7 step 5: "If an azp Claim is present, the Client SHOULD verify that its
    # client_id is the Claim Value", with one audience as with several.
    if "azp" in claims and claims["azp"] != client_id:
        raise IdTokenError(
            f"The id_token's azp names another client, not {client_id!r}",
            hint="A token issued to another app was replayed here; authorize again.",
        )
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or exp + _LEEWAY < when:
        raise IdTokenError(
            "The id_token has expired (or has no exp)",
            hint="Check this machine's clock, then authorize again.",
        )
    if nonce is not None:
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, nonce):
            raise IdTokenError(
                "The id_token's nonce is not the one this authorization sent",
                hint="An id_token from another login was replayed; authorize again.",
            )
    return claims


def _fetch_bounded(timeout: float) -> Fetch:
    def fetch(request: HttpRequest) -> ProviderAnswer:
        with httpx.Client(timeout=timeout, trust_env=False) as http:
            return send(http, request, deadline=timeout)

    return fetch


# One cache per process: the Jupyter server verifies every user's id_tokens with it.
_KEYS: dict[float, JwksCache] = {}
_KEYS_LOCK = threading.Lock()


def unverifiable_reason(config: ProviderConfig) -> str | None:
    """Why ``config``'s id_tokens cannot be verified (what to set), or None when they can."""
    if config.jwks_uri is None and config.issuer is None:
        return "the config has neither jwksUri nor issuer: set both (discover_config() fills them)"
    if config.jwks_uri is None:
        return (
            "the config has no jwksUri, so the id_token's signature cannot be checked: set "
            "jwksUri to the provider's jwks_uri (discover_config() fills it)"
        )
    if config.issuer is None:
        return (
            "the config has no issuer (a multi-tenant endpoint such as Microsoft's 'common' has "
            "none), so the id_token's iss cannot be compared: set issuer, e.g. pick one tenant"
        )
    return None


def _keys(timeout: float) -> JwksCache:
    with _KEYS_LOCK:
        return _KEYS.setdefault(timeout, JwksCache(_fetch_bounded(timeout)))


def verify_for_config(
    config: ProviderConfig, id_token: str, nonce: str | None, *, timeout: float = 10.0
) -> dict[str, Any] | None:
    """Verify ``id_token`` as ``config``'s provider issued it; None when it cannot be checked.

    It can be checked when the config names the issuer and its ``jwksUri`` (presets and
    discovery fill both). A multi-tenant issuer (Microsoft's ``common``) has no single
    ``iss`` to compare, so its claims stay unverified rather than the flow failing; the token
    then says so (:attr:`AuthData.id_token_verified` is False) and a warning is logged.
    """
    issuer, jwks_uri = config.issuer, config.jwks_uri
    if issuer is None or jwks_uri is None:
        why = unverifiable_reason(config)
        log.warning("the id_token for %r is kept unverified: %s", config.alias, why)
        return None
    return verify_id_token(
        id_token,
        issuer=issuer,
        client_id=config.client_id,
        jwks_uri=jwks_uri,
        nonce=nonce,
        keys=_keys(timeout),
        accepted_issuers=config.accepted_issuers,
    )


def _audiences(claims: Mapping[str, Any]) -> frozenset[str]:
    aud = claims.get("aud")
    return frozenset(str(a) for a in (aud if isinstance(aud, list) else [aud]))


def check_refreshed_id_token(first: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Refuse a refreshed id_token's claims ``new`` that do not continue ``first`` (Core §12.2).

    ``iss`` (exactly), ``sub`` and ``aud`` must be the first id_token's; ``azp``, when the
    first one had it, too; a ``nonce``, when present, must be the first one's. Both are
    verified claims: this only compares them. ``auth_time`` is not compared: §12.2 wants the
    original time, but providers (the demo's Authlib among them) write the refresh's, and
    this kit sends no ``max_age`` that would make it matter.
    """
    for name, what in (("iss", "issuer"), ("sub", "subject (another person)")):
        if not (isinstance(new.get(name), str) and new.get(name) == first.get(name)):
            raise IdTokenError(
                f"The refreshed id_token names another {what} than the first one "
                f"({str(new.get(name))[:200]!r})",
                hint="The provider answered the refresh for someone else, or another provider "
                "did; the token was not stored. Authorize again.",
            )
    if _audiences(new) != _audiences(first):
        raise IdTokenError(
            "The refreshed id_token is meant for other clients than the first one",
            hint="The token was not stored; authorize again.",
        )
    for name in ("azp", "nonce"):
        compared = name in first or name == "nonce"
        if compared and name in new and new[name] != first.get(name):
            raise IdTokenError(
                f"The refreshed id_token's {name} is not the first one's",
                hint="The token was not stored; authorize again.",
            )


def verify_refreshed_id_token(
    config: ProviderConfig,
    id_token: str,
    first_claims: Mapping[str, Any] | None,
    *,
    timeout: float = 10.0,
) -> dict[str, Any] | None:
    """Verify an id_token a refresh returned; its claims, or None when it cannot be checked.

    Verified as the first one was (signature, ``iss``, ``aud``/``azp``, ``exp``; no nonce is
    sent on a refresh), then compared with ``first_claims``, the verified claims of the
    id_token first issued for this grant (Core §12.2). Without first claims (the first one
    was never verified) it is verified alone.

    Raises:
        IdTokenError: a check failed; the refreshed token must not be stored.
    """
    claims = verify_for_config(config, id_token, None, timeout=timeout)
    if claims is not None and first_claims is not None:
        check_refreshed_id_token(first_claims, claims)
    return claims


def with_verified_claims(
    config: ProviderConfig,
    data: AuthData,
    *,
    nonce: str | None = None,
    previous: AuthData | None = None,
    timeout: float = 10.0,
) -> AuthData:
    """``data`` with its id_token's verified claims: the one call after any token answer.

    After a code exchange pass the flow's ``nonce``; after a device code poll nothing (RFC
    8628 sends no nonce); after a refresh the token it replaces as ``previous``, whose claims
    the new id_token must continue. An id_token the answer repeated keeps its claims.

    Raises:
        IdTokenError: the id_token failed a check; ``data`` must not be stored.
    """
    if data.id_token is None:
        return data
    if previous is not None and previous.id_token == data.id_token:
        return dataclasses.replace(data, claims=previous.claims)
    if previous is not None:
        first = previous.claims
        claims = verify_refreshed_id_token(config, data.id_token, first, timeout=timeout)
    else:
        claims = verify_for_config(config, data.id_token, nonce, timeout=timeout)
    return dataclasses.replace(data, claims=claims)

"""OpenID Connect id_token verification (Core 1.0 §3.1.3.7), with joserfc.

The signature is checked against the provider's JWKS (fetched through the bounded transport,
cached, fetched again when a token names a key id the cache does not know: providers rotate
keys), then ``iss``, ``aud``/``azp``, ``exp`` and ``nonce``. Every failure is an
:class:`~chat_oauth2_nb.errors.IdTokenError` that says which check failed, never the token.
No server or widget imports: the Jupyter server's callback calls it after the code exchange.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..config import ProviderConfig
from ..errors import IdTokenError
from .models import HttpRequest, ProviderAnswer
from .transport import send

__all__ = ["ALGORITHMS", "JwksCache", "verify_for_config", "verify_id_token"]

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
) -> dict[str, Any]:
    """Verify ``id_token`` and return its claims; raise IdTokenError naming the failed check."""
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
    if str(claims.get("iss", "")).rstrip("/") != issuer.rstrip("/"):
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
    if len(audiences) > 1 and claims.get("azp") not in (None, client_id):
        raise IdTokenError("The id_token's azp names another client", hint="Authorize again.")
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


def verify_for_config(
    config: ProviderConfig, id_token: str, nonce: str | None, *, timeout: float = 10.0
) -> dict[str, Any] | None:
    """Verify ``id_token`` as ``config``'s provider issued it; None when it cannot be checked.

    It can be checked when the config names the issuer and its ``jwksUri`` (presets and
    discovery fill both). A multi-tenant issuer (Microsoft's ``common``) has no single
    ``iss`` to compare, so its claims stay unverified rather than the flow failing.
    """
    if config.jwks_uri is None or config.issuer is None:
        return None
    with _KEYS_LOCK:
        keys = _KEYS.setdefault(timeout, JwksCache(_fetch_bounded(timeout)))
    return verify_id_token(
        id_token,
        issuer=config.issuer,
        client_id=config.client_id,
        jwks_uri=config.jwks_uri,
        nonce=nonce,
        keys=keys,
    )

"""DPoP at the token endpoint (RFC 9449 §5, §8): a proof on each request, the nonce honoured.

The key pair is made where the token is first issued (the one holder of the grant) and
stored with the token, sealed like it; every later request of the grant (refresh, API
calls) proves the same key. A server's ``DPoP-Nonce`` is remembered per origin in this
process and a ``use_dpop_nonce`` answer is retried once with the new nonce.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import threading
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from ..config import ProviderConfig
from ..errors import NotAuthorizedError
from ..oauth import AuthData, HttpRequest, ProviderAnswer
from ..oauth._bodies import load_answer
from ..oauth.dpop import DPOP_SCHEME, DPoPKey, nonce_challenge
from ..store import TokenRecord

__all__ = [
    "NONCES",
    "NonceBook",
    "bind",
    "holder_proof",
    "key_for",
    "key_of",
    "send_token_request",
    "send_with_proof",
    "with_proof",
]

log = logging.getLogger("chat_oauth2_nb")


class NonceBook:
    """The last ``DPoP-Nonce`` each server (origin) gave; nonces are not secrets."""

    def __init__(self) -> None:
        self._nonces: dict[str, str] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _origin(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme.lower()}://{parts.netloc.lower()}"

    def get(self, url: str) -> str | None:
        """The nonce last given by ``url``'s server, or None."""
        with self._lock:
            return self._nonces.get(self._origin(url))

    def note(self, url: str, headers: Mapping[str, str]) -> str | None:
        """Remember the nonce an answer from ``url`` carries (RFC 9449 §8.2); it, or None."""
        nonce = headers.get("dpop-nonce") or headers.get("DPoP-Nonce")
        if nonce and len(nonce) <= 512:
            with self._lock:
                self._nonces[self._origin(url)] = nonce
            return nonce
        return None


#: The nonces of this process: the token endpoints' and the resource servers'.
NONCES = NonceBook()


def key_of(data: AuthData | None) -> DPoPKey | None:
    """The key a stored token is bound to, or None."""
    return None if data is None or not data.dpop_key else DPoPKey.from_json(data.dpop_key)


def key_for(config: ProviderConfig, data: AuthData | None) -> DPoPKey | None:
    """The key a token request of this grant proves: the token's own, or a new one (dpop=True)."""
    held = key_of(data)
    if held is not None:
        return held
    return DPoPKey.generate() if config.dpop else None


def send_token_request(
    send: Callable[[HttpRequest], ProviderAnswer], request: HttpRequest, key: DPoPKey | None
) -> tuple[HttpRequest, ProviderAnswer]:
    """Send a token request, with a DPoP proof (and the server's nonce) when bound."""
    if key is None:
        return request, send(request)
    return send_with_proof(send, request, key)


def holder_proof(
    record: TokenRecord | None, user: str, alias: str, body: Mapping[str, object]
) -> str:
    """A proof for one API request with the token ``record`` holds, for a caller that has it.

    The key never leaves its holder (the Jupyter server or the hub for a declared provider):
    a kernel asks for a proof per request instead. ``body``: ``method``, ``url``, ``have``
    (the digest of the caller's access token, which must be the one held) and ``nonce``.
    Raises ValueError for a malformed body, NotAuthorizedError when the token is not bound
    here or the caller's is not the one held.
    """
    from .grants import digest

    method, url, have, nonce = (body.get(k) for k in ("method", "url", "have", "nonce"))
    if not (isinstance(method, str) and isinstance(url, str) and isinstance(have, str)):
        raise ValueError("method, url and have must be strings")
    if nonce is not None and not isinstance(nonce, str):
        raise ValueError("nonce must be a string or null")
    key = key_of(record.data) if record is not None else None
    if record is None or key is None:
        raise NotAuthorizedError(
            f"No DPoP-bound token of {user!r} at {alias!r} is held here",
            hint="Authorize again: client.get_user_authorization_url().",
        )
    if not hmac.compare_digest(digest(record.data.token), have):
        raise NotAuthorizedError(
            f"The token of {user!r} at {alias!r} changed since the caller read it",
            hint="Read the token again (client.get_access_token_for_user()).",
        )
    return key.proof(method, url, access_token=record.data.token, nonce=nonce)


def with_proof(
    request: HttpRequest, key: DPoPKey, nonce: str | None, access_token: str | None = None
) -> HttpRequest:
    """``request`` with a fresh proof in its ``DPoP`` header (the proof kept for redaction)."""
    proof = key.proof(request.method, request.url, access_token=access_token, nonce=nonce)
    return dataclasses.replace(
        request,
        headers={**request.headers, "DPoP": proof},
        secrets=(*request.secrets, proof),
    )


def send_with_proof(
    send: Callable[[HttpRequest], ProviderAnswer], request: HttpRequest, key: DPoPKey
) -> tuple[HttpRequest, ProviderAnswer]:
    """Send ``request`` with a proof; once more with a new proof if the server asks a nonce."""
    signed = with_proof(request, key, NONCES.get(request.url))
    answer = send(signed)
    NONCES.note(request.url, answer.headers)
    if answer.status == 400:
        body = load_answer(answer.headers, answer.content) or {}
        error = body.get("error")
        nonce = nonce_challenge(400, answer.headers, error if isinstance(error, str) else None)
        if nonce is not None:
            signed = with_proof(request, key, nonce)
            answer = send(signed)
            NONCES.note(request.url, answer.headers)
    return signed, answer


def bind(data: AuthData, key: DPoPKey, what: str) -> AuthData:
    """``data`` with its key, when the server bound it (token_type DPoP, RFC 9449 §5)."""
    if data.token_type.lower() == DPOP_SCHEME.lower():
        return dataclasses.replace(data, token_type=DPOP_SCHEME, dpop_key=key.to_json())
    log.warning(
        "%s: the provider answered a token of type %r to a DPoP request, so the token is "
        "not bound to a key (the provider may not support DPoP)",
        what,
        data.token_type[:40],
    )
    return dataclasses.replace(data, dpop_key=None)

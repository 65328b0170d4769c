"""DPoP (RFC 9449) on the demo provider's side: proofs checked with joserfc, nonces issued.

A token request with a valid proof gets a token bound to the proof's key (``cnf.jkt``); the
protected resource then wants ``Authorization: DPoP`` with a proof of that very key for
that request (``htm``, ``htu``, ``ath``). Every ``jti`` is accepted once. With
``require_nonce``, a proof must carry the nonce the server last gave (``DPoP-Nonce``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["DPoPProblem", "DPoPVerifier"]

#: How far a proof's ``iat`` may lie from now, in seconds.
_IAT_WINDOW = 120


class DPoPProblem(Exception):
    """A proof that does not do: ``error`` is the OAuth error code, the message its words."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _htu(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))


def _ath(token: str) -> str:
    digest = hashlib.sha256(token.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class DPoPVerifier:
    """Checks proofs; remembers every ``jti`` seen (for replay checks and for tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Every jti accepted, in order (a test reads them: a proof is never reused).
        self.seen_jtis: list[str] = []
        #: Every proof accepted (a test scans logs and outputs for them).
        self.proofs: list[str] = []
        self._jtis: set[str] = set()
        #: Demand a server nonce in every proof (RFC 9449 §8, §9).
        self.require_nonce = False
        self.nonce = secrets.token_urlsafe(16)
        #: Proofs refused, by error code.
        self.refused: list[str] = []

    def new_nonce(self) -> str:
        """Rotate the nonce (the next proofs must carry the new one)."""
        with self._lock:
            self.nonce = secrets.token_urlsafe(16)
            return self.nonce

    def check(self, proof: str, method: str, url: str, *, access_token: str | None = None) -> str:
        """The key thumbprint (jkt) of a valid proof for this request; DPoPProblem otherwise."""
        try:
            return self._check(proof, method, url, access_token)
        except DPoPProblem as problem:
            with self._lock:
                self.refused.append(problem.error)
            raise

    def _check(self, proof: str, method: str, url: str, access_token: str | None) -> str:
        from joserfc import jws
        from joserfc.errors import JoseError
        from joserfc.jwk import ECKey

        bad = "invalid_dpop_proof"
        try:
            header = json.loads(base64.urlsafe_b64decode(proof.split(".")[0] + "=="))
            jwk = header.get("jwk")
            if header.get("typ") != "dpop+jwt" or header.get("alg") != "ES256" or not jwk:
                raise DPoPProblem(bad, "The proof must be typ dpop+jwt, alg ES256, with a jwk.")
            if "d" in jwk:
                raise DPoPProblem(bad, "The proof's jwk must be a public key.")
            key = ECKey.import_key(jwk)
            claims = json.loads(jws.deserialize_compact(proof, key, algorithms=["ES256"]).payload)
        except (ValueError, JoseError, IndexError, AttributeError, TypeError) as exc:
            raise DPoPProblem(
                bad, "The DPoP proof cannot be read or its signature is bad."
            ) from exc
        self._claims(claims, method, url, access_token)
        with self._lock:
            self.proofs.append(proof)
        return str(key.thumbprint())

    def _claims(
        self, claims: dict[str, Any], method: str, url: str, access_token: str | None
    ) -> None:
        bad = "invalid_dpop_proof"
        if claims.get("htm") != method or claims.get("htu") != _htu(url):
            raise DPoPProblem(bad, "The proof is for another request (htm, htu).")
        iat = claims.get("iat")
        if not isinstance(iat, int) or abs(time.time() - iat) > _IAT_WINDOW:
            raise DPoPProblem(bad, "The proof's iat is missing or too far from now.")
        if access_token is not None and claims.get("ath") != _ath(access_token):
            raise DPoPProblem(bad, "The proof's ath does not match the access token.")
        jti = claims.get("jti")
        with self._lock:
            if not isinstance(jti, str) or jti in self._jtis:
                raise DPoPProblem(bad, "The proof's jti is missing or was used before.")
            if self.require_nonce and claims.get("nonce") != self.nonce:
                raise DPoPProblem("use_dpop_nonce", "Send the DPoP-Nonce this server gave.")
            self._jtis.add(jti)
            self.seen_jtis.append(jti)

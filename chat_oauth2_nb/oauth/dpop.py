"""DPoP (RFC 9449): a key pair that binds tokens to their holder, and the proofs it signs.

Sans-I/O: :class:`DPoPKey` makes a fresh ES256 key (joserfc), serialises its private half
for the store (where it is sealed like the token it binds) and signs one proof per request
(``typ`` dpop+jwt, the public ``jwk`` in the header; ``jti``, ``htm``, ``htu`` without query
or fragment, ``iat``, and ``ath``/``nonce`` when they apply). :func:`nonce_challenge` reads
a server's demand for a nonce. Proofs are credentials: they never go into a repr or a log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "DPOP_ALG",
    "DPOP_SCHEME",
    "DPoPKey",
    "access_token_hash",
    "htu_of",
    "nonce_challenge",
]

#: The one algorithm the kit signs proofs with (every DPoP server must support one; ES256 is
#: the one RFC 9449's examples and the major providers list).
DPOP_ALG = "ES256"
#: The token type (and Authorization scheme) of a DPoP-bound access token.
DPOP_SCHEME = "DPoP"
_ERROR = re.compile(r'error\s*=\s*"?use_dpop_nonce"?', re.IGNORECASE)


def htu_of(url: str) -> str:
    """The ``htu`` claim for ``url``: the URI without query and fragment (RFC 9449 §4.2)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))


def access_token_hash(token: str) -> str:
    """The ``ath`` claim: base64url SHA-256 of the access token, without padding."""
    raw = hashlib.sha256(token.encode("ascii", "strict")).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class DPoPKey:
    """One DPoP key pair (ES256): signs proofs; its private half only ever goes to the store."""

    def __init__(self, key: Any) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> DPoPKey:
        """A fresh P-256 key pair."""
        from joserfc.jwk import ECKey

        return cls(ECKey.generate_key("P-256", private=True))

    @classmethod
    def from_json(cls, text: str) -> DPoPKey:
        """The key :meth:`to_json` wrote."""
        from joserfc.jwk import ECKey

        return cls(ECKey.import_key(json.loads(text)))

    def to_json(self) -> str:
        """The private JWK as JSON, for the (sealed) store only."""
        return json.dumps(self._key.as_dict(private=True))

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK, as a proof's header carries it."""
        return {
            name: value
            for name, value in self._key.as_dict(private=False).items()
            if name in ("kty", "crv", "x", "y")
        }

    @property
    def thumbprint(self) -> str:
        """The JWK SHA-256 thumbprint (RFC 7638): ``cnf.jkt`` of the tokens bound to this key."""
        return str(self._key.thumbprint())

    def __repr__(self) -> str:
        return f"<DPoPKey jkt={self.thumbprint[:8]}…>"

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
    ) -> str:
        """A fresh proof for one request: never reused (a new ``jti`` each time)."""
        from joserfc import jws

        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(24),
            "htm": method.upper(),
            "htu": htu_of(url),
            "iat": int(time.time()),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        header = {"typ": "dpop+jwt", "alg": DPOP_ALG, "jwk": self.public_jwk()}
        payload = json.dumps(claims, separators=(",", ":")).encode()
        return str(jws.serialize_compact(header, payload, self._key))


def nonce_challenge(
    status: int | None, headers: Mapping[str, str], error: str | None = None
) -> str | None:
    """The nonce a server demands (RFC 9449 §8, §9), or None when it demands none.

    An authorization server answers 400 ``use_dpop_nonce`` (``error``, from the JSON body); a
    resource server answers 401 with ``WWW-Authenticate: DPoP error="use_dpop_nonce"``.
    Both put the nonce in ``DPoP-Nonce``.
    """
    nonce = headers.get("dpop-nonce") or headers.get("DPoP-Nonce")
    if not nonce:
        return None
    if status == 400 and error == "use_dpop_nonce":
        return nonce
    challenge = headers.get("www-authenticate") or headers.get("WWW-Authenticate") or ""
    if status == 401 and _ERROR.search(challenge):
        return nonce
    return None

"""A client's private key for ``private_key_jwt`` (RFC 7523 §2.2, OpenID Connect Core §9).

The key comes from a file (``client_key=`` a path, the config key ``clientKey``, or
``CHAT_OAUTH2_<ALIAS>_CLIENT_KEY_FILE``) or the environment (``CHAT_OAUTH2_<ALIAS>_CLIENT_KEY``,
the PEM text), never as text from a notebook cell. It is a PEM private key (RSA, EC or
Ed25519) or a private JWK in JSON; the signing algorithm and ``kid`` come from it. Each
request carries a fresh assertion: ``iss``/``sub`` the client id, ``aud`` the token endpoint,
a unique ``jti`` and an expiry 60 s away.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = [
    "ASSERTION_LIFETIME",
    "ASSERTION_TYPE",
    "ClientKey",
    "checked_client_key",
    "find_client_key",
    "parse_client_key",
    "sign_client_assertion",
]

#: RFC 7523 §2.2: the assertion type of a JWT client assertion.
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Seconds an assertion stays valid: long enough for one request, short enough that a copy
#: (a proxy's log) is useless soon after.
ASSERTION_LIFETIME = 60
_MAX_KEY_BYTES = 64 * 1024
# EC curve -> JWS algorithm (RFC 7518 §3.4, RFC 8812 §3.2).
_EC_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "secp256k1": "ES256K"}


@dataclasses.dataclass(frozen=True)
class ClientKey:
    """A parsed private key with the ``alg`` and ``kid`` its assertions carry."""

    key: Any = dataclasses.field(repr=False)
    alg: str
    kid: str

    def __repr__(self) -> str:
        return f"ClientKey(alg={self.alg!r}, kid={self.kid!r}, key=<private>)"


def _alg_for(key: Any, declared: object) -> str:
    kty = key.key_type
    if kty == "RSA":
        natural = "RS256"
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    elif kty == "EC":
        natural = _EC_ALGS.get(str(key.curve_name), "")
        allowed = {natural}
    elif kty == "OKP" and key.curve_name in ("Ed25519", "Ed448"):
        # RFC 9864's fully specified name; a JWK may still say the older "EdDSA".
        natural = str(key.curve_name)
        allowed = {"EdDSA", natural}
    else:
        raise ValueError(f"a {kty} key cannot sign a client assertion (use RSA, EC or Ed25519)")
    if declared is None:
        if not natural:
            raise ValueError(f"the EC curve {key.curve_name} has no JWS algorithm")
        return natural
    if declared not in allowed:
        raise ValueError(f"its 'alg' {declared!r} does not fit a {kty} key")
    return str(declared)


@functools.lru_cache(maxsize=16)
def parse_client_key(text: str) -> ClientKey:
    """Parse a PEM private key or a private JWK (JSON); ValueError says what is wrong (no key in it)."""
    from joserfc.jwk import ECKey, OKPKey, RSAKey

    stripped = text.strip()
    declared: dict[str, Any] = {}
    if stripped.startswith("{"):
        try:
            declared = json.loads(stripped)
        except ValueError:
            raise ValueError("it starts like a JWK but is not JSON") from None
        if not isinstance(declared, dict):
            raise ValueError("it is JSON but not a JWK object")
        kinds = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}
        kind = kinds.get(str(declared.get("kty")))
        if kind is None:
            raise ValueError("its JWK 'kty' is not RSA, EC or OKP")
        candidates: list[Any] = [kind]
        source: Any = declared
    elif "-----BEGIN" in stripped:
        if "ENCRYPTED" in stripped.split("\n", 1)[0]:
            raise ValueError("it is an encrypted PEM key; store it unencrypted (0600)")
        candidates, source = [RSAKey, ECKey, OKPKey], stripped.encode("utf-8")
    else:
        raise ValueError("it is neither a PEM private key nor a JWK")
    for kind in candidates:
        try:
            key = kind.import_key(source)
            break
        except Exception:  # noqa: S112 - joserfc raises several types; try the next
            continue
    else:
        raise ValueError("it could not be read as an RSA, EC or Ed25519 private key")
    if not key.is_private:
        raise ValueError("it is a public key; the client needs its private key")
    alg = _alg_for(key, declared.get("alg"))
    kid = declared.get("kid") or key.thumbprint()
    return ClientKey(key, alg, str(kid))


def _read_key_file(path: str | os.PathLike[str], source: str) -> str:
    file = Path(path).expanduser()
    try:
        with file.open("rb") as handle:
            raw = handle.read(_MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(
            "client_key",
            f"names {str(file)!r} ({source}), which cannot be read: {exc.strerror or exc}",
            "Give the path of the client's private key file (PEM or JWK), readable by this "
            "process; keep it 0600.",
        ) from None
    if len(raw) > _MAX_KEY_BYTES:
        raise ConfigurationError(
            "client_key", f"file {str(file)!r} ({source}) is too large", "Give a PEM or JWK file."
        )
    return raw.decode("utf-8", errors="replace")


def _looks_like_key_text(value: str) -> bool:
    return "-----BEGIN" in value or value.lstrip().startswith("{") or "\n" in value


def find_client_key(
    alias: str,
    client_key: object,
    environ: Mapping[str, str],
    env_name: Any,
) -> tuple[str, str] | None:
    """The key's text and where it came from, or None when no key is given anywhere.

    ``client_key`` is a path (an argument or the config key); else ``<ALIAS>_CLIENT_KEY_FILE``
    (a path), else ``<ALIAS>_CLIENT_KEY`` (the PEM text) from ``environ``. ``env_name`` maps
    (alias, what) to the variable's name. Text given as ``client_key`` is refused: a
    notebook cell's argument ends up in its source, its history and its outputs.
    """
    if client_key is not None:
        if not isinstance(client_key, (str, os.PathLike)) or not str(client_key).strip():
            raise ConfigurationError(
                "client_key", f"is a {type(client_key).__name__}", "Give the key file's path."
            )
        if _looks_like_key_text(str(client_key)):
            raise ConfigurationError(
                "client_key",
                "looks like the key itself, not a path to it",
                "Never paste a private key into a notebook: save it in a file (0600) and give "
                f"its path, or set {env_name(alias, 'CLIENT_KEY_FILE')} (or "
                f"{env_name(alias, 'CLIENT_KEY')} with the PEM text) before Jupyter starts.",
            )
        source = f"client_key={str(client_key)!r}"
        return _read_key_file(client_key, source), source
    file_var = env_name(alias, "CLIENT_KEY_FILE")
    if environ.get(file_var):
        source = f"{file_var}={environ[file_var]!r}"
        return _read_key_file(environ[file_var], source), source
    text_var = env_name(alias, "CLIENT_KEY")
    if environ.get(text_var):
        return environ[text_var], f"the environment variable {text_var}"
    return None


def checked_client_key(text: str, source: str) -> ClientKey:
    """:func:`parse_client_key`, its failure a ConfigurationError naming ``source``."""
    try:
        return parse_client_key(text)
    except ValueError as exc:
        raise ConfigurationError(
            "client_key",
            f"from {source} is not usable: {exc}",
            "Give the client's private key as a PEM file (RSA, EC or Ed25519, unencrypted) or "
            "a private JWK, whose public half is registered at the provider.",
        ) from None


def sign_client_assertion(text: str, *, client_id: str, audience: str) -> str:
    """A fresh client assertion JWT (RFC 7523 §3): iss=sub=client_id, aud, jti, iat, exp +60 s."""
    from authlib.oauth2.rfc7523 import private_key_jwt_sign

    parsed = parse_client_key(text)
    with warnings.catch_warnings():
        # A JWK that names "EdDSA" (deprecated by RFC 9864, still what many providers know).
        warnings.simplefilter("ignore")
        return str(
            private_key_jwt_sign(
                parsed.key,
                client_id=client_id,
                token_endpoint=audience,
                alg=parsed.alg,
                header={"kid": parsed.kid, "typ": "JWT"},
                expires_in=ASSERTION_LIFETIME,
            )
        )

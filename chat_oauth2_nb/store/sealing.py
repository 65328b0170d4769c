"""Sealing single column values with AES-GCM, each bound to its row by associated data.

A store key is 32 random bytes in urlsafe base64 (44 characters): :func:`new_store_key`
makes one. A sealed value is ``aesgcm1:`` + urlsafe base64 of nonce and ciphertext, so a
value written before a key was in use is told apart from a sealed one. Both the SQLite
store and the hub service's PostgreSQL store seal this way.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets

from ..errors import ConfigurationError
from .keys import STORE_KEY_ENV

__all__ = [
    "Cipher",
    "aad",
    "flow_aad",
    "held_aad",
    "is_sealed",
    "new_store_key",
    "parse_key",
    "provider_aad",
    "resource_aad",
    "token_aad",
]

_SEALED = "aesgcm1:"


def new_store_key() -> str:
    """A fresh store key: 32 random bytes, urlsafe base64 (put it in CHAT_OAUTH2_NB_STORE_KEY)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def parse_key(key: str | bytes) -> bytes:
    """The 32 raw bytes of a store key; a ConfigurationError (never echoing it) otherwise."""
    if isinstance(key, bytes) and len(key) == 32:
        return key
    try:
        text = key.decode() if isinstance(key, bytes) else key
        text = text.strip()
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (UnicodeDecodeError, binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        # Never echo the value: it is meant to be a secret.
        raise ConfigurationError(
            "store_key",
            "is not a store key (32 bytes in urlsafe base64, 44 characters)",
            "Make one with chat_oauth2_nb.store.new_store_key() and use it everywhere "
            f"the store is opened ({STORE_KEY_ENV} in the Jupyter server's environment).",
        )
    return raw


def aad(*parts: str | None) -> bytes:
    """The associated data that binds a sealed value to where it is stored."""
    # JSON keeps the parts apart unambiguously: ("a", "b|c") never equals ("a|b", "c").
    return json.dumps(["chat_oauth2_nb", *parts]).encode()


def token_aad(alias: str, user: str, provider: str | None) -> bytes:
    """Binds a token's data to its (alias, user, provider) row."""
    return aad("tokens.data", alias, user, provider)


def resource_aad(alias: str, user: str, provider: str | None, resource: str) -> bytes:
    """Binds a per-resource token's data to its (alias, user, provider, resource) row."""
    return aad("resource_tokens.data", alias, user, provider, resource)


def held_aad(alias: str, user: str, provider: str | None) -> bytes:
    """Binds a refresh token held apart to its (alias, user, provider) row."""
    return aad("held_refresh_tokens.refresh_token", alias, user, provider)


def flow_aad(state: str) -> bytes:
    """Binds a flow's PKCE verifier (or device code) to its state."""
    return aad("flows.code_verifier", state)


def provider_aad(alias: str, provider: str, client_id: str) -> bytes:
    """Binds a client secret to its provider row."""
    return aad("providers.client_secret", alias, provider, client_id)


def is_sealed(value: str) -> bool:
    """Whether ``value`` was sealed (rather than written before a key was in use)."""
    return value.startswith(_SEALED)


class Cipher:
    """AES-GCM over single column values; each bound to its row by associated data."""

    def __init__(self, key: bytes) -> None:
        # Imported here: `import chat_oauth2_nb` stays cheap when no key is in use.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)

    def seal(self, value: str, aad: bytes) -> str:
        """``value`` sealed with a fresh nonce, bound to ``aad``."""
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, value.encode(), aad)
        return _SEALED + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, value: str, aad: bytes) -> str | None:
        """The plain value, or None when the key or the associated data does not match."""
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.urlsafe_b64decode(value[len(_SEALED) :])
            return self._aead.decrypt(raw[:12], raw[12:], aad).decode()
        except (InvalidTag, binascii.Error, ValueError):
            return None

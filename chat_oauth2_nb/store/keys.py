"""Where a store's key comes from: the argument, the environment, the hub, or ``keyring``.

On a hub set up with ``configure_hub(c)``, every user's server (and its kernels) fetches
its per-user store key from the router with its own ``JUPYTERHUB_API_TOKEN``; the router
derives it (:func:`derive_store_key`) from a hub-held secret and the token's user, so a user
only ever gets their own. The token goes only to an authenticated service (``hubpeer``), and
only a well-formed key for this user is taken. The key is fetched once per process and kept
in memory only: never written to disk.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import threading
from typing import Literal

from ..errors import StoreError
from ..routes import HUB_CALLBACK_ENV, HUB_KEY_ENV, HUB_KEY_PATH

__all__ = [
    "HUB_TOKEN_ENV",
    "HUB_USER_ENV",
    "STORE_KEY_ENV",
    "KeySource",
    "derive_store_key",
    "fetch_hub_store_key",
    "hub_key_url",
    "store_key_from_environment",
]

# Read in the Jupyter server's and the kernel's environment (kernels inherit the server's).
STORE_KEY_ENV = "CHAT_OAUTH2_NB_STORE_KEY"
#: JupyterHub gives every server (and so its kernels) its own API token here.
HUB_TOKEN_ENV = "JUPYTERHUB_API_TOKEN"  # noqa: S105 (a variable name)
#: And the name of the hub user the server belongs to: the key the service gives is theirs.
HUB_USER_ENV = "JUPYTERHUB_USER"

#: Where a store's key came from (``Store.key_source``).
KeySource = Literal["argument", "environment", "hub", "keyring"]

_KEYRING_SERVICE, _KEYRING_NAME = "chat_oauth2_nb", "store_key"
_TIMEOUT = 10.0
_MAX_ANSWER = 4096
# Separates these keys from anything else ever derived from the same secret.
_SALT = b"chat_oauth2_nb hub store key v1"

# (url, sha256 of the token) -> key: one fetch per process, memory only.
_keys: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


def store_key_from_environment() -> tuple[str | None, KeySource | None]:
    """The key and its source: CHAT_OAUTH2_NB_STORE_KEY, the hub, else ``keyring``."""
    value = os.environ.get(STORE_KEY_ENV)
    if value:
        return value, "environment"
    from_hub = fetch_hub_store_key()
    if from_hub:
        return from_hub, "hub"
    return _key_from_keyring(), "keyring"


def _key_from_keyring() -> str | None:
    try:
        import keyring  # optional: only when the person installed it
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        if isinstance(keyring.get_keyring(), fail.Keyring):
            return None
        found = keyring.get_password(_KEYRING_SERVICE, _KEYRING_NAME)
    except Exception:  # a backend that cannot be reached is no key, not a crash
        return None
    return found or None


# the hub --------------------------------------------------------------------------------


def derive_store_key(secret: bytes, user: str) -> str:
    """The store key of hub user ``user``: 32 bytes, urlsafe base64 (a store key's format).

    HKDF-SHA256 of the hub-held secret, with the hub user's name as info.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=user.encode()).derive(secret)
    return base64.urlsafe_b64encode(raw).decode()


def hub_key_url() -> str | None:
    """Where this server fetches its store key, or None when not spawned by such a hub."""
    explicit = os.environ.get(HUB_KEY_ENV, "").strip()
    if explicit:
        return explicit
    callback = os.environ.get(HUB_CALLBACK_ENV, "").strip().rstrip("/")
    if not callback.endswith("/callback"):
        return None
    return f"{callback[: -len('callback')]}{HUB_KEY_PATH}"


def _refused(url: str, problem: str) -> StoreError:
    return StoreError(
        f"The token store's key could not be fetched from the hub's chat-oauth2 service at "
        f"{url}: {problem}",
        hint="Ask the hub administrator to check that the service runs and that "
        "configure_hub(c) is in jupyterhub_config.py (it lets servers fetch their key), then "
        "restart your server from the hub's home page. To use no hub key, set "
        "CHAT_OAUTH2_NB_STORE_KEY or pass store_key=.",
    )


def _missing_scope(body: bytes) -> str | None:
    """The scope the service says this server's token lacks, or None."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if not isinstance(answer, dict) or answer.get("error") != "missing_scope":
        return None
    scope = answer.get("scope")
    return scope if isinstance(scope, str) and len(scope) <= 200 else None


def _scope_overridden(url: str, scope: str) -> StoreError:
    return StoreError(
        f"The token store's key could not be fetched from the hub's chat-oauth2 service at "
        f"{url}: this server's API token (JUPYTERHUB_API_TOKEN) lacks the scope {scope}. "
        "configure_hub(c) gives it to the hub's 'server' role, but c.Spawner."
        "server_token_scopes (set in jupyterhub_config.py after configure_hub, perhaps by "
        "another tool or a profile) replaces that role's scopes for servers' tokens",
        hint=f"Ask the hub administrator to add {scope!r} to c.Spawner.server_token_scopes "
        "(or call configure_hub(c) after it is set; `python -m chat_oauth2_nb.hub check` "
        "finds this), then restart your server from the hub's home page.",
    )


def fetch_hub_store_key() -> str | None:
    """This user's store key from the hub (cached), or None outside a hub-spawned server.

    Raises StoreError when the server is on such a hub but the service does not give the key:
    opening the store unencrypted instead would leave tokens in plain text on the user's disk.
    """
    token = os.environ.get(HUB_TOKEN_ENV, "").strip()
    url = hub_key_url()
    if not token or not os.environ.get(HUB_CALLBACK_ENV) or url is None:
        return None
    cache_key = (url, hashlib.sha256(token.encode()).hexdigest())
    with _lock:
        if cache_key not in _keys:
            _keys[cache_key] = _fetch(url, token)
        return _keys[cache_key]


def _fetch(url: str, token: str) -> str:
    # Imported here: only a hub-spawned server pays for the HTTP client.
    import httpx

    from .hubpeer import UntrustedPeer, hub_client

    try:
        # Only to an authenticated service (its Unix socket and uid, or TLS), never through
        # an HTTP proxy from the environment or on to wherever a redirect points.
        with hub_client(url, _TIMEOUT) as http:
            answer = http.get(url, headers={"Authorization": f"token {token}"})
    except UntrustedPeer as exc:
        raise _refused(url, f"not asked, {exc}") from None
    except httpx.HTTPError as exc:
        raise _refused(url, f"no answer ({type(exc).__name__})") from None
    if answer.status_code == 503:
        # The service's answer for a missing hub secret: the administrator's to fix.
        raise _refused(url, "HTTP 503, the hub administrator has not given it its secret")
    if answer.status_code == 403 and len(answer.content) <= _MAX_ANSWER:
        scope = _missing_scope(answer.content)
        if scope is not None:
            raise _scope_overridden(url, scope)
    if answer.status_code != 200:
        raise _refused(url, f"HTTP {answer.status_code}")
    key = _key_from(answer.content) if len(answer.content) <= _MAX_ANSWER else None
    if key is None:
        raise _refused(url, "the answer holds no well-formed store key for this user")
    return key


def _key_from(body: bytes) -> str | None:
    """The key in the service's answer, or None unless it is exactly what the service sends.

    ``{"user": <this server's hub user>, "key": <32 bytes, urlsafe base64>}``; a key of one
    repeated byte (all zeros) is no HKDF output, so it is refused too.
    """
    try:
        answer = json.loads(body)
        key = answer["key"]
        raw = base64.urlsafe_b64decode(key) if isinstance(key, str) else b""
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    user = os.environ.get(HUB_USER_ENV, "")
    if (
        set(answer) != {"user", "key"}
        or (user and answer["user"] != user)
        or len(raw) != 32
        or base64.urlsafe_b64encode(raw).decode() != key
        or len(set(raw)) == 1
    ):
        return None
    return str(key)

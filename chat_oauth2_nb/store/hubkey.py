"""The store key a hub-spawned server gets from the hub's chat-oauth2 service.

On a hub set up with ``configure_hub(c)``, every user's server (and its kernels) fetches
its per-user store key from the router with its own ``JUPYTERHUB_API_TOKEN``; the router
derives it from a hub-held secret and the token's user, so a user only ever gets their own.
The key is fetched once per process and kept in memory only: never written to disk.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading

import httpx

from ..errors import StoreError
from ..routes import HUB_CALLBACK_ENV, HUB_KEY_ENV, HUB_KEY_PATH

__all__ = ["HUB_TOKEN_ENV", "fetch_hub_store_key", "hub_key_url"]

#: JupyterHub gives every server (and so its kernels) its own API token here.
HUB_TOKEN_ENV = "JUPYTERHUB_API_TOKEN"  # noqa: S105 (a variable name)
_TIMEOUT = 10.0
_MAX_ANSWER = 4096

# (url, sha256 of the token) -> key: one fetch per process, memory only.
_keys: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


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
        if cache_key in _keys:
            return _keys[cache_key]
        try:
            # The service is the hub's own: the token goes to it directly, never through an
            # HTTP proxy from the environment or on to wherever a redirect points.
            answer = httpx.get(
                url,
                headers={"Authorization": f"token {token}"},
                timeout=_TIMEOUT,
                follow_redirects=False,
                trust_env=False,
            )
        except httpx.HTTPError as exc:
            raise _refused(url, f"no answer ({type(exc).__name__})") from None
        if answer.status_code == 503:
            # The service's answer for a missing hub secret: the administrator's to fix.
            raise _refused(url, "HTTP 503, the hub administrator has not given it its secret")
        if answer.status_code != 200:
            raise _refused(url, f"HTTP {answer.status_code}")
        try:
            key = str(answer.json()["key"])
            raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
        except (ValueError, KeyError, TypeError, binascii.Error):
            raw = b""
        if len(answer.content) > _MAX_ANSWER or len(raw) != 32:
            raise _refused(url, "the answer holds no store key")
        _keys[cache_key] = key
        return key

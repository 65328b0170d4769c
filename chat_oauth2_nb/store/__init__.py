"""The store the kernel and the Jupyter server process meet in (SQLite, 0600).

The kernel registers providers and pending flows here; the server's callback consumes a
flow, exchanges its code and writes the token here; the kernel sees it appear.

With a key (``store_key=``, ``CHAT_OAUTH2_NB_STORE_KEY``, the hub's chat-oauth2 service in a
hub-spawned server, or ``keyring``) the secret columns (token data, PKCE verifiers, client
secrets) are sealed with AES-GCM, each bound to its row. A key is 32 random bytes in
urlsafe base64 (44 characters): :func:`new_store_key` makes one.

The package, one module per concern:

- ``records``: what is stored (flows, their errors, tokens) and :class:`HeldTokenStore`;
- ``sealing``: AES-GCM over column values, the associated data, the key's format;
- ``keys``: where a key comes from (argument, environment, the hub, ``keyring``);
- ``files``: where the store may live, and the checks that keep it there;
- ``sqlite``: :class:`Store`, made of ``connections``, ``providers``, ``flows``, ``tokens``;
- ``postgres``: the hub service's store for several replicas (imported on its own).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .files import default_store_path
from .keys import STORE_KEY_ENV, KeySource
from .records import (
    DEFAULT_FLOW_TTL,
    FLOW_EXPIRED,
    STORE_PATIENCE,
    FlowEndpoint,
    FlowError,
    FlowErrorKind,
    FlowOrigin,
    FlowStatus,
    HeldTokenStore,
    PendingFlow,
    TokenRecord,
)
from .sealing import new_store_key
from .sqlite import Store

__all__ = [
    "DEFAULT_FLOW_TTL",
    "FLOW_EXPIRED",
    "STORE_KEY_ENV",
    "STORE_PATIENCE",
    "FlowEndpoint",
    "FlowError",
    "FlowErrorKind",
    "FlowOrigin",
    "FlowStatus",
    "HeldTokenStore",
    "KeySource",
    "PendingFlow",
    "Store",
    "TokenRecord",
    "default_store_path",
    "new_store_key",
    "open_store",
]

_stores: dict[tuple[Path, str | bytes | None], Store] = {}
_stores_lock = threading.Lock()


def open_store(
    path: str | os.PathLike[str] | None = None, *, key: str | bytes | None = None
) -> Store:
    """Open (once per process, path and key) the store at ``path`` or the default location.

    ``key`` seals the secret columns; without it, ``CHAT_OAUTH2_NB_STORE_KEY``, the hub (in a
    hub-spawned server) or ``keyring`` is asked when the store is first opened.
    """
    resolved = Path(path) if path is not None else default_store_path()
    with _stores_lock:
        store = _stores.get((resolved, key))
        if store is None:
            store = _stores[(resolved, key)] = Store(resolved, key=key)
        return store

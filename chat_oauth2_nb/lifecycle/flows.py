"""A new authorization flow, recorded the same way whoever starts it (a kernel or the server's API)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable

from ..config import ProviderConfig
from ..oauth import new_code_verifier, new_state
from ..store import FlowEndpoint, FlowOrigin, PendingFlow

__all__ = ["new_flow"]


def new_flow(
    config: ProviderConfig,
    *,
    user: str,
    redirect_uri: str,
    scopes: Iterable[str],
    origin: FlowOrigin,
    client_ref: str,
    endpoint: FlowEndpoint,
    ttl: float,
) -> PendingFlow:
    """A fresh pending flow: new state (256 bits), PKCE verifier and opaque start id."""
    now = time.time()
    scopes = tuple(scopes)
    return PendingFlow(
        state=new_state(),
        alias=config.alias,
        user=user,
        code_verifier=new_code_verifier(),
        redirect_uri=redirect_uri,
        scopes=scopes,
        created_at=now,
        expires_at=now + ttl,
        provider=config,
        start_id=secrets.token_urlsafe(24),
        origin=origin,
        client_ref=client_ref,
        endpoint=endpoint,
        # OpenID Connect (Core §3.1.2.1): bind the id_token to this very authorization.
        nonce=new_state() if "openid" in scopes else None,
    )

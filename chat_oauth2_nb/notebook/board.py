"""``dashboard()``: the token dashboard, refreshing and revoking with this façade's clients.

The widgets sit below the façade and cannot build an :class:`OAuth2Client` themselves, so the
dashboard is handed a factory from here.
"""

from __future__ import annotations

from ..config import ProviderConfig
from ..store import Store
from ..widgets.board import TokenDashboard
from ..widgets.board import dashboard as board_of
from .client import OAuth2Client

__all__ = ["dashboard"]


def _client_for(config: ProviderConfig, store: Store) -> OAuth2Client:
    # No setup(): refresh and revoke need no redirect URI, and setup() would register the
    # provider again or start a loopback listener nobody uses.
    return OAuth2Client(config, store=store)


def dashboard(store: Store | None = None) -> TokenDashboard:
    """Return a widget listing every stored token (default store if none given)."""
    return board_of(store, client_factory=_client_for)

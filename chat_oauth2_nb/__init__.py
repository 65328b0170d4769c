"""Authorize an OAuth2 API from inside a Jupyter notebook.

The public names load lazily, so ``import chat_oauth2_nb`` stays cheap in a kernel and
never pulls in tornado or the widgets until they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "create_oauth2_client": "notebook.client",
    "providers": "kernel.declared",
    "OAuth2Client": "notebook.client",
    "resolve_user": "notebook.client",
    "HttpExchange": "notebook.client",
    "OAuth2Auth": "kernel.auth",
    "open_in_browser": "kernel.opener",
    "AuthData": "oauth",
    "DeviceAuthorization": "oauth",
    "ProviderConfig": "config",
    "discover_config": "config",
    "Store": "store",
    "open_store": "store",
    "dashboard": "notebook.board",
    "OAuth2Panel": "widgets",
    "OAuth2Error": "errors",
    "ConfigurationError": "errors",
    "DeviceAuthorizationError": "errors",
    "DeviceCodeExpiredError": "errors",
    "NotAuthorizedError": "errors",
    "GrantRevokedError": "errors",
    "AuthorizationCancelledError": "errors",
    "AuthorizationDeniedError": "errors",
    "StateError": "errors",
    "BrowserBindingError": "errors",
    "IssuerMismatchError": "errors",
    "AuthorizationTimeoutError": "errors",
    "StoreError": "errors",
    "StoreLockedError": "errors",
    "ProviderError": "errors",
    "ProviderMismatchError": "errors",
    "TokenExchangeError": "errors",
    "IdTokenError": "errors",
    "TokenRefreshError": "errors",
    "TokenRevokeError": "errors",
    "RedirectUriError": "errors",
}

# A literal list, so type checkers see what the package exports.
__all__ = [
    "AuthData",
    "AuthorizationCancelledError",
    "AuthorizationDeniedError",
    "AuthorizationTimeoutError",
    "BrowserBindingError",
    "ConfigurationError",
    "DeviceAuthorization",
    "DeviceAuthorizationError",
    "DeviceCodeExpiredError",
    "GrantRevokedError",
    "HttpExchange",
    "IdTokenError",
    "IssuerMismatchError",
    "NotAuthorizedError",
    "OAuth2Auth",
    "OAuth2Client",
    "OAuth2Error",
    "OAuth2Panel",
    "ProviderConfig",
    "ProviderError",
    "ProviderMismatchError",
    "RedirectUriError",
    "StateError",
    "Store",
    "StoreError",
    "StoreLockedError",
    "TokenExchangeError",
    "TokenRefreshError",
    "TokenRevokeError",
    "create_oauth2_client",
    "dashboard",
    "discover_config",
    "open_in_browser",
    "open_store",
    "providers",
    "resolve_user",
]

if TYPE_CHECKING:
    from .config import ProviderConfig, discover_config
    from .errors import (
        AuthorizationCancelledError,
        AuthorizationDeniedError,
        AuthorizationTimeoutError,
        BrowserBindingError,
        ConfigurationError,
        DeviceAuthorizationError,
        DeviceCodeExpiredError,
        GrantRevokedError,
        IdTokenError,
        IssuerMismatchError,
        NotAuthorizedError,
        OAuth2Error,
        ProviderError,
        ProviderMismatchError,
        RedirectUriError,
        StateError,
        StoreError,
        StoreLockedError,
        TokenExchangeError,
        TokenRefreshError,
        TokenRevokeError,
    )
    from .kernel.auth import OAuth2Auth
    from .kernel.declared import providers
    from .kernel.opener import open_in_browser
    from .notebook.board import dashboard
    from .notebook.client import HttpExchange, OAuth2Client, create_oauth2_client, resolve_user
    from .oauth import AuthData, DeviceAuthorization
    from .store import Store, open_store
    from .widgets import OAuth2Panel


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chat_oauth2_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Tell jupyter_server where the extension app is (imported only by the server)."""
    from .server.app import ChatOAuth2App

    return [{"module": "chat_oauth2_nb", "app": ChatOAuth2App}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the built JupyterLab extension is (``jupyter labextension develop .``)."""
    return [{"src": "labextension", "dest": "chat-oauth2-nb"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext chat_oauth2_nb``: adds the ``%oauth2`` magic (see :mod:`chat_oauth2_nb.notebook.magic`)."""
    from .notebook.magic import load_ipython_extension as load

    load(ipython)

"""Providers declared on the Jupyter server running this kernel: found by name, no secret here.

The administrator declares them once (``c.ChatOAuth2App.providers``); the server keeps the
client secret in its memory and the refresh tokens apart in the store, and tells its kernels
its API (``CHAT_OAUTH2_NB_SERVER_API_URL``, with a bearer token). A kernel learns the public
part (endpoints, scopes, client id), starts flows as usual (the server's callback exchanges
the code), reads access tokens from the shared store while they are valid, and asks the
server (a :class:`~chat_oauth2_nb.lifecycle.remote.RemoteGrants` with :func:`server_holder`)
to refresh or revoke.
"""

from __future__ import annotations

import os
from typing import Any

from ..config import ProviderConfig, env_var_name
from ..lifecycle.remote import Holder, ask
from ..routes import HUB_LOGIN_ENV, SERVER_API_ENV, SERVER_API_TOKEN_ENV

__all__ = ["declared_config", "find_declared", "providers", "server_holder"]

_PUBLIC_FIELDS = ("alias", "default_scopes", "client_id", "auth_uri", "issuer", "revoke_token_uri")


def server_holder() -> Holder | None:
    """This kernel's Jupyter server, which holds its declared providers' secrets; None outside one."""
    url, token = os.environ.get(SERVER_API_ENV), os.environ.get(SERVER_API_TOKEN_ENV)
    if not url or not token:
        return None
    return Holder(
        url.rstrip("/"),
        headers={"Authorization": f"Bearer {token}"},
        name="The Jupyter server's chat-oauth2 API",
        place="the Jupyter server",
        hint="Check that the Jupyter server running this kernel is still up.",
        eager=frozenset(filter(None, [os.environ.get(HUB_LOGIN_ENV)])),
    )


def _declared(timeout: float = 10.0) -> dict[str, dict[str, Any]]:
    holder = server_holder()
    if holder is None:
        return {}
    found: dict[str, dict[str, Any]] = ask(holder, "GET", "providers", None, timeout)["providers"]
    return found


def providers() -> dict[str, dict[str, Any]]:
    """The providers declared on this kernel's Jupyter server: alias -> scopes, client id, endpoints.

    No secret is in it (the server never sends one). Empty when none are declared or the
    kernel runs outside a Jupyter server with the extension.
    """
    return {
        alias: {field: public.get(field) for field in _PUBLIC_FIELDS}
        for alias, public in _declared().items()
    }


def declared_config(name: str, timeout: float = 10.0) -> ProviderConfig | None:
    """The public config of the provider declared as ``name`` (no secret), or None."""
    public = _declared(timeout).get(name)
    if public is None:
        return None
    # The kernel's copy is a public client: it never talks to the token endpoint itself.
    return ProviderConfig.from_mapping(
        {**public, "client_auth_method": "none"}, allow_insecure_http=True, environ={}
    )


def find_declared(
    name: str, preset_params: dict[str, Any], timeout: float = 10.0
) -> tuple[ProviderConfig, Holder] | None:
    """The public config of ``name`` and the server holding it, if it is declared there.

    A preset name with credentials in this kernel's environment stays the preset (the
    person's own client); any other name is looked up among the declared providers.
    """
    from ..presets import PRESETS

    holder = server_holder()
    if holder is None or preset_params:
        return None
    if name in PRESETS and os.environ.get(env_var_name(name, "CLIENT_ID")):
        return None
    config = declared_config(name, timeout=timeout)
    return None if config is None else (config, holder)

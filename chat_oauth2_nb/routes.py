"""Where the kernel and the Jupyter server meet: URL paths and the environment variable.

Both sides need these names and neither may import the other (the server never loads the
client, the kernel never loads tornado), so they live in this small core module.
"""

from __future__ import annotations

import re

__all__ = [
    "CALLBACK_PATH",
    "CALLBACK_TAIL",
    "HUB_BROKER_ENV",
    "HUB_BROKER_PATH",
    "HUB_CALLBACK_ENV",
    "HUB_KEY_ENV",
    "HUB_KEY_PATH",
    "HUB_LOGIN_ENV",
    "HUB_PROVIDERS_ENV",
    "HUB_SOCKET_ENV",
    "HUB_SOCKET_UID_ENV",
    "SERVER_API_ENV",
    "SERVER_API_PATH",
    "SERVER_API_TOKEN_ENV",
    "SERVER_CALLBACK_ENV",
    "SERVER_START_ENV",
    "START_PATH",
]

#: The callback, under the server's base_url or on a loopback listener; ``/<alias>`` follows.
CALLBACK_PATH = "chat-oauth2/callback"
#: The start link that binds a flow to the browser opening it; ``/<start id>`` follows.
START_PATH = "chat-oauth2/start"
#: The end of a redirect URI the kit serves (plain, or per alias).
CALLBACK_TAIL = re.compile(r"chat-oauth2/callback(/[^/?#]*)?$")
#: Set by the server extension in the Jupyter server's environment; kernels inherit it.
SERVER_CALLBACK_ENV = "CHAT_OAUTH2_NB_CALLBACK_URL"
#: Also set by the extension: the browser-facing base of its start links
#: (``…/chat-oauth2/start``), which differs from the callback's behind the hub's router.
SERVER_START_ENV = "CHAT_OAUTH2_NB_START_URL"
#: Set by ``configure_hub()`` in every spawned server's environment: the hub-wide redirect base.
HUB_CALLBACK_ENV = "CHAT_OAUTH2_NB_HUB_CALLBACK_URL"
#: Set by ``configure_hub()`` too: where a server fetches its store key from the router
#: (the service's own address, so the fetch need not leave the hub's network).
HUB_KEY_ENV = "CHAT_OAUTH2_NB_HUB_KEY_URL"
#: The router's store-key endpoint, under the service's prefix.
HUB_KEY_PATH = "store-key"
#: Set by ``configure_hub()`` on the managed service and every spawned server: the service's
#: Unix socket in a folder only the hub may write. A server sends its ``JUPYTERHUB_API_TOKEN``
#: there (never to a 127.0.0.1 port, which any local user could be holding), and only after
#: the kernel says the listening process runs as ``CHAT_OAUTH2_NB_HUB_UID``.
HUB_SOCKET_ENV = "CHAT_OAUTH2_NB_HUB_SOCKET"
HUB_SOCKET_UID_ENV = "CHAT_OAUTH2_NB_HUB_UID"

#: Declared providers (``c.ChatOAuth2App.providers``): the server's API for its own kernels,
#: under base_url: ``…/providers`` (GET), ``…/token/<alias>`` and ``…/revoke/<alias>`` (POST).
SERVER_API_PATH = "chat-oauth2"
#: Set by the extension for its kernels: the server's own (internal) URL of that API.
SERVER_API_ENV = "CHAT_OAUTH2_NB_SERVER_API_URL"
#: Set by the extension for its kernels: the bearer token of that API, new at every start.
#: Only processes this server starts inherit it; another OS user cannot read their environment.
SERVER_API_TOKEN_ENV = "CHAT_OAUTH2_NB_SERVER_API_TOKEN"  # noqa: S105 - a variable's name
#: Set by ``configure_hub(c, providers=...)`` in every spawned server's environment: the
#: declared providers' public part (JSON, no secret), and where the service that holds their
#: secrets answers (broker mode).
HUB_PROVIDERS_ENV = "CHAT_OAUTH2_NB_HUB_PROVIDERS"
HUB_BROKER_ENV = "CHAT_OAUTH2_NB_HUB_BROKER_URL"
#: Set by ``configure_hub(c, login_provider=...)``: the alias whose tokens are the user's own
#: hub sign-in, which the hub's service holds with no authorization from a notebook.
HUB_LOGIN_ENV = "CHAT_OAUTH2_NB_HUB_LOGIN_ALIAS"
#: The broker's endpoints, under the service's prefix: ``…/broker/{exchange,token,revoke}/<alias>``.
HUB_BROKER_PATH = "broker"

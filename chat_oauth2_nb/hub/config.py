"""``configure_hub(c)``: the one line a hub administrator adds to ``jupyterhub_config.py``."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jupyter_core.paths import secure_write

from ..config import ProviderConfig
from ..declarations import (
    HUB_PROVIDERS,
    public_part,
    referenced_declarations,
    resolve_declarations,
)
from ..errors import ConfigurationError
from ..routes import (
    HUB_BROKER_ENV,
    HUB_BROKER_PATH,
    HUB_CALLBACK_ENV,
    HUB_KEY_ENV,
    HUB_KEY_PATH,
    HUB_LOGIN_ENV,
    HUB_PROVIDERS_ENV,
    HUB_SOCKET_ENV,
    HUB_SOCKET_UID_ENV,
)
from ..store.postgres import is_postgres_url, redact_url, require_driver
from .keys import HUB_SECRET_FILE_ENV, ensure_secret_file, service_secret_file
from .signin import LOGIN_SCOPES, login_declaration, stamp_expiries
from .unix import DEFAULT_SOCKET, ensure_socket_folder

__all__ = ["SERVICE_NAME", "configure_hub"]

#: The router service's default name: its URL is ``{hub}/services/chat-oauth2/``.
SERVICE_NAME = "chat-oauth2"
_DEFAULT_PORT = 10101
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_UNNAMED_HOSTS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104
#: Where versions before 0.1 wrote the declared providers, client secrets included: a file
#: configure_hub now removes (the service gets references, never a copy of a secret).
DEFAULT_PROVIDERS_FILE = "chat_oauth2_nb_providers.json"
# The router's names for them (router.py imports JupyterHub, which configure_hub must not).
_BROKER_PROVIDERS_FILE_ENV = "CHAT_OAUTH2_NB_BROKER_PROVIDERS_FILE"
_BROKER_PROVIDERS_ENV = "CHAT_OAUTH2_NB_BROKER_PROVIDERS"
_BROKER_LOGIN_ENV = "CHAT_OAUTH2_NB_BROKER_LOGIN_ALIAS"
_BROKER_LOGIN_URL_ENV = "CHAT_OAUTH2_NB_HUB_LOGIN_URL"
_BROKER_STORE_ENV = "CHAT_OAUTH2_NB_BROKER_STORE"
_BROKER_STORE = "chat_oauth2_nb_broker.sqlite3"
# JupyterHub's default "server" role, which configure_hub extends rather than replaces.
_SERVER_SCOPES = ["users:activity!user", "access:servers!server"]


def _setting(section: Any, name: str) -> Any:
    # dict.get: Config.__getitem__ would create a lazy value for an unset key.
    return dict.get(section, name)


def _join(*parts: str) -> str:
    return "/" + "/".join(p.strip("/") for p in parts if p.strip("/"))


def _hub_base_url(c: Any) -> str:
    # As JupyterHub does: base_url, else the path of bind_url.
    hub = c.JupyterHub
    base = _setting(hub, "base_url")
    if base:
        return _join(base)
    return _join(urlsplit(_setting(hub, "bind_url") or "").path or "/")


def _callback_base(c: Any, public_url: str | None, service_name: str) -> str:
    hub = c.JupyterHub
    base_url = _join(_setting(hub, "base_url") or "/")
    public = public_url or _setting(hub, "public_url") or ""
    if public:
        parts = urlsplit(public)
        # JupyterHub's public_url includes base_url; an origin alone gets it added, as the
        # hub itself does.
        path = parts.path if parts.path.strip("/") else base_url
    else:
        bind = _setting(hub, "bind_url") or ""
        parts = urlsplit(bind) if bind else urlsplit("http://:8000")
        if not bind:
            ip, port = _setting(hub, "ip") or "", _setting(hub, "port") or 8000
            parts = urlsplit(f"http://{ip}:{port}")
        path = parts.path if parts.path.strip("/") else base_url
        if (parts.hostname or "") in _UNNAMED_HOSTS:
            raise ConfigurationError(
                "JupyterHub.public_url",
                "is not set and the hub listens on all interfaces, so the browser-facing "
                "address of the redirect URI is unknown",
                "Set c.JupyterHub.public_url = 'https://hub.example.org/' before "
                "configure_hub(c), or pass configure_hub(c, public_url=...) when the hub is "
                "behind its own reverse proxy.",
            )
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            "public_url",
            f"is {public or parts.geturl()!r}, not an absolute http(s) URL",
            "Give the address the browser uses for the hub, e.g. 'https://hub.example.org/'.",
        )
    origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return origin + _join(path, "services", service_name, "callback")


def _check_store_url(url: str, managed: bool) -> None:
    """Refuse a store URL the service could not use, at hub start rather than at first refresh."""
    if not is_postgres_url(url):
        raise ConfigurationError(
            "store_url",
            f"is {redact_url(url)!r}, not a postgresql:// URL",
            "Leave it out for the default SQLite store, or give postgresql://user@host:port/db.",
        )
    if not managed:
        raise ConfigurationError(
            "store_url",
            "is set for a service the hub does not run (managed=False)",
            f"Set {_BROKER_STORE_ENV} to the URL in the environment where you run "
            "`python -m chat_oauth2_nb.hub`.",
        )
    require_driver()


def configure_hub(
    c: Any,
    *,
    public_url: str | None = None,
    service_name: str = SERVICE_NAME,
    port: int = _DEFAULT_PORT,
    service_url: str | None = None,
    managed: bool = True,
    api_token: str | None = None,
    secret_file: str | os.PathLike[str] | None = None,
    key_url: str | None = None,
    providers: dict[str, Any] | None = None,
    providers_file: str | os.PathLike[str] | None = None,
    store_url: str | None = None,
    socket_path: str | os.PathLike[str] | None = None,
    login_provider: str | None = None,
) -> str:
    """Set up the chat-oauth2 router on this hub; return the redirect URI base to register.

    Registers the service (managed by the hub: ``python -m chat_oauth2_nb.hub`` on
    ``127.0.0.1:port``, or, with ``managed=False``, one you run at ``service_url`` with
    ``api_token``), lets every user use it (the ``user`` role gains
    ``access:services!service=<name>``), and gives every spawned server
    ``CHAT_OAUTH2_NB_HUB_CALLBACK_URL``. The base honours ``c.JupyterHub.public_url`` and
    ``base_url``; pass ``public_url=`` when the hub sits behind its own reverse proxy. Call
    it after those settings. Register ``<returned base>/<alias>`` at each provider.

    Store keys: the managed service derives each user's store key from the secret in
    ``secret_file`` (default ``chat_oauth2_nb_hub_secret`` in the hub's directory, made 0600
    on first use); every server's role gains the service's access scope so that it can fetch
    its key with its own API token from ``key_url`` (default: the service's own URL).

    Declared providers (broker mode): ``providers={"google": {"preset": "google"}, ...}``,
    each the seed's config dict or a preset with its parameters, credentials as
    ``clientId``/``clientSecret`` or ``CHAT_OAUTH2_<ALIAS>_CLIENT_ID``/``_CLIENT_SECRET`` in
    the hub's environment. They are checked here; the full declarations go to
    ``providers_file`` (default ``chat_oauth2_nb_providers.json`` next to the hub, 0600),
    which only the service reads; spawned servers get the public part and the service's
    broker URL. The service exchanges codes, refreshes and revokes with the secret and keeps
    refresh tokens in its own sealed store; users' servers and kernels get access tokens only.
    Users then call ``create_oauth2_client("google")`` with no credentials.

    The service's store is a SQLite file next to the providers file; for a service run as
    several replicas, ``store_url="postgresql://user@host:port/db"`` (the hub's own database
    server will do; ``pip install 'chat_oauth2_nb[postgres]'``) makes them share one store,
    so that a refresh is single flight across all of them. Its tables are ``chat_oauth2_*``.

    ``login_provider="login"``: kernels get their user's hub sign-in token: docs/hub-login.md.

    Servers send their API token only to an authenticated service: the managed service also
    listens on a Unix socket (``socket_path``, default ``chat_oauth2_nb_run/router.sock``
    in the hub's directory, in a folder only the hub's user may write), and servers check
    that the hub's uid listens there before they send it. Without a socket here (servers on
    other machines, or ``managed=False`` without ``socket_path``) they use ``key_url`` and the
    broker URL only over https or plain http to another machine, never to this one.
    """
    _check_arguments(service_name, managed, service_url, api_token, store_url)
    callback = _callback_base(c, public_url, service_name)
    service: dict[str, Any] = {
        "name": service_name,
        "url": service_url or f"http://127.0.0.1:{int(port)}",
        # Admin-operated and holding nothing: no "authorize access" page for users.
        "oauth_no_confirm": True,
        "display": False,
    }
    entries, variables, declared = _declarations(c, providers or {}, login_provider)
    _set_runner(service, managed, secret_file, api_token)
    socket = _set_socket(service, managed, socket_path)
    if declared:
        _give_providers(service, entries, variables, providers_file, managed, store_url)
    _register(c, service, service_name)
    _give_servers(c, service, callback, key_url, declared)
    if login_provider:
        _give_login(c, service, service_name, login_provider, callback)
    if socket is not None:
        c.Spawner.environment = {**c.Spawner.environment, **socket}
    return callback


def _declarations(
    c: Any, providers: dict[str, Any], login_provider: str | None
) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, ProviderConfig]]:
    """The declarations with secrets as references, the variables they need, the configs."""
    entries, variables = referenced_declarations(
        _with_login(c, providers, login_provider),
        os.environ,
        where=HUB_PROVIDERS,
        holder="JupyterHub",
    )
    declared = resolve_declarations(entries, variables, where=HUB_PROVIDERS, holder="JupyterHub")
    return entries, variables, declared


def _with_login(c: Any, providers: dict[str, Any], alias: str | None) -> dict[str, Any]:
    """``providers``, plus the hub sign-in's provider as ``alias`` when asked (checked here)."""
    if not alias:
        return providers
    declaration, section = login_declaration(c, os.environ)
    stamp_expiries(c, section)
    # An entry of the same alias adds to what the authenticator says (issuer, jwksUri...).
    return {**providers, alias: {**declaration, **(providers.get(alias) or {})}}


def _check_arguments(
    service_name: str,
    managed: bool,
    service_url: str | None,
    api_token: str | None,
    store_url: str | None,
) -> None:
    """Refuse a service name, an unmanaged service or a store the hub could not use."""
    if not _NAME.fullmatch(service_name):
        raise ConfigurationError(
            "service_name", f"is {service_name!r}", "Use lowercase letters, digits and '-'."
        )
    if not managed and not (service_url and api_token):
        raise ConfigurationError(
            "managed",
            "is False without service_url and api_token",
            "Give the URL where you run `python -m chat_oauth2_nb.hub` and the API token it "
            "uses (JUPYTERHUB_API_TOKEN in its environment).",
        )
    if store_url is not None:
        _check_store_url(store_url, managed)


def _set_runner(
    service: dict[str, Any],
    managed: bool,
    secret_file: str | os.PathLike[str] | None,
    api_token: str | None,
) -> None:
    """Who runs the service: the hub (command and secret file), or you (its API token)."""
    if managed:
        service["command"] = [sys.executable, "-m", "chat_oauth2_nb.hub"]
        secret = service_secret_file(Path(secret_file) if secret_file else None)
        service["environment"] = {HUB_SECRET_FILE_ENV: str(secret)}
    else:
        if secret_file is not None:
            ensure_secret_file(Path(secret_file))
        service["api_token"] = api_token


def _set_socket(
    service: dict[str, Any], managed: bool, socket_path: str | os.PathLike[str] | None
) -> dict[str, str] | None:
    """The service's Unix socket: the managed one listens there; servers' variables, or None."""
    if socket_path is None and not managed:
        return None  # the admin's replicas listen where service_url says
    path = Path(socket_path or DEFAULT_SOCKET).absolute()
    uid = ensure_socket_folder(path, create=managed)
    if managed:
        service["environment"][HUB_SOCKET_ENV] = str(path)
    return {HUB_SOCKET_ENV: str(path), HUB_SOCKET_UID_ENV: str(uid)}


def _give_providers(
    service: dict[str, Any],
    entries: dict[str, dict[str, Any]],
    variables: dict[str, str],
    providers_file: str | os.PathLike[str] | None,
    managed: bool,
    store_url: str | None,
) -> None:
    """Give the service the declarations with their secrets as references, never a copy.

    The managed service gets them in its environment, with the variables its references name
    (a secret written in jupyterhub_config.py or kept in the hub's environment goes from the
    hub's memory to the service's, never to disk); a file reference stays a path it reads.
    A service you run yourself gets a file of references (``providers_file``) and needs those
    variables in its own environment.
    """
    file = Path(providers_file or DEFAULT_PROVIDERS_FILE).resolve()
    if managed:
        if file.is_file():
            # Written by an earlier version with the secrets in plain text: the references
            # replace it. The store next to it stays where it was, so no token is lost.
            file.unlink()
        service["environment"].update(variables)
        service["environment"][_BROKER_PROVIDERS_ENV] = json.dumps(entries)
        service["environment"][_BROKER_STORE_ENV] = store_url or str(file.with_name(_BROKER_STORE))
        return
    with secure_write(str(file)) as out:
        out.write(json.dumps(entries))


def _give_login(
    c: Any, service: dict[str, Any], service_name: str, alias: str, callback: str
) -> None:
    """Let the service read and write users' auth_state; tell it and servers the alias."""
    roles = list(_setting(c.JupyterHub, "load_roles") or [])
    name = f"{service_name}-login"
    roles = [r for r in roles if r.get("name") != name]
    roles.append({"name": name, "scopes": list(LOGIN_SCOPES), "services": [service_name]})
    c.JupyterHub.load_roles = roles
    hub_root = callback.split("/services/", 1)[0]
    if "environment" in service:
        service["environment"][_BROKER_LOGIN_ENV] = alias
        service["environment"][_BROKER_LOGIN_URL_ENV] = f"{hub_root}/hub/login"
    c.Spawner.environment = {**c.Spawner.environment, HUB_LOGIN_ENV: alias}


def _register(c: Any, service: dict[str, Any], service_name: str) -> None:
    """Put the service on the hub and let users (and their servers) reach it."""
    hub = c.JupyterHub
    services = [s for s in (_setting(hub, "services") or []) if s.get("name") != service_name]
    hub.services = [*services, service]
    access = f"access:services!service={service_name}"
    roles = list(_setting(hub, "load_roles") or [])
    # A "user" role defined here keeps what JupyterHub's default grants ("self").
    _grant(roles, "user", ["self"], access)
    # Servers fetch their store key with their own token: the "server" role needs the access
    # scope too (its token then identifies the user; it is never the user's full power).
    _grant(roles, "server", _SERVER_SCOPES, access)
    hub.load_roles = roles
    # Set already (by the admin or another tool): it replaces the "server" role for servers'
    # tokens, so it needs the scope too. One set after this call is `hub check`'s to find.
    chosen = _setting(c.Spawner, "server_token_scopes")
    if isinstance(chosen, (list, tuple, set)) and access not in chosen:
        c.Spawner.server_token_scopes = [*chosen, access]


def _grant(roles: list[dict[str, Any]], name: str, default: list[str], access: str) -> None:
    """Add ``access`` to the role ``name``, or define that role as ``default`` plus it."""
    for role in roles:
        if role.get("name") == name:
            scopes = list(role.get("scopes") or default)
            role["scopes"] = scopes if access in scopes else [*scopes, access]
            return
    roles.append({"name": name, "scopes": [*default, access]})


def _give_servers(
    c: Any,
    service: dict[str, Any],
    callback: str,
    key_url: str | None,
    declared: dict[str, ProviderConfig],
) -> None:
    """Tell every spawned server the callback, where its key is, and the public providers."""
    spawner = c.Spawner
    service_url = str(service["url"]).rstrip("/")
    service_path = _join(_hub_base_url(c), "services", service["name"])
    environment = dict(_setting(spawner, "environment") or {})
    environment[HUB_CALLBACK_ENV] = callback
    environment[HUB_KEY_ENV] = key_url or (service_url + _join(service_path, HUB_KEY_PATH))
    if declared:
        # The public part only: a server and its kernels never see a secret.
        public = {
            alias: {**public_part(cfg), "client_auth_method": "none"}
            for alias, cfg in declared.items()
        }
        environment[HUB_PROVIDERS_ENV] = json.dumps(public)
        environment[HUB_BROKER_ENV] = service_url + _join(service_path, HUB_BROKER_PATH)
    spawner.environment = environment

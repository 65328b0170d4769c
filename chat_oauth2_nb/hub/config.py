"""``configure_hub(c)``: the one line a hub administrator adds to ``jupyterhub_config.py``."""

from __future__ import annotations

import re
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigurationError
from ..routes import HUB_CALLBACK_ENV

__all__ = ["SERVICE_NAME", "configure_hub"]

#: The router service's default name: its URL is ``{hub}/services/chat-oauth2/``.
SERVICE_NAME = "chat-oauth2"
_DEFAULT_PORT = 10101
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_UNNAMED_HOSTS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104


def _setting(section: Any, name: str) -> Any:
    # dict.get: Config.__getitem__ would create a lazy value for an unset key.
    return dict.get(section, name)


def _join(*parts: str) -> str:
    return "/" + "/".join(p.strip("/") for p in parts if p.strip("/"))


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


def configure_hub(
    c: Any,
    *,
    public_url: str | None = None,
    service_name: str = SERVICE_NAME,
    port: int = _DEFAULT_PORT,
    service_url: str | None = None,
    managed: bool = True,
    api_token: str | None = None,
) -> str:
    """Set up the chat-oauth2 router on this hub; return the redirect URI base to register.

    Registers the service (managed by the hub: ``python -m chat_oauth2_nb.hub`` on
    ``127.0.0.1:port``, or, with ``managed=False``, one you run at ``service_url`` with
    ``api_token``), lets every user use it (the ``user`` role gains
    ``access:services!service=<name>``), and gives every spawned server
    ``CHAT_OAUTH2_NB_HUB_CALLBACK_URL``. The base honours ``c.JupyterHub.public_url`` and
    ``base_url``; pass ``public_url=`` when the hub sits behind its own reverse proxy. Call
    it after those settings. Register ``<returned base>/<alias>`` at each provider.
    """
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
    callback = _callback_base(c, public_url, service_name)
    service: dict[str, Any] = {
        "name": service_name,
        "url": service_url or f"http://127.0.0.1:{int(port)}",
        # Admin-operated and holding nothing: no "authorize access" page for users.
        "oauth_no_confirm": True,
        "display": False,
    }
    if managed:
        service["command"] = [sys.executable, "-m", "chat_oauth2_nb.hub"]
    else:
        service["api_token"] = api_token
    hub = c.JupyterHub
    services = [s for s in (_setting(hub, "services") or []) if s.get("name") != service_name]
    hub.services = [*services, service]

    access = f"access:services!service={service_name}"
    roles = list(_setting(hub, "load_roles") or [])
    for role in roles:
        if role.get("name") == "user":
            scopes = list(role.get("scopes") or ["self"])
            role["scopes"] = scopes if access in scopes else [*scopes, access]
            break
    else:
        # Redefining the default "user" role: keep what it grants ("self") and add the router.
        roles.append({"name": "user", "scopes": ["self", access]})
    hub.load_roles = roles

    spawner = c.Spawner
    environment = dict(_setting(spawner, "environment") or {})
    environment[HUB_CALLBACK_ENV] = callback
    spawner.environment = environment
    return callback

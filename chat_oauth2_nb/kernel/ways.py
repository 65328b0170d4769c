"""How one client receives the provider's redirect: the way it chose, why, and its addresses.

A part of the client façade (docs/ARCHITECTURE.md): ``setup()`` asks it once for the
redirect URI, flows ask it where their start link lives, ``close()`` releases its listener.
The choice itself (by where the person's browser is) is :mod:`.environment`'s.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any, Literal

import httpx

from ..config import ProviderConfig
from ..errors import ConfigurationError, StateError, did_you_mean
from ..oauth import device_authorization_request
from ..routes import CALLBACK_PATH, CALLBACK_TAIL, SERVER_CALLBACK_ENV, SERVER_START_ENV, START_PATH
from ..store import FlowEndpoint, PendingFlow, Store
from .environment import browser_location, choose_way

__all__ = ["MODE_ENV", "PASTE_PORT", "Mode", "Ways", "check_mode"]

log = logging.getLogger("chat_oauth2_nb")

Mode = Literal["auto", "jupyter", "loopback", "device", "paste"]
_MODES = ("auto", "jupyter", "loopback", "device", "paste")
#: The mode clients use when none is passed (default: auto).
MODE_ENV = "CHAT_OAUTH2_NB_MODE"
# Paste-back needs an address the browser ends on and that nothing serves; a loopback URI
# with a fixed port can be registered once (RFC 8252 §7.3 lets many providers take any port).
PASTE_PORT = 53682
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0"}  # noqa: S104


def check_mode(mode: str | None) -> Mode:
    """The mode to use: ``mode``, else ``CHAT_OAUTH2_NB_MODE``, else auto; a typo is an error."""
    field, label = "mode", "Argument"
    if mode is None:
        # An administrator (or a test) may pick the way for every notebook of a machine.
        mode = os.environ.get(MODE_ENV) or "auto"
        field, label = MODE_ENV, "Environment variable"
    if mode not in _MODES:
        guess = did_you_mean(str(mode), _MODES)
        raise ConfigurationError(
            field,
            f"is {mode!r}",
            f"{guess} Use 'auto', 'jupyter', 'loopback', 'device' or 'paste'.".strip(),
            label=label,
        )
    return mode  # type: ignore[return-value]


def _under(uri: str, base: str) -> bool:
    """Whether ``uri`` is ``base`` or one path segment below it (``base/<alias>``)."""
    if uri == base:
        return True
    rest = uri[len(base) + 1 :] if uri.startswith(base + "/") else ""
    return bool(rest) and not any(c in rest for c in "/?#")


def _warn_if_unreachable(callback_url: str) -> None:
    """Warn when the extension advertises an address a browser behind a proxy can't reach."""
    host = (httpx.URL(callback_url).host or "").lower()
    behind = os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or os.environ.get("JUPYTERHUB_API_URL")
    if host in _LOOPBACK_HOSTS and behind:
        log.warning(
            "The Jupyter server advertises the redirect URI base %s, an internal address, but "
            "it runs behind JupyterHub or a proxy: the browser cannot reach it. Ask the hub "
            "administrator to add configure_hub(c) from chat_oauth2_nb.hub to "
            "jupyterhub_config.py, or set c.ChatOAuth2App.public_url (or "
            "c.ServerApp.custom_display_url) to the address the browser uses for this server.",
            callback_url,
        )


class Ways:
    """The way one client authorizes (jupyter, loopback, device or paste) and its addresses."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        mode: Mode,
        redirect_uri: str | None,
        loopback_port: int,
        timeout: float,
        store: Callable[[], Store],
    ) -> None:
        self.config = config
        self.mode = mode
        self.loopback_port = loopback_port
        self._explicit = redirect_uri
        self._timeout = timeout
        self._store = store
        self._lock = threading.Lock()
        self._chosen: tuple[str, str, str] | None = None  # (redirect URI, way, why)
        self._loopback: Any = None

    @property
    def way(self) -> str | None:
        """jupyter, loopback, device or paste once chosen, else None."""
        return self._chosen[1] if self._chosen else None

    @property
    def reason(self) -> str | None:
        """Why the way was chosen, in one sentence."""
        return self._chosen[2] if self._chosen else None

    @property
    def redirect_uri(self) -> str | None:
        """The redirect URI in use once chosen ('' for the device way)."""
        return self._chosen[0] if self._chosen else None

    def choose(self) -> str:
        """Choose the way once (later calls keep it); return the redirect URI."""
        with self._lock:
            if self._chosen is None:
                uri, way, why = self._choose()
                self._chosen = (uri, way, why)
                log.info("%r receives redirects by %s: %s", self.config.alias, way, why)
            return self._chosen[0]

    def _choose(self) -> tuple[str, str, str]:
        if self.mode == "device":
            device_authorization_request(self.config)  # a missing endpoint says what to do now
            return "", "device", "mode='device': the person types a code at the provider"
        if self.mode == "paste":
            why = "mode='paste': the person copies the address the browser ends on"
            return self._explicit or self.paste_uri(), "paste", why
        if self._explicit:
            if self.mode == "loopback":
                self._explicit_loopback(self._explicit)
                return self._explicit, "loopback", "redirect_uri= was given"
            return self._explicit, "jupyter", "redirect_uri= was given"
        server_url = os.environ.get(SERVER_CALLBACK_ENV)
        if self.mode == "jupyter" and not server_url:
            raise ConfigurationError(
                "mode",
                "is 'jupyter' but no Jupyter server with chat_oauth2_nb runs this kernel",
                "Run the notebook in Jupyter with the extension enabled "
                "(`jupyter server extension list`), or use mode='auto'.",
            )
        if self.mode in ("auto", "jupyter") and server_url:
            return self._jupyter(server_url)
        if self.mode == "loopback":
            return self._start_loopback(), "loopback", "mode='loopback'"
        return self._by_environment(server_url)

    def _jupyter(self, server_url: str) -> tuple[str, str, str]:
        # The extension's word is taken as is: probing the public URL from the kernel says
        # nothing about what the person's browser can reach (a proxy, a hub), and a silent
        # switch to a loopback URI the browser can't reach is worse.
        start = os.environ.get(SERVER_START_ENV, "").rstrip("/")
        own = server_url.rstrip("/").removesuffix(CALLBACK_PATH)
        if start and start.removesuffix(START_PATH) != own:
            # The extension advertises a callback that is not its own: the hub's router,
            # the administrator's choice (configure_hub), nothing to second-guess.
            why = "this server runs on a JupyterHub whose chat-oauth2 service routes redirects"
        else:
            _warn_if_unreachable(server_url)
            why = (
                "mode='jupyter'"
                if self.mode == "jupyter"
                else "the Jupyter server running this kernel has the extension"
            )
        return f"{server_url.rstrip('/')}/{self.config.alias}", "jupyter", why

    def _by_environment(self, server_url: str | None) -> tuple[str, str, str]:
        # auto without the extension: by where the person's browser is (environment.py
        # says how it tells).
        way, why = choose_way(
            explicit_redirect_uri=False,
            extension_callback=False,
            where=browser_location(),
            device_endpoint=self.config.device_authorization_uri is not None,
        )
        if way == "jupyter":
            return f"{server_url}/{self.config.alias}", "jupyter", why
        if way == "device":
            return "", "device", why
        if way == "paste":
            return self.paste_uri(), "paste", why
        return self._start_loopback(), "loopback", why

    def _start_loopback(self, port: int | None = None) -> str:
        from .loopback import LoopbackServer

        if self._loopback is None:
            # One listener per store and port in this process: re-running a set-up cell
            # reuses it (same redirect URI). It holds its port until the client closes, so
            # every link and redirect URI it gives stays on a port this process holds.
            self._loopback = LoopbackServer.shared(
                self._store(),
                port=self.loopback_port if port is None else port,
                transport_timeout=self._timeout,
            )
        return str(self._loopback.redirect_uri_for(self.config.alias))

    def _explicit_loopback(self, uri: str) -> None:
        """Listen where an explicit loopback ``redirect_uri=`` points; refuse a port not held."""
        port = httpx.URL(uri).port
        self._start_loopback(self.loopback_port or port or 0)
        if not self._loopback.serves(uri):
            where = self._loopback.redirect_uri
            self._loopback.release()  # under self._lock already (choose)
            self._loopback = None
            raise ConfigurationError(
                "redirect_uri",
                f"is {uri!r}, but this process's loopback listener is {where}",
                "Give an http://127.0.0.1:PORT/chat-oauth2/callback address whose port is "
                "loopback_port (or leave loopback_port=0 to listen on the URI's port).",
            )

    def endpoint_for(self, redirect_uri: str) -> FlowEndpoint:
        """Which endpoint serves a flow sent to ``redirect_uri`` the chosen way."""
        if self.way == "paste":
            return "paste"
        on_loopback = self._loopback is not None and self._loopback.serves(redirect_uri)
        return "loopback" if on_loopback else "server"

    def start_url(self, flow: PendingFlow) -> str:
        """The start link of ``flow``: on the callback's origin, so its cookie reaches the callback."""
        if flow.endpoint == "loopback" and not self._held(flow.redirect_uri):
            # Never a link to a port this process does not hold now: whoever holds it would
            # receive the browser, and the code after it. A redirect URI is never moved.
            # (Another client of this process may hold it: a panel showing that one's flow.)
            raise StateError(
                f"This authorization's loopback address {flow.redirect_uri} is no longer "
                "held by this notebook",
                hint="Its listener was closed: get a new link with "
                "client.get_user_authorization_url() (it uses the port the listener holds now).",
            )
        advertised = os.environ.get(SERVER_CALLBACK_ENV, "").rstrip("/")
        start_base = os.environ.get(SERVER_START_ENV, "").rstrip("/")
        if (
            flow.endpoint == "server"
            and advertised
            and start_base
            and _under(flow.redirect_uri, advertised)
        ):
            return f"{start_base}/{flow.start_id}"
        parts = httpx.URL(flow.redirect_uri)
        path = CALLBACK_TAIL.sub(f"{START_PATH}/{flow.start_id}", parts.path)
        if path == parts.path:
            raise ConfigurationError(
                "redirect_uri",
                f"is {flow.redirect_uri!r}, which no chat_oauth2_nb callback serves",
                "Use an address ending in /chat-oauth2/callback (or …/callback/<alias>): the "
                "kit's start link and callback live there.",
            )
        return str(parts.copy_with(path=path, query=None, fragment=None))

    def _held(self, uri: str) -> bool:
        from .loopback import LoopbackServer

        if self._loopback is not None and self._loopback.holds(uri):
            return True
        return LoopbackServer.held_by_this_process(uri)

    def paste_uri(self) -> str:
        """Where a paste-back flow's browser ends: nothing listens, the person copies the address."""
        port = self.loopback_port or PASTE_PORT
        return f"http://127.0.0.1:{port}/{CALLBACK_PATH}/{self.config.alias}"

    def release(self) -> None:
        """Stop this client's use of the loopback listener; the next setup() chooses again."""
        with self._lock:
            if self._loopback is not None:
                self._loopback.release()
                self._loopback = None
                self._chosen = None

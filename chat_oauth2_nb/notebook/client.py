"""The Python API: the Rocket.Chat Apps-Engine OAuth2 client, in Python, done safely.

Sync methods do plain blocking I/O (httpx.Client) so they work inside a running kernel,
whose asyncio loop we never touch; each ``a``-prefixed twin runs its sync sibling in a
worker thread. Tokens are the client's grants' (:mod:`chat_oauth2_nb.lifecycle.grants`):
its own, with the client secret, or the Jupyter server's for a provider declared there.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx

from ..config import ProviderConfig, provider_identity, scopes_argument
from ..errors import (
    AuthorizationDeniedError,
    ConfigurationError,
    DeviceAuthorizationError,
    DeviceCodeExpiredError,
    NotAuthorizedError,
    OAuth2Error,
    ProviderError,
    ProviderMismatchError,
    StateError,
    TokenExchangeError,
)
from ..kernel.environment import browser_location, choose_way
from ..kernel.flows import POLL_INTERVAL, Waiter, new_flow, provider_url, read_outcome
from ..kernel.users import UserLike, resolve_user
from ..lifecycle.grants import Connections, Grants, digest, nothing_stored, revoke_advice
from ..lifecycle.local import LocalGrants
from ..lifecycle.remote import Holder, RemoteGrants
from ..oauth import (
    AuthData,
    DeviceAuthorization,
    DevicePending,
    HttpExchange,
    HttpRequest,
    ProviderAnswer,
    classify_device_poll,
    device_authorization_request,
    device_code_expired_error,
    device_poll_backoff,
    device_token_request,
    parse_device_authorization,
    utcnow,
)
from ..routes import (
    CALLBACK_PATH,
    CALLBACK_TAIL,
    SERVER_CALLBACK_ENV,
    SERVER_START_ENV,
    START_PATH,
)
from ..store import (
    DEFAULT_FLOW_TTL,
    FlowEndpoint,
    FlowError,
    FlowErrorKind,
    FlowOrigin,
    PendingFlow,
    Store,
    TokenRecord,
    open_store,
)

if TYPE_CHECKING:
    import requests
    from google.oauth2.credentials import Credentials as GoogleCredentials

    from ..doctor import Report
    from ..kernel.adapters import AzureCredential
    from ..kernel.auth import OAuth2Auth

__all__ = [
    "CALLBACK_PATH",
    "START_PATH",
    "AuthorizationURL",
    "HttpExchange",
    "OAuth2Client",
    "UserLike",
    "create_oauth2_client",
    "resolve_user",
]

log = logging.getLogger("chat_oauth2_nb")

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0"}  # noqa: S104

Mode = Literal["auto", "jupyter", "loopback", "device", "paste"]
_MODES = ("auto", "jupyter", "loopback", "device", "paste")
#: The mode clients use when none is passed (default: auto).
MODE_ENV = "CHAT_OAUTH2_NB_MODE"
# Paste-back needs an address the browser ends on and that nothing serves; a loopback URI
# with a fixed port can be registered once (RFC 8252 §7.3 lets many providers take any port).
PASTE_PORT = 53682


class AuthorizationURL(str):
    """The link to open: the start endpoint on the callback's origin, which binds the browser.

    It is a ``str`` (open it, print it, pass it on); :attr:`provider_url` is the provider's
    authorization URL it redirects to, for tutorials and debugging (opening that one
    directly skips the browser binding, so its redirect is refused).
    """

    provider_url: str
    start_id: str
    #: With a device code: the code the person types at the provider (not a secret).
    user_code: str | None

    def __new__(
        cls, start_url: str, provider_url: str, start_id: str, user_code: str | None = None
    ) -> AuthorizationURL:
        """Wrap ``start_url`` with the provider URL and the flow's opaque start id."""
        self = super().__new__(cls, start_url)
        self.provider_url = provider_url
        self.start_id = start_id
        self.user_code = user_code
        return self


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


class OAuth2Client:
    """An OAuth2 authorization-code client for one provider, storing tokens per user."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        redirect_uri: str | None = None,
        mode: Mode | None = None,
        store: Store | None = None,
        timeout: float = 10.0,
        leeway: float = 30.0,
        flow_ttl: float = DEFAULT_FLOW_TTL,
        loopback_port: int = 0,
        transport: httpx.BaseTransport | None = None,
        http_log_size: int = 200,
        allow_insecure_http: bool = False,
        store_key: str | None = None,
        holder: Holder | None = None,
    ) -> None:
        if mode is None:
            # An administrator (or a test) may pick the way for every notebook of a machine.
            mode = os.environ.get(MODE_ENV) or "auto"  # type: ignore[assignment]
        if mode not in _MODES:
            raise ConfigurationError(
                "mode", f"is {mode!r}", "Use 'auto', 'jupyter', 'loopback', 'device' or 'paste'."
            )
        if store is not None and store_key is not None:
            raise ConfigurationError(
                "store_key",
                "is given together with store=",
                "Pass the key to the store itself: Store(path, key=...).",
            )
        for name, value in (("timeout", timeout), ("flow_ttl", flow_ttl)):
            if not isinstance(value, (int, float)) or not value > 0:
                raise ConfigurationError(name, f"is {value!r}", "Give a number of seconds > 0.")
        if not isinstance(leeway, (int, float)) or not leeway >= 0:
            raise ConfigurationError("leeway", f"is {leeway!r}", "Give a number of seconds >= 0.")
        # A ProviderConfig built by hand skipped the factory's checks (http endpoints, a
        # client secret for confidential clients…): every client checks its own config.
        checked = ProviderConfig.from_mapping(
            config.to_mapping(include_secret=True),
            allow_insecure_http=allow_insecure_http,
            environ={},
        )
        self.config = dataclasses.replace(
            checked, authorization_callback=config.authorization_callback
        )
        self.mode = mode
        self.timeout = timeout
        self.leeway = leeway
        self.flow_ttl = flow_ttl
        self.loopback_port = loopback_port
        self._explicit_redirect_uri = redirect_uri
        self._redirect_uri: str | None = None
        self._way: tuple[str, str] | None = None
        self._store = store
        self._store_key = store_key
        self._transport = transport
        self._loopback: Any = None
        self._lock = threading.Lock()
        self._latest_state: dict[str, str] = {}
        # Identifies this client instance in the flows it starts (shared store, many kernels).
        self._ref = uuid.uuid4().hex
        self._closed = threading.Event()
        self._noted_exchanges: set[str] = set()
        self.http_log: collections.deque[HttpExchange] = collections.deque(maxlen=http_log_size)
        self._connections = Connections(timeout, transport=transport, record=self.http_log.append)
        #: Exchange, refresh, revoke, introspect: with this client's secret, or asking the
        #: ``holder`` of it (the Jupyter server, for a provider declared there).
        self.grants: Grants = (
            LocalGrants(
                self.config, lambda: self.store, connections=self._connections, leeway=leeway
            )
            if holder is None
            else RemoteGrants(
                self.config,
                lambda: self.store,
                holder=holder,
                timeout=timeout,
                leeway=leeway,
            )
        )

    def __repr__(self) -> str:
        return (
            f"<OAuth2Client alias={self.config.alias!r} client_id={self.config.client_id!r} "
            f"redirect_uri={self._redirect_uri!r}>"
        )

    @property
    def alias(self) -> str:
        """The provider's alias."""
        return self.config.alias

    @property
    def store(self) -> Store:
        """The token store (opened on first use, so JUPYTER_DATA_DIR is read then)."""
        if self._store is None:
            self._store = open_store(key=self._store_key)
        return self._store

    @property
    def provider(self) -> str:
        """Who issues this client's tokens (issuer, or token endpoint + client id)."""
        return provider_identity(self.config)

    def _stored(self, key: str) -> TokenRecord | None:
        """The token stored for ``key``, only if this provider issued it (ProviderMismatchError)."""
        return self.grants.stored(key)

    def stored_token(self, user: UserLike = None) -> TokenRecord | None:
        """The record stored for ``user`` (version and time included), None when nothing is.

        Raises ProviderMismatchError when the stored token belongs to another provider
        configured under this alias. The panel and the doctor read tokens through here.
        """
        return self._stored(resolve_user(user))

    @property
    def held_elsewhere(self) -> bool:
        """Whether another process (the Jupyter server or the hub) holds this provider's secret."""
        return isinstance(self.grants, RemoteGrants)

    @property
    def transport(self) -> httpx.BaseTransport | None:
        """The httpx transport given to the client (None: the network), for tools that call the provider."""
        return self._transport

    @property
    def redirect_uri(self) -> str | None:
        """The redirect URI in use once setup() ran."""
        return self._redirect_uri

    # set-up ------------------------------------------------------------------------------

    def setup(self) -> str:
        """Register the provider in the store and pick the redirect URI; return it.

        The redirect URI is, in order: ``redirect_uri=`` given to the client (exactly); the
        running Jupyter server's ``{base_url}chat-oauth2/callback/<alias>`` (the extension
        tells its kernels through ``CHAT_OAUTH2_NB_CALLBACK_URL``, and is believed without a
        probe: a kernel can't tell what the browser reaches), or on a JupyterHub with
        ``configure_hub()`` the hub-wide ``…/services/chat-oauth2/callback/<alias>``; else a
        loopback listener
        ``http://127.0.0.1:PORT/chat-oauth2/callback/<alias>`` (RFC 8252 §7.3) in this
        process. Each alias has its own path, so a redirect meant for one provider never
        completes another's flow (mix-up defence, RFC 9700 §4.4).
        """
        with self._lock:
            self._closed.clear()
            if not self.held_elsewhere:  # the server registered a declared provider itself
                self.store.put_provider(self.config)
            if self._redirect_uri is None:
                self._redirect_uri = self._choose_redirect_uri()
            return self._redirect_uri

    async def asetup(self) -> str:
        """Async twin of :meth:`setup`."""
        return await asyncio.to_thread(self.setup)

    @property
    def way(self) -> str | None:
        """How this client authorizes once setup() ran: jupyter, loopback, device or paste."""
        return self._way[0] if self._way else None

    @property
    def way_reason(self) -> str | None:
        """Why setup() chose :attr:`way`, in one sentence."""
        return self._way[1] if self._way else None

    def _choose_redirect_uri(self) -> str:
        uri, way, why = self._choose_way()
        self._way = (way, why)
        log.info("%r receives redirects by %s: %s", self.alias, way, why)
        return uri

    def _choose_way(self) -> tuple[str, str, str]:
        if self.mode == "device":
            device_authorization_request(self.config)  # a missing endpoint says what to do now
            return "", "device", "mode='device': the person types a code at the provider"
        if self.mode == "paste":
            uri = self._explicit_redirect_uri or self._paste_uri()
            why = "mode='paste': the person copies the address the browser ends on"
            return uri, "paste", why
        if self._explicit_redirect_uri:
            if self.mode == "loopback":
                self._start_loopback()
                return self._explicit_redirect_uri, "loopback", "redirect_uri= was given"
            return self._explicit_redirect_uri, "jupyter", "redirect_uri= was given"
        server_url = os.environ.get(SERVER_CALLBACK_ENV)
        if self.mode == "jupyter" and not server_url:
            raise ConfigurationError(
                "mode",
                "is 'jupyter' but no Jupyter server with chat_oauth2_nb runs this kernel",
                "Run the notebook in Jupyter with the extension enabled "
                "(`jupyter server extension list`), or use mode='auto'.",
            )
        if self.mode in ("auto", "jupyter") and server_url:
            # The extension's word is taken as is: probing the public URL from the kernel
            # says nothing about what the person's browser can reach (a proxy, a hub), and
            # a silent switch to a loopback URI the browser can't reach is worse.
            start = os.environ.get(SERVER_START_ENV, "").rstrip("/")
            routed = bool(start) and start.removesuffix(START_PATH) != server_url.rstrip(
                "/"
            ).removesuffix(CALLBACK_PATH)
            if routed:
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
            return f"{server_url.rstrip('/')}/{self.alias}", "jupyter", why
        if self.mode == "loopback":
            return self._start_loopback(), "loopback", "mode='loopback'"
        # auto without the extension: by where the person's browser is (environment.py
        # says how it tells).
        way, why = choose_way(
            explicit_redirect_uri=False,
            extension_callback=False,
            where=browser_location(),
            device_endpoint=self.config.device_authorization_uri is not None,
        )
        if way == "jupyter":
            return f"{server_url}/{self.alias}", "jupyter", why
        if way == "device":
            return "", "device", why
        if way == "paste":
            return self._paste_uri(), "paste", why
        return self._start_loopback(), "loopback", why

    def _start_loopback(self) -> str:
        # Imported here: core modules never import server/ at module level.
        from ..kernel.loopback import LoopbackServer

        if self._loopback is None:
            # One listener per store and port in this process: re-running a set-up cell
            # reuses it (same redirect URI). It listens while flows of it are pending.
            self._loopback = LoopbackServer.shared(
                self.store, port=self.loopback_port, transport_timeout=self.timeout
            )
        return str(self._loopback.redirect_uri_for(self.alias))

    def _start_url(self, flow: PendingFlow) -> str:
        # The start endpoint lives on the Jupyter server that holds the flow, so its cookie
        # reaches that server's callback (directly, or through the hub's router).
        if flow.endpoint == "loopback" and self._loopback is not None:
            # (Again) now that a flow waits for it. A flow another process's listener
            # serves (a panel showing it) has its start link at the same place.
            self._loopback.start()
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

    def close(self) -> None:
        """Stop the loopback server (if any), flow watchers and HTTP connections."""
        self._closed.set()
        if self._loopback is not None:
            self._loopback.release()
            self._loopback = None
            self._redirect_uri = None
            self._way = None
        self._connections.close()

    # HTTP --------------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        return self._connections.http()

    def _send(
        self, request: HttpRequest, what: str, error_class: type[ProviderError]
    ) -> ProviderAnswer:
        """Send ``request`` (into :attr:`http_log`); ``error_class`` when no answer came."""
        return self._connections.call(request, what, error_class)

    # authorization -----------------------------------------------------------------------

    def get_user_authorization_url(
        self, user: UserLike = None, scopes: str | Iterable[str] | None = None
    ) -> AuthorizationURL:
        """Start an authorization for ``user`` and return the link to open in a browser.

        The link goes to ``…/chat-oauth2/start/<id>`` on the callback's origin, which ties
        the flow to the browser that opens it (a cookie; on Jupyter also the logged-in user)
        and redirects to the provider; :attr:`AuthorizationURL.provider_url` is that
        provider URL. It carries a fresh single-use ``state`` (expires after ``flow_ttl``
        seconds) and a PKCE S256 challenge; the scopes are the default scopes plus ``scopes``.

        Asking an authorized user for more ``scopes`` is an upgrade: the link also asks for
        the scopes the stored token has, and the stored token stays in use until the new
        grant arrives (a denied or abandoned upgrade keeps it).
        """
        if self.way is None:
            self.setup()
        if self.way == "device":
            # No redirect: the link is the provider's verification page (with the code
            # filled in when the provider offers that); wait_for_authorization() polls.
            device = self.start_device_authorization(user, scopes)
            page = device.verification_uri_complete or device.verification_uri
            return AuthorizationURL(page, page, "", user_code=device.user_code)
        return self.start_flow(resolve_user(user), scopes, origin="code")[1]

    def start_flow(
        self,
        user: UserLike = None,
        scopes: str | Iterable[str] | None = None,
        *,
        origin: FlowOrigin = "code",
    ) -> tuple[PendingFlow, AuthorizationURL]:
        """Record a new flow for ``user`` in the store; return it with the link to open.

        ``origin`` says who started it: ``code`` (what wait_for_authorization() follows) or
        ``panel`` (a panel's standby link, followed only once it finishes).
        """
        key = resolve_user(user)
        redirect = self._redirect_uri if self._way else self.setup()
        assert redirect is not None
        if self.way == "device":
            raise ConfigurationError(
                "mode",
                "is 'device', which has no authorization link",
                "Call client.start_device_authorization(), or show client.panel().",
            )
        on_loopback = self._loopback is not None and self._loopback.serves(redirect)
        endpoint: FlowEndpoint = (
            "paste" if self.way == "paste" else "loopback" if on_loopback else "server"
        )
        return self._record_flow(key, scopes, redirect, endpoint, origin)

    def _record_flow(
        self,
        key: str,
        scopes: str | Iterable[str] | None,
        redirect: str,
        endpoint: FlowEndpoint,
        origin: FlowOrigin,
    ) -> tuple[PendingFlow, AuthorizationURL]:
        asked = scopes_argument(scopes)
        flow = new_flow(
            self.config,
            user=key,
            redirect_uri=redirect,
            scopes=dict.fromkeys((*self.config.default_scopes, *self._granted(key, asked), *asked)),
            origin=origin,
            client_ref=self._ref,
            endpoint=endpoint,
            ttl=self.flow_ttl,
        )
        self.store.add_flow(flow)
        if origin == "code":
            self._latest_state[key] = flow.state
        if self.config.authorization_callback is not None:
            threading.Thread(
                target=self._watch, args=(flow,), name="chat-oauth2-watch", daemon=True
            ).start()
        return flow, self.start_link(flow)

    def _granted(self, key: str, asked: tuple[str, ...]) -> tuple[str, ...]:
        """The scopes ``key`` holds already, when ``asked`` names more (an upgrade).

        The new grant replaces the stored one, so it must carry the old scopes too: asking
        for one more scope never loses another. Until it arrives the stored token is kept
        and used. A plain re-authorization (no extra scopes) asks for the defaults only.
        """
        if not asked:
            return ()
        try:
            record = self._stored(key)
        except ProviderMismatchError:
            return ()  # another provider's token: the new grant replaces it, scopes and all
        return record.data.scopes if record is not None else ()

    def start_link(self, flow: PendingFlow) -> AuthorizationURL:
        """The link (start URL, with its provider URL) of a pending flow this client can serve."""
        if flow.start_id is None:
            raise StateError(
                "This flow has no start link", hint="Get a fresh one: get_user_authorization_url()."
            )
        at_provider = provider_url(self.config, flow)
        if flow.endpoint == "paste":
            # Nothing serves the redirect URI, so no start page can bind a browser: the
            # person pasting the address back is the binding.
            return AuthorizationURL(at_provider, at_provider, flow.start_id)
        return AuthorizationURL(self._start_url(flow), at_provider, flow.start_id)

    async def aget_user_authorization_url(
        self, user: UserLike = None, scopes: str | Iterable[str] | None = None
    ) -> AuthorizationURL:
        """Async twin of :meth:`get_user_authorization_url`."""
        return await asyncio.to_thread(self.get_user_authorization_url, user, scopes)

    def note_flow_exchange(self, flow: PendingFlow) -> None:
        """Add the code exchange the callback made for ``flow`` to :attr:`http_log`, once."""
        if flow.exchange is None:
            return
        with self._lock:
            if flow.state in self._noted_exchanges:
                return
            self._noted_exchanges.add(flow.state)
        self.http_log.append(HttpExchange(**flow.exchange))

    def _token_of(self, key: str) -> AuthData | None:
        record = self._stored(key)
        return record.data if record else None

    def _watch(self, flow: PendingFlow) -> None:
        # Runs in a daemon thread: calls authorizationCallback once the flow succeeded.
        while True:
            try:
                outcome = read_outcome(self.store, flow, self._token_of, self.note_flow_exchange)
            except OAuth2Error:
                return
            if outcome is not None:
                break
            if self._closed.wait(POLL_INTERVAL):
                return
        callback = self.config.authorization_callback
        if outcome.data is not None and callback is not None:
            try:
                callback(outcome.data, flow.user)
            except Exception:
                log.exception("authorizationCallback for %r raised", self.alias)

    def _waiter(self, user: UserLike, timeout: float) -> Waiter:
        key = resolve_user(user)
        state = self._latest_state.get(key)
        # Only flows this client instance started: another kernel's (or notebook's) flow for
        # the same alias and user is not what this caller asked for.
        flow = (
            self.store.get_flow(state)
            if state
            else self.store.latest_flow(self.alias, key, client_ref=self._ref)
        )
        if flow is None:
            raise NotAuthorizedError(
                f"No authorization was started for {key!r} at {self.alias!r}",
                hint="Call client.get_user_authorization_url() and open the link first.",
            )
        return Waiter(
            self.store,
            flow,
            client_ref=self._ref,
            token_of=self._token_of,
            seen=self.note_flow_exchange,
            stopped=self._closed,
            timeout=timeout,
            step=self.poll_device_authorization if flow.origin == "device" else None,
        )

    def wait_for_authorization(self, user: UserLike = None, timeout: float = 300.0) -> AuthData:
        """Block until the flow of the latest authorization URL for ``user`` ends.

        Returns the new token; raises the flow's typed error (denied, state, exchange),
        :class:`AuthorizationTimeoutError` after ``timeout`` seconds, or
        :class:`AuthorizationCancelledError` once :meth:`close` is called.
        """
        return self._waiter(user, timeout).wait()

    async def wait_for_authorization_async(
        self, user: UserLike = None, timeout: float = 300.0
    ) -> AuthData:
        """Async twin of :meth:`wait_for_authorization`: cancelling the task ends the wait."""
        waiter = await asyncio.to_thread(self._waiter, user, timeout)
        return await waiter.wait_async()

    async def await_for_authorization(
        self, user: UserLike = None, timeout: float = 300.0
    ) -> AuthData:
        """The old name of :meth:`wait_for_authorization_async` (it read as "a-wait")."""
        return await self.wait_for_authorization_async(user, timeout)

    # device code (RFC 8628) ---------------------------------------------------------------

    def start_device_authorization(
        self, user: UserLike = None, scopes: str | Iterable[str] | None = None
    ) -> DeviceAuthorization:
        """Ask the provider for a device code; show the person its ``user_code`` and URI.

        No redirect is needed, so this works wherever the notebook runs (Colab, a remote
        kernel). :meth:`wait_for_authorization` then polls the token endpoint until the
        person approved, denied, or the code expired; the token is stored like any other.

        Raises:
            ConfigurationError: the provider has no ``deviceAuthorizationUri``.
            DeviceAuthorizationError: the provider refused; the message says why.
        """
        self.grants.needs_secret("The device authorization grant")
        key = resolve_user(user)
        asked = scopes_argument(scopes)
        wanted = tuple(
            dict.fromkeys((*self.config.default_scopes, *self._granted(key, asked), *asked))
        )
        request = device_authorization_request(self.config, wanted)
        self.store.put_provider(self.config)
        answer = self._send(request, "Device authorization", DeviceAuthorizationError)
        device = parse_device_authorization(
            answer.status or 0,
            answer.headers,
            answer.content,
            received_at=utcnow(),
            secrets=request.secrets,
            client_id=request.client_id,
        )
        lifetime = max(1.0, (device.expires_at - utcnow()).total_seconds())
        flow = new_flow(
            self.config,
            user=key,
            redirect_uri="",
            scopes=wanted,
            origin="device",
            client_ref=self._ref,
            endpoint="device",
            ttl=lifetime,
        )
        public = {
            "user_code": device.user_code,
            "verification_uri": device.verification_uri,
            "verification_uri_complete": device.verification_uri_complete,
            "interval": device.interval,
            "failures": 0,
            "next_poll_at": time.time() + device.interval,
        }
        # The flow's one secret is the device code: it goes where the PKCE verifier would.
        flow = dataclasses.replace(flow, code_verifier=device.device_code, device=public)
        self.store.add_flow(flow)
        self._latest_state[key] = flow.state
        log.info("device authorization for %r at %r: code %s", key, self.alias, device.user_code)
        return device

    async def astart_device_authorization(
        self, user: UserLike = None, scopes: str | Iterable[str] | None = None
    ) -> DeviceAuthorization:
        """Async twin of :meth:`start_device_authorization`."""
        return await asyncio.to_thread(self.start_device_authorization, user, scopes)

    def poll_device_authorization(self, flow: PendingFlow) -> None:
        """Poll the token endpoint for a device flow once, if it is due; record what happened.

        Single flight: one poller at a time across threads and processes (a lease per flow),
        and the next poll's time lives in the store, so the spacing the provider asked for
        (``interval``, ``slow_down``) holds whoever polls next.
        """
        current = self.store.get_flow(flow.state)
        if current is None or current.status != "pending" or current.device is None:
            return
        now = time.time()
        if now >= current.expires_at:
            expired = device_code_expired_error(
                expired_at=dt.datetime.fromtimestamp(current.expires_at, dt.timezone.utc)
            )
            self.store.finish_flow(flow.state, error=FlowError.of(expired, "device_expired"))
            return
        if now < float(current.device.get("next_poll_at", 0)):
            return
        lease, owner = f"device:{flow.state}", f"{os.getpid()}:{uuid.uuid4().hex}"
        if not self.store.acquire_lease(self.alias, lease, owner, 2 * self.timeout + 10):
            return
        try:
            self._poll_device_once(flow.state)
        finally:
            self.store.release_lease(self.alias, lease, owner)

    def _poll_device_once(self, state: str) -> None:
        # Re-read under the lease: another poller may have just finished or polled.
        current = self.store.get_flow(state)
        if current is None or current.status != "pending" or current.device is None:
            return
        info = current.device
        if time.time() < float(info.get("next_poll_at", 0)):
            return
        interval, failures = float(info["interval"]), int(info.get("failures", 0))
        request = device_token_request(self.config, current.code_verifier)
        what = "Polling for the device authorization"
        outcome: AuthData | DevicePending | OAuth2Error
        try:
            answer = self._send(request, what, TokenExchangeError)
        except ProviderError as exc:
            outcome = device_poll_backoff(interval, failures, exc)
        else:
            outcome = classify_device_poll(
                answer.status or 0,
                answer.headers,
                answer.content,
                interval=interval,
                received_at=utcnow(),
                failures=failures,
                requested_scopes=current.scopes,
                secrets=request.secrets,
                client_id=request.client_id,
            )
        if isinstance(outcome, DevicePending):
            self.store.update_device(
                state,
                interval=outcome.interval,
                failures=outcome.failures,
                next_poll_at=time.time() + outcome.wait,
            )
        elif isinstance(outcome, AuthData):
            self.grants.keep(current.user, outcome)
            self.store.finish_flow(state)
            log.info("stored a new token for %r at %r (device code)", current.user, self.alias)
        else:
            kind: FlowErrorKind = (
                "denied"
                if isinstance(outcome, AuthorizationDeniedError)
                else "device_expired"
                if isinstance(outcome, DeviceCodeExpiredError)
                else "exchange"
            )
            self.store.finish_flow(state, error=FlowError.of(outcome, kind))

    # paste-back -------------------------------------------------------------------------------

    def complete_authorization(self, url_or_query: str, user: UserLike = None) -> AuthData:
        """Finish a flow from the address the browser ended on, pasted by the person.

        For ``mode="paste"``: the provider sends the browser to a loopback address that does
        not load; copy that address (or just its query) and pass it here. The state is
        checked exactly as the callback checks it (single use, this alias and user, not
        expired, ``error=`` becomes a typed error), then the code is exchanged with the
        flow's PKCE verifier and the token stored.

        Raises:
            StateError: the address is not from a pending authorization of this client.
            AuthorizationDeniedError: the provider sent ``error=`` instead of a code.
            TokenExchangeError: the provider refused the code.
        """
        from ..kernel.loopback import complete_pasted

        key = resolve_user(user)
        text = url_or_query.strip()
        if not text:
            raise ConfigurationError(
                "url_or_query",
                "is empty",
                "Paste the whole address from the browser's address bar.",
            )
        pasted_at: str | None = None
        path_alias: str | None = None
        if "://" in text:
            parts = urlsplit(text)
            query = parts.query
            pasted_at = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
            match = CALLBACK_TAIL.search(parts.path)
            path_alias = match.group(1)[1:] if match and match.group(1) else None
        else:
            query = text.lstrip("?")
        params = parse_qs(query, keep_blank_values=True)
        state = (params.get("state") or [""])[0]
        flow = self.store.get_flow(state) if state else None
        if flow is not None and (flow.alias != self.alias or flow.user != key):
            raise StateError(
                "This address belongs to another authorization (another provider or user)",
                hint="Paste it into the notebook that started it, or start again here.",
            )
        outcome = complete_pasted(
            self.store,
            params,
            pasted_at=pasted_at,
            path_alias=path_alias,
            transport_timeout=self.timeout,
        )
        if flow is not None:
            done = self.store.get_flow(flow.state)
            if done is not None:
                self.note_flow_exchange(done)
        if outcome.exception is not None:
            raise outcome.exception
        data = self._token_of(key)
        if data is None:
            raise NotAuthorizedError("The token was removed right after authorization")
        return data

    async def acomplete_authorization(self, url_or_query: str, user: UserLike = None) -> AuthData:
        """Async twin of :meth:`complete_authorization`."""
        return await asyncio.to_thread(self.complete_authorization, url_or_query, user)

    def start_paste_flow(
        self,
        user: UserLike = None,
        scopes: str | Iterable[str] | None = None,
        *,
        origin: FlowOrigin = "panel",
    ) -> tuple[PendingFlow, AuthorizationURL]:
        """Start a paste-back flow whatever way setup() chose; return it with its provider link.

        The panel's fallback when a redirect never came back: the browser then ends on
        ``http://127.0.0.1:53682/chat-oauth2/callback/<alias>`` (nothing listens) and the
        person pastes that address into :meth:`complete_authorization`.
        """
        if self.way is None:
            self.setup()
        if self.way == "paste":
            return self.start_flow(user, scopes, origin=origin)
        return self._record_flow(resolve_user(user), scopes, self._paste_uri(), "paste", origin)

    def _paste_uri(self) -> str:
        # Nothing listens there: the browser shows an error page whose address is pasted.
        port = self.loopback_port or PASTE_PORT
        return f"http://127.0.0.1:{port}/{CALLBACK_PATH}/{self.alias}"

    # tokens ------------------------------------------------------------------------------

    def get_access_token_for_user(self, user: UserLike = None) -> AuthData | None:
        """The user's token, refreshed first if it expired and can be; None if never authorized."""
        return _data(self.grants.token(resolve_user(user)))

    async def aget_access_token_for_user(self, user: UserLike = None) -> AuthData | None:
        """Async twin of :meth:`get_access_token_for_user`."""
        return await asyncio.to_thread(self.get_access_token_for_user, user)

    def refresh_user_access_token(self, user: UserLike = None) -> AuthData:
        """Refresh the user's token now (joining a refresh already in flight); return it.

        Raises NotAuthorizedError when nothing is stored, TokenRefreshError when no refresh
        token is (some providers only issue one when asked) or the provider refused.
        """
        key = resolve_user(user)
        return _data_or_raise(self.grants.refresh(key), key, self.alias)

    async def arefresh_user_access_token(self, user: UserLike = None) -> AuthData:
        """Async twin of :meth:`refresh_user_access_token`."""
        return await asyncio.to_thread(self.refresh_user_access_token, user)

    def refresh_after_rejection(self, user: UserLike, used: AuthData) -> AuthData | None:
        """After an API answered 401 to ``used``: the newer stored token, or a refreshed one, or None."""
        have = digest(used.token)
        return _data(self.grants.refresh(resolve_user(user), have=have, optional=True))

    def revoke_user_access_token(self, user: UserLike = None) -> bool:
        """Revoke the user's tokens at the provider, then delete them here.

        False when nothing is stored. Without a ``revokeTokenUri`` the token is only deleted
        here (Microsoft has no revocation endpoint): the log, and :meth:`revoke_advice`, say
        where the person can remove the app's access at the provider. The request follows
        ``revokeStyle``: RFC 7009 for each token, Google's single ``token``, or GitHub's
        ``DELETE /applications/{client_id}/token``. A provider or network failure raises
        TokenRevokeError and keeps the token.
        """
        return self.grants.revoke(resolve_user(user))

    def revoke_advice(self) -> str | None:
        """Where a person revokes this app's access themselves, when the kit cannot (or None)."""
        return revoke_advice(self.config)

    async def arevoke_user_access_token(self, user: UserLike = None) -> bool:
        """Async twin of :meth:`revoke_user_access_token`."""
        return await asyncio.to_thread(self.revoke_user_access_token, user)

    def introspect_user_token(self, user: UserLike = None) -> dict[str, Any]:
        """Ask the provider whether the user's access token is still active (RFC 7662).

        Returns what the provider says (``active``, ``scope``, ``exp``, ``client_id``…) with
        no token in it; ``{"active": False}`` means revoked or expired there, whatever the
        store says. Needs ``introspectionUri`` in the config.
        """
        return self.grants.introspect(resolve_user(user))

    async def aintrospect_user_token(self, user: UserLike = None) -> dict[str, Any]:
        """Async twin of :meth:`introspect_user_token`."""
        return await asyncio.to_thread(self.introspect_user_token, user)

    # conveniences ------------------------------------------------------------------------

    def auth(self, user: UserLike = None) -> OAuth2Auth:
        """An ``httpx.Auth`` that sends the user's bearer token and refreshes it when needed."""
        from ..kernel.auth import OAuth2Auth

        return OAuth2Auth(self, resolve_user(user))

    def requests_auth(self, user: UserLike = None) -> requests.auth.AuthBase:
        """A ``requests`` auth (``requests.get(url, auth=...)``) that refreshes like :meth:`auth`."""
        from ..kernel.adapters import requests_auth

        return requests_auth(self, resolve_user(user))

    def google_credentials(self, user: UserLike = None) -> GoogleCredentials:
        """google-auth ``Credentials`` (token and expiry only) that refresh through this client."""
        from ..kernel.adapters import google_credentials

        return google_credentials(self, resolve_user(user))

    def azure_credential(self, user: UserLike = None) -> AzureCredential:
        """An azure-core ``TokenCredential`` whose ``get_token`` refreshes through this client."""
        from ..kernel.adapters import AzureCredential

        return AzureCredential(self, resolve_user(user))

    def panel(self, user: UserLike = None) -> Any:
        """The ipywidgets panel for ``user``: link, token details, Refresh and Revoke."""
        from ..widgets import OAuth2Panel

        return OAuth2Panel(self, user)

    def diagnose(self, user: UserLike = None) -> Report:
        """Check this provider configuration against the provider; a table of what is wrong.

        Endpoints, the provider's metadata, the client credentials (one token request with a
        made-up code), the redirect URI (heuristic), the provider's clock and, when a token is
        stored for ``user``, its scopes and refresh token. Records nothing in the store.
        """
        from ..doctor import diagnose

        return diagnose(self, user)

    async def adiagnose(self, user: UserLike = None) -> Report:
        """Async twin of :meth:`diagnose`."""
        return await asyncio.to_thread(self.diagnose, user)


def _data(record: TokenRecord | None) -> AuthData | None:
    return record.data if record is not None else None


def _data_or_raise(record: TokenRecord | None, key: str, alias: str) -> AuthData:
    if record is None:
        raise nothing_stored(key, alias)
    return record.data


def _declared_client(
    name: str, preset_params: dict[str, Any], *, mode: Mode | None, **kwargs: Any
) -> OAuth2Client | None:
    """A client of the provider declared as ``name`` on this kernel's Jupyter server, if any."""
    from ..kernel.declared import find_declared

    found = find_declared(name, preset_params, timeout=float(kwargs.get("timeout", 10.0)))
    if found is None:
        return None
    config, holder = found
    if mode not in (None, "auto", "jupyter"):
        raise ConfigurationError(
            "mode",
            f"is {mode!r}, but {config.alias!r} is declared on the Jupyter server",
            "Leave mode out: a declared provider authorizes through the server's callback, "
            "where its client secret is.",
        )
    # The server's callback exchanges the code; refreshes and revocations are asked of it.
    return OAuth2Client(config, mode="jupyter", holder=holder, **kwargs)


def create_oauth2_client(
    config: Mapping[str, Any] | ProviderConfig | str,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    client_auth_method: str | None = None,
    redirect_uri: str | None = None,
    mode: Mode | None = None,
    store: Store | None = None,
    timeout: float = 10.0,
    leeway: float = 30.0,
    flow_ttl: float = DEFAULT_FLOW_TTL,
    loopback_port: int = 0,
    allow_insecure_http: bool = False,
    transport: httpx.BaseTransport | None = None,
    store_key: str | None = None,
    **preset_params: Any,
) -> OAuth2Client:
    """Create an OAuth2 client from the seed's config dict (or snake_case keys), or a preset.

    Args:
        config: ``alias``, ``authUri``, ``accessTokenUri`` and optionally ``refreshTokenUri``,
            ``revokeTokenUri``, ``defaultScopes``, ``authUriParams``, ``authorizationCallback``;
            or the alias of a provider declared on this Jupyter server (when no credentials
            are given: see :func:`chat_oauth2_nb.providers`); or a preset's name
            (``"google"``, ``"github"``, ``"microsoft"``, ``"gitlab"``, ``"keycloak"``, ``"rocketchat"``, ``"oidc"``: see :mod:`chat_oauth2_nb.presets`).
        **preset_params: with a preset name only, the preset's parameters and ``alias``:
            ``tenant=`` (microsoft), ``base_url=`` (gitlab, keycloak), ``realm=`` (keycloak),
            ``server_url=`` (rocketchat), ``issuer=`` (oidc).
        client_id: the client id; else ``CHAT_OAUTH2_<ALIAS>_CLIENT_ID`` from the environment.
        client_secret: the client secret; else ``CHAT_OAUTH2_<ALIAS>_CLIENT_SECRET``.
        client_auth_method: ``client_secret_basic`` (default with a secret),
            ``client_secret_post`` or ``none`` (public client, PKCE only).
        redirect_uri: the redirect URI registered at the provider; wins over detection.
        mode: how the person authorizes: ``auto`` (the default, or ``CHAT_OAUTH2_NB_MODE``)
            picks ``jupyter`` (the extension's callback), ``loopback``, ``device`` (a code)
            or ``paste`` (paste back the address the browser ends on); see ``client.way``.
        store: the token store; default ``jupyter_data_dir()/chat_oauth2_nb/store.sqlite3``.
        timeout: seconds for each request to the provider.
        leeway: refresh tokens this many seconds before they expire.
        flow_ttl: seconds an authorization link stays valid.
        loopback_port: the port for the loopback redirect server (0 = any free port).
        allow_insecure_http: allow plain http endpoints on other hosts than this machine.
        transport: an httpx transport (for tests of faults a real provider cannot produce).
        store_key: seal tokens, PKCE verifiers and the client secret in the store with
            AES-GCM (a key from ``chat_oauth2_nb.store.new_store_key()``); else
            ``CHAT_OAUTH2_NB_STORE_KEY`` or ``keyring`` when set. The Jupyter server needs
            the same key in its environment.

    Returns:
        An :class:`OAuth2Client`; call ``setup()`` then ``get_user_authorization_url()``.

    Raises:
        ConfigurationError: a field is missing or malformed; the message says what to put.

    Example:
        >>> client = create_oauth2_client(provider.config(), client_id=..., client_secret=...)
        >>> client = create_oauth2_client("microsoft", tenant="contoso.onmicrosoft.com")
    """
    if isinstance(config, str) and client_id is None and client_secret is None:
        # A provider the administrator declared on this Jupyter server (issue 13).
        declared = _declared_client(
            config,
            preset_params,
            redirect_uri=redirect_uri,
            mode=mode,
            store=store,
            timeout=timeout,
            leeway=leeway,
            flow_ttl=flow_ttl,
            store_key=store_key,
        )
        if declared is not None:
            return declared
    if isinstance(config, str):
        from ..presets import config as preset_config

        config = preset_config(config, **preset_params)
    elif preset_params:
        name = sorted(preset_params)[0]
        raise ConfigurationError(
            name,
            "is a preset parameter, but config is not a preset name",
            "Put the value into the config dict itself, or pass a preset name such as "
            "'microsoft' as config.",
        )
    cfg = ProviderConfig.from_mapping(
        config,
        client_id=client_id,
        client_secret=client_secret,
        client_auth_method=client_auth_method,
        allow_insecure_http=allow_insecure_http,
    )
    if isinstance(config, ProviderConfig) and config.authorization_callback is not None:
        cfg = dataclasses.replace(cfg, authorization_callback=config.authorization_callback)
    return OAuth2Client(
        cfg,
        redirect_uri=redirect_uri,
        mode=mode,
        store=store,
        timeout=timeout,
        leeway=leeway,
        flow_ttl=flow_ttl,
        loopback_port=loopback_port,
        transport=transport,
        allow_insecure_http=allow_insecure_http,
        store_key=store_key,
    )

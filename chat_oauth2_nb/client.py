"""The Python API: the Rocket.Chat Apps-Engine OAuth2 client, in Python, done safely.

Sync methods do plain blocking I/O (httpx.Client) so they work inside a running kernel,
whose asyncio loop we never touch; each ``a``-prefixed twin runs its sync sibling in a
worker thread. Refreshes are single-flight: a lock per (alias, user) inside the process and
a lease row in the shared store across processes, because providers that rotate refresh
tokens revoke the whole grant when a used one comes back.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import getpass
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx

from .config import ProviderConfig, provider_identity, scopes_argument
from .errors import (
    AuthorizationDeniedError,
    AuthorizationTimeoutError,
    ConfigurationError,
    NotAuthorizedError,
    OAuth2Error,
    ProviderError,
    ProviderMismatchError,
    StateError,
    StoreError,
    StoreLockedError,
    TokenExchangeError,
    TokenRefreshError,
    TokenRevokeError,
)
from .protocol import (
    AuthData,
    HttpExchange,
    HttpRequest,
    authorization_url,
    new_code_verifier,
    new_state,
    parse_error_response,
    parse_token_response,
    refresh_request,
    revoke_request,
    utcnow,
)
from .store import DEFAULT_FLOW_TTL, PendingFlow, Store, TokenRecord, open_store

if TYPE_CHECKING:
    from .auth import OAuth2Auth

__all__ = [
    "CALLBACK_PATH",
    "HttpExchange",
    "OAuth2Client",
    "UserLike",
    "create_oauth2_client",
    "error_from_flow",
    "resolve_user",
]

log = logging.getLogger("chat_oauth2_nb")

CALLBACK_PATH = "chat-oauth2/callback"
# Set by the server extension in the Jupyter server's environment; kernels inherit it.
SERVER_CALLBACK_ENV = "CHAT_OAUTH2_NB_CALLBACK_URL"
_POLL_INTERVAL = 0.05
_LEASE_TTL = 60.0

UserLike = Any  # str, an object with .id or .username, or None
T = TypeVar("T")
Mode = Literal["auto", "jupyter", "loopback"]


def resolve_user(user: UserLike = None) -> str:
    """The store key for ``user``: a string, ``.id``/``.username`` of an object, or this notebook's user."""
    if user is None:
        return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
    if isinstance(user, str):
        if not user.strip():
            raise ConfigurationError(
                "user", "is an empty string", "Pass a user id, or None for yourself."
            )
        return user
    for attr in ("id", "username"):
        value = getattr(user, attr, None)
        if isinstance(value, (str, int)) and str(value):
            return str(value)
    raise ConfigurationError(
        "user",
        f"is a {type(user).__name__} without .id or .username",
        "Pass a string, an object with .id or .username, or None for this notebook's user.",
    )


def error_from_flow(flow: PendingFlow) -> OAuth2Error:
    """Rebuild the typed error the callback recorded for a failed flow."""
    info = flow.error or {}
    kind = info.get("kind")
    cls: type[OAuth2Error] = {
        "denied": AuthorizationDeniedError,
        "exchange": TokenExchangeError,
        "state": StateError,
        "store": StoreError,
    }.get(kind or "", TokenExchangeError)
    message = info.get("message") or "The authorization failed"
    if kind == "state" and message == "expired":
        message = "The authorization link expired before it was used"
    details: dict[str, Any] = {
        "error": info.get("error"),
        "error_description": info.get("error_description"),
        "status_code": info.get("status_code"),
    }
    if issubclass(cls, ProviderError):
        details["retry_after"] = info.get("retry_after")
    return cls(message, **details)


class OAuth2Client:
    """An OAuth2 authorization-code client for one provider, storing tokens per user."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        redirect_uri: str | None = None,
        mode: Mode = "auto",
        store: Store | None = None,
        timeout: float = 10.0,
        leeway: float = 30.0,
        flow_ttl: float = DEFAULT_FLOW_TTL,
        loopback_port: int = 0,
        transport: httpx.BaseTransport | None = None,
        http_log_size: int = 200,
        store_key: str | None = None,
    ) -> None:
        if mode not in ("auto", "jupyter", "loopback"):
            raise ConfigurationError("mode", f"is {mode!r}", "Use 'auto', 'jupyter' or 'loopback'.")
        if store is not None and store_key is not None:
            raise ConfigurationError(
                "store_key",
                "is given together with store=",
                "Pass the key to the store itself: Store(path, key=...).",
            )
        self.config = config
        self.mode = mode
        self.timeout = timeout
        self.leeway = leeway
        self.flow_ttl = flow_ttl
        self.loopback_port = loopback_port
        self._explicit_redirect_uri = redirect_uri
        self._redirect_uri: str | None = None
        self._store = store
        self._store_key = store_key
        self._transport = transport
        self._http_client: httpx.Client | None = None
        self._loopback: Any = None
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)
        self._latest_state: dict[str, str] = {}
        self._closed = threading.Event()
        self._noted_exchanges: set[str] = set()
        self._listeners: list[Callable[[str, AuthData | None, OAuth2Error | None], None]] = []
        self.http_log: collections.deque[HttpExchange] = collections.deque(maxlen=http_log_size)

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
        """The token stored for ``key`` under this alias, only if it belongs to this provider.

        Every token read goes through here: a token issued by another provider configured
        under the same alias is never used, refreshed or revoked with this configuration.
        """
        record = self.store.get_token(self.alias, key)
        if record is None or record.provider is None or record.provider == self.provider:
            return record
        raise ProviderMismatchError(
            f"The token stored for {key!r} under the alias {self.alias!r} belongs to another "
            f"provider ({record.provider}); this client is configured for {self.provider}, so "
            "it is not used here",
            hint="Authorize again with this configuration to replace it "
            "(client.get_user_authorization_url()), or give this provider another alias.",
        )

    @property
    def redirect_uri(self) -> str | None:
        """The redirect URI in use once setup() ran."""
        return self._redirect_uri

    # set-up ------------------------------------------------------------------------------

    def setup(self) -> str:
        """Register the provider in the store and pick the redirect URI; return it.

        The redirect URI is, in order: ``redirect_uri=`` given to the client; the running
        Jupyter server's ``{base_url}chat-oauth2/callback`` (the extension tells its kernels
        through ``CHAT_OAUTH2_NB_CALLBACK_URL``); else a loopback server on 127.0.0.1
        (RFC 8252 §7.3) started in this process.
        """
        with self._lock:
            self._closed.clear()
            self.store.put_provider(self.config)
            if self._redirect_uri is None:
                self._redirect_uri = self._choose_redirect_uri()
            return self._redirect_uri

    async def asetup(self) -> str:
        """Async twin of :meth:`setup`."""
        return await asyncio.to_thread(self.setup)

    def _choose_redirect_uri(self) -> str:
        if self._explicit_redirect_uri:
            if self.mode == "loopback":
                self._start_loopback()
            return self._explicit_redirect_uri
        server_url = os.environ.get(SERVER_CALLBACK_ENV)
        if self.mode == "jupyter":
            if not server_url:
                raise ConfigurationError(
                    "mode",
                    "is 'jupyter' but no Jupyter server with chat_oauth2_nb runs this kernel",
                    "Run the notebook in Jupyter with the extension enabled "
                    "(`jupyter server extension list`), or use mode='auto'.",
                )
            return server_url
        if self.mode == "auto" and server_url and self._server_alive(server_url):
            return server_url
        return self._start_loopback()

    def _server_alive(self, callback_url: str) -> bool:
        # The kernel may outlive its server; /api answers without a login.
        api = callback_url[: -len(CALLBACK_PATH)] + "api"
        try:
            with httpx.Client(timeout=2.0) as probe:
                return probe.get(api).status_code == 200
        except httpx.HTTPError:
            return False

    def _start_loopback(self) -> str:
        # Imported here: core modules never import server/ at module level.
        from .server.loopback import LoopbackServer

        if self._loopback is None:
            self._loopback = LoopbackServer(
                self.store, port=self.loopback_port, transport_timeout=self.timeout
            )
            self._loopback.start()
        return str(self._loopback.redirect_uri)

    def close(self) -> None:
        """Stop the loopback server (if any), flow watchers and HTTP connections."""
        self._closed.set()
        if self._loopback is not None:
            self._loopback.stop()
            self._loopback = None
            self._redirect_uri = None
        if self._http_client is not None:
            self._http_client.close()
            self._http_client = None

    # HTTP --------------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        if self._http_client is None:
            with self._lock:
                if self._http_client is None:
                    self._http_client = httpx.Client(
                        timeout=self.timeout, transport=self._transport
                    )
        return self._http_client

    def _send(
        self, request: HttpRequest, what: str, error_class: type[ProviderError]
    ) -> httpx.Response:
        started = time.time()
        t0 = time.perf_counter()
        try:
            response = self._http().request(
                request.method, request.url, headers=request.headers, content=request.body
            )
        except httpx.TimeoutException:
            self._log_exchange(request, None, b"", started, t0, "timeout")
            raise error_class(
                f"{what} failed: the provider did not answer within {self.timeout:g} s "
                f"({request.url})",
                hint="Check the endpoint URL and the network; raise timeout= if the provider is slow.",
            ) from None
        except httpx.HTTPError as exc:
            self._log_exchange(request, None, b"", started, t0, type(exc).__name__)
            raise error_class(
                f"{what} failed: could not reach {request.url} ({type(exc).__name__})",
                hint="Check the endpoint URL, that the provider is up, and the network.",
            ) from None
        self._log_exchange(request, response.status_code, response.content, started, t0, None)
        return response

    def _log_exchange(
        self,
        request: HttpRequest,
        status: int | None,
        content: bytes,
        started: float,
        t0: float,
        error: str | None,
    ) -> None:
        elapsed = (time.perf_counter() - t0) * 1000
        self.http_log.append(
            HttpExchange.of(
                request, status, content, started_at=started, elapsed_ms=elapsed, error=error
            )
        )
        log.debug("%s %s -> %s in %.1f ms", request.method, request.url, status or error, elapsed)

    # authorization -----------------------------------------------------------------------

    def get_user_authorization_url(
        self, user: UserLike = None, scopes: str | Iterable[str] | None = None
    ) -> str:
        """Start an authorization for ``user`` and return the URL to open in a browser.

        Each URL carries a fresh single-use ``state`` (expires after ``flow_ttl`` seconds)
        and a PKCE S256 challenge; the scopes are the config's default scopes plus ``scopes``.
        """
        return self._start_flow(resolve_user(user), scopes, track=True)

    def _start_flow(self, key: str, scopes: str | Iterable[str] | None, *, track: bool) -> str:
        # track=False: the panel's standby links, which wait_for_authorization() ignores.
        redirect = self._redirect_uri or self.setup()
        wanted = tuple(dict.fromkeys((*self.config.default_scopes, *scopes_argument(scopes))))
        state, verifier = new_state(), new_code_verifier()
        now = time.time()
        flow = PendingFlow(
            state=state,
            alias=self.alias,
            user=key,
            code_verifier=verifier,
            redirect_uri=redirect,
            scopes=wanted,
            created_at=now,
            expires_at=now + self.flow_ttl,
            provider=self.config,
        )
        self.store.add_flow(flow)
        if track:
            self._latest_state[key] = state
        if self.config.authorization_callback is not None or self._listeners:
            threading.Thread(
                target=self._watch, args=(flow,), name="chat-oauth2-watch", daemon=True
            ).start()
        return authorization_url(
            self.config, redirect_uri=redirect, scopes=wanted, state=state, code_verifier=verifier
        )

    async def aget_user_authorization_url(
        self, user: UserLike = None, scopes: str | Iterable[str] | None = None
    ) -> str:
        """Async twin of :meth:`get_user_authorization_url`."""
        return await asyncio.to_thread(self.get_user_authorization_url, user, scopes)

    def add_listener(
        self, listener: Callable[[str, AuthData | None, OAuth2Error | None], None]
    ) -> None:
        """Call ``listener(user, auth_data, error)`` when a flow started by this client ends."""
        self._listeners.append(listener)

    def remove_listener(
        self, listener: Callable[[str, AuthData | None, OAuth2Error | None], None]
    ) -> None:
        """Stop calling ``listener``."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def note_flow_exchange(self, flow: PendingFlow) -> None:
        """Add the code exchange the callback made for ``flow`` to :attr:`http_log`, once."""
        if flow.exchange is None:
            return
        with self._lock:
            if flow.state in self._noted_exchanges:
                return
            self._noted_exchanges.add(flow.state)
        self.http_log.append(HttpExchange(**flow.exchange))

    def _flow_outcome(self, flow: PendingFlow) -> tuple[AuthData | None, OAuth2Error | None] | None:
        """(data, error) once the flow ended, None while it is still running."""
        current = self.store.get_flow(flow.state)
        if current is None:
            return None, StateError("The pending authorization disappeared from the store")
        self.note_flow_exchange(current)
        if current.status == "done":
            record = self._stored(flow.user)
            if record is None:
                return None, NotAuthorizedError("The token was removed right after authorization")
            return record.data, None
        if current.status == "error":
            return None, error_from_flow(current)
        if current.status == "pending" and current.expires_at <= time.time():
            return None, StateError(
                "The authorization link expired before it was used",
                hint="Get a fresh one with client.get_user_authorization_url().",
            )
        return None

    def _watch(self, flow: PendingFlow) -> None:
        # Runs in a daemon thread: fires authorizationCallback and listeners once.
        while True:
            try:
                outcome = self._flow_outcome(flow)
            except OAuth2Error as exc:
                outcome = (None, exc)
            if outcome is not None:
                break
            if self._closed.wait(_POLL_INTERVAL):
                return
        data, error = outcome
        if self._latest_state.get(flow.user) != flow.state and error is not None:
            return  # a newer link replaced this one; its expiry is no news
        callback = self.config.authorization_callback
        if data is not None and callback is not None:
            try:
                callback(data, flow.user)
            except Exception:
                log.exception("authorizationCallback for %r raised", self.alias)
        for listener in list(self._listeners):
            try:
                listener(flow.user, data, error)
            except Exception:
                log.exception("a listener of %r raised", self.alias)

    def wait_for_authorization(self, user: UserLike = None, timeout: float = 300.0) -> AuthData:
        """Block until the flow of the latest authorization URL for ``user`` ends.

        Returns the new token; raises the flow's typed error (denied, state, exchange), or
        :class:`AuthorizationTimeoutError` after ``timeout`` seconds.
        """
        key = resolve_user(user)
        state = self._latest_state.get(key)
        flow = self.store.get_flow(state) if state else self.store.latest_flow(self.alias, key)
        if flow is None:
            raise NotAuthorizedError(
                f"No authorization was started for {key!r} at {self.alias!r}",
                hint="Call client.get_user_authorization_url() and open the link first.",
            )
        deadline = time.monotonic() + timeout
        started = time.time()
        while True:
            outcome = self._flow_outcome(flow)
            if outcome is None:
                # Another link for this user (the panel's, say) finished meanwhile: that is
                # the authorization this caller is waiting for.
                other = self.store.finished_flow_since(
                    self.alias, key, min(started, flow.created_at)
                )
                if other is not None and other.state != flow.state:
                    outcome = self._flow_outcome(other)
            if outcome is not None:
                data, error = outcome
                if error is not None:
                    raise error
                assert data is not None
                return data
            if time.monotonic() >= deadline:
                raise AuthorizationTimeoutError(
                    f"No browser completed the authorization for {key!r} within {timeout:g} s",
                    hint="Open the authorization link and approve, or call "
                    "wait_for_authorization() again with a longer timeout.",
                )
            time.sleep(_POLL_INTERVAL)

    async def await_for_authorization(
        self, user: UserLike = None, timeout: float = 300.0
    ) -> AuthData:
        """Async twin of :meth:`wait_for_authorization` (awaits without blocking the kernel)."""
        return await asyncio.to_thread(self.wait_for_authorization, user, timeout)

    # tokens ------------------------------------------------------------------------------

    def get_access_token_for_user(self, user: UserLike = None) -> AuthData | None:
        """The user's token, refreshed first if it expired and can be; None if never authorized."""
        key = resolve_user(user)
        record = self._stored(key)
        if record is None:
            return None
        if record.data.is_expired(self.leeway) and record.data.refresh_token:
            return self._refresh(key, record)
        return record.data

    async def aget_access_token_for_user(self, user: UserLike = None) -> AuthData | None:
        """Async twin of :meth:`get_access_token_for_user`."""
        return await asyncio.to_thread(self.get_access_token_for_user, user)

    def refresh_user_access_token(self, user: UserLike = None) -> AuthData:
        """Refresh the user's token now (joining a refresh already in flight); return it."""
        key = resolve_user(user)
        record = self._stored(key)
        if record is None:
            raise NotAuthorizedError(
                f"Nothing is stored for {key!r} at {self.alias!r}",
                hint="Authorize first: client.get_user_authorization_url().",
            )
        if not record.data.refresh_token:
            raise TokenRefreshError(
                "No refresh token is stored, so the token cannot be refreshed",
                hint="Authorize again; some providers only issue refresh tokens when asked "
                "(Google: authUriParams={'access_type': 'offline', 'prompt': 'consent'}).",
            )
        return self._refresh(key, record)

    async def arefresh_user_access_token(self, user: UserLike = None) -> AuthData:
        """Async twin of :meth:`refresh_user_access_token`."""
        return await asyncio.to_thread(self.refresh_user_access_token, user)

    def _refresh(self, key: str, seen: TokenRecord) -> AuthData:
        owner = f"{os.getpid()}:{uuid.uuid4().hex}"
        with self._key_locks[key]:
            while True:
                current = self._stored(key)
                if current is None:
                    raise NotAuthorizedError(
                        f"The token for {key!r} was deleted while refreshing",
                        hint="Authorize again: client.get_user_authorization_url().",
                    )
                if current.version != seen.version:
                    return current.data  # someone refreshed (or re-authorized) meanwhile
                if self.store.acquire_lease(self.alias, key, owner, _LEASE_TTL):
                    break
                time.sleep(_POLL_INTERVAL)
            try:
                # Re-read under the lease: another process may have refreshed just before.
                current = self._stored(key)
                if current is None:
                    raise NotAuthorizedError(
                        f"The token for {key!r} was deleted while refreshing",
                        hint="Authorize again: client.get_user_authorization_url().",
                    )
                if current.version != seen.version:
                    return current.data
                return self._do_refresh(key, current)
            finally:
                self.store.release_lease(self.alias, key, owner)

    def _do_refresh(self, key: str, record: TokenRecord) -> AuthData:
        refresh_token = record.data.refresh_token
        assert refresh_token is not None
        request = refresh_request(self.config, refresh_token=refresh_token)
        response = self._send(request, "Refreshing the token", TokenRefreshError)
        data = parse_token_response(
            TokenRefreshError,
            "Refreshing the token",
            response.status_code,
            response.headers,
            response.content,
            received_at=utcnow(),
            previous=record.data,
            secrets=request.secrets,
        )
        stored = self._store_refreshed(key, data, record.version)
        if stored is None:
            # Re-authorized while we refreshed: the newer authorization wins.
            newer = self._stored(key)
            return newer.data if newer else data
        log.info("refreshed the token for %r at %r", key, self.alias)
        return data

    def _store_refreshed(self, key: str, data: AuthData, version: int) -> TokenRecord | None:
        # The provider already rotated the refresh token: dropping its answer because the
        # store is briefly locked would lose the grant, so keep trying while the lease holds.
        try:
            return self.store.patiently(
                lambda: self.store.put_token(
                    self.alias, key, data, provider=self.provider, expect_version=version
                ),
                _LEASE_TTL / 2,
            )
        except StoreLockedError:
            raise StoreLockedError(
                f"The provider issued a new token for {key!r}, but the token store "
                f"{self.store.path} stayed locked by another process, so it was lost",
                hint="End the process holding the store, then authorize again: "
                "client.get_user_authorization_url().",
            ) from None

    def refresh_after_rejection(self, user: UserLike, used: AuthData) -> AuthData | None:
        """After an API answered 401 to ``used``: the newer stored token, or a refreshed one, or None."""
        key = resolve_user(user)
        record = self._stored(key)
        if record is None:
            return None
        if record.data.token != used.token:
            return record.data
        if not record.data.refresh_token:
            return None
        return self._refresh(key, record)

    def revoke_user_access_token(self, user: UserLike = None) -> bool:
        """Revoke the user's tokens at the provider, then delete them here.

        False when nothing is stored. Without a ``revokeTokenUri`` the token is only deleted
        here. A provider or network failure raises TokenRevokeError and keeps the token.
        """
        key = resolve_user(user)
        record = self._stored(key)
        if record is None:
            return False
        if self.config.revoke_token_uri is None:
            log.warning(
                "%r has no revokeTokenUri: deleting the token here only; it stays valid at "
                "the provider until it expires",
                self.alias,
            )
        else:
            pairs = [
                (record.data.refresh_token, "refresh_token"),
                (record.data.token, "access_token"),
            ]
            for token, hint in pairs:
                if not token:
                    continue
                request = revoke_request(self.config, token=token, token_type_hint=hint)
                response = self._send(request, "Revoking the token", TokenRevokeError)
                if not 200 <= response.status_code < 300:
                    raise parse_error_response(
                        TokenRevokeError,
                        "Revoking the token",
                        response.status_code,
                        response.headers,
                        response.content,
                        request.secrets,
                    )
        self.store.delete_token(self.alias, key)
        log.info("revoked the token for %r at %r", key, self.alias)
        return True

    async def arevoke_user_access_token(self, user: UserLike = None) -> bool:
        """Async twin of :meth:`revoke_user_access_token`."""
        return await asyncio.to_thread(self.revoke_user_access_token, user)

    # conveniences ------------------------------------------------------------------------

    def auth(self, user: UserLike = None) -> OAuth2Auth:
        """An ``httpx.Auth`` that sends the user's bearer token and refreshes it when needed."""
        from .auth import OAuth2Auth

        return OAuth2Auth(self, resolve_user(user))

    def panel(self, user: UserLike = None) -> Any:
        """The ipywidgets panel for ``user``: link, token details, Refresh and Revoke."""
        from .widgets import OAuth2Panel

        return OAuth2Panel(self, user)


def create_oauth2_client(
    config: Mapping[str, Any] | ProviderConfig,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    client_auth_method: str | None = None,
    redirect_uri: str | None = None,
    mode: Mode = "auto",
    store: Store | None = None,
    timeout: float = 10.0,
    leeway: float = 30.0,
    flow_ttl: float = DEFAULT_FLOW_TTL,
    loopback_port: int = 0,
    allow_insecure_http: bool = False,
    transport: httpx.BaseTransport | None = None,
    store_key: str | None = None,
) -> OAuth2Client:
    """Create an OAuth2 client from the seed's config dict (or snake_case keys).

    Args:
        config: ``alias``, ``authUri``, ``accessTokenUri`` and optionally ``refreshTokenUri``,
            ``revokeTokenUri``, ``defaultScopes``, ``authUriParams``, ``authorizationCallback``.
        client_id: the client id; else ``CHAT_OAUTH2_<ALIAS>_CLIENT_ID`` from the environment.
        client_secret: the client secret; else ``CHAT_OAUTH2_<ALIAS>_CLIENT_SECRET``.
        client_auth_method: ``client_secret_basic`` (default with a secret),
            ``client_secret_post`` or ``none`` (public client, PKCE only).
        redirect_uri: the redirect URI registered at the provider; wins over detection.
        mode: ``auto`` (Jupyter server if reachable, else loopback), ``jupyter`` or ``loopback``.
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
    """
    cfg = ProviderConfig.from_mapping(
        config
        if not isinstance(config, ProviderConfig)
        else config.to_mapping(include_secret=True),
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
        store_key=store_key,
    )

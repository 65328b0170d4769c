"""The Python API: the Rocket.Chat Apps-Engine OAuth2 client, in Python, done safely.

Sync methods do plain blocking I/O (httpx.Client) so they work inside a running kernel,
whose asyncio loop we never touch; each ``a``-prefixed twin runs its sync sibling in a
worker thread. Tokens are the client's grants' (:mod:`chat_oauth2_nb.lifecycle.grants`):
its own, with the client secret, or the Jupyter server's for a provider declared there.
The other work is done by named parts (docs/ARCHITECTURE.md): ``ways``, ``authorizations``
and ``device`` in :mod:`chat_oauth2_nb.kernel`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from ..config import (
    ProviderConfig,
    check_redirect_uri,
    provider_identity,
    require_authentication,
    resource_argument,
)
from ..errors import (
    ConfigurationError,
    NotAuthorizedError,
    OAuth2Error,
    did_you_mean,
)
from ..kernel.authorizations import Authorizations, AuthorizationURL
from ..kernel.device import DeviceFlows
from ..kernel.flows import Waiter
from ..kernel.httplog import HttpLog
from ..kernel.paste import finish_pasted
from ..kernel.users import UserLike, resolve_user
from ..kernel.ways import Mode, Ways, check_mode
from ..lifecycle.grants import Connections, Grants, digest, nothing_stored, revoke_advice
from ..lifecycle.local import LocalGrants
from ..lifecycle.remote import Holder, RemoteGrants
from ..oauth import (
    AuthData,
    DeviceAuthorization,
    HttpExchange,
)
from ..routes import (
    CALLBACK_PATH,
    START_PATH,
)
from ..store import (
    DEFAULT_FLOW_TTL,
    FlowOrigin,
    PendingFlow,
    Store,
    TokenRecord,
    open_store,
)
from ._resources import ResourceMethods

if TYPE_CHECKING:
    import requests
    from google.oauth2.credentials import Credentials as GoogleCredentials

    from ..doctor import Report, Subject
    from ..kernel.auth import OAuth2Auth

__all__ = [
    "CALLBACK_PATH",
    "CLIENT_CREDENTIALS_USER",
    "START_PATH",
    "AuthorizationURL",
    "HttpExchange",
    "OAuth2Client",
    "UserLike",
    "create_oauth2_client",
    "resolve_user",
]

log = logging.getLogger("chat_oauth2_nb")

#: Under which name a client credentials token is stored: it is the client's, no person's.
CLIENT_CREDENTIALS_USER = "(client)"


class OAuth2Client(ResourceMethods):
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
        mode = check_mode(mode)
        _check_options(store, store_key, timeout=timeout, flow_ttl=flow_ttl, leeway=leeway)
        # A ProviderConfig checked its fields when it was built; this client's http rule and
        # the secret its client authentication sends are checked here.
        self.config = config.checked(allow_insecure_http=allow_insecure_http)
        if redirect_uri is not None:
            # An explicit redirect URI is honoured exactly, so it is checked here, once.
            redirect_uri = check_redirect_uri(redirect_uri, allow_insecure_http)
        self.mode = mode
        self.timeout = timeout
        self.leeway = leeway
        #: Seconds a new authorization link stays valid.
        self.flow_ttl = flow_ttl
        self.loopback_port = loopback_port
        self._store = store
        self._store_key = store_key
        self._transport = transport
        self._lock = threading.Lock()
        # Identifies this client instance in the flows it starts (shared store, many kernels).
        self._ref = uuid.uuid4().hex
        self._closed = threading.Event()
        #: The latest exchanges with the provider, secrets masked (``client.http_log[-6:]``).
        self.http_log = HttpLog(http_log_size)
        self._connections = Connections(timeout, transport=transport, record=self.http_log.append)
        #: Exchange, refresh, revoke, introspect: with this client's secret, or asking the
        #: ``holder`` of it (the Jupyter server, for a provider declared there).
        self.grants: Grants = (
            LocalGrants(self.config, self._store_now, connections=self._connections, leeway=leeway)
            if holder is None
            else RemoteGrants(
                self.config, self._store_now, holder=holder, timeout=timeout, leeway=leeway
            )
        )
        # The named parts this façade is composed of (docs/ARCHITECTURE.md).
        self.ways = Ways(
            self.config,
            mode=mode,
            redirect_uri=redirect_uri,
            loopback_port=loopback_port,
            timeout=timeout,
            store=self._store_now,
        )
        self.authorizations = Authorizations(
            self.config,
            store=self._store_now,
            ways=self.ways,
            stored=self._stored,
            client_ref=self._ref,
            flow_ttl=lambda: self.flow_ttl,
            http_log=self.http_log,
            closed=self._closed,
        )
        self.device = DeviceFlows(
            self.config,
            store=self._store_now,
            send=self._connections.call,
            authorizations=self.authorizations,
            save_token=lambda key, data: self.grants.keep(key, data),
            timeout=timeout,
        )

    def __repr__(self) -> str:
        return (
            f"<OAuth2Client alias={self.config.alias!r} client_id={self.config.client_id!r} "
            f"redirect_uri={self.redirect_uri!r}>"
        )

    @property
    def alias(self) -> str:
        """The provider's alias."""
        return self.config.alias

    def _store_now(self) -> Store:
        return self.store

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
        return self._stored(_owner(self.config, user))

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
        return self.ways.redirect_uri

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
            fresh = self.ways.way is None
            uri = self.ways.choose()
        if fresh:
            _note_way(self)
        return uri

    async def asetup(self) -> str:
        """Async twin of :meth:`setup`."""
        return await asyncio.to_thread(self.setup)

    @property
    def way(self) -> str | None:
        """How this client authorizes once setup() ran: jupyter, loopback, device or paste."""
        return self.ways.way

    @property
    def way_reason(self) -> str | None:
        """Why setup() chose :attr:`way`, in one sentence."""
        return self.ways.reason

    def close(self) -> None:
        """Stop the loopback server (if any), flow watchers and HTTP connections."""
        self._closed.set()
        self.ways.release()
        self._connections.close()

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
        key = _person(self.config, user, "an authorization flow")
        redirect = self.redirect_uri if self.way else self.setup()
        assert redirect is not None
        if self.way == "device":
            raise ConfigurationError(
                "mode",
                "is 'device', which has no authorization link",
                "Call client.start_device_authorization(), or show client.panel().",
            )
        endpoint = self.ways.endpoint_for(redirect)
        return self.authorizations.record(key, scopes, redirect, endpoint, origin)

    def start_link(self, flow: PendingFlow) -> AuthorizationURL:
        """The link (start URL, with its provider URL) of a pending flow this client can serve."""
        return self.authorizations.link(flow)

    async def aget_user_authorization_url(
        self, user: UserLike = None, scopes: str | Iterable[str] | None = None
    ) -> AuthorizationURL:
        """Async twin of :meth:`get_user_authorization_url`."""
        return await asyncio.to_thread(self.get_user_authorization_url, user, scopes)

    def note_flow_exchange(self, flow: PendingFlow) -> None:
        """Add the code exchange the callback made for ``flow`` to :attr:`http_log`, once."""
        self.authorizations.note_exchange(flow)

    def _waiter(self, user: UserLike, timeout: float) -> Waiter:
        return self.authorizations.waiter(
            resolve_user(user), timeout, self.poll_device_authorization
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
        key = _person(self.config, user, "the device authorization grant")
        self.grants.needs_secret("The device authorization grant")
        return self.device.start(key, scopes)

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
        self.device.poll(flow)

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
        key = resolve_user(user)
        finish_pasted(
            self.store,
            url_or_query,
            config=self.config,
            user=key,
            timeout=self.timeout,
            seen=self.note_flow_exchange,
        )
        data = self.authorizations.token_of(key)
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
        key = resolve_user(user)
        return self.authorizations.record(key, scopes, self.ways.paste_uri(), "paste", origin)

    # tokens ------------------------------------------------------------------------------

    def get_access_token_for_user(self, user: UserLike = None) -> AuthData | None:
        """The user's token, refreshed if stale; None if never authorized (GrantRevokedError: dead)."""
        return _data(self.grants.token(_owner(self.config, user)))

    async def aget_access_token_for_user(self, user: UserLike = None) -> AuthData | None:
        """Async twin of :meth:`get_access_token_for_user`."""
        return await asyncio.to_thread(self.get_access_token_for_user, user)

    def refresh_user_access_token(self, user: UserLike = None) -> AuthData:
        """Refresh the user's token now (joining a refresh already in flight); return it.

        Raises NotAuthorizedError when nothing is stored, TokenRefreshError when no refresh
        token is (some providers only issue one when asked) or the provider refused.
        """
        key = _owner(self.config, user)
        return _data_or_raise(self.grants.refresh(key), key, self.alias)

    async def arefresh_user_access_token(self, user: UserLike = None) -> AuthData:
        """Async twin of :meth:`refresh_user_access_token`."""
        return await asyncio.to_thread(self.refresh_user_access_token, user)

    def refresh_after_rejection(self, user: UserLike, used: AuthData) -> AuthData | None:
        """After an API answered 401 to ``used``: the newer stored token, or a refreshed one, or None."""
        have = digest(used.token)
        return _data(self.grants.refresh(_owner(self.config, user), have=have, optional=True))

    def refused_after_refresh(self, user: UserLike, used: AuthData) -> None:
        """The API refused ``used`` too, right after a 401 refreshed it: end the grant here."""
        self.grants.refused(_owner(self.config, user), digest(used.token))

    def revoke_user_access_token(self, user: UserLike = None) -> bool:
        """Revoke the user's tokens at the provider, then delete them here.

        False when nothing is stored. Without a ``revokeTokenUri`` the token is only deleted
        here (Microsoft has no revocation endpoint): the log, and :meth:`revoke_advice`, say
        where the person can remove the app's access at the provider. The request follows
        ``revokeStyle``: RFC 7009 for each token, Google's single ``token``, or GitHub's
        ``DELETE /applications/{client_id}/token``. A provider or network failure raises
        TokenRevokeError and keeps the token.
        """
        return self.grants.revoke(_owner(self.config, user))

    def revoke_advice(self) -> str | None:
        """Why the kit cannot revoke at the provider, and where a person does it (or None)."""
        return revoke_advice(self.config, secret_elsewhere=self.held_elsewhere)

    async def arevoke_user_access_token(self, user: UserLike = None) -> bool:
        """Async twin of :meth:`revoke_user_access_token`."""
        return await asyncio.to_thread(self.revoke_user_access_token, user)

    def introspect_user_token(self, user: UserLike = None) -> dict[str, Any]:
        """Ask the provider whether the user's access token is still active (RFC 7662).

        Returns what the provider says (``active``, ``scope``, ``exp``, ``client_id``…) with
        no token in it; ``{"active": False}`` means revoked or expired there, whatever the
        store says. Needs ``introspectionUri`` in the config.
        """
        return self.grants.introspect(_owner(self.config, user))

    async def aintrospect_user_token(self, user: UserLike = None) -> dict[str, Any]:
        """Async twin of :meth:`introspect_user_token`."""
        return await asyncio.to_thread(self.introspect_user_token, user)

    # conveniences ------------------------------------------------------------------------

    def auth(self, user: UserLike = None) -> OAuth2Auth:
        """An ``httpx.Auth`` that sends the user's bearer token and refreshes it when needed."""
        from ..kernel.auth import OAuth2Auth

        return OAuth2Auth(self, _owner(self.config, user))

    def requests_auth(self, user: UserLike = None) -> requests.auth.AuthBase:
        """A ``requests`` auth (``requests.get(url, auth=...)``) that refreshes like :meth:`auth`."""
        from ..kernel.adapters import requests_auth

        return requests_auth(self, _owner(self.config, user))

    def google_credentials(self, user: UserLike = None) -> GoogleCredentials:
        """google-auth ``Credentials`` (token and expiry only) that refresh through this client."""
        from ..kernel.adapters import google_credentials

        return google_credentials(self, _owner(self.config, user))

    def _key(self, user: UserLike) -> str:
        """Under which name the token is stored: ``user``'s, or the client's own."""
        return _owner(self.config, user)

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

        return diagnose(_subject_of(self), user)

    async def adiagnose(self, user: UserLike = None) -> Report:
        """Async twin of :meth:`diagnose`."""
        return await asyncio.to_thread(self.diagnose, user)


def _owner(config: ProviderConfig, user: UserLike) -> str:
    """Whose token: ``user``'s, or with the client credentials grant the client's own."""
    if config.grant == "client_credentials":
        return CLIENT_CREDENTIALS_USER
    return resolve_user(user)


def _person(config: ProviderConfig, user: UserLike, what: str) -> str:
    """``user``'s store key; refuses ``what`` (a flow) for a client credentials client."""
    if config.grant == "client_credentials":
        raise ConfigurationError(
            "grant",
            f"is 'client_credentials', which has no person to authorize, so {what} does not apply",
            "Call client.get_access_token_for_user() (or use client.auth()): the client "
            "gets its own token, renewed when it expires.",
        )
    return resolve_user(user)


_WAY_WORDS = {
    "loopback": "a one-time listener on 127.0.0.1 in this kernel (the loopback way)",
    "device": "a device code typed at the provider (the device way)",
    "paste": "pasting back the address the browser ends on (the paste way)",
}


def way_note(client: OAuth2Client) -> str | None:
    """One line on the way ``mode='auto'`` chose and why, unless it is the Jupyter callback."""
    if client.mode != "auto" or client.way not in _WAY_WORDS:
        return None
    others = ", ".join(f"'{m}'" for m in ("jupyter", "loopback", "device", "paste"))
    return (
        f"chat_oauth2_nb: {client.alias!r} authorizes by {_WAY_WORDS[client.way]}, as no "
        f"Jupyter server with the chat_oauth2_nb extension runs this kernel. "
        f"{client.way_reason} Pass mode= ({others}) to create_oauth2_client() to choose."
    )


def _note_way(client: OAuth2Client) -> None:
    """Say in the notebook (a kernel's output) which way auto chose and why: else it is silent."""
    note = way_note(client)
    if note is None:
        return
    ipython = sys.modules.get("IPython")  # never imported here for this: only if in use
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or not hasattr(shell, "kernel"):
        return  # not a notebook's kernel: the log line (ways.py) says it
    from IPython.display import display

    display({"text/plain": note}, raw=True)  # type: ignore[no-untyped-call]


def _subject_of(client: OAuth2Client) -> Subject:
    """What the doctor examines of ``client``: its config, redirect URI, transport and tokens."""
    from ..doctor import Subject

    redirect_uri = client.redirect_uri if client.way is not None else client.setup()
    return Subject(
        client.config,
        redirect_uri,
        timeout=client.timeout,
        transport=client.transport,
        stored_token=client.stored_token,
        log=client.http_log.append,
    )


def _check_options(
    store: Store | None, store_key: str | None, *, timeout: float, flow_ttl: float, leeway: float
) -> None:
    """Refuse option values no client can work with, saying what to give instead."""
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


def _config_of(
    config: Mapping[str, Any] | ProviderConfig | str,
    preset_params: dict[str, Any],
    **credentials: Any,
) -> ProviderConfig:
    """The provider config a preset name, a mapping or a ProviderConfig stands for."""
    if isinstance(config, str):
        from ..presets import PRESETS, unknown_preset
        from ..presets import config as preset_config

        if config not in PRESETS:
            raise unknown_preset(config, *_declared_names())
        config = preset_config(config, **preset_params)
    return require_authentication(ProviderConfig.from_mapping(config, **credentials))


def _declared_names() -> tuple[list[str], str]:
    """The aliases declared on this kernel's Jupyter server (for a suggestion), and where."""
    from ..kernel.declared import providers, server_holder

    if server_holder() is None:
        return [], ""
    try:
        names = list(providers())
    except OAuth2Error:  # the server is gone: the suggestion is among presets only
        return [], ""
    return names, "on this Jupyter server (c.ChatOAuth2App.providers)"


def _keywords() -> list[str]:
    """create_oauth2_client()'s own keywords (not the preset parameters)."""
    import inspect

    params = inspect.signature(create_oauth2_client).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _check_keywords(config: object, preset_params: Mapping[str, Any]) -> None:
    """Refuse a keyword that is neither create_oauth2_client()'s nor the preset's, with a guess."""
    from ..presets import PRESETS, preset_parameters

    if not preset_params or (isinstance(config, str) and config not in PRESETS):
        return  # nothing to check, or the missing preset's own error says more
    accepted = [*preset_parameters(config), "alias"] if isinstance(config, str) else []
    for name in sorted(set(preset_params) - set(accepted)):
        guess = did_you_mean(name, _keywords(), suffix="=")
        if accepted and not guess:
            continue  # the preset's error names its parameters (and the closest)
        problem = "is not a keyword of create_oauth2_client()"
        if accepted:
            problem = f"is neither a keyword of create_oauth2_client() nor of the {config!r} preset"
        raise ConfigurationError(
            name,
            problem,
            guess
            or "Put the value into the config dict itself; preset parameters such as "
            "tenant= go with a preset name such as 'microsoft' as config.",
            label="Keyword argument",
        )


def _bound_to(
    cfg: ProviderConfig, dpop: bool | None, resource: str | Sequence[str] | None
) -> ProviderConfig:
    """``cfg`` with the ``dpop=`` and ``resource=`` arguments (None: the config's own)."""
    if dpop is None and resource is None:
        return cfg
    return dataclasses.replace(
        cfg,
        dpop=cfg.dpop if dpop is None else dpop,
        resource=cfg.resource if resource is None else resource_argument(resource),
    )


def create_oauth2_client(
    config: Mapping[str, Any] | ProviderConfig | str,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    client_auth_method: str | None = None,
    client_key: str | os.PathLike[str] | None = None,
    grant: str | None = None,
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
    dpop: bool | None = None,
    resource: str | Sequence[str] | None = None,
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
            ``client_secret_post``, ``private_key_jwt`` (default with ``client_key``: a
            private key file's path, never its text) or ``none``; see docs/grants.md.
        grant: ``authorization_code`` (default) or ``client_credentials`` (no person).
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
        store_key: seal tokens, PKCE verifiers and the client secret in the store (AES-GCM,
            ``chat_oauth2_nb.store.new_store_key()``); else ``CHAT_OAUTH2_NB_STORE_KEY`` or
            ``keyring``. The Jupyter server needs the same key in its environment.
        dpop, resource: DPoP-bound tokens; their resource URI(s) (docs/dpop-and-resources.md).

    Returns:
        An :class:`OAuth2Client`; call ``setup()`` then ``get_user_authorization_url()``.

    Raises:
        ConfigurationError: a field is missing or malformed; the message says what to put.

    Example:
        >>> client = create_oauth2_client(provider.config(), client_id=..., client_secret=...)
        >>> client = create_oauth2_client("microsoft", tenant="contoso.onmicrosoft.com")
    """
    _check_keywords(config, preset_params)
    # What a declared provider's client takes too; the rest is for the person's own client.
    common: dict[str, Any] = dict(redirect_uri=redirect_uri, mode=mode, store=store)
    common.update(timeout=timeout, leeway=leeway, flow_ttl=flow_ttl, store_key=store_key)
    if isinstance(config, str) and not (client_id or client_secret or client_key):
        # A provider the administrator declared on this Jupyter server (no credentials given).
        declared = _declared_client(config, preset_params, **common)
        if declared is not None:
            return declared
    credentials = dict(client_id=client_id, client_secret=client_secret, client_key=client_key)
    credentials.update(client_auth_method=client_auth_method, grant=grant)
    cfg = _config_of(config, preset_params, **credentials, allow_insecure_http=allow_insecure_http)
    cfg = _bound_to(cfg, dpop, resource)
    own: dict[str, Any] = dict(loopback_port=loopback_port, transport=transport)
    return OAuth2Client(cfg, allow_insecure_http=allow_insecure_http, **own, **common)

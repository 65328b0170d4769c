"""The authorizations one client starts, follows and waits for (a part of the client façade).

Each flow is recorded in the store (docs/ARCHITECTURE.md: nothing about a flow lives only in
one process); this part remembers which flow a ``wait_for_authorization()`` follows, adds
the callback's code exchange to the client's HTTP log once, and runs the config's
``authorizationCallback`` when a flow it started succeeds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..config import ProviderConfig, scopes_argument
from ..errors import NotAuthorizedError, OAuth2Error, StateError
from ..oauth import AuthData, HttpExchange
from ..store import FlowEndpoint, FlowOrigin, PendingFlow, Store, TokenRecord
from .flows import POLL_INTERVAL, Waiter, belongs_to, new_flow, provider_url, read_outcome
from .httplog import HttpLog

if TYPE_CHECKING:
    from .ways import Ways

__all__ = ["AuthorizationURL", "Authorizations"]

log = logging.getLogger("chat_oauth2_nb")


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

    def open(self) -> bool:
        """Open this link in the browser without putting it on a command line (see opener.py).

        ``webbrowser.open(link)`` would show it to every local user (``ps``), and whoever
        opens a start link first holds its authorization. True when a browser was started.
        """
        from .opener import open_in_browser

        return open_in_browser(str(self))


class Authorizations:
    """Start, link, follow and wait for one client's flows."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        store: Callable[[], Store],
        ways: Ways,
        stored: Callable[[str], TokenRecord | None],
        client_ref: str,
        flow_ttl: Callable[[], float],
        http_log: HttpLog,
        closed: threading.Event,
    ) -> None:
        self.config = config
        self.ref = client_ref
        self._flow_ttl = flow_ttl  # read at each flow: client.flow_ttl may change
        self._store = store
        self._ways = ways
        self._stored = stored
        self._http_log = http_log
        self._closed = closed
        self._lock = threading.Lock()
        self._latest_state: dict[str, str] = {}
        self._noted_exchanges: set[str] = set()

    def follow(self, key: str, state: str) -> None:
        """Make ``state`` the flow that ``wait_for_authorization(key)`` waits for."""
        self._latest_state[key] = state

    def record(
        self,
        key: str,
        scopes: str | Iterable[str] | None,
        redirect: str,
        endpoint: FlowEndpoint,
        origin: FlowOrigin,
    ) -> tuple[PendingFlow, AuthorizationURL]:
        """Record a new flow for ``key`` in the store; return it with the link to open."""
        flow = new_flow(
            self.config,
            user=key,
            redirect_uri=redirect,
            scopes=self.wanted(key, scopes),
            origin=origin,
            client_ref=self.ref,
            endpoint=endpoint,
            ttl=self._flow_ttl(),
        )
        self._store().add_flow(flow)
        if origin == "code":
            self.follow(key, flow.state)
        if self.config.authorization_callback is not None:
            threading.Thread(
                target=self._watch, args=(flow,), name="chat-oauth2-watch", daemon=True
            ).start()
        return flow, self.link(flow)

    def wanted(self, key: str, scopes: str | Iterable[str] | None) -> tuple[str, ...]:
        """The scopes a new grant for ``key`` asks for: defaults, what it holds on an upgrade, ``scopes``."""
        asked = scopes_argument(scopes)
        return tuple(
            dict.fromkeys((*self.config.default_scopes, *self._granted(key, asked), *asked))
        )

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
        except NotAuthorizedError:
            # Another provider's token, or a dead grant: the new grant replaces it.
            return ()
        return record.data.scopes if record is not None else ()

    def link(self, flow: PendingFlow) -> AuthorizationURL:
        """The link (start URL, with its provider URL) of a pending flow this client can serve."""
        if flow.start_id is None:
            raise StateError(
                "This flow has no start link", hint="Get a fresh one: get_user_authorization_url()."
            )
        if not belongs_to(flow, self.config):
            # Its start link would send the browser to the provider that flow was started
            # with (and its client id), not to this client's.
            raise StateError(
                f"This flow was started for another provider under the alias {self.config.alias!r}",
                hint="Get a fresh link for this provider: get_user_authorization_url().",
            )
        at_provider = provider_url(self.config, flow)
        if flow.endpoint == "paste":
            # Nothing serves the redirect URI, so no start page can bind a browser: the
            # person pasting the address back is the binding.
            return AuthorizationURL(at_provider, at_provider, flow.start_id)
        return AuthorizationURL(self._ways.start_url(flow), at_provider, flow.start_id)

    def note_exchange(self, flow: PendingFlow) -> None:
        """Add the code exchange the callback made for ``flow`` to the HTTP log, once."""
        if flow.exchange is None:
            return
        with self._lock:
            if flow.state in self._noted_exchanges:
                return
            self._noted_exchanges.add(flow.state)
        self._http_log.append(HttpExchange(**flow.exchange))

    def token_of(self, key: str) -> AuthData | None:
        """The token stored for ``key`` (this provider's only), or None."""
        record = self._stored(key)
        return record.data if record else None

    def _watch(self, flow: PendingFlow) -> None:
        # Runs in a daemon thread: calls authorizationCallback once the flow succeeded.
        store = self._store()
        while True:
            try:
                outcome = read_outcome(store, flow, self.token_of, self.note_exchange)
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
                log.exception("authorizationCallback for %r raised", self.config.alias)

    def waiter(
        self, key: str, timeout: float, step: Callable[[PendingFlow], None] | None
    ) -> Waiter:
        """A wait for the flow ``key``'s latest link started (``step`` polls a device flow)."""
        store = self._store()
        state = self._latest_state.get(key)
        # Only flows this client instance started: another kernel's (or notebook's) flow for
        # the same alias and user is not what this caller asked for.
        flow = (
            store.get_flow(state)
            if state
            else store.latest_flow(self.config.alias, key, client_ref=self.ref)
        )
        if flow is None:
            raise NotAuthorizedError(
                f"No authorization was started for {key!r} at {self.config.alias!r}",
                hint="Call client.get_user_authorization_url() and open the link first.",
            )
        return Waiter(
            store,
            flow,
            client_ref=self.ref,
            token_of=self.token_of,
            seen=self.note_exchange,
            stopped=self._closed,
            timeout=timeout,
            step=step if flow.origin == "device" else None,
        )

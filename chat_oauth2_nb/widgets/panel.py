"""The notebook panel: authorize one (provider, user), watch the token, refresh or revoke it.

The browser's callback lands in the Jupyter server process and writes the shared store, so
the panel learns about it from the process's one shared store watcher (``_threads``), which
wakes it only when the store changed. Time alone changes a panel only at moments it knows in
advance (a link expires, a device code is due a poll): the process's one alarm clock
(``_clock``) wakes it then. The live countdowns are drawn by the browser (``_views``).

The panel is a view: it looks at the store, lets the pure flow logic (``flow``) decide the
next :class:`PanelState`, does the one thing that logic asks for, and renders every widget
value from that state (the HTML comes from ``render``). Secrets stay in Python memory of the
kernel and never become a widget trait, because widget state can be saved into the .ipynb.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ipywidgets as widgets
import traitlets

from ..errors import NotAuthorizedError, OAuth2Error
from ..kernel.flows import belongs_to
from ..kernel.users import UserLike, resolve_user
from ..oauth import utcnow
from . import flow, render
from ._client import PanelClient
from ._clock import Alarm
from ._parts import PanelParts
from ._threads import ActionRunner, Subscription, start_worker, watch_store
from ._view import close_tree
from .state import ErrorInfo, PanelState, ReportRow, ReportView, Status, expiry_text

__all__ = ["OAuth2Panel"]

log = logging.getLogger("chat_oauth2_nb")

_KNOWN_SECRETS = 32
# How long a redirect link may stay opened without a callback before other ways are offered.
FALLBACK_AFTER = 60.0
# Effects change the store and are followed by another look: an expired device code needs
# one more, so a bound this size is never reached while the store records what it is told.
_LOOKS = 3


class OAuth2Panel(widgets.VBox):  # type: ignore[misc]  # ipywidgets ships no type hints
    """The ipywidgets panel for one provider and user: link, status, token, Refresh, Revoke, HTTP log."""

    status = traitlets.Unicode(
        Status.NOT_CONFIGURED.value,
        read_only=True,
        help="What the panel says now: one of the Status values, e.g. 'authorized'. Observe it.",
    )

    def __init__(
        self,
        client: PanelClient,
        user: UserLike = None,
        *,
        fallback_after: float = FALLBACK_AFTER,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.add_class("chat-oauth2-panel")
        self._client = client
        self._user = user
        self._lock = threading.RLock()
        self._closed = False
        # Secrets seen in the store, kept only to mask them out of the HTTP log once more.
        self._known_secrets: deque[str] = deque(maxlen=_KNOWN_SECRETS)
        self._log_key: tuple[int, float] | None = None
        self._fallback_after = fallback_after
        # A pasted address holds a one-time code: it lives here (kernel memory) from the
        # moment it is read until Finish, never in the text field's synced value.
        self._pasted: str | None = None
        # Device code: the panel is often the only waiter, so it polls (one poll at a time).
        self._polling = False
        # A Finish pressed while another action ran: it runs when that one ends.
        self._finish_queued = False
        self._alarm = Alarm(self._on_clock, "chat-oauth2-panel")
        self._parts = PanelParts.build()
        # In-kernel tests read the provider's details by name.
        self._provider = self._parts.details.provider
        self.children = self._parts.children
        self.layout.max_width = "46em"
        self.layout.border = "1px solid var(--jp-border-color2, #d0d7de)"
        self.layout.padding = "6px 10px"
        self._wire()
        self._runner = ActionRunner(
            self._lock,
            lambda: self._closed,
            thread_prefix="chat-oauth2-panel",
            on_worker_end=self._close_connection,
        )
        self._state = self._initial_state()
        self._key = self._state.user
        with self._lock:
            self._tick_once()
            self._first_code()
        self._watch: Subscription | None = None
        if self._state.config_problem is None:
            self._watch = watch_store(
                self._client.store.path,
                on_change=self._on_tick,
                on_end=self._close_connection,
                name="chat-oauth2-panel",
            )

    def _wire(self) -> None:
        card, ways, details = self._parts.card, self._parts.ways, self._parts.details
        card.refresh.on_click(self._on_refresh)
        card.revoke.on_click(self._on_revoke)
        card.confirm.on_click(self._on_confirm_revoke)
        card.cancel.on_click(self._on_cancel_revoke)
        card.again.on_click(self._on_again)
        card.show_link.on_click(self._on_show_link)
        details.claims_toggle.observe(self._on_claims_toggle, names="value")
        details.check.on_click(self._on_check)
        ways.new_code.on_click(self._on_new_code)
        ways.paste.observe(self._on_paste_value, names="value")
        ways.finish.on_click(self._on_finish)
        ways.use_paste.on_click(self._on_use_paste)
        ways.use_code.on_click(self._on_use_code)

    # state -------------------------------------------------------------------------------

    def _initial_state(self) -> PanelState:
        client = self._client
        config = client.config
        problem: str | None = None
        key = "?"
        declared = client.held_elsewhere
        try:
            key = resolve_user(self._user)
            if client.redirect_uri is None:
                client.setup()
        except OAuth2Error as exc:
            problem = str(exc)
        except OSError as exc:
            problem = f"Cannot start the redirect listener ({exc.strerror or type(exc).__name__})"
        return PanelState(
            alias=config.alias,
            user=key,
            auth_uri=config.auth_uri,
            token_uri=config.access_token_uri,
            requested_scopes=tuple(config.default_scopes),
            redirect_uri=client.redirect_uri,
            config_problem=problem,
            way=client.way,
            # The device grant needs the client secret, which a declared provider's kernel lacks.
            device_endpoint=config.device_authorization_uri is not None and not declared,
            declared=declared,
        )

    @property
    def state(self) -> PanelState:
        """The state the panel shows now (a frozen snapshot without secrets)."""
        return self._state

    @property
    def _timer_alive(self) -> bool:
        return self._watch is not None and self._watch.alive

    def _tick_once(self) -> None:
        """Read the store, update the state, render; the caller holds the lock."""
        if self._closed:
            return
        if self._state.config_problem is None:
            try:
                self._state = self._synced(self._state)
            except OAuth2Error as exc:
                self._state = dataclasses.replace(self._state, error=ErrorInfo.from_exception(exc))
        self._render()

    def _synced(self, state: PanelState) -> PanelState:
        """``state`` updated from the store: look, let the flow logic decide, do what it asks."""
        for _ in range(_LOOKS):
            seen = self._look(state)
            if seen.record is not None and flow.is_new_record(state.token, seen.record):
                data = seen.record.data
                self._remember_secrets((data.token, data.refresh_token, data.id_token))
            step = flow.advance(state, seen, time.time())
            state, effect = step.state, step.effect
            if isinstance(effect, flow.ExpireCode):
                # No request: the client only marks the code expired, for every waiter.
                self._client.poll_device_authorization(effect.flow)
                continue
            if isinstance(effect, flow.Adopt):
                url = self._client.start_link(effect.flow)
                return flow.offered(state, flow.flow_link(effect.flow, url, time.time()))
            if isinstance(effect, flow.NewLink):
                return self._with_standby_link(state, effect.paste)
            return state
        return state

    def _look(self, state: PanelState) -> flow.Seen:
        """What the store says now about this (alias, user) and the link on offer."""
        client, store = self._client, self._client.store
        mismatch: ErrorInfo | None = None
        try:
            record = client.stored_token(self._key)
        except NotAuthorizedError as exc:  # another provider's token, or a dead grant
            record, mismatch = None, ErrorInfo.from_exception(exc)
        latest = store.latest_flow(client.alias, self._key)
        if latest is not None and not belongs_to(latest, client.config):
            latest = None  # another provider's flow under this alias: never adopted here
        current = None
        if state.link is not None:
            start_id = state.link.start_id
            current = latest if latest is not None and latest.start_id == start_id else None
            current = current or store.flow_by_start_id(start_id)
            if current is not None:
                client.note_flow_exchange(current)
        return flow.Seen(record, mismatch, current, latest, client.redirect_uri)

    def _with_standby_link(self, state: PanelState, paste: bool) -> PanelState:
        """``state`` offering a new link of the panel's own (not what code in cells follows)."""
        client = self._client
        start = client.start_paste_flow if paste else client.start_flow
        started, url = start(self._key, None, origin="panel")
        link = flow.flow_link(started, url, time.time())
        # Starting a flow may have set the client up (its redirect URI) just now.
        return dataclasses.replace(flow.offered(state, link), redirect_uri=client.redirect_uri)

    def _close_connection(self) -> None:
        # Called on the ending thread: the store keeps one SQLite connection per thread.
        self._client.store.close()

    def _remember_secrets(self, values: Iterable[str | None]) -> None:
        for value in values:
            if value and value not in self._known_secrets:
                self._known_secrets.append(value)

    # events ------------------------------------------------------------------------------

    def _on_tick(self) -> None:
        with self._lock:
            self._tick_once()
            self._poll_if_due()

    def _on_clock(self) -> None:
        """At a moment time changes the panel: re-read the store only when time says so."""
        with self._lock:
            if flow.tick_needs_store(self._state, time.time()):
                # An unused link expired, or an exchange may be stuck: no store change shows it.
                self._tick_once()
            else:
                self._render()
            self._poll_if_due()

    def _first_code(self) -> None:
        """Device way with nothing to show: ask for a code now (the lock is held)."""
        if not flow.wants_first_code(self._state):
            return
        # Here, not on a worker: a code asked for later would become the flow that
        # wait_for_authorization() in the next cell follows, instead of that cell's own.
        try:
            self._client.start_device_authorization(self._key)
        except OAuth2Error as exc:
            self._state = dataclasses.replace(self._state, error=ErrorInfo.from_exception(exc))
        self._tick_once()

    def _poll_if_due(self) -> None:
        """Poll a shown device code's token endpoint on a worker, when due (lock held)."""
        start_id = flow.poll_due(self._state, time.time())
        if self._closed or self._polling or start_id is None:
            return
        self._polling = True
        start_worker(
            lambda: self._poll(start_id), "chat-oauth2-panel-poll", on_stop=self._close_connection
        )

    def _poll(self, start_id: str) -> None:
        # A poll may take the client's whole timeout: never on the shared watcher thread.
        try:
            polled = self._client.store.flow_by_start_id(start_id)
            if polled is not None:
                self._client.poll_device_authorization(polled)
        except Exception as exc:
            log.warning("chat-oauth2-panel: a device poll failed with %s", type(exc).__name__)
        finally:
            with self._lock:
                self._polling = False
                # The poll wrote when the next one is due: read it, and set the alarm by it.
                self._tick_once()

    def _start_code(self) -> None:
        self._start_action("code", self._do_code)

    def _do_code(self) -> str:
        device = self._client.start_device_authorization(self._key)
        return f"Enter {device.user_code} at the provider."

    def _on_new_code(self, _button: widgets.Button) -> None:
        self._start_code()

    def _on_use_code(self, _button: widgets.Button) -> None:
        with self._lock:
            switched = flow.switch_way(self._state, "device")
            if switched is None:
                return
            self._state = switched
        self._start_code()

    def _on_use_paste(self, _button: widgets.Button) -> None:
        with self._lock:
            switched = flow.switch_way(self._state, "paste")
            if switched is None:
                return
            self._state = switched
            self._tick_once()  # a new paste-back link: a store write, no request

    def _on_show_link(self, _button: widgets.Button) -> None:
        with self._lock:
            self._state = flow.show_link(self._state, time.time())
            self._render()

    def _on_paste_value(self, change: dict[str, Any]) -> None:
        value = str(change["new"] or "").strip()
        if not value:
            return
        with self._lock:
            self._pasted = value
            # Out of the synced trait at once: widget state can be saved into the .ipynb.
            self._parts.ways.paste.value = ""
            self._state = flow.paste_received(self._state, value)
            self._render()

    def _on_finish(self, _button: widgets.Button) -> None:
        with self._lock:
            pasted, self._pasted = self._pasted, None
            if not pasted:
                self._state = flow.nothing_pasted(self._state)
                self._render()
                return
            self._remember_secrets(parse_qs(urlsplit(pasted).query).get("code", ()))
            link = self._state.link
            start_id = link.start_id if link is not None else None
        if not self._runner.start(
            "paste",
            lambda: self._do_paste(pasted),
            begin=self._begin_action,
            finish=lambda _name, outcome, error: self._finish_paste(start_id, outcome, error),
        ):
            with self._lock:
                # Busy: keep the address, and finish with it once the running action ends.
                self._pasted = self._pasted or pasted
                self._finish_queued = not self._closed
                self._state = flow.finish_queued(self._state)
                self._render()

    def _run_queued_finish(self) -> None:
        """After an action ended (lock held): the Finish pressed meanwhile, if any."""
        if self._finish_queued and not self._closed:
            self._finish_queued = False
            self._on_finish(None)

    def _do_paste(self, pasted: str) -> str:
        self._client.complete_authorization(pasted, self._key)
        return "Authorized from the pasted address."

    def _finish_paste(self, start_id: str | None, outcome: str, error: ErrorInfo | None) -> None:
        # The flow of the link offered at Finish, read after the watcher may have moved on.
        state = dataclasses.replace(self._state, error=None)
        try:
            state = self._synced(state)
            used = self._client.store.flow_by_start_id(start_id) if start_id else None
        except OAuth2Error as exc:
            state, used = dataclasses.replace(state, error=ErrorInfo.from_exception(exc)), None
        self._state = flow.pasted(state, outcome, error, used)
        self._render()
        self._run_queued_finish()

    def _on_claims_toggle(self, _change: dict[str, Any]) -> None:
        with self._lock:
            self._render()

    def _on_check(self, _button: widgets.Button) -> None:
        self._start_action("check", self._do_check)

    def _do_check(self) -> str:
        report = self._client.diagnose(self._key)
        rows = (ReportRow(c.title, c.verdict, c.evidence, c.action) for c in report.checks)
        with self._lock:
            self._state = flow.checked(self._state, ReportView.of(report.summary(), rows))
        return f"Checked the configuration: {report.summary()}."

    def _on_refresh(self, _button: widgets.Button) -> None:
        self._start_action("refresh", self._do_refresh)

    def _on_revoke(self, _button: widgets.Button) -> None:
        with self._lock:
            asking = flow.ask_to_confirm_revoke(self._state)
            if asking is not None:
                self._state = asking
                self._render()

    def _on_confirm_revoke(self, _button: widgets.Button) -> None:
        self._start_action("revoke", self._do_revoke)

    def _on_cancel_revoke(self, _button: widgets.Button) -> None:
        with self._lock:
            self._state = flow.cancel_revoke(self._state)
            self._render()

    def _on_again(self, _button: widgets.Button) -> None:
        with self._lock:
            self._state = flow.authorize_again(self._state)
            self._render()

    def _do_refresh(self) -> str:
        data = self._client.refresh_user_access_token(self._key)
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        return f"Refreshed at {stamp}: the new token {expiry_text(data.expires_at, utcnow())}."

    def _do_revoke(self) -> str:
        if not self._client.revoke_user_access_token(self._key):
            return "Nothing was stored, so nothing was revoked."
        advice = self._client.revoke_advice()
        if advice is not None:  # no revokeTokenUri, or GitHub without the client secret
            return (
                "Deleted here only: the token stays valid at the provider until it expires. "
                f"{advice}."
            )
        return "Revoked at the provider and deleted here."

    def _start_action(self, name: str, action: Callable[[], str]) -> None:
        self._runner.start(name, action, begin=self._begin_action, finish=self._finish_action)

    def _begin_action(self, name: str, busy_words: str) -> bool:
        busy = flow.begin(self._state, name, busy_words)
        if busy is None:
            return False
        self._state = busy
        self._render()
        return True

    def _finish_action(self, _name: str, outcome: str, error: ErrorInfo | None) -> None:
        try:
            self._state = self._synced(self._state)
        except OAuth2Error as exc:
            error = error or ErrorInfo.from_exception(exc)
        self._state = flow.acted(self._state, outcome, error)
        self._render()
        self._run_queued_finish()

    def close(self) -> None:
        """Leave the store watcher and close the panel with all its child widgets."""
        with self._lock:
            self._closed = True
        self._alarm.cancel()
        if self._watch is not None:
            self._watch.cancel()
        for child in self.children:
            close_tree(child)
        self.layout.close()
        super().close()

    # view --------------------------------------------------------------------------------

    def _render(self) -> None:
        """Put the current state into the widgets (the lock is held by the caller)."""
        if self._closed:
            return
        state, now = self._state, utcnow()
        status = state.status(now)
        parts = self._parts
        parts.card.show(state, status, now)
        if self.status != status.value:
            self.set_trait("status", status.value)
        parts.ways.show(state, now, self._fallback_after)
        parts.details.show(state, sealed=self._sealed())
        if state.config_problem is None:
            self._alarm.set(flow.next_wake(state, now.timestamp(), self._fallback_after))
        entries = list(self._client.http_log)
        key = (len(entries), entries[-1].started_at) if entries else (0, 0.0)
        if key != self._log_key:
            # Only when the log grew: rebuilding hundreds of bodies every tick would be waste.
            self._log_key = key
            secrets = [*self._known_secrets, self._client.config.client_secret]
            parts.details.show_log(entries, secrets)

    def _sealed(self) -> str:
        """How the store keeps tokens, in words (the store may fail to open)."""
        try:
            store = self._client.store
            return render.sealed_words(store.encrypted, store.key_source)
        except OAuth2Error:
            return render.sealed_words(None, None)

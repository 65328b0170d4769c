"""The notebook panel: authorize one (provider, user), watch the token, refresh or revoke it.

The browser's callback lands in the Jupyter server process and writes the shared store, so
the panel learns about it from the process's one shared store watcher (``_threads``), which
wakes it only when the store changed, plus once a second for the countdowns. Every widget
value is derived from one
:class:`PanelState` in :meth:`OAuth2Panel._render`; secrets stay in Python memory of the
kernel and never become a widget trait, because widget state can be saved into the .ipynb.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ipywidgets as widgets
import traitlets

from ..errors import OAuth2Error, ProviderMismatchError
from ..kernel.flows import error_from_flow
from ..kernel.users import UserLike, resolve_user
from ..notebook.client import HttpExchange, OAuth2Client
from ..oauth import redact, utcnow
from ..store import PendingFlow
from ._threads import ActionRunner, Subscription, start_worker, watch_store
from ._view import assign, close_tree, error_html, set_status_class, text
from .state import (
    STATUS_WORDS,
    ErrorInfo,
    LinkView,
    PanelState,
    Status,
    TokenView,
    expiry_text,
    fallback_offers,
    status_line,
)

__all__ = ["OAuth2Panel"]

log = logging.getLogger("chat_oauth2_nb")

# A callback that died mid-exchange would leave its flow "exchanging" for ever.
_STUCK_EXCHANGE = 60.0
_KNOWN_SECRETS = 32
# How long a redirect link may stay opened without a callback before other ways are offered.
FALLBACK_AFTER = 60.0
# A declared provider's revoke ends the grant the administrator's service holds: a second
# click within this many seconds confirms it.
CONFIRM_REVOKE_WITHIN = 5.0
# Badge colours, readable as white text on light and dark JupyterLab themes.
_BADGE_COLOURS = {
    Status.NOT_CONFIGURED: "#6e7781",
    Status.NOT_AUTHORIZED: "#57606a",
    Status.WAITING: "#0969da",
    Status.AUTHORIZED: "#1a7f37",
    Status.EXPIRED: "#bc4c00",
    Status.ERROR: "#cf222e",
}


class OAuth2Panel(widgets.VBox):  # type: ignore[misc]  # ipywidgets ships no type hints
    """The ipywidgets panel for one provider and user: link, status, token, Refresh, Revoke, HTTP log."""

    status = traitlets.Unicode(
        Status.NOT_CONFIGURED.value,
        read_only=True,
        help="What the panel says now: one of the Status values, e.g. 'authorized'. Observe it.",
    )

    def __init__(
        self,
        client: OAuth2Client,
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
        self._next_poll_at = 0.0

        # The card: status badge with provider and user, link, expiry, token, buttons.
        self._status = self._html("chat-oauth2-status")
        self._link = self._html("chat-oauth2-link")
        self._expiry = self._html("chat-oauth2-expiry")
        self._bar = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="12em", height="1.1em")
        )
        self._bar.add_class("chat-oauth2-expiry-bar")
        self._expiry_row = widgets.HBox((self._expiry, self._bar))
        self._expiry_row.layout.align_items = "center"
        self._token = self._html("chat-oauth2-token")
        self._token_box = widgets.VBox((self._expiry_row, self._token))
        self._token_box.add_class("chat-oauth2-token-box")
        self._refresh = widgets.Button(description="Refresh", icon="refresh")
        self._refresh.add_class("chat-oauth2-refresh")
        self._revoke = widgets.Button(description="Revoke", icon="trash", button_style="warning")
        self._revoke.add_class("chat-oauth2-revoke")
        self._buttons = widgets.HBox((self._refresh, self._revoke))
        self._outcome = self._html("chat-oauth2-outcome")
        self._error = self._html("chat-oauth2-error")

        # Device code (RFC 8628): the user code is public (made to be read off a screen);
        # the device code is a credential and stays in the store.
        self._user_code = self._html("chat-oauth2-user-code")
        self._verify = self._html("chat-oauth2-verify")
        self._code_expiry = self._html("chat-oauth2-code-expiry")
        self._new_code = widgets.Button(description="Get a new code", icon="key")
        self._new_code.add_class("chat-oauth2-new-code")
        self._device_box = widgets.VBox(
            (self._user_code, self._verify, self._code_expiry, self._new_code)
        )
        self._device_box.add_class("chat-oauth2-device")
        # Paste-back: the field is read and emptied at once (continuous_update off: one
        # value on blur or Enter, not one per keystroke while the person pastes).
        self._paste_help = self._html("chat-oauth2-paste-help")
        self._paste = widgets.Text(
            value="",
            placeholder="http://127.0.0.1:53682/chat-oauth2/callback/…?code=…&state=…",
            continuous_update=False,
            layout=widgets.Layout(width="30em"),
        )
        self._paste.add_class("chat-oauth2-paste")
        self._finish = widgets.Button(description="Finish", icon="check", button_style="primary")
        self._finish.add_class("chat-oauth2-paste-finish")
        self._paste_note = self._html("chat-oauth2-paste-note")
        self._paste_box = widgets.VBox(
            (self._paste_help, widgets.HBox((self._paste, self._finish)), self._paste_note)
        )
        self._paste_box.add_class("chat-oauth2-paste-box")
        # Offered when an opened link brought no callback within fallback_after seconds.
        self._fallback_text = self._html("chat-oauth2-fallback-text")
        self._use_paste = widgets.Button(description="Paste the address instead", icon="paste")
        self._use_paste.layout.width = "auto"
        self._use_paste.add_class("chat-oauth2-fallback-paste")
        self._use_code = widgets.Button(description="Use a code instead", icon="key")
        self._use_code.layout.width = "auto"
        self._use_code.add_class("chat-oauth2-fallback-device")
        self._fallback_box = widgets.VBox(
            (self._fallback_text, widgets.HBox((self._use_paste, self._use_code)))
        )
        self._fallback_box.add_class("chat-oauth2-fallback")

        # Details, collapsed: what a person debugging a provider wants, nobody else.
        self._provider = self._html("chat-oauth2-provider")
        self._check = widgets.Button(
            description="Check configuration",
            icon="stethoscope",
            tooltip="Ask the provider whether this configuration works (client.diagnose())",
        )
        self._check.layout.width = "auto"
        self._check.add_class("chat-oauth2-check")
        # The doctor's report holds no secret (it masks every one it knows), so it may be
        # shown in a synced widget.
        self._report = self._html("chat-oauth2-report")
        self._report_html = ""
        self._scopes = self._html("chat-oauth2-scopes")
        self._extras = self._html("chat-oauth2-extras")
        # id_token claims (email, name) are personal data and widget state can be saved into
        # the .ipynb: they are rendered only while this toggle is on, and cleared when off.
        self._claims_toggle = widgets.ToggleButton(
            value=False,
            description="Show claims",
            icon="user",
            tooltip="Show the id_token's claims (personal data: saved with the notebook while shown)",
        )
        self._claims_toggle.add_class("chat-oauth2-claims-toggle")
        self._claims = self._html("chat-oauth2-claims")
        self._log_body = self._html("chat-oauth2-http-log-body")
        self._http_log = widgets.Accordion(children=(self._log_body,), selected_index=None)
        self._http_log.add_class("chat-oauth2-http-log")
        self._details_body = widgets.VBox(
            (
                self._provider,
                self._check,
                self._report,
                self._scopes,
                self._extras,
                self._claims_toggle,
                self._claims,
                self._http_log,
            )
        )
        self._details = widgets.Accordion(
            children=(self._details_body,), selected_index=None, titles=("Details",)
        )
        self._details.add_class("chat-oauth2-details")
        self.children = (
            self._status,
            self._link,
            self._device_box,
            self._paste_box,
            self._fallback_box,
            self._token_box,
            self._buttons,
            self._outcome,
            self._error,
            self._details,
        )
        self.layout.max_width = "46em"
        self.layout.border = "1px solid var(--jp-border-color2, #d0d7de)"
        self.layout.padding = "6px 10px"
        self._refresh.on_click(self._on_refresh)
        self._revoke.on_click(self._on_revoke)
        self._claims_toggle.observe(self._on_claims_toggle, names="value")
        self._check.on_click(self._on_check)
        self._new_code.on_click(self._on_new_code)
        self._paste.observe(self._on_paste_value, names="value")
        self._finish.on_click(self._on_finish)
        self._use_paste.on_click(self._on_use_paste)
        self._use_code.on_click(self._on_use_code)
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
                on_tick=self._on_clock,
                on_end=self._close_connection,
                name="chat-oauth2-panel",
            )

    @staticmethod
    def _html(css_class: str) -> widgets.HTML:
        widget = widgets.HTML()
        widget.add_class(css_class)
        return widget

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
        """``state`` updated from the store: the token, the link's flow, a flow's failure."""
        client, store, key = self._client, self._client.store, self._key
        now = time.time()
        error = state.error

        token = state.token
        mismatch: ErrorInfo | None = None
        try:
            record = client.stored_token(key)
        except ProviderMismatchError as exc:
            # Another provider's token under this alias: say why, and still offer a link.
            record, mismatch = None, ErrorInfo.from_exception(exc)
        if record is None:
            if token is not None:
                token, error = None, None
            error = mismatch or error
        elif token is None or (token.version, token.updated_at) != (
            record.version,
            record.updated_at,
        ):
            self._remember_secrets(
                (record.data.token, record.data.refresh_token, record.data.id_token)
            )
            token = TokenView.from_auth_data(
                record.data, version=record.version, updated_at=record.updated_at
            )
            error = None  # a new token answers whatever failed before

        link = state.link
        latest = store.latest_flow(client.alias, key)
        if link is not None:
            current = latest if latest is not None and latest.start_id == link.start_id else None
            current = current or store.flow_by_start_id(link.start_id)
            if current is not None:
                client.note_flow_exchange(current)
            if current is None or current.status == "done":
                link = None
            elif current.status == "error":
                error = ErrorInfo.from_exception(error_from_flow(current))
                link = None
            elif current.status == "exchanging":
                link = None if now > current.expires_at + _STUCK_EXCHANGE else link
                if link is not None and not link.exchanging:
                    link = dataclasses.replace(link, exchanging=True)
            elif current.expires_at <= now:
                if current.device is not None:
                    # No request: an expired code is only marked so, for every waiter.
                    client.poll_device_authorization(current)
                    ended = store.flow_by_start_id(link.start_id)
                    if ended is not None and ended.status == "error":
                        error = ErrorInfo.from_exception(error_from_flow(ended))
                link = None  # unused and expired: quietly offer a fresh one (not a code)
            elif current.device is not None:
                self._next_poll_at = float(current.device.get("next_poll_at", 0.0))
            elif current.binding is not None and link.opened_at is None:
                link = dataclasses.replace(link, opened_at=now)  # the fallback clock starts
        if (
            latest is not None
            and latest.status == "pending"
            and latest.expires_at > now
            and self._serves(latest, state.way)
            and (link is None or latest.start_id != link.start_id)
        ):
            # Code in the notebook started a newer flow: offer that one, so the link and
            # wait_for_authorization() finish the same authorization.
            link = self._adopt(latest)
            if not link.started_by_panel:
                error = None
        if link is None and state.way != "device":
            # A code costs a request and expires soon: only "Get a new code" asks for one.
            link = self._new_link(state.way)

        return dataclasses.replace(
            state,
            redirect_uri=client.redirect_uri,
            token=token,
            link=link,
            error=error,
            requested_scopes=link.scopes if link is not None else state.requested_scopes,
        )

    def _serves(self, flow: PendingFlow, way: str | None) -> bool:
        """Whether this panel, authorizing the ``way`` it does now, shows ``flow``."""
        if way == "device":
            return flow.device is not None
        if way == "paste":
            return flow.endpoint == "paste"
        return (
            flow.device is None
            and flow.endpoint != "paste"
            and flow.redirect_uri == self._client.redirect_uri
        )

    def _adopt(self, flow: PendingFlow) -> LinkView:
        # The link is the start URL (opaque id only): state and PKCE challenge never reach a
        # widget trait. Who started the flow comes from the store, so every kernel agrees.
        if flow.device is not None:
            # The panel shows and polls it whoever asked for the code.
            page = flow.device.get("verification_uri_complete") or flow.device["verification_uri"]
            self._next_poll_at = float(flow.device.get("next_poll_at", 0.0))
            return LinkView(
                url=str(page),
                start_id=flow.start_id or "",
                scopes=flow.scopes,
                created_at=flow.created_at,
                expires_at=flow.expires_at,
                started_by_panel=True,
                kind="device",
                user_code=str(flow.device["user_code"]),
                verification_uri=str(flow.device["verification_uri"]),
                verification_uri_complete=flow.device.get("verification_uri_complete"),
            )
        return LinkView(
            kind="paste" if flow.endpoint == "paste" else "redirect",
            opened_at=time.time() if flow.binding is not None else None,
            url=str(self._client.start_link(flow)),
            start_id=flow.start_id or "",
            scopes=flow.scopes,
            created_at=flow.created_at,
            expires_at=flow.expires_at,
            started_by_panel=flow.origin == "panel",
        )

    def _new_link(self, way: str | None) -> LinkView:
        # A standby link: not the one wait_for_authorization() follows for code in cells.
        if way == "paste" and self._client.way != "paste":
            flow, url = self._client.start_paste_flow(self._key, origin="panel")
        else:
            flow, url = self._client.start_flow(self._key, None, origin="panel")
        return LinkView(
            kind="paste" if flow.endpoint == "paste" else "redirect",
            url=str(url),
            start_id=url.start_id,
            scopes=flow.scopes,
            created_at=flow.created_at,
            expires_at=flow.expires_at,
            started_by_panel=True,
        )

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
        """Once a second: re-render the countdowns; re-read the store only when time says so."""
        with self._lock:
            confirm = self._state.confirm_revoke_until
            if confirm is not None and time.time() >= confirm:
                self._state = dataclasses.replace(
                    self._state, confirm_revoke_until=None, outcome=None
                )
            link = self._state.link
            if link is not None and (link.exchanging or link.expires_at <= time.time()):
                # An unused link expired, or an exchange may be stuck: no store change shows it.
                self._tick_once()
            else:
                self._render()
            self._poll_if_due()

    def _first_code(self) -> None:
        """Device way with nothing to show: ask for a code now (the lock is held)."""
        state = self._state
        if not (
            state.config_problem is None
            and state.way == "device"
            and state.link is None
            and state.token is None
            and state.error is None
        ):
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
        link, now = self._state.link, time.time()
        if (
            self._closed
            or self._polling
            or link is None
            or link.kind != "device"
            or now < self._next_poll_at
            or link.expires_at <= now
        ):
            return
        self._polling = True
        start_id = link.start_id

        def poll() -> None:
            # A poll may take the client's whole timeout: never on the shared watcher thread.
            try:
                flow = self._client.store.flow_by_start_id(start_id)
                if flow is not None:
                    self._client.poll_device_authorization(flow)
            except Exception as exc:
                log.warning("chat-oauth2-panel: a device poll failed with %s", type(exc).__name__)
            finally:
                with self._lock:
                    self._polling = False

        start_worker(poll, "chat-oauth2-panel-poll", on_stop=self._close_connection)

    def _start_code(self) -> None:
        self._runner.start(
            "code", self._do_code, begin=self._begin_action, finish=self._finish_action
        )

    def _do_code(self) -> str:
        device = self._client.start_device_authorization(self._key)
        return f"Enter {device.user_code} at the provider."

    def _on_new_code(self, _button: widgets.Button) -> None:
        self._start_code()

    def _on_use_code(self, _button: widgets.Button) -> None:
        with self._lock:
            if self._state.busy is not None:
                return
            self._state = dataclasses.replace(self._state, way="device", link=None, error=None)
        self._start_code()

    def _on_use_paste(self, _button: widgets.Button) -> None:
        with self._lock:
            if self._state.busy is not None:
                return
            self._state = dataclasses.replace(self._state, way="paste", link=None, error=None)
            self._tick_once()  # a new paste-back link: a store write, no request

    def _on_paste_value(self, change: dict[str, Any]) -> None:
        value = str(change["new"] or "").strip()
        if not value:
            return
        with self._lock:
            self._pasted = value
            # Out of the synced trait at once: widget state can be saved into the .ipynb.
            self._paste.value = ""
            if "://" in value:
                parts = urlsplit(value)
                where = f"{parts.scheme}://{parts.netloc}{parts.path}"
            else:
                where = "an address's query"
            self._state = dataclasses.replace(
                self._state,
                paste_error=None,
                paste_note=f"Received {where} (code hidden): press Finish.",
            )
            self._render()

    def _on_finish(self, _button: widgets.Button) -> None:
        with self._lock:
            pasted, self._pasted = self._pasted, None
            if not pasted:
                self._state = dataclasses.replace(
                    self._state,
                    paste_note=None,
                    paste_error=ErrorInfo(
                        message="Nothing was pasted",
                        hint="Copy the whole address from the browser's address bar into the "
                        "field, then press Finish.",
                    ),
                )
                self._render()
                return
            self._remember_secrets(parse_qs(urlsplit(pasted).query).get("code", ()))
        if not self._runner.start(
            "paste",
            lambda: self._do_paste(pasted),
            begin=self._begin_action,
            finish=self._finish_paste,
        ):
            with self._lock:
                self._pasted = self._pasted or pasted  # busy: keep it for the next Finish

    def _do_paste(self, pasted: str) -> str:
        self._client.complete_authorization(pasted, self._key)
        return "Authorized from the pasted address."

    def _finish_paste(self, _name: str, outcome: str, error: ErrorInfo | None) -> None:
        # A flow the paste used up (error= pasted) shows as the card's error; a wrong
        # address shows next to the field, where the person pastes again.
        self._state = dataclasses.replace(self._state, error=None)
        try:
            self._state = self._synced(self._state)
        except OAuth2Error as exc:
            self._state = dataclasses.replace(self._state, error=ErrorInfo.from_exception(exc))
        ended = self._state.error is not None
        self._state = dataclasses.replace(
            self._state,
            busy=None,
            outcome=None if error is not None else outcome,
            paste_error=None if ended else error,
            paste_note=None,
        )
        self._render()

    def _on_claims_toggle(self, _change: dict[str, Any]) -> None:
        with self._lock:
            self._render()

    def _on_check(self, _button: widgets.Button) -> None:
        self._start_action("check", self._do_check)

    def _do_check(self) -> str:
        report = self._client.diagnose(self._key)
        with self._lock:
            self._report_html = report._repr_html_()
        return f"Checked the configuration: {report.summary()}."

    def _on_refresh(self, _button: widgets.Button) -> None:
        self._start_action("refresh", self._do_refresh)

    def _on_revoke(self, _button: widgets.Button) -> None:
        with self._lock:
            state = self._state
            if state.declared and state.busy is None:
                confirm = state.confirm_revoke_until
                if confirm is None or time.time() >= confirm:
                    # The first click only asks: the grant is the administrator's service's.
                    self._state = dataclasses.replace(
                        state,
                        confirm_revoke_until=time.time() + CONFIRM_REVOKE_WITHIN,
                        outcome=f"Click “Confirm revoke” within {CONFIRM_REVOKE_WITHIN:.0f} s to "
                        "revoke this token at the provider; you will need to authorize again.",
                    )
                    self._render()
                    return
        self._start_action("revoke", self._do_revoke)

    def _do_refresh(self) -> str:
        data = self._client.refresh_user_access_token(self._key)
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        return f"Refreshed at {stamp}: the new token {expiry_text(data.expires_at, utcnow())}."

    def _do_revoke(self) -> str:
        if not self._client.revoke_user_access_token(self._key):
            return "Nothing was stored, so nothing was revoked."
        if self._client.config.revoke_token_uri is None:
            advice = self._client.revoke_advice()
            return (
                f"Deleted here only: {self._client.alias!r} has no revokeTokenUri, so the token "
                "stays valid at the provider until it expires." + (f" {advice}." if advice else "")
            )
        return "Revoked at the provider and deleted here."

    def _start_action(self, name: str, action: Callable[[], str]) -> None:
        self._runner.start(name, action, begin=self._begin_action, finish=self._finish_action)

    def _begin_action(self, name: str, busy_words: str) -> bool:
        if self._state.busy is not None:
            return False
        self._state = dataclasses.replace(
            self._state, busy=name, outcome=busy_words, confirm_revoke_until=None
        )
        self._render()
        return True

    def _finish_action(self, _name: str, outcome: str, error: ErrorInfo | None) -> None:
        try:
            self._state = self._synced(self._state)
        except OAuth2Error as exc:
            error = error or ErrorInfo.from_exception(exc)
        self._state = dataclasses.replace(self._state, busy=None, outcome=outcome, error=error)
        self._render()

    def close(self) -> None:
        """Leave the store watcher and close the panel with all its child widgets."""
        with self._lock:
            self._closed = True
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
        assign(self._status, "value", self._status_html(state, status, now))
        set_status_class(self._status, "chat-oauth2-status", status)
        if self.status != status.value:
            self.set_trait("status", status.value)
        assign(self._link, "value", self._link_html(state, status))
        self._render_ways(state, now)

        token = state.token
        assign(self._token_box.layout, "display", None if token is not None else "none")
        for part in (self._scopes, self._extras, self._claims_toggle, self._claims):
            assign(part.layout, "display", None if token is not None else "none")
        if token is not None:
            assign(self._expiry, "value", text(expiry_text(token.expires_at, now)))
            fraction = self._remaining_fraction(token, now)
            assign(self._bar.layout, "visibility", "hidden" if fraction is None else "visible")
            if fraction is not None:
                assign(self._bar, "value", fraction)
                assign(
                    self._bar,
                    "bar_style",
                    "success" if fraction > 0.25 else "warning" if fraction > 0.1 else "danger",
                )
            assign(
                self._token,
                "value",
                f"Token <code>{text(token.token_mask)}</code> ({text(token.token_type)})",
            )
            assign(self._scopes, "value", self._scopes_html(state))
            refresh = "stored" if token.has_refresh_token else "none"
            id_token = "stored" if token.has_id_token else "none"
            assign(self._extras, "value", f"Refresh token: {refresh} · id_token: {id_token}")
        elif self._claims_toggle.value:
            self._claims_toggle.value = False  # the next token's claims are asked for anew
        has_claims = token is not None and (token.has_id_token or bool(token.id_token_problem))
        assign(self._claims_toggle, "disabled", not has_claims)
        shown = token is not None and has_claims and bool(self._claims_toggle.value)
        assign(self._claims, "value", self._claims_html(token) if shown and token else "")
        assign(self._provider, "value", self._provider_html(state))

        configured = state.config_problem is None
        busy = state.busy is not None
        can_refresh = configured and not busy and state.refreshable
        assign(self._refresh, "disabled", not can_refresh)
        if state.declared:
            refresh_tip = "Have the server refresh the token now (it holds the refresh token)"
        elif token is None or token.has_refresh_token:
            refresh_tip = "Refresh the token now"
        else:
            refresh_tip = "No refresh token is stored: authorize again"
        assign(self._refresh, "tooltip", refresh_tip)
        assign(self._revoke, "disabled", not (configured and not busy and token is not None))
        confirming = (
            state.confirm_revoke_until is not None and time.time() < state.confirm_revoke_until
        )
        assign(self._revoke, "description", "Confirm revoke" if confirming else "Revoke")
        assign(self._revoke, "button_style", "danger" if confirming else "warning")
        assign(
            self._revoke,
            "tooltip",
            "Click again to revoke"
            if confirming
            else "Revoke at the provider and delete the token here",
        )
        assign(self._report, "value", self._report_html)
        assign(self._check, "disabled", busy or state.config_problem is not None)
        # A declared provider's secret is the administrator's: `python -m chat_oauth2_nb.hub
        # check` (or a diagnose in the server) is the check that can use it.
        assign(self._check.layout, "display", "none" if state.declared else None)
        assign(self._outcome, "value", text(state.outcome or ""))
        assign(self._outcome.layout, "display", None if state.outcome else "none")
        assign(self._error, "value", error_html(state.error))
        assign(self._error.layout, "display", None if state.error is not None else "none")
        self._render_log()

    def _render_ways(self, state: PanelState, now: dt.datetime) -> None:
        """The device code, the paste field and the fallback offer: each shown when it applies."""
        link = state.link
        ready = state.config_problem is None and state.busy is None
        device = link if link is not None and link.kind == "device" else None
        assign(
            self._device_box.layout, "display", None if device or state.way == "device" else "none"
        )
        for part in (self._user_code, self._verify, self._code_expiry):
            assign(part.layout, "display", None if device else "none")
        assign(self._user_code, "value", self._user_code_html(device) if device else "")
        assign(self._verify, "value", self._verify_html(device) if device else "")
        expires = dt.datetime.fromtimestamp(device.expires_at, dt.timezone.utc) if device else None
        code_left = f"The code {expiry_text(expires, now)}." if expires is not None else ""
        if expires is not None and expires <= now:
            code_left = "The code expired: get a new one."
        assign(self._code_expiry, "value", text(code_left))
        show_new = device is None and state.way == "device" and state.config_problem is None
        assign(self._new_code.layout, "display", None if show_new else "none")
        assign(self._new_code, "disabled", not ready)

        pasting = link is not None and link.kind == "paste"
        assign(self._paste_box.layout, "display", None if pasting else "none")
        assign(
            self._paste_help,
            "value",
            "After you approve, the browser ends on an address that does not load "
            f"(<code>{text(self._paste_target(link))}</code>…). "
            "Copy the whole address from the address bar here and press Finish."
            if pasting and link is not None
            else "",
        )
        assign(self._finish, "disabled", not ready)
        note = error_html(state.paste_error) if state.paste_error else text(state.paste_note or "")
        assign(self._paste_note, "value", note)
        assign(self._paste_note.layout, "display", None if note else "none")

        offers = fallback_offers(state, now, self._fallback_after)
        if state.declared:
            # The administrator registered the redirect URI: the fix is theirs, not the user's.
            fix = (
                "tell your administrator, who declared this provider, that it refused the "
                f"redirect URI <code>{text(state.redirect_uri or '')}</code>."
            )
        else:
            fix = (
                f"register exactly <code>{text(state.redirect_uri or '')}</code> as a redirect "
                "URI there."
            )
        assign(self._fallback_box.layout, "display", None if offers is not None else "none")
        assign(self._use_paste.layout, "display", None if offers and "paste" in offers else "none")
        assign(self._use_code.layout, "display", None if offers and "device" in offers else "none")
        for button in (self._use_paste, self._use_code):
            assign(button, "disabled", not ready)
        more = " Or finish another way:" if offers else ""
        assign(
            self._fallback_text,
            "value",
            "<b>Browser didn't come back?</b> If the provider showed its own error page, "
            f"{fix}{more}"
            if offers is not None
            else "",
        )

    @staticmethod
    def _paste_target(link: LinkView) -> str:
        # Where the provider sends the browser: the link's own redirect_uri parameter.
        return (parse_qs(urlsplit(link.url).query).get("redirect_uri") or ["?"])[0]

    @staticmethod
    def _user_code_html(link: LinkView) -> str:
        # user-select: all: one click selects the whole code for copying.
        return (
            "Enter this code at the provider:<br>"
            '<span class="chat-oauth2-code" title="Click to select it, then copy" '
            'style="display: inline-block; margin: 0.2em 0; padding: 0.1em 0.5em; '
            "font: 600 1.9em/1.3 var(--jp-code-font-family, monospace); letter-spacing: 0.12em; "
            "border: 1px dashed var(--jp-border-color1, #8c959f); border-radius: 4px; "
            'user-select: all; -webkit-user-select: all">'
            f"{text(link.user_code or '')}</span>"
        )

    @staticmethod
    def _verify_html(link: LinkView) -> str:
        # Static between codes, like the Authorize link: a click must not lose its anchor.
        shown = link.verification_uri or link.url
        filled = " (this link fills the code in)" if link.verification_uri_complete else ""
        return (
            "Open "
            f'<a class="chat-oauth2-verify-link" data-chat-oauth2="verify" '
            f'href="{html.escape(link.url, quote=True)}" target="_blank" rel="noopener" '
            'style="color: var(--jp-content-link-color, #0969da); text-decoration: underline">'
            f"{text(shown)}</a>{filled}, sign in, and approve."
        )

    @staticmethod
    def _remaining_fraction(token: TokenView, now: dt.datetime) -> float | None:
        """How much of the token's lifetime is left, in 0.5 % steps (None: no expiry known)."""
        if token.expires_at is None:
            return None
        lifetime = (token.expires_at - token.obtained_at).total_seconds()
        if lifetime <= 0:
            return 0.0
        left = (token.expires_at - now).total_seconds() / lifetime
        # Steps, so a one-hour token's bar sends an update every 18 s, not every second.
        return round(min(max(left, 0.0), 1.0) * 200) / 200

    @staticmethod
    def _status_html(state: PanelState, status: Status, now: dt.datetime) -> str:
        """The badge (status word, coloured) with provider and user, then what to do next."""
        word = STATUS_WORDS[status]
        line = status_line(state, now)
        detail = line[len(word) + 2 :] if line.startswith(f"{word}: ") else ""
        if status is Status.AUTHORIZED:
            detail = ""  # the expiry line below says it, once
        elif status is Status.EXPIRED:
            detail = "Refresh it." if state.refreshable else "Authorize again."
        colour = _BADGE_COLOURS[status]
        badge = (
            f'<span class="chat-oauth2-badge" style="background: {colour}; color: #fff; '
            'border-radius: 1em; padding: 0.1em 0.7em; font-weight: 600">'
            f"{text(word)}</span>"
        )
        who = f" <b>{text(state.alias)}</b> · <code>{text(state.user)}</code>"
        more = f'<div class="chat-oauth2-status-detail">{text(detail)}</div>' if detail else ""
        return badge + who + more

    def _provider_html(self, state: PanelState) -> str:
        scopes = " ".join(state.requested_scopes) or "(none)"
        redirect = state.redirect_uri or "(not set up)"
        try:
            store = self._client.store
            sealed = (
                ("encrypted (hub key)" if store.key_source == "hub" else "encrypted (AES-GCM)")
                if store.encrypted
                else "not encrypted"
            )
        except OAuth2Error:
            sealed = "cannot be opened"
        who = (
            "declared by your administrator, who registered it at the provider"
            if state.declared
            else "register exactly this at the provider"
        )
        declared = (
            "Provider: declared by your administrator (the server holds its client secret "
            "and refresh tokens)<br>"
            if state.declared
            else ""
        )
        return (
            declared + f"Authorization endpoint: <code>{text(state.auth_uri)}</code><br>"
            f"Token endpoint: <code>{text(state.token_uri)}</code><br>"
            f"Redirect URI: <code>{text(redirect)}</code> ({who})<br>"
            f"Scopes requested: <code>{text(scopes)}</code><br>"
            f"Token store: {sealed}"
        )

    @staticmethod
    def _link_html(state: PanelState, status: Status) -> str:
        # Static between links: re-setting innerHTML every second would swap the anchor
        # out from under a person's (or a browser test's) click.
        link = state.link
        if link is None or status is Status.NOT_CONFIGURED or link.kind == "device":
            return ""
        if not link.url.startswith(("https://", "http://")):
            return ""
        return (
            f'<a class="chat-oauth2-authorize" data-chat-oauth2="authorize" '
            f'href="{html.escape(link.url, quote=True)}" target="_blank" rel="noopener" '
            # Jupyter's CSS resets link styles: make it look like the link it is.
            'style="color: var(--jp-content-link-color, #0969da); text-decoration: underline">'
            f"{'Authorize again' if status is Status.AUTHORIZED else 'Authorize'}</a> "
            "<small>(opens the provider in a new tab; each link works once)</small>"
        )

    @staticmethod
    def _scopes_html(state: PanelState) -> str:
        report = state.scopes()
        if report is None:
            return ""
        parts = [f"Scopes granted: <code>{text(' '.join(report.granted) or '(none)')}</code>"]
        parts.append(f"requested: <code>{text(' '.join(report.requested) or '(none)')}</code>")
        if report.missing:
            parts.append(f"<b>not granted:</b> <code>{text(' '.join(report.missing))}</code>")
        if report.extra:
            parts.append(f"granted unasked: <code>{text(' '.join(report.extra))}</code>")
        return " · ".join(parts)

    @staticmethod
    def _claims_html(token: TokenView) -> str:
        if token.id_token_problem:
            return text(token.id_token_problem)
        if token.id_token_claims is None:
            return ""
        body = json.dumps(token.id_token_claims, indent=2, sort_keys=True, default=str)
        if token.claims_verified:
            label = (
                "id_token claims (<b>verified</b>: signature, issuer, audience, expiry and "
                "nonce checked)"
            )
        else:
            label = "id_token claims (decoded, <b>not verified</b>: the signature was not checked)"
        return f"{label}<pre>{text(body)}</pre>"

    def _render_log(self) -> None:
        log = self._client.http_log
        key = (len(log), log[-1].started_at) if log else (0, 0.0)
        if key == self._log_key:
            return  # rebuilding hundreds of bodies ten times a second would be waste
        self._log_key = key
        entries = list(log)
        assign(self._http_log, "titles", (f"HTTP log ({len(entries)})",))
        if not entries:
            assign(self._log_body, "value", "<i>No requests yet.</i>")
            return
        secrets = [*self._known_secrets, self._client.config.client_secret]
        assign(self._log_body, "value", "".join(self._exchange_html(e, secrets) for e in entries))

    @staticmethod
    def _exchange_html(exchange: HttpExchange, secrets: list[str | None]) -> str:
        # The client already masks secrets; masking again costs little and guards the .ipynb.
        def clean(value: str) -> str:
            return text(redact(value, secrets))

        outcome = str(exchange.status) if exchange.status is not None else exchange.error
        when = dt.datetime.fromtimestamp(exchange.started_at).strftime("%H:%M:%S")
        return (
            '<div class="chat-oauth2-http-exchange">'
            f"<b>{clean(exchange.method)}</b> <code>{clean(exchange.url)}</code> → "
            f"<b>{clean(outcome or '?')}</b> in {exchange.elapsed_ms:.1f} ms at {when}"
            f"<pre>{clean(exchange.request_body) or '(empty request body)'}</pre>"
            f"<pre>{clean(exchange.response_body) or '(empty response body)'}</pre></div>"
        )

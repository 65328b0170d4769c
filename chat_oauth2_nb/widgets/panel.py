"""The notebook panel: authorize one (provider, user), watch the token, refresh or revoke it.

The browser's callback lands in the Jupyter server process and writes the shared store, so
the panel learns about it by polling the store from a daemon thread (~10 times a second:
two or three indexed SQLite reads). Every widget value is derived from one
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

from ..client import HttpExchange, OAuth2Client, UserLike, error_from_flow, resolve_user
from ..errors import OAuth2Error, ProviderMismatchError
from ..protocol import authorization_url, redact, utcnow
from ..store import PendingFlow
from ._threads import Ticker, start_worker
from ._view import assign, close_tree, error_html, set_status_class, text
from .state import ErrorInfo, LinkView, PanelState, Status, TokenView, expiry_text, status_line

__all__ = ["OAuth2Panel"]

log = logging.getLogger("chat_oauth2_nb")

# A callback that died mid-exchange would leave its flow "exchanging" for ever.
_STUCK_EXCHANGE = 60.0
_KNOWN_SECRETS = 32
# States of the links panels in this kernel created. Re-running a cell makes a second panel
# that adopts the first one's link; it must not mistake it for a flow started from code.
_PANEL_STATES: deque[str] = deque(maxlen=1024)


class OAuth2Panel(widgets.VBox):  # type: ignore[misc]  # ipywidgets ships no type hints
    """The ipywidgets panel for one provider and user: link, status, token, Refresh, Revoke, HTTP log."""

    def __init__(
        self,
        client: OAuth2Client,
        user: UserLike = None,
        *,
        poll_interval: float = 0.1,
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

        self._provider = self._html("chat-oauth2-provider")
        self._status = self._html("chat-oauth2-status")
        self._link = self._html("chat-oauth2-link")
        self._token = self._html("chat-oauth2-token")
        self._expiry = self._html("chat-oauth2-expiry")
        self._scopes = self._html("chat-oauth2-scopes")
        self._extras = self._html("chat-oauth2-extras")
        self._claims = self._html("chat-oauth2-claims")
        self._token_box = widgets.VBox(
            (self._token, self._expiry, self._scopes, self._extras, self._claims)
        )
        self._token_box.add_class("chat-oauth2-token-box")
        self._refresh = widgets.Button(description="Refresh", icon="refresh")
        self._refresh.add_class("chat-oauth2-refresh")
        self._revoke = widgets.Button(description="Revoke", icon="trash", button_style="warning")
        self._revoke.add_class("chat-oauth2-revoke")
        self._buttons = widgets.HBox((self._refresh, self._revoke))
        self._outcome = self._html("chat-oauth2-outcome")
        self._error = self._html("chat-oauth2-error")
        self._log_body = self._html("chat-oauth2-http-log-body")
        # Collapsed by default: the log is for debugging a provider, not for every reader.
        self._http_log = widgets.Accordion(children=(self._log_body,), selected_index=None)
        self._http_log.add_class("chat-oauth2-http-log")
        self.children = (
            self._provider,
            self._status,
            self._link,
            self._token_box,
            self._buttons,
            self._outcome,
            self._error,
            self._http_log,
        )
        self._refresh.on_click(self._on_refresh)
        self._revoke.on_click(self._on_revoke)

        self._state = self._initial_state()
        self._key = self._state.user
        with self._lock:
            self._tick_once()
        # The store keeps one SQLite connection per thread: each thread closes its own.
        self._ticker = Ticker(
            self._on_tick, poll_interval, "chat-oauth2-panel", on_stop=self._close_connection
        )
        if self._state.config_problem is None:
            self._ticker.start()

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
        )

    @property
    def state(self) -> PanelState:
        """The state the panel shows now (a frozen snapshot without secrets)."""
        return self._state

    @property
    def _timer_alive(self) -> bool:
        return self._ticker.alive

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
            record = client._stored(key)
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
            current = latest if latest is not None and latest.state == link.state else None
            current = current or store.get_flow(link.state)
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
                link = None  # unused and expired: quietly offer a fresh one
        if (
            latest is not None
            and latest.status == "pending"
            and latest.expires_at > now
            and latest.redirect_uri == client.redirect_uri
            and (link is None or latest.state != link.state)
        ):
            # Code in the notebook started a newer flow: offer that one, so the link and
            # wait_for_authorization() finish the same authorization.
            link = self._adopt(latest)
            if not link.started_by_panel:
                error = None
        if link is None:
            link = self._new_link()

        return dataclasses.replace(
            state,
            redirect_uri=client.redirect_uri,
            token=token,
            link=link,
            error=error,
            requested_scopes=link.scopes,
        )

    def _adopt(self, flow: PendingFlow) -> LinkView:
        # Rebuilt from the stored flow: the verifier only feeds the S256 challenge here.
        url = authorization_url(
            self._client.config,
            redirect_uri=flow.redirect_uri,
            scopes=flow.scopes,
            state=flow.state,
            code_verifier=flow.code_verifier,
        )
        return LinkView(
            url=url,
            state=flow.state,
            scopes=flow.scopes,
            created_at=flow.created_at,
            expires_at=flow.expires_at,
            started_by_panel=flow.state in _PANEL_STATES,
        )

    def _new_link(self) -> LinkView:
        # A standby link: not the one wait_for_authorization() follows for code in cells.
        url = self._client._start_flow(self._key, None, track=False)
        state = parse_qs(urlsplit(url).query).get("state", [""])[0]
        _PANEL_STATES.append(state)
        flow = self._client.store.get_flow(state)
        now = time.time()
        return LinkView(
            url=url,
            state=state,
            scopes=flow.scopes if flow else tuple(self._client.config.default_scopes),
            created_at=flow.created_at if flow else now,
            expires_at=flow.expires_at if flow else now + self._client.flow_ttl,
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

    def _on_refresh(self, _button: widgets.Button) -> None:
        self._start_action("refresh", self._do_refresh)

    def _on_revoke(self, _button: widgets.Button) -> None:
        self._start_action("revoke", self._do_revoke)

    def _do_refresh(self) -> str:
        data = self._client.refresh_user_access_token(self._key)
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        return f"Refreshed at {stamp}: the new token {expiry_text(data.expires_at, utcnow())}."

    def _do_revoke(self) -> str:
        if not self._client.revoke_user_access_token(self._key):
            return "Nothing was stored, so nothing was revoked."
        if self._client.config.revoke_token_uri is None:
            return (
                f"Deleted here only: {self._client.alias!r} has no revokeTokenUri, so the token "
                "stays valid at the provider until it expires."
            )
        return "Revoked at the provider and deleted here."

    def _start_action(self, name: str, action: Callable[[], str]) -> None:
        with self._lock:
            if self._closed or self._state.busy is not None:
                return
            verb = "Refreshing" if name == "refresh" else "Revoking"
            self._state = dataclasses.replace(self._state, busy=name, outcome=f"{verb}…")
            self._render()
        # close() does not wait for it: a slow provider may take the client's whole timeout.
        start_worker(
            lambda: self._run_action(name, action),
            f"chat-oauth2-panel-{name}",
            on_stop=self._close_connection,
        )

    def _run_action(self, name: str, action: Callable[[], str]) -> None:
        error: ErrorInfo | None = None
        try:
            outcome = action()
        except Exception as exc:
            error = ErrorInfo.from_exception(exc)
            what = "refresh" if name == "refresh" else "revocation"
            outcome = f"The {what} failed; the stored token is unchanged."
        with self._lock:
            if self._closed:
                return
            try:
                self._state = self._synced(self._state)
            except OAuth2Error as exc:
                error = error or ErrorInfo.from_exception(exc)
            self._state = dataclasses.replace(self._state, busy=None, outcome=outcome, error=error)
            self._render()

    def close(self) -> None:
        """Stop the polling thread and close the panel with all its child widgets."""
        with self._lock:
            self._closed = True
        self._ticker.stop()
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
        assign(self._status, "value", text(status_line(state, now)))
        set_status_class(self._status, "chat-oauth2-status", status)
        assign(self._provider, "value", self._provider_html(state))
        assign(self._link, "value", self._link_html(state, status))

        token = state.token
        assign(self._token_box.layout, "display", None if token is not None else "none")
        if token is not None:
            assign(
                self._token,
                "value",
                f"Token <code>{text(token.token_mask)}</code> ({text(token.token_type)})",
            )
            assign(self._expiry, "value", text(expiry_text(token.expires_at, now)))
            assign(self._scopes, "value", self._scopes_html(state))
            refresh = "stored" if token.has_refresh_token else "none"
            id_token = "stored" if token.has_id_token else "none"
            assign(self._extras, "value", f"Refresh token: {refresh} · id_token: {id_token}")
            assign(self._claims, "value", self._claims_html(token))

        configured = state.config_problem is None
        busy = state.busy is not None
        can_refresh = configured and not busy and token is not None and token.has_refresh_token
        assign(self._refresh, "disabled", not can_refresh)
        assign(
            self._refresh,
            "tooltip",
            "Refresh the token now"
            if token is None or token.has_refresh_token
            else "No refresh token is stored: authorize again",
        )
        assign(self._revoke, "disabled", not (configured and not busy and token is not None))
        assign(self._revoke, "tooltip", "Revoke at the provider and delete the token here")
        assign(self._outcome, "value", text(state.outcome or ""))
        assign(self._error, "value", error_html(state.error))
        assign(self._error.layout, "display", None if state.error is not None else "none")
        self._render_log()

    def _provider_html(self, state: PanelState) -> str:
        scopes = " ".join(state.requested_scopes) or "(none)"
        redirect = state.redirect_uri or "(not set up)"
        try:
            sealed = "encrypted (AES-GCM)" if self._client.store.encrypted else "not encrypted"
        except OAuth2Error:
            sealed = "cannot be opened"
        return (
            f"<b>OAuth2: {text(state.alias)}</b> · user <code>{text(state.user)}</code><br>"
            f"Authorization endpoint: <code>{text(state.auth_uri)}</code><br>"
            f"Token endpoint: <code>{text(state.token_uri)}</code><br>"
            f"Scopes requested: <code>{text(scopes)}</code><br>"
            f"Redirect URI: <code>{text(redirect)}</code> "
            "(register exactly this at the provider)<br>"
            f"Token store: {sealed}"
        )

    @staticmethod
    def _link_html(state: PanelState, status: Status) -> str:
        # Static between links: re-setting innerHTML every second would swap the anchor
        # out from under a person's (or a browser test's) click.
        link = state.link
        if link is None or status is Status.NOT_CONFIGURED:
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
        return (
            "id_token claims (decoded, <b>not verified</b>: the signature was not checked)"
            f"<pre>{text(body)}</pre>"
        )

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

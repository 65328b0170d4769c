"""The dashboard: a table of every stored (alias, user): status, expiry, Refresh and Revoke.

Each alias gets a client rebuilt from the provider the store registered for it, so tokens
authorized in other notebooks (or by the server) can be refreshed and revoked from here; the
caller (the notebook façade, above this layer) says how to build one.
The process's shared store watcher (``_threads``) re-reads the store when it changed (rows
that come or go, new tokens); the browser draws the countdowns (``_views.Countdown``) and the
alarm clock (``_clock``) wakes the table only when a row's coarse expiry text moves on.

Every row is a grid with the header's column template, so the columns line up across rows
and the buttons keep their width when the notebook is half as wide.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..errors import OAuth2Error
from ..oauth import utcnow
from ..store import Store, TokenRecord, open_store
from ._client import ClientFactory, TokenClient
from ._clock import Alarm
from ._threads import ActionRunner, Subscription, watch_store
from ._view import assign, close_tree, set_status_class
from ._views import Countdown
from .render import (
    BADGE_COLOURS,
    PANEL_CSS,
    error_html,
    expiry_fallback_html,
    shown,
    text,
)
from .state import STATUS_WORDS, ErrorInfo, PanelState, TokenView, about_changes_at, expiry_text

__all__ = ["TokenDashboard", "dashboard"]

Key = tuple[str, str]
# Provider, user, status, expires, actions: fractions share what the others leave. The
# actions take the buttons' own width (the header holds invisible twins of them, so every
# row's grid resolves it alike), so no button is cut to "Refre…" in a narrow notebook.
COLUMNS = "minmax(5.5em, 1.2fr) minmax(4em, 1fr) 8.5em minmax(6em, 1.6fr) max-content"
HEADERS = ("Provider", "User", "Status", "Expires", "")
_ACTIONS = (("Refresh", "refresh"), ("Revoke", "trash"))


def _grid(cells: tuple[widgets.Widget, ...], css_class: str) -> widgets.GridBox:
    grid = widgets.GridBox(
        cells,
        layout=widgets.Layout(
            grid_template_columns=COLUMNS, grid_gap="0 0.6em", align_items="center", width="100%"
        ),
    )
    grid.add_class(css_class)
    return grid


def _html(css_class: str, value: str = "") -> widgets.HTML:
    widget = widgets.HTML(value)
    widget.add_class(css_class)
    return widget


def _button(description: str, icon: str, css_class: str, style: str = "") -> widgets.Button:
    button = widgets.Button(description=description, icon=icon, button_style=style)
    button.layout.width = "auto"
    button.add_class(css_class)
    return button


@dataclasses.dataclass
class _Row:
    """The widgets of one (alias, user) row and what the row last learned."""

    alias: str
    user: str
    box: widgets.VBox
    label: widgets.HTML
    status: widgets.HTML
    countdown: Countdown
    expiry: widgets.HTML
    refresh: widgets.Button
    revoke: widgets.Button
    question: widgets.HBox
    outcome: widgets.HTML
    token: TokenView | None = None
    error: ErrorInfo | None = None
    busy: str | None = None
    message: str | None = None
    #: Revoke was pressed once: the row asks before it revokes.
    confirming: bool = False


class TokenDashboard(widgets.VBox):  # type: ignore[misc]  # ipywidgets ships no type hints
    """Every token in one store: status and expiry per (alias, user), with Refresh and Revoke.

    ``client_factory(config, store)`` builds the client that refreshes and revokes the rows
    of the provider ``config`` (the store registered it).
    """

    def __init__(self, store: Store, *, client_factory: ClientFactory, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("chat-oauth2-dashboard")
        self._store = store
        self._client_factory = client_factory
        self._lock = threading.RLock()
        self._closed = False
        self._clients: dict[str, TokenClient | None] = {}
        self._rows: dict[Key, _Row] = {}
        self._header = _html("chat-oauth2-dashboard-header")
        self._message = _html("chat-oauth2-outcome")
        twins = tuple(_button(d, i, "chat-oauth2-dashboard-twin") for d, i in _ACTIONS)
        for twin in twins:
            twin.layout.visibility = "hidden"
        self._columns = _grid(
            (
                *(_html("chat-oauth2-dashboard-th", f"<b>{h}</b>") for h in HEADERS[:-1]),
                widgets.HBox(twins),
            ),
            "chat-oauth2-dashboard-columns",
        )
        style = widgets.HTML(PANEL_CSS, layout=widgets.Layout(height="0px", margin="0"))
        self._top = (style, self._header, self._message, self._columns)
        self._load_problem: ErrorInfo | None = None
        self.children = self._top
        self._alarm = Alarm(self._on_clock, "chat-oauth2-dashboard")
        self._runner = ActionRunner(
            self._lock,
            lambda: self._closed,
            thread_prefix="chat-oauth2-dashboard",
            on_worker_end=store.close,
        )
        with self._lock:
            self._reload()
        self._watch: Subscription = watch_store(
            store.path,
            on_change=self._on_tick,
            on_end=store.close,
            name="chat-oauth2-dashboard",
        )

    @property
    def rows(self) -> list[Key]:
        """The (alias, user) pairs shown, in display order."""
        return list(self._rows)

    @property
    def _timer_alive(self) -> bool:
        return self._watch.alive

    def _client(self, alias: str) -> TokenClient | None:
        # A missing provider is looked up again: setup() in some notebook may register it.
        if self._clients.get(alias) is None:
            config = self._store.get_provider(alias)
            self._clients[alias] = self._client_factory(config, self._store) if config else None
        return self._clients[alias]

    # rows --------------------------------------------------------------------------------

    def _new_row(self, alias: str, user: str) -> _Row:
        label = _html("chat-oauth2-dashboard-who", f"<b>{text(alias)}</b>")
        who = _html("chat-oauth2-dashboard-user", f"<code>{text(user)}</code>")
        (refresh_words, refresh_icon), (revoke_words, revoke_icon) = _ACTIONS
        refresh = _button(refresh_words, refresh_icon, "chat-oauth2-refresh")
        revoke = _button(revoke_words, revoke_icon, "chat-oauth2-revoke")
        countdown = Countdown(prefix="in ", expired_text="expired")
        countdown.add_class("chat-oauth2-expiry-countdown")
        expiry = _html("chat-oauth2-expiry")
        when = widgets.HBox((countdown, expiry), layout=widgets.Layout(grid_gap="0.3em"))
        confirm = _button("Revoke", "trash", "chat-oauth2-confirm-revoke", "danger")
        cancel = _button("Cancel", "", "chat-oauth2-cancel-revoke")
        question = widgets.VBox(
            (_html("chat-oauth2-confirm-text"), widgets.HBox((confirm, cancel)))
        )
        question.add_class("chat-oauth2-confirm-box")
        status, outcome = _html("chat-oauth2-status"), _html("chat-oauth2-outcome")
        cells = (label, who, status, when, widgets.HBox((refresh, revoke)))
        box = widgets.VBox((_grid(cells, "chat-oauth2-dashboard-cells"), question, outcome))
        box.add_class("chat-oauth2-dashboard-row")
        box.layout.border_top = "1px solid var(--jp-border-color2, #d0d7de)"
        row = _Row(
            alias, user, box, label, status, countdown, expiry, refresh, revoke, question, outcome
        )
        refresh.on_click(lambda _b: self._on_refresh((alias, user)))
        revoke.on_click(lambda _b: self._on_ask((alias, user), True))
        cancel.on_click(lambda _b: self._on_ask((alias, user), False))
        confirm.on_click(lambda _b: self._on_revoke((alias, user)))
        return row

    def _reload(self) -> None:
        """Re-read the store, add and drop rows, render; the caller holds the lock."""
        if self._closed:
            return
        try:
            records = self._store.list_tokens()
            self._load_problem = None
        except OAuth2Error as exc:
            self._load_problem = ErrorInfo.from_exception(exc)
            records = None
        if records is not None:
            self._apply(records)
        self._render()

    def _apply(self, records: list[TokenRecord]) -> None:
        seen: dict[Key, TokenRecord] = {(r.alias, r.user): r for r in records}
        for key in [k for k in self._rows if k not in seen and self._rows[k].busy is None]:
            close_tree(self._rows.pop(key).box)
        for key, record in seen.items():
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = self._new_row(*key)
            token = row.token
            if token is None or (token.version, token.updated_at) != (
                record.version,
                record.updated_at,
            ):
                row.token = TokenView.from_auth_data(
                    record.data, version=record.version, updated_at=record.updated_at
                )
                if token is not None:
                    row.error = None  # a new token answers whatever failed before
        ordered = sorted(self._rows)
        if list(self._rows) != ordered:
            self._rows = {k: self._rows[k] for k in ordered}
        assign(self, "children", (*self._top, *(r.box for r in self._rows.values())))

    # events ------------------------------------------------------------------------------

    def _on_tick(self) -> None:
        with self._lock:
            self._reload()

    def _on_clock(self) -> None:
        with self._lock:
            self._render()

    def _on_ask(self, key: Key, asking: bool) -> None:
        with self._lock:
            row = self._rows.get(key)
            if row is not None and row.busy is None:
                row.confirming = asking
                self._render()

    def _on_refresh(self, key: Key) -> None:
        def action(client: TokenClient, user: str) -> str:
            data = client.refresh_user_access_token(user)
            stamp = dt.datetime.now().strftime("%H:%M:%S")
            return f"Refreshed at {stamp}: {expiry_text(data.expires_at, utcnow())}."

        self._start_action(key, "refresh", action)

    def _on_revoke(self, key: Key) -> None:
        def action(client: TokenClient, user: str) -> str:
            client.revoke_user_access_token(user)
            return f"Revoked {user!r} at {client.alias!r}."

        self._start_action(key, "revoke", action)

    def _start_action(self, key: Key, name: str, action: Callable[[TokenClient, str], str]) -> None:
        with self._lock:
            client = self._client(key[0])
        if client is None:
            return

        def begin(name: str, busy_words: str) -> bool:
            row = self._rows.get(key)
            if row is None or row.busy is not None:
                return False
            row.busy, row.message, row.confirming = name, busy_words, False
            self._render()
            return True

        def finish(name: str, message: str, error: ErrorInfo | None) -> None:
            row = self._rows.get(key)
            if row is not None:
                row.busy, row.message = None, message
            if error is None and name == "revoke":
                # The row goes away with the token; say so above the rows instead.
                assign(self._message, "value", text(message))
            self._reload()
            row = self._rows.get(key)
            if row is not None:
                row.error = error
                self._render()

        self._runner.start(name, lambda: action(client, key[1]), begin=begin, finish=finish)

    def close(self) -> None:
        """Leave the store watcher, close every row and the clients built for them."""
        with self._lock:
            self._closed = True
        self._alarm.cancel()
        self._watch.cancel()
        for child in self.children:
            close_tree(child)
        self.layout.close()
        for client in self._clients.values():
            if client is not None:
                client.close()
        super().close()

    # view --------------------------------------------------------------------------------

    def _render(self) -> None:
        if self._closed:
            return
        now = utcnow()
        count = len(self._rows)
        header = f"<b>OAuth2 tokens</b> in <code>{text(str(self._store.path))}</code>: " + (
            f"{count} stored" if count else "none stored"
        )
        if self._load_problem is not None:
            header += "<br>" + error_html(self._load_problem)
        assign(self._header, "value", header)
        assign(self._columns.layout, "display", shown(bool(count)))
        wakes: list[float] = []
        for row in self._rows.values():
            self._render_row(row, now)
            expires = row.token.expires_at if row.token is not None else None
            change = about_changes_at(expires.timestamp(), now.timestamp()) if expires else None
            if change is not None:
                wakes.append(change)
        self._alarm.set(min(wakes) if wakes else None)

    def _render_row(self, row: _Row, now: dt.datetime) -> None:
        client = self._client(row.alias)
        config = client.config if client is not None else None
        problem = (
            None
            if config
            else f"No provider is registered for {row.alias!r} in this store: run "
            "client.setup() for it once."
        )
        state = PanelState(
            alias=row.alias,
            user=row.user,
            auth_uri="",
            token_uri="",
            requested_scopes=(),
            redirect_uri=None,
            config_problem=problem,
            token=row.token,
            error=row.error,
        )
        status = state.status(now)
        assign(row.status, "value", _badge(STATUS_WORDS[status], BADGE_COLOURS[status]))
        set_status_class(row.status, "chat-oauth2-status", status)
        token = row.token
        expires = token.expires_at.timestamp() if token and token.expires_at else None
        row.countdown.count_to(expires)
        assign(row.countdown.layout, "display", shown(expires is not None))
        fallback = expiry_fallback_html(expires, now.timestamp()) if token else ""
        assign(row.expiry, "value", fallback)
        idle = config is not None and row.busy is None and token is not None
        assign(
            row.refresh, "disabled", not (idle and token is not None and token.has_refresh_token)
        )
        assign(row.revoke, "disabled", not idle)
        asking = row.confirming and idle
        assign(row.question.layout, "display", shown(asking))
        question = (
            f"<b>Revoke the token for <code>{text(row.user)}</code> at "
            f"<code>{text(row.alias)}</code>?</b> You will need to authorize again."
        )
        assign(row.question.children[0], "value", question if asking else "")
        outcome = text(row.message or problem or "")
        if row.error is not None:
            outcome += "<br>" + error_html(row.error)
        assign(row.outcome, "value", outcome)
        assign(row.outcome.layout, "display", shown(bool(outcome)))


def _badge(word: str, colour: str) -> str:
    return (
        f'<span class="chat-oauth2-badge" style="background: {colour}; color: #fff; '
        f'border-radius: 1em; padding: 0.1em 0.6em; font-weight: 600; white-space: nowrap">'
        f"{text(word)}</span>"
    )


def dashboard(store: Store | None = None, *, client_factory: ClientFactory) -> TokenDashboard:
    """Return a widget listing every stored token (default store if none given).

    ``client_factory(config, store)`` builds the client for a row's provider (the notebook
    façade passes its own; ``chat_oauth2_nb.dashboard()`` is the call for notebooks).
    """
    store = store if store is not None else open_store()
    return TokenDashboard(store, client_factory=client_factory)

"""The panel's child widgets: built once, laid out, and filled from one :class:`PanelState`.

Three parts (the card, the ways, the details), each a small view: ``build()`` makes its
widgets, each carrying the CSS class the browser test and the widget tests find it by, and
``show()`` puts a state into them through :func:`assign` (an unchanged value sends nothing).
The HTML comes from ``render``; nothing here decides what happens next.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Sequence

import ipywidgets as widgets

from ..oauth import HttpExchange
from . import render
from ._view import assign, set_status_class
from .render import shown, text
from .state import PanelState, Status, expiry_text, fallback_offers, link_on_show

__all__ = ["Card", "Details", "PanelParts", "Ways"]


def _html(css_class: str) -> widgets.HTML:
    widget = widgets.HTML()
    widget.add_class(css_class)
    return widget


def _button(description: str, icon: str, css_class: str, **kwargs: str) -> widgets.Button:
    button = widgets.Button(description=description, icon=icon, **kwargs)
    button.add_class(css_class)
    return button


def _boxed(box: widgets.Box, css_class: str) -> widgets.Box:
    box.add_class(css_class)
    return box


@dataclasses.dataclass(frozen=True)
class Card:
    """Status badge with provider and user, link, expiry, token, buttons, outcome, error."""

    status: widgets.HTML
    link: widgets.HTML
    # A paste-back link is the provider's URL (state, PKCE challenge): it reaches the link
    # widget only when asked for, briefly (state.link_on_show).
    show_link: widgets.Button
    link_row: widgets.HBox
    expiry: widgets.HTML
    bar: widgets.FloatProgress
    token: widgets.HTML
    token_box: widgets.VBox
    refresh: widgets.Button
    revoke: widgets.Button
    buttons: widgets.HBox
    outcome: widgets.HTML
    error: widgets.HTML

    @classmethod
    def build(cls) -> Card:
        """The card's widgets, laid out."""
        expiry, token = _html("chat-oauth2-expiry"), _html("chat-oauth2-token")
        bar = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="12em", height="1.1em")
        )
        bar.add_class("chat-oauth2-expiry-bar")
        expiry_row = widgets.HBox((expiry, bar))
        expiry_row.layout.align_items = "center"
        refresh = _button("Refresh", "refresh", "chat-oauth2-refresh")
        revoke = _button("Revoke", "trash", "chat-oauth2-revoke", button_style="warning")
        link = _html("chat-oauth2-link")
        show_link = _button(
            "Show the Authorize link",
            "external-link",
            "chat-oauth2-show-link",
            tooltip="Shown for a minute: it holds this sign-in's state, which a saved notebook must not",
        )
        show_link.layout.width = "auto"
        return cls(
            status=_html("chat-oauth2-status"),
            link=link,
            show_link=show_link,
            link_row=widgets.HBox((link, show_link)),
            expiry=expiry,
            bar=bar,
            token=token,
            token_box=_boxed(widgets.VBox((expiry_row, token)), "chat-oauth2-token-box"),
            refresh=refresh,
            revoke=revoke,
            buttons=widgets.HBox((refresh, revoke)),
            outcome=_html("chat-oauth2-outcome"),
            error=_html("chat-oauth2-error"),
        )

    def show(self, state: PanelState, status: Status, now: dt.datetime) -> None:
        """Put ``state`` (whose status at ``now`` is ``status``) into the card."""
        assign(self.status, "value", render.status_html(state, status, now))
        set_status_class(self.status, "chat-oauth2-status", status)
        on_show = link_on_show(state, now.timestamp())
        assign(self.link, "value", render.link_html(state, status) if on_show else "")
        link = state.link
        asks = link is not None and link.kind == "paste" and not on_show
        assign(
            self.show_link.layout, "display", shown(asks and status is not Status.NOT_CONFIGURED)
        )
        self._show_token(state, now)
        assign(self.refresh, "disabled", not (state.ready and state.refreshable))
        assign(self.refresh, "tooltip", render.refresh_tip(state))
        assign(self.revoke, "disabled", not (state.ready and state.token is not None))
        until = state.confirm_revoke_until
        description, style, tip = render.revoke_look(until is not None and time.time() < until)
        assign(self.revoke, "description", description)
        assign(self.revoke, "button_style", style)
        assign(self.revoke, "tooltip", tip)
        assign(self.outcome, "value", text(state.outcome or ""))
        assign(self.outcome.layout, "display", shown(bool(state.outcome)))
        assign(self.error, "value", render.error_html(state.error))
        assign(self.error.layout, "display", shown(state.error is not None))

    def _show_token(self, state: PanelState, now: dt.datetime) -> None:
        token = state.token
        assign(self.token_box.layout, "display", shown(token is not None))
        if token is None:
            return
        assign(self.expiry, "value", text(expiry_text(token.expires_at, now)))
        fraction = render.remaining_fraction(token, now)
        assign(self.bar.layout, "visibility", "hidden" if fraction is None else "visible")
        if fraction is not None:
            assign(self.bar, "value", fraction)
            assign(self.bar, "bar_style", render.progress_style(fraction))
        assign(self.token, "value", render.token_html(token))


@dataclasses.dataclass(frozen=True)
class Ways:
    """The device code, the paste-back field and the fallback offer."""

    # Device code (RFC 8628): the user code is public (made to be read off a screen); the
    # device code is a credential and stays in the store.
    user_code: widgets.HTML
    verify: widgets.HTML
    code_expiry: widgets.HTML
    new_code: widgets.Button
    device_box: widgets.VBox
    paste_help: widgets.HTML
    paste: widgets.Text
    finish: widgets.Button
    paste_note: widgets.HTML
    paste_box: widgets.VBox
    # Offered when an opened link brought no callback within fallback_after seconds.
    fallback_text: widgets.HTML
    use_paste: widgets.Button
    use_code: widgets.Button
    fallback_box: widgets.VBox

    @classmethod
    def build(cls) -> Ways:
        """The ways' widgets, laid out."""
        user_code, verify = _html("chat-oauth2-user-code"), _html("chat-oauth2-verify")
        code_expiry = _html("chat-oauth2-code-expiry")
        new_code = _button("Get a new code", "key", "chat-oauth2-new-code")
        device_box = widgets.VBox((user_code, verify, code_expiry, new_code))
        # Paste-back: the field is read and emptied at once (continuous_update off: one
        # value on blur or Enter, not one per keystroke while the person pastes).
        paste_help, paste_note = _html("chat-oauth2-paste-help"), _html("chat-oauth2-paste-note")
        paste = widgets.Text(
            value="",
            placeholder="http://127.0.0.1:53682/chat-oauth2/callback/…?code=…&state=…",
            continuous_update=False,
            layout=widgets.Layout(width="30em"),
        )
        paste.add_class("chat-oauth2-paste")
        finish = _button("Finish", "check", "chat-oauth2-paste-finish", button_style="primary")
        fallback_text = _html("chat-oauth2-fallback-text")
        use_paste = _button("Paste the address instead", "paste", "chat-oauth2-fallback-paste")
        use_code = _button("Use a code instead", "key", "chat-oauth2-fallback-device")
        use_paste.layout.width = use_code.layout.width = "auto"
        return cls(
            user_code=user_code,
            verify=verify,
            code_expiry=code_expiry,
            new_code=new_code,
            device_box=_boxed(device_box, "chat-oauth2-device"),
            paste_help=paste_help,
            paste=paste,
            finish=finish,
            paste_note=paste_note,
            paste_box=_boxed(
                widgets.VBox((paste_help, widgets.HBox((paste, finish)), paste_note)),
                "chat-oauth2-paste-box",
            ),
            fallback_text=fallback_text,
            use_paste=use_paste,
            use_code=use_code,
            fallback_box=_boxed(
                widgets.VBox((fallback_text, widgets.HBox((use_paste, use_code)))),
                "chat-oauth2-fallback",
            ),
        )

    def show(self, state: PanelState, now: dt.datetime, fallback_after: float) -> None:
        """Show each way that applies to ``state``: device code, paste field, fallback offer."""
        self._show_device(state, now)
        link = state.link
        pasting = link if link is not None and link.kind == "paste" else None
        assign(self.paste_box.layout, "display", shown(pasting is not None))
        assign(self.paste_help, "value", render.paste_help_html(pasting) if pasting else "")
        assign(self.finish, "disabled", not state.ready)
        note = render.paste_note_html(state)
        assign(self.paste_note, "value", note)
        assign(self.paste_note.layout, "display", shown(bool(note)))
        offers = fallback_offers(state, now, fallback_after)
        assign(self.fallback_box.layout, "display", shown(offers is not None))
        assign(self.use_paste.layout, "display", shown("paste" in (offers or ())))
        assign(self.use_code.layout, "display", shown("device" in (offers or ())))
        for button in (self.use_paste, self.use_code):
            assign(button, "disabled", not state.ready)
        offer = render.fallback_html(state, offers) if offers is not None else ""
        assign(self.fallback_text, "value", offer)

    def _show_device(self, state: PanelState, now: dt.datetime) -> None:
        link = state.link
        device = link if link is not None and link.kind == "device" else None
        assign(
            self.device_box.layout, "display", shown(device is not None or state.way == "device")
        )
        for part in (self.user_code, self.verify, self.code_expiry):
            assign(part.layout, "display", shown(device is not None))
        assign(self.user_code, "value", render.user_code_html(device) if device else "")
        assign(self.verify, "value", render.verify_html(device) if device else "")
        assign(self.code_expiry, "value", render.code_expiry_html(device, now) if device else "")
        show_new = device is None and state.way == "device" and state.config_problem is None
        assign(self.new_code.layout, "display", shown(show_new))
        assign(self.new_code, "disabled", not state.ready)


@dataclasses.dataclass(frozen=True)
class Details:
    """Collapsed: what a person debugging a provider wants, nobody else."""

    provider: widgets.HTML
    check: widgets.Button
    # The doctor's report holds no secret (it masks every one it knows), so it may be
    # shown in a synced widget.
    report: widgets.HTML
    scopes: widgets.HTML
    extras: widgets.HTML
    # id_token claims (email, name) are personal data and widget state can be saved into
    # the .ipynb: they are rendered only while this toggle is on, and cleared when off.
    claims_toggle: widgets.ToggleButton
    claims: widgets.HTML
    log_body: widgets.HTML
    http_log: widgets.Accordion
    accordion: widgets.Accordion

    @classmethod
    def build(cls) -> Details:
        """The details' widgets, in a collapsed accordion."""
        check = _button(
            "Check configuration",
            "stethoscope",
            "chat-oauth2-check",
            tooltip="Ask the provider whether this configuration works (client.diagnose())",
        )
        check.layout.width = "auto"
        claims_toggle = widgets.ToggleButton(
            value=False,
            description="Show claims",
            icon="user",
            tooltip="Show the id_token's claims (personal data: saved with the notebook while shown)",
        )
        claims_toggle.add_class("chat-oauth2-claims-toggle")
        log_body = _html("chat-oauth2-http-log-body")
        http_log = widgets.Accordion(children=(log_body,), selected_index=None)
        http_log.add_class("chat-oauth2-http-log")
        provider, report = _html("chat-oauth2-provider"), _html("chat-oauth2-report")
        scopes, extras = _html("chat-oauth2-scopes"), _html("chat-oauth2-extras")
        claims = _html("chat-oauth2-claims")
        body = widgets.VBox(
            (provider, check, report, scopes, extras, claims_toggle, claims, http_log)
        )
        accordion = widgets.Accordion(children=(body,), selected_index=None, titles=("Details",))
        accordion.add_class("chat-oauth2-details")
        return cls(
            provider=provider,
            check=check,
            report=report,
            scopes=scopes,
            extras=extras,
            claims_toggle=claims_toggle,
            claims=claims,
            log_body=log_body,
            http_log=http_log,
            accordion=accordion,
        )

    def show(self, state: PanelState, *, sealed: str, report_html: str) -> None:
        """Put ``state`` into the details; ``sealed`` says how the store keeps tokens."""
        token, toggle = state.token, self.claims_toggle
        for part in (self.scopes, self.extras, toggle, self.claims):
            assign(part.layout, "display", shown(token is not None))
        if token is not None:
            assign(self.scopes, "value", render.scopes_html(state))
            assign(self.extras, "value", render.extras_html(token))
        elif toggle.value:
            toggle.value = False  # the next token's claims are asked for anew
        has_claims = token is not None and (token.has_id_token or bool(token.id_token_problem))
        assign(toggle, "disabled", not has_claims)
        claims = render.claims_html(token) if token and has_claims and toggle.value else ""
        assign(self.claims, "value", claims)
        assign(self.provider, "value", render.provider_html(state, sealed))
        assign(self.report, "value", report_html)
        assign(self.check, "disabled", state.busy is not None or state.config_problem is not None)
        # A declared provider's secret is the administrator's: `python -m chat_oauth2_nb.hub
        # check` (or a diagnose in the server) is the check that can use it.
        assign(self.check.layout, "display", shown(not state.declared))

    def show_log(self, entries: Sequence[HttpExchange], secrets: Sequence[str | None]) -> None:
        """Show the client's HTTP log, every known secret masked once more."""
        assign(self.http_log, "titles", (f"HTTP log ({len(entries)})",))
        assign(self.log_body, "value", render.http_log_html(entries, secrets))


@dataclasses.dataclass(frozen=True)
class PanelParts:
    """Every child widget of one panel, and the order they are shown in."""

    card: Card
    ways: Ways
    details: Details

    @classmethod
    def build(cls) -> PanelParts:
        """A fresh set of child widgets."""
        return cls(Card.build(), Ways.build(), Details.build())

    @property
    def children(self) -> tuple[widgets.Widget, ...]:
        """The panel's children, top to bottom."""
        card, ways = self.card, self.ways
        return (
            card.status,
            card.link_row,
            ways.device_box,
            ways.paste_box,
            ways.fallback_box,
            card.token_box,
            card.buttons,
            card.outcome,
            card.error,
            self.details.accordion,
        )

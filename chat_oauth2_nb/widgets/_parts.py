"""The panel's child widgets: built once, laid out, and filled from one :class:`PanelState`.

Three parts (the card, the ways, the details), each a small view: ``build()`` makes its
widgets, each carrying the CSS class the browser test and the widget tests find it by, and
``show()`` puts a state into them through :func:`assign` (an unchanged value sends nothing).
The HTML comes from ``render``; nothing here decides what happens next.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import ipywidgets as widgets

from ..oauth import HttpExchange
from . import render
from ._view import assign, set_status_class
from ._views import CopyButton, Countdown
from .render import shown, text
from .state import PanelState, Status, fallback_offers, link_on_show, next_step, ways_open

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
    """Status, the Authorize link, the token and its expiry, the actions, outcome and error."""

    style: widgets.HTML
    status: widgets.HTML
    link: widgets.HTML
    # A paste-back link is the provider's URL (state, PKCE challenge): it reaches the link
    # widget only when asked for, briefly (state.link_on_show).
    show_link: widgets.Button
    link_row: widgets.HBox
    # The live countdown is the browser's; the text beside it needs no tick (at most one
    # change a minute), for a front end without the labextension.
    countdown: Countdown
    expiry: widgets.HTML
    bar: widgets.FloatProgress
    token: widgets.HTML
    token_box: widgets.VBox
    refresh: widgets.Button
    again: widgets.Button
    revoke: widgets.Button
    buttons: widgets.HBox
    # Revoke asks first: "Revoke the token for …? [Revoke] [Cancel]".
    confirm_text: widgets.HTML
    confirm: widgets.Button
    cancel: widgets.Button
    confirm_box: widgets.HBox
    outcome: widgets.HTML
    error: widgets.HTML

    @classmethod
    def build(cls) -> Card:
        """The card's widgets, laid out."""
        expiry, token = _html("chat-oauth2-expiry"), _html("chat-oauth2-token")
        countdown = Countdown(prefix="Expires in ", expired_text="Expired")
        countdown.add_class("chat-oauth2-expiry-countdown")
        bar = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="8em", height="1.1em")
        )
        bar.add_class("chat-oauth2-expiry-bar")
        expiry_row = widgets.HBox((countdown, expiry, bar))
        expiry_row.layout.align_items = "center"
        expiry_row.layout.grid_gap = "0.5em"
        refresh = _button("Refresh", "refresh", "chat-oauth2-refresh")
        again = _button("Authorize again", "sign-in", "chat-oauth2-again")
        # Not loud: a plain button with an icon; the question it asks is the red one.
        revoke = _button("Revoke", "trash", "chat-oauth2-revoke")
        for button in (refresh, again, revoke):
            button.layout.width = "auto"
        confirm = _button("Revoke", "trash", "chat-oauth2-confirm-revoke", button_style="danger")
        cancel = _button("Cancel", "", "chat-oauth2-cancel-revoke")
        confirm.layout.width = cancel.layout.width = "auto"
        confirm_text = _html("chat-oauth2-confirm-text")
        # The question on its own line, its two answers under it: nothing gets squeezed.
        confirm_box = _boxed(
            widgets.VBox((confirm_text, widgets.HBox((confirm, cancel)))),
            "chat-oauth2-confirm-box",
        )
        link = _html("chat-oauth2-link")
        show_link = _button(
            "Show the Authorize link",
            "external-link",
            "chat-oauth2-show-link",
            tooltip="Shown for a minute: it holds this sign-in's state, which a saved notebook must not",
        )
        show_link.layout.width = "auto"
        style = widgets.HTML(render.PANEL_CSS, layout=widgets.Layout(height="0px", margin="0"))
        return cls(
            style=style,
            status=_html("chat-oauth2-status"),
            link=link,
            show_link=show_link,
            link_row=widgets.HBox((link, show_link)),
            countdown=countdown,
            expiry=expiry,
            bar=bar,
            token=token,
            token_box=_boxed(widgets.VBox((expiry_row, token)), "chat-oauth2-token-box"),
            refresh=refresh,
            again=again,
            revoke=revoke,
            buttons=widgets.HBox((refresh, again, revoke)),
            confirm_text=confirm_text,
            confirm=confirm,
            cancel=cancel,
            confirm_box=confirm_box,
            outcome=_html("chat-oauth2-outcome"),
            error=_html("chat-oauth2-error"),
        )

    def show(self, state: PanelState, status: Status, now: dt.datetime) -> None:
        """Put ``state`` (whose status at ``now`` is ``status``) into the card."""
        step = next_step(state, now)
        assign(self.status, "value", render.status_html(state, status, now))
        set_status_class(self.status, "chat-oauth2-status", status)
        on_show = link_on_show(state, now.timestamp())
        ways = ways_open(state, status)
        link_value = render.link_html(state, status, primary=step == "authorize")
        assign(self.link, "value", link_value if on_show and ways else "")
        link = state.link
        asks = link is not None and link.kind == "paste" and not on_show
        assign(
            self.show_link.layout,
            "display",
            shown(ways and asks and status is not Status.NOT_CONFIGURED),
        )
        assign(self.show_link, "button_style", "primary" if step == "show_link" else "")
        assign(self.link_row.layout, "display", shown(ways))
        self._show_token(state, now)
        self._show_buttons(state, status, step)
        assign(self.outcome, "value", text(state.outcome or ""))
        assign(self.outcome.layout, "display", shown(bool(state.outcome)))
        assign(self.error, "value", render.error_html(state.error))
        assign(self.error.layout, "display", shown(state.error is not None))

    def _show_buttons(self, state: PanelState, status: Status, step: str | None) -> None:
        has_token = state.token is not None
        asking = state.confirm_revoke and has_token
        assign(self.buttons.layout, "display", shown(has_token and not asking))
        assign(self.refresh, "disabled", not (state.ready and state.refreshable))
        assign(self.refresh, "tooltip", render.refresh_tip(state))
        assign(self.refresh, "button_style", "primary" if step == "refresh" else "")
        assign(self.again.layout, "display", shown(status is Status.AUTHORIZED))
        assign(self.again, "description", "Hide the sign-in" if state.again else "Authorize again")
        assign(self.again, "disabled", not state.ready)
        assign(self.revoke, "disabled", not state.ready)
        assign(self.confirm_box.layout, "display", shown(asking))
        assign(self.confirm_text, "value", render.confirm_revoke_html(state) if asking else "")
        assign(self.confirm, "disabled", not state.ready)

    def _show_token(self, state: PanelState, now: dt.datetime) -> None:
        token = state.token
        assign(self.token_box.layout, "display", shown(token is not None))
        if token is None:
            self.countdown.count_to(None)
            return
        expires_at = token.expires_at.timestamp() if token.expires_at is not None else None
        self.countdown.count_to(expires_at)
        assign(self.countdown.layout, "display", shown(expires_at is not None))
        assign(self.expiry, "value", render.expiry_fallback_html(expires_at, now.timestamp()))
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
    copy_code: CopyButton
    verify: widgets.HTML
    code_countdown: Countdown
    code_expiry: widgets.HTML
    code_expiry_row: widgets.HBox
    new_code: widgets.Button
    device_box: widgets.VBox
    paste_help: widgets.HTML
    paste: widgets.Text
    finish: widgets.Button
    paste_note: widgets.HTML
    paste_box: widgets.VBox
    # Offered when an opened link brought no callback within fallback_after seconds.
    fallback_text: widgets.HTML
    copy_redirect: CopyButton
    use_paste: widgets.Button
    use_code: widgets.Button
    fallback_box: widgets.VBox

    @classmethod
    def build(cls) -> Ways:
        """The ways' widgets, laid out."""
        user_code, verify = _html("chat-oauth2-user-code"), _html("chat-oauth2-verify")
        copy_code = CopyButton(description="Copy code", tooltip="Copy the code to the clipboard")
        copy_code.add_class("chat-oauth2-copy-code")
        code_row = widgets.HBox((user_code, copy_code))
        code_row.layout.align_items = "flex-end"
        code_expiry = _html("chat-oauth2-code-expiry")
        code_countdown = Countdown(prefix="The code expires in ", expired_text="The code expired")
        code_countdown.add_class("chat-oauth2-code-countdown")
        code_expiry_row = widgets.HBox((code_countdown, code_expiry))
        code_expiry_row.layout.grid_gap = "0.5em"
        new_code = _button("Get a new code", "key", "chat-oauth2-new-code")
        new_code.layout.width = "auto"
        device_box = widgets.VBox((code_row, verify, code_expiry_row, new_code))
        # Paste-back: the field is read and emptied at once (continuous_update off: one
        # value on blur or Enter, not one per keystroke while the person pastes).
        paste_help, paste_note = _html("chat-oauth2-paste-help"), _html("chat-oauth2-paste-note")
        paste = widgets.Text(
            value="",
            placeholder="http://127.0.0.1:53682/chat-oauth2/callback/…?code=…&state=…",
            continuous_update=False,
            layout=widgets.Layout(width="auto", flex="1 1 20em"),
        )
        paste.add_class("chat-oauth2-paste")
        finish = _button("Finish", "check", "chat-oauth2-paste-finish")
        fallback_text = _html("chat-oauth2-fallback-text")
        copy_redirect = CopyButton(
            description="Copy redirect URI", tooltip="Copy the redirect URI to register"
        )
        copy_redirect.add_class("chat-oauth2-copy-redirect-fallback")
        use_paste = _button("Paste the address instead", "paste", "chat-oauth2-fallback-paste")
        use_code = _button("Use a code instead", "key", "chat-oauth2-fallback-device")
        use_paste.layout.width = use_code.layout.width = "auto"
        return cls(
            user_code=user_code,
            copy_code=copy_code,
            verify=verify,
            code_countdown=code_countdown,
            code_expiry=code_expiry,
            code_expiry_row=code_expiry_row,
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
            copy_redirect=copy_redirect,
            use_paste=use_paste,
            use_code=use_code,
            fallback_box=_boxed(
                widgets.VBox((fallback_text, widgets.HBox((copy_redirect, use_paste, use_code)))),
                "chat-oauth2-fallback",
            ),
        )

    def show(self, state: PanelState, now: dt.datetime, fallback_after: float) -> None:
        """Show each way that applies to ``state``: device code, paste field, fallback offer."""
        status = state.status(now)
        ways, step = ways_open(state, status), next_step(state, now)
        self._show_device(state, now, ways, step)
        link = state.link
        pasting = link if ways and link is not None and link.kind == "paste" else None
        assign(self.paste_box.layout, "display", shown(pasting is not None))
        assign(self.paste_help, "value", render.paste_help_html(pasting) if pasting else "")
        assign(self.finish, "disabled", not state.ready)
        assign(self.finish, "button_style", "primary" if step == "finish" else "")
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
        fixable = offers is not None and not state.declared and bool(state.redirect_uri)
        assign(self.copy_redirect.layout, "display", shown(fixable))
        assign(self.copy_redirect, "text", (state.redirect_uri or "") if fixable else "")

    def _show_device(
        self, state: PanelState, now: dt.datetime, ways: bool, step: str | None
    ) -> None:
        link = state.link
        device = link if ways and link is not None and link.kind == "device" else None
        assign(
            self.device_box.layout,
            "display",
            shown(ways and (device is not None or state.way == "device")),
        )
        for part in (self.user_code, self.copy_code, self.verify, self.code_expiry_row):
            assign(part.layout, "display", shown(device is not None))
        assign(self.user_code, "value", render.user_code_html(device) if device else "")
        # The user code is public (RFC 8628 shows it on screen): it may be a synced trait.
        assign(self.copy_code, "text", (device.user_code or "") if device else "")
        verify = render.verify_html(device, primary=step == "verify") if device else ""
        assign(self.verify, "value", verify)
        assign(self.code_expiry, "value", render.code_expiry_html(device, now) if device else "")
        self.code_countdown.count_to(device.expires_at if device else None)
        show_new = device is None and state.way == "device" and state.config_problem is None
        assign(self.new_code.layout, "display", shown(show_new))
        assign(self.new_code, "disabled", not state.ready)
        assign(self.new_code, "button_style", "primary" if step == "new_code" else "")


@dataclasses.dataclass(frozen=True)
class Details:
    """Collapsed: what a person debugging a provider wants, nobody else."""

    provider: widgets.HTML
    # The redirect URI to register, as selectable text and with a copy button.
    redirect: widgets.HTML
    copy_redirect: CopyButton
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
        claims, redirect = _html("chat-oauth2-claims"), _html("chat-oauth2-redirect")
        copy_redirect = CopyButton(
            description="Copy", tooltip="Copy the redirect URI to the clipboard"
        )
        copy_redirect.add_class("chat-oauth2-copy-redirect")
        redirect_row = widgets.HBox((redirect, copy_redirect))
        redirect_row.layout.align_items = "center"
        redirect_row.layout.grid_gap = "0.5em"
        body = widgets.VBox(
            (
                provider,
                redirect_row,
                check,
                report,
                scopes,
                extras,
                claims_toggle,
                claims,
                http_log,
            )
        )
        accordion = widgets.Accordion(children=(body,), selected_index=None, titles=("Details",))
        accordion.add_class("chat-oauth2-details")
        return cls(
            provider=provider,
            redirect=redirect,
            copy_redirect=copy_redirect,
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

    def show(self, state: PanelState, *, sealed: str) -> None:
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
        assign(self.redirect, "value", render.redirect_html(state))
        assign(self.copy_redirect, "text", state.redirect_uri or "")
        assign(self.copy_redirect.layout, "display", shown(bool(state.redirect_uri)))
        report = render.report_html(state.report)
        assign(self.report, "value", report)
        assign(self.report.layout, "display", shown(bool(report)))
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
            card.style,
            card.status,
            card.link_row,
            ways.device_box,
            ways.paste_box,
            ways.fallback_box,
            card.token_box,
            card.buttons,
            card.confirm_box,
            card.outcome,
            card.error,
            self.details.accordion,
        )

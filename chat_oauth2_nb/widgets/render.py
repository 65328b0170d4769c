"""What the panel and the dashboard show, as HTML strings built from plain state: no widgets.

Every value a provider, a person or a store sends ends up escaped here (:func:`text`), and no
function takes a secret except :func:`http_log_html`, which masks the ones it is given once
more before they could reach a synced widget trait.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qs, urlsplit

from ..oauth import HttpExchange, redact
from ..oauth.device import shown_host
from .state import (
    STATUS_WORDS,
    ErrorInfo,
    LinkView,
    PanelState,
    Status,
    TokenView,
    expiry_text,
    status_line,
)

__all__ = [
    "BADGE_COLOURS",
    "claims_html",
    "code_expiry_html",
    "error_html",
    "exchange_html",
    "extras_html",
    "fallback_html",
    "http_log_html",
    "link_html",
    "paste_help_html",
    "paste_note_html",
    "paste_target",
    "progress_style",
    "provider_html",
    "refresh_tip",
    "remaining_fraction",
    "revoke_look",
    "scopes_html",
    "sealed_words",
    "shown",
    "status_html",
    "text",
    "token_html",
    "user_code_html",
    "verify_html",
]

# Badge colours, readable as white text on light and dark JupyterLab themes.
BADGE_COLOURS = {
    Status.NOT_CONFIGURED: "#6e7781",
    Status.NOT_AUTHORIZED: "#57606a",
    Status.WAITING: "#0969da",
    Status.AUTHORIZED: "#1a7f37",
    Status.EXPIRED: "#bc4c00",
    Status.ERROR: "#cf222e",
}
# Jupyter's CSS resets link styles: make links look like the links they are.
_LINK_STYLE = 'style="color: var(--jp-content-link-color, #0969da); text-decoration: underline"'


def text(value: str) -> str:
    """Escape plain text for an HTML widget (providers' words end up here)."""
    return html.escape(value, quote=True)


def shown(visible: bool) -> str | None:
    """A layout's ``display``: the default when ``visible``, else ``none``."""
    return None if visible else "none"


def error_html(error: ErrorInfo | None) -> str:
    """What failed, what the provider said, and what to change; empty without an error."""
    if error is None:
        return ""
    lines = [f"<b>What failed:</b> {text(error.message)}"]
    said = error.provider_text()
    if said:
        lines.append(f"<b>The provider said:</b> {text(said)}")
    if error.hint:
        lines.append(f"<b>What to change:</b> {text(error.hint)}")
    return "<br>".join(lines)


# the card ----------------------------------------------------------------------------------


def status_html(state: PanelState, status: Status, now: dt.datetime) -> str:
    """The badge (status word, coloured) with provider and user, then what to do next."""
    word = STATUS_WORDS[status]
    line = status_line(state, now)
    detail = line[len(word) + 2 :] if line.startswith(f"{word}: ") else ""
    if status is Status.AUTHORIZED:
        detail = ""  # the expiry line below says it, once
    elif status is Status.EXPIRED:
        detail = "Refresh it." if state.refreshable else "Authorize again."
    badge = (
        f'<span class="chat-oauth2-badge" style="background: {BADGE_COLOURS[status]}; '
        'color: #fff; border-radius: 1em; padding: 0.1em 0.7em; font-weight: 600">'
        f"{text(word)}</span>"
    )
    who = f" <b>{text(state.alias)}</b> · <code>{text(state.user)}</code>"
    more = f'<div class="chat-oauth2-status-detail">{text(detail)}</div>' if detail else ""
    return badge + who + more


def link_html(state: PanelState, status: Status) -> str:
    """The Authorize link (empty for device codes and without a usable link)."""
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
        f"{_LINK_STYLE}>"
        f"{'Authorize again' if status is Status.AUTHORIZED else 'Authorize'}</a> "
        "<small>(opens the provider in a new tab; each link works once)</small>"
    )


def remaining_fraction(token: TokenView, now: dt.datetime) -> float | None:
    """How much of the token's lifetime is left, in 0.5 % steps (None: no expiry known)."""
    if token.expires_at is None:
        return None
    lifetime = (token.expires_at - token.obtained_at).total_seconds()
    if lifetime <= 0:
        return 0.0
    left = (token.expires_at - now).total_seconds() / lifetime
    # Steps, so a one-hour token's bar sends an update every 18 s, not every second.
    return round(min(max(left, 0.0), 1.0) * 200) / 200


def progress_style(fraction: float) -> str:
    """The expiry bar's style for the lifetime ``fraction`` left."""
    if fraction > 0.25:
        return "success"
    return "warning" if fraction > 0.1 else "danger"


def token_html(token: TokenView) -> str:
    """The token's mask and type, and whether it is bound to a key (useless if it leaks)."""
    shown = f"Token <code>{text(token.token_mask)}</code> ({text(token.token_type)})"
    if token.bound is not None:
        shown += f" · bound to a {text(token.bound)} key held here: useless without it"
    return shown


def extras_html(token: TokenView) -> str:
    """Whether a refresh token and an id_token are stored (never what they are)."""
    refresh = "stored" if token.has_refresh_token else "none"
    id_token = "stored" if token.has_id_token else "none"
    if token.has_id_token and not token.claims_verified:
        # No jwksUri (or no issuer) to check it against: its claims are only what it says.
        id_token += " (not verified: set jwksUri/issuer; don't rely on its claims)"
    return f"Refresh token: {refresh} · id_token: {id_token}"


def scopes_html(state: PanelState) -> str:
    """Granted scopes against the requested ones; empty without a token."""
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


def claims_html(token: TokenView) -> str:
    """The id_token's claims, saying whether they were verified (personal data: on demand)."""
    if token.id_token_problem:
        return text(token.id_token_problem)
    if token.id_token_claims is None:
        return ""
    body = json.dumps(token.id_token_claims, indent=2, sort_keys=True, default=str)
    if token.claims_verified:
        label = (
            "id_token claims (<b>verified</b>: signature, issuer, audience, expiry and nonce "
            "checked)"
        )
    else:
        label = "id_token claims (decoded, <b>not verified</b>: the signature was not checked)"
    return f"{label}<pre>{text(body)}</pre>"


def refresh_tip(state: PanelState) -> str:
    """The Refresh button's tooltip: what a click does, or why it cannot work."""
    if state.declared:
        return "Have the server refresh the token now (it holds the refresh token)"
    if state.token is None or state.token.has_refresh_token:
        return "Refresh the token now"
    return "No refresh token is stored: authorize again"


def revoke_look(confirming: bool) -> tuple[str, str, str]:
    """The Revoke button's description, style and tooltip (a second click confirms)."""
    if confirming:
        return "Confirm revoke", "danger", "Click again to revoke"
    return "Revoke", "warning", "Revoke at the provider and delete the token here"


# the ways ----------------------------------------------------------------------------------


def user_code_html(link: LinkView) -> str:
    """The device flow's user code, large, selected by one click."""
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


def verify_html(link: LinkView) -> str:
    """Where to enter the device code, naming the host the link opens (issue 17, finding 12)."""
    # Static between codes, like the Authorize link: a click must not lose its anchor.
    page = link.verification_uri or link.url
    filled = " (this link fills the code in)" if link.verification_uri_complete else ""
    return (
        "Open "
        f'<a class="chat-oauth2-verify-link" data-chat-oauth2="verify" '
        f'href="{html.escape(link.url, quote=True)}" target="_blank" rel="noopener" '
        f"{_LINK_STYLE}>"
        f"{text(page)}</a> on <b>{text(shown_host(link.url))}</b>{filled}, sign in, "
        "and approve."
    )


def code_expiry_html(link: LinkView, now: dt.datetime) -> str:
    """How long the device code stays valid, or that it expired."""
    expires = dt.datetime.fromtimestamp(link.expires_at, dt.timezone.utc)
    if expires <= now:
        return text("The code expired: get a new one.")
    return text(f"The code {expiry_text(expires, now)}.")


def paste_target(link: LinkView) -> str:
    """Where the provider sends the browser: the link's own redirect_uri parameter."""
    return (parse_qs(urlsplit(link.url).query).get("redirect_uri") or ["?"])[0]


def paste_help_html(link: LinkView) -> str:
    """What to paste back, and from where."""
    return (
        "After you approve, the browser ends on an address that does not load "
        f"(<code>{text(paste_target(link))}</code>…). "
        "Copy the whole address from the address bar here and press Finish."
    )


def paste_note_html(state: PanelState) -> str:
    """What became of the pasted address: its error, or a note (empty: nothing to say)."""
    if state.paste_error:
        return error_html(state.paste_error)
    return text(state.paste_note or "")


def fallback_html(state: PanelState, offers: tuple[str, ...]) -> str:
    """The offer once an opened link brought no callback: fix the redirect URI, or switch."""
    uri = text(state.redirect_uri or "")
    if state.declared:
        # The administrator registered the redirect URI: the fix is theirs, not the user's.
        fix = (
            "tell your administrator, who declared this provider, that it refused the "
            f"redirect URI <code>{uri}</code>."
        )
    else:
        fix = f"register exactly <code>{uri}</code> as a redirect URI there."
    more = " Or finish another way:" if offers else ""
    return (
        f"<b>Browser didn't come back?</b> If the provider showed its own error page, {fix}{more}"
    )


# details -----------------------------------------------------------------------------------


def sealed_words(encrypted: bool | None, key_source: str | None) -> str:
    """How the store keeps tokens (None: the store cannot be opened)."""
    if encrypted is None:
        return "cannot be opened"
    if not encrypted:
        return "not encrypted"
    return "encrypted (hub key)" if key_source == "hub" else "encrypted (AES-GCM)"


def provider_html(state: PanelState, sealed: str) -> str:
    """Endpoints, redirect URI, requested scopes and the store's protection."""
    scopes = " ".join(state.requested_scopes) or "(none)"
    redirect = state.redirect_uri or "(not set up)"
    if state.declared:
        who = "declared by your administrator, who registered it at the provider"
        declared = (
            "Provider: declared by your administrator (the server holds its client secret "
            "and refresh tokens)<br>"
        )
    else:
        who, declared = "register exactly this at the provider", ""
    return (
        declared + f"Authorization endpoint: <code>{text(state.auth_uri)}</code><br>"
        f"Token endpoint: <code>{text(state.token_uri)}</code><br>"
        f"Redirect URI: <code>{text(redirect)}</code> ({who})<br>"
        f"Scopes requested: <code>{text(scopes)}</code><br>"
        f"Token store: {sealed}"
    )


def exchange_html(exchange: HttpExchange, secrets: Sequence[str | None]) -> str:
    """One request and its answer, every known secret masked once more."""

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


def http_log_html(entries: Iterable[HttpExchange], secrets: Sequence[str | None]) -> str:
    """The HTTP log's body: every exchange, or a note that there was none."""
    body = "".join(exchange_html(e, secrets) for e in entries)
    return body or "<i>No requests yet.</i>"

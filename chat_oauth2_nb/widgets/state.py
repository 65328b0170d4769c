"""The panel's state model: what to show, derived from the store, with no widget in sight.

Everything here is plain data and pure functions so the view stays a thin renderer and the
rules (which status wins, how a countdown reads, what an id_token claims) are testable on
their own. No value held here is a secret: tokens arrive as :class:`AuthData` and leave as
masks and yes/no flags.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import enum
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import OAuth2Error, hint_for
from ..oauth import AuthData, mask
from ..oauth.lifetime import refresh_note

__all__ = [
    "STATUS_WORDS",
    "ErrorInfo",
    "LinkView",
    "PanelState",
    "ScopeReport",
    "Status",
    "TokenView",
    "decode_id_token_claims",
    "derive_status",
    "expiry_text",
    "fallback_offers",
    "format_countdown",
    "link_on_show",
    "scope_report",
    "status_line",
]


class Status(enum.Enum):
    """What the panel can say about one (alias, user)."""

    NOT_CONFIGURED = "not_configured"
    NOT_AUTHORIZED = "not_authorized"
    WAITING = "waiting"
    AUTHORIZED = "authorized"
    EXPIRED = "expired"
    ERROR = "error"


# The first words of the state line; browser tests look for them, so they never change.
STATUS_WORDS: dict[Status, str] = {
    Status.NOT_CONFIGURED: "Not configured",
    Status.NOT_AUTHORIZED: "Not authorized",
    Status.WAITING: "Waiting for the browser",
    Status.AUTHORIZED: "Authorized",
    Status.EXPIRED: "Expired",
    Status.ERROR: "Error",
}


def format_countdown(seconds: float) -> str:
    """Format a duration as ``4:59``, ``1:02:03`` or ``2d 1:02:03`` (whole seconds, rounded down)."""
    total = max(0, math.floor(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def expiry_text(expires_at: dt.datetime | None, now: dt.datetime) -> str:
    """Return ``expires in 4:59``, ``expired 0:12 ago``, or ``no expiry given``."""
    if expires_at is None:
        return "no expiry given"
    remaining = (expires_at - now).total_seconds()
    if remaining > 0:
        return f"expires in {format_countdown(remaining)}"
    return f"expired {format_countdown(-remaining)} ago"


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def decode_id_token_claims(id_token: str) -> dict[str, Any]:
    """Decode a JWT's payload WITHOUT verifying its signature; raise ValueError if unreadable.

    Only for display: nothing may trust these claims, because nobody checked who signed them.
    """
    parts = id_token.split(".")
    if len(parts) != 3:
        raise ValueError(f"has {len(parts)} dot-separated parts, not the 3 of a JWT")
    try:
        claims = json.loads(_b64url_decode(parts[1]).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("its payload is not base64url-encoded JSON") from None
    if not isinstance(claims, dict):
        raise ValueError("its payload is JSON but not an object")
    return claims


@dataclasses.dataclass(frozen=True)
class ScopeReport:
    """Granted scopes compared with the requested ones."""

    granted: tuple[str, ...]
    requested: tuple[str, ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]


def scope_report(requested: Iterable[str], granted: Iterable[str]) -> ScopeReport:
    """Compare scopes: which requested ones were not granted, and which came unasked."""
    req = tuple(dict.fromkeys(requested))
    got = tuple(dict.fromkeys(granted))
    return ScopeReport(
        granted=got,
        requested=req,
        missing=tuple(s for s in req if s not in got),
        extra=tuple(s for s in got if s not in req),
    )


@dataclasses.dataclass(frozen=True)
class ErrorInfo:
    """A failure as the panel shows it: what failed, what the provider said, what to change."""

    message: str
    error: str | None = None
    description: str | None = None
    status_code: int | None = None
    hint: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """Take the fields of a typed error; an unexpected exception shows its type only."""
        if isinstance(exc, OAuth2Error):
            return cls(
                message=getattr(exc, "message", str(exc)),
                error=exc.error,
                description=exc.error_description,
                status_code=exc.status_code,
                hint=exc.hint or hint_for(exc.error),
            )
        # Foreign exception messages were never vetted for secrets: name the type only.
        return cls(message=f"Unexpected {type(exc).__name__} (its message is not shown)")

    def provider_text(self) -> str | None:
        """``'invalid_grant': refresh token revoked (HTTP 400)``, or None when nobody answered."""
        if not self.error and self.status_code is None:
            return None
        text = repr(self.error) if self.error else "no error code"
        if self.description:
            text += f": {self.description}"
        if self.status_code is not None:
            text += f" (HTTP {self.status_code})"
        return text


@dataclasses.dataclass(frozen=True)
class TokenView:
    """The displayable part of a stored token: a mask and flags, never the token itself."""

    token_mask: str
    token_type: str
    scopes: tuple[str, ...]
    expires_at: dt.datetime | None
    obtained_at: dt.datetime
    has_refresh_token: bool
    has_id_token: bool
    id_token_claims: Mapping[str, Any] | None
    id_token_problem: str | None
    version: int
    updated_at: float
    #: True when the claims are the ones verified at the code exchange (OpenID Connect).
    claims_verified: bool = False
    #: When the refresh token ends, if the provider said; and one sentence about it (in
    #: its last quarter: how to renew) for the panel to show, warning when ``refresh_ending``.
    refresh_expires_at: dt.datetime | None = None
    refresh_note: str | None = None
    refresh_ending: bool = False
    #: How the token is bound to a key held here ("DPoP", RFC 9449), or None (bearer).
    bound: str | None = None

    @classmethod
    def from_auth_data(
        cls, data: AuthData, *, version: int, updated_at: float, auth_uri: str | None = None
    ) -> TokenView:
        """Keep what a person may see of ``data``: its verified claims, else the decoded ones."""
        claims: Mapping[str, Any] | None = data.claims
        problem: str | None = None
        if data.id_token and claims is None:
            try:
                claims = decode_id_token_claims(data.id_token)
            except ValueError as exc:
                problem = f"The id_token cannot be decoded: it {exc}"
        return cls(
            token_mask=mask(data.token),
            token_type=data.token_type,
            scopes=data.scopes,
            expires_at=data.expires_at,
            obtained_at=data.obtained_at,
            has_refresh_token=bool(data.refresh_token),
            has_id_token=bool(data.id_token),
            id_token_claims=claims,
            id_token_problem=problem,
            version=version,
            updated_at=updated_at,
            claims_verified=data.claims is not None,
            refresh_expires_at=data.refresh_expires_at,
            refresh_note=note.text if (note := refresh_note(data, auth_uri)) else None,
            refresh_ending=note.ending if note else False,
            bound=data.bound,
        )

    def is_expired(self, now: dt.datetime) -> bool:
        """True once the expiry has passed (no leeway: this is what the person sees)."""
        return self.expires_at is not None and self.expires_at <= now


@dataclasses.dataclass(frozen=True)
class LinkView:
    """The authorization link on offer: the start URL, whose only parameter is an opaque id.

    A paste-back flow has no start page, so its ``url`` is the provider's URL itself; it
    reaches a widget only while :func:`link_on_show` says so.
    """

    url: str
    #: The flow's start id (not its state: a start link never carries the state).
    start_id: str
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float
    # False when code in the notebook started this flow and the panel adopted it.
    started_by_panel: bool
    exchanging: bool = False
    #: How the person finishes it: ``redirect`` (the browser comes back by itself),
    #: ``paste`` (the person pastes the address it ended on) or ``device`` (types a code).
    kind: str = "redirect"
    #: Device flows: the code the person types (public: RFC 8628 shows it on screen) and
    #: the page to type it on (with the code filled in when the provider offers that).
    user_code: str | None = None
    verification_uri: str | None = None
    verification_uri_complete: str | None = None
    #: When this panel first saw the start link opened (its flow got a browser binding).
    opened_at: float | None = None
    #: Device flows: when the token endpoint may be polled next (epoch seconds, from the store).
    next_poll_at: float = 0.0


@dataclasses.dataclass(frozen=True)
class PanelState:
    """Everything one render of the panel needs."""

    alias: str
    user: str
    auth_uri: str
    token_uri: str
    requested_scopes: tuple[str, ...]
    redirect_uri: str | None
    config_problem: str | None = None
    token: TokenView | None = None
    link: LinkView | None = None
    error: ErrorInfo | None = None
    busy: str | None = None
    outcome: str | None = None
    #: The way this panel authorizes now: the client's, or the fallback the person chose.
    way: str | None = None
    #: The provider has a device authorization endpoint ("Use a code instead" is possible).
    device_endpoint: bool = False
    #: What went wrong with the last pasted address (shown next to the field), or a note.
    paste_error: ErrorInfo | None = None
    paste_note: str | None = None
    #: Declared by the administrator: the server (or the hub's service) holds the secret and
    #: any refresh token, registered the redirect URI, and refreshes and revokes.
    declared: bool = False
    #: Until when (epoch seconds) a second click on Revoke confirms it (declared providers).
    confirm_revoke_until: float | None = None
    #: The paste-back link the person asked to see: its start id, and until when (epoch s).
    link_shown: tuple[str, float] | None = None

    @property
    def ready(self) -> bool:
        """Whether buttons that act may be pressed: configured, and no action running."""
        return self.config_problem is None and self.busy is None

    @property
    def refreshable(self) -> bool:
        """Whether Refresh can work: a refresh token here, or a server that holds it (declared)."""
        return self.token is not None and (self.token.has_refresh_token or self.declared)

    def status(self, now: dt.datetime) -> Status:
        """The status at ``now`` (see :func:`derive_status`)."""
        return derive_status(
            config_problem=self.config_problem,
            token=self.token,
            link=self.link,
            error=self.error,
            now=now,
        )

    def scopes(self) -> ScopeReport | None:
        """Granted vs requested scopes, when a token is stored."""
        if self.token is None:
            return None
        return scope_report(self.requested_scopes, self.token.scopes)


def derive_status(
    *,
    config_problem: str | None,
    token: TokenView | None,
    link: LinkView | None,
    error: ErrorInfo | None,
    now: dt.datetime,
) -> Status:
    """Pick the one status to show; earlier rules win.

    1. a configuration problem; 2. the last failure (cleared by any new token);
    3. an authorization in progress: the callback is exchanging the code, or code in the
    notebook started a flow after the stored token was written; 4. the stored token,
    expired or not; 5. nothing stored.
    """
    if config_problem is not None:
        return Status.NOT_CONFIGURED
    if error is not None:
        return Status.ERROR
    if link is not None and (
        link.exchanging
        or (
            not link.started_by_panel
            and (token is None or link.created_at > token.updated_at)
            and link.expires_at > now.timestamp()
        )
    ):
        return Status.WAITING
    if token is not None:
        return Status.EXPIRED if token.is_expired(now) else Status.AUTHORIZED
    return Status.NOT_AUTHORIZED


def link_on_show(state: PanelState, now: float) -> bool:
    """Whether the offered link's address may sit in a widget at ``now``.

    A paste-back link is the provider's URL itself (``state``, PKCE challenge, nonce: no start
    page can stand in for it, as nothing serves its redirect) and it has no browser binding,
    so whoever reads a notebook saved with it could finish the flow with their own account.
    It is shown only when the person asks, for a short while, and never once an address was
    pasted; the others are start links holding an opaque id only.
    """
    link = state.link
    if link is None or link.kind != "paste":
        return link is not None
    shown = state.link_shown
    return shown is not None and shown[0] == link.start_id and now < shown[1]


def fallback_offers(state: PanelState, now: dt.datetime, after: float) -> tuple[str, ...] | None:
    """The other ways to offer once a redirect link was opened ``after`` s ago without a callback.

    None while nothing is overdue; else the ways (maybe none) besides fixing the redirect URI.
    ``paste`` only on the loopback way (the Jupyter server's callback is reachable by the
    browser showing the notebook); ``device`` when the provider has a device endpoint.
    """
    link = state.link
    if (
        link is None
        or link.kind != "redirect"
        or link.exchanging
        or link.opened_at is None
        or state.way not in ("jupyter", "loopback")
        or now.timestamp() - link.opened_at < after
        or link.expires_at <= now.timestamp()
        or (state.token is not None and state.token.updated_at >= link.created_at)
    ):
        return None
    offers = ("paste",) if state.way == "loopback" else ()
    return (*offers, "device") if state.device_endpoint else offers


def status_line(state: PanelState, now: dt.datetime) -> str:
    """The state line: always starts with the status word, then says what to do next."""
    status = state.status(now)
    word = STATUS_WORDS[status]
    if status is Status.NOT_CONFIGURED:
        return f"{word}: {state.config_problem}"
    if status is Status.ERROR:
        assert state.error is not None
        return f"{word}: {state.error.message.rstrip('.')}."
    if status is Status.WAITING:
        assert state.link is not None
        if state.link.exchanging:
            return f"{word}: the provider sent the person back; exchanging the code for a token…"
        left = format_countdown(state.link.expires_at - now.timestamp())
        line = f"{word}: approve at the provider; this authorization expires in {left}."
        if state.token is not None and not state.token.is_expired(now):
            # An upgrade (or re-authorization) in progress: nothing changes until it arrives.
            line += " The current token keeps working until then."
        return line
    if status is Status.AUTHORIZED:
        assert state.token is not None
        if state.token.expires_at is None:
            return f"{word}: the provider gave the token no expiry."
        return f"{word}: the token {expiry_text(state.token.expires_at, now)}."
    if status is Status.EXPIRED:
        assert state.token is not None
        follow = "Refresh it" if state.refreshable else "Authorize again"
        return f"{word}: the token {expiry_text(state.token.expires_at, now)}. {follow}."
    if state.link is not None:
        left = format_countdown(state.link.expires_at - now.timestamp())
        if state.link.kind == "device":
            return f"{word}: enter the code below at the provider (it expires in {left})."
        if state.link.kind == "paste":
            return (
                f"{word}: show the Authorize link, open it, approve, then paste the address the "
                f"browser ends on below (the link stays valid for {left})."
            )
        return f"{word}: open the Authorize link and approve (the link stays valid for {left})."
    if state.way == "device":
        return f"{word}: get a code and enter it at the provider."
    return f"{word}: nothing is stored for {state.user!r} at {state.alias!r}."

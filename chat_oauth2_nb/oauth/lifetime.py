"""What to tell a person about the refresh token's end: the panel and the doctor say the same.

A provider that says when a refresh token ends (Keycloak's ``refresh_expires_in``, GitHub's
``refresh_token_expires_in``) lets the kit warn in the last quarter of its life, before a
refresh fails and someone must sign in again. Google says nothing, but its apps in
"Testing" publishing status get refresh tokens that end seven days after consent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from urllib.parse import urlsplit

from .models import AuthData, utcnow

__all__ = ["RefreshNote", "refresh_note"]

_RENEW = (
    "authorize again before then (client.get_user_authorization_url(), or the panel's "
    "Authorize link): a refresh after that fails, and a person must sign in"
)
_GOOGLE_TESTING = (
    "Google does not say when its refresh tokens end; an app whose OAuth consent screen is "
    "in 'Testing' gets ones that end 7 days after consent: set it to 'In production' to "
    "keep them"
)


@dataclasses.dataclass(frozen=True)
class RefreshNote:
    """One sentence on the refresh token's end; ``ending``: in its last quarter (warn)."""

    text: str
    ending: bool


def _left(seconds: float) -> str:
    if seconds <= 0:
        return "it has ended"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"in {days} d {hours} h"
    if hours:
        return f"in {hours} h {minutes} min"
    return f"in {minutes} min {secs} s"


def refresh_note(
    data: AuthData, auth_uri: str | None = None, now: dt.datetime | None = None
) -> RefreshNote | None:
    """What to say about ``data``'s refresh token ending, or None when there is nothing to say."""
    if not data.refresh_token and data.refresh_expires_at is None:
        return None
    now = now or utcnow()
    if data.refresh_expires_at is None:
        host = (urlsplit(auth_uri or "").hostname or "").lower()
        if host.endswith("google.com"):
            return RefreshNote(_GOOGLE_TESTING + ".", ending=False)
        return None
    remaining = data.refresh_expires_in(now) or 0.0
    at = data.refresh_expires_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = f"The refresh token ends {at} ({_left(remaining)})"
    if data.refresh_ending(now):
        return RefreshNote(f"{text}: {_RENEW}.", ending=True)
    return RefreshNote(f"{text}.", ending=False)

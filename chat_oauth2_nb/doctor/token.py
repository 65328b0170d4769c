"""Checks of the stored token: were the requested scopes granted, is there a refresh token?

Read through the subject's ``stored_token`` (never the store directly), so a token that
belongs to another provider configuration under the same alias is named, not used.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from ..errors import GrantRevokedError, ProviderMismatchError
from ..oauth import AuthData
from ..oauth.lifetime import refresh_note
from ..users import resolve_user
from .report import Finding, Verdict
from .session import Session

__all__ = ["check_token"]


def check_token(session: Session) -> None:
    """The ``scopes`` and ``refresh`` checks for the session's user (skipped without a token)."""
    key = resolve_user(session.user)
    try:
        record = session.subject.stored_token(key)
    except ProviderMismatchError:
        session.add(
            "scopes",
            "Granted scopes",
            "warn",
            f"The token stored for {key!r} belongs to another provider configuration.",
            "Authorize again with this configuration: client.get_user_authorization_url().",
        )
        return
    except GrantRevokedError as exc:
        session.add("scopes", "Granted scopes", "warn", exc.message, exc.hint or "")
        return
    if record is None:
        for check_id, title in (("scopes", "Granted scopes"), ("refresh", "Refresh token")):
            session.add(check_id, title, "skipped", f"No token is stored for {key!r}.", "")
        return
    data = record.data
    session.secrets += [data.token, data.refresh_token, data.id_token]
    session.add("scopes", "Granted scopes", *_scopes(key, data, session.config.default_scopes))
    session.add(
        "refresh",
        "Refresh token",
        *_refresh(key, data, session.config.auth_uri, session.config.default_scopes),
    )


def _scopes(key: str, data: AuthData, requested: Iterable[str]) -> Finding:
    wanted = list(requested)
    granted = list(data.scopes)
    missing = [s for s in wanted if s not in granted]
    if not data.scope:
        return (
            "ok" if not wanted else "skipped",
            "The provider did not say which scopes it granted (RFC 6749 allows that when "
            "they are the requested ones).",
            "",
        )
    if missing:
        return (
            "warn",
            f"The token for {key!r} lacks {missing} of the requested {wanted} "
            f"(granted: {granted}).",
            "Authorize again and approve every scope; if the provider drops them, enable "
            "them for this client at the provider.",
        )
    return ("ok", f"The token for {key!r} has every requested scope ({granted}).", "")


def _refresh(key: str, data: AuthData, auth_uri: str, scopes: Iterable[str]) -> Finding:
    note = refresh_note(data, auth_uri)
    if note is not None and note.ending:
        # The last quarter of the refresh token's life: say so before a refresh fails.
        return ("warn", f"A refresh token is stored for {key!r}. {note.text}", note.text)
    if data.refresh_token:
        more = f" {note.text}" if note is not None else ""
        return (
            "ok",
            f"A refresh token is stored for {key!r}: expired tokens are renewed without a "
            f"person.{more}",
            "",
        )
    expires = "never expires" if data.expires_at is None else "expires"
    verdict: Verdict = "ok" if data.expires_at is None else "warn"
    return (
        verdict,
        f"No refresh token is stored for {key!r} and the access token {expires}.",
        _refresh_hint(auth_uri, scopes) if verdict == "warn" else "",
    )


def _refresh_hint(auth_uri: str, scopes: Iterable[str]) -> str:
    """How this provider is asked for a refresh token (what its preset says)."""
    host = (urlsplit(auth_uri).hostname or "").lower()
    if host.endswith("google.com"):
        return (
            "Google sends one only for offline access on a consent screen: add "
            "authUriParams={'access_type': 'offline', 'prompt': 'consent'} and authorize again."
        )
    if host.endswith("microsoftonline.com") or host.endswith("microsoft.com"):
        if "offline_access" not in scopes:
            return "Microsoft Entra sends one only for the offline_access scope: add it to defaultScopes and authorize again."
        return "Authorize again; check offline_access is granted to the app in Entra."
    if host.endswith("github.com"):
        return (
            "GitHub OAuth Apps get no refresh token (their tokens do not expire); GitHub Apps "
            "with expiring user tokens do."
        )
    return (
        "Ask the provider for offline access (often the offline_access scope) and authorize "
        "again; otherwise the person authorizes again when the token expires."
    )

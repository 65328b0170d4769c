"""The redirect URI check, a heuristic: the authorization URL requested without cookies.

A provider that refuses the redirect URI usually says so before anyone signs in: with an
error page that names it, or by sending the browser back with an error. One that checks
it only after sign-in cannot be caught here, and the check says so.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx

from ..oauth import HttpRequest, authorization_url, new_code_verifier, new_state
from .http import excerpt, page_text, where
from .report import Finding
from .session import Session

__all__ = ["check_redirect"]

_TITLE = "Redirect URI accepted (heuristic)"
_REDIRECT_WORDS = re.compile(r"redirect[_ ]?ur[il]|reply ?url|callback url", re.IGNORECASE)
_REFUSAL_WORDS = re.compile(
    r"mismatch|not registered|does not match|invalid|not allowed", re.IGNORECASE
)


def check_redirect(session: Session) -> None:
    """The ``redirect_uri`` check (skipped for device code and when authUri cannot be reached)."""
    redirect_uri = session.subject.redirect_uri
    if not redirect_uri:
        session.add(
            "redirect_uri",
            _TITLE,
            "skipped",
            "This client authorizes by device code, without a redirect URI.",
            "",
        )
        return
    if not session.reachable.get(session.config.auth_uri, True):
        session.add("redirect_uri", _TITLE, "skipped", "authUri cannot be reached.", "")
        return
    # A throwaway state and verifier: no flow is recorded, so nothing is left pending.
    url = authorization_url(
        session.config,
        redirect_uri=redirect_uri,
        scopes=session.config.default_scopes,
        state=new_state(),
        code_verifier=new_code_verifier(),
    )
    answer, failure = session.request(HttpRequest("GET", url, {"Accept": "text/html"}, ""))
    if answer.status is None:
        session.add(
            "redirect_uri",
            _TITLE,
            "skipped",
            f"The authorization URL got no answer: {failure}.",
            "",
        )
        return
    status = answer.status
    if 300 <= status < 400:
        location = str(httpx.URL(url).join(answer.headers.get("location", "")))
        finding = _judge_redirect(redirect_uri, location)
    else:
        finding = _judge_page(redirect_uri, status, page_text(answer.content))
    session.add("redirect_uri", _TITLE, *finding)


def _register(redirect_uri: str) -> str:
    return f"Register exactly {redirect_uri} as a redirect URI of this client at the provider."


def _judge_redirect(redirect_uri: str, location: str) -> Finding:
    """The provider sent the browser on: back to the redirect URI, or to its sign-in."""
    if not location.startswith(redirect_uri):
        return (
            "ok",
            f"The provider redirects to {where(location)} (its sign-in page, presumably); "
            "some providers check the redirect URI only after sign-in.",
            f"If the provider then shows a redirect_uri error: {_register(redirect_uri)}",
        )
    query = parse_qs(urlsplit(location).query)
    error = (query.get("error") or [""])[0][:100]
    if not error:
        return ("ok", "The provider sent the browser straight back to the redirect URI.", "")
    description = (query.get("error_description") or [""])[0][:300]
    said = f"{error}: {description}" if description else error
    return (
        "fail",
        f"The provider accepts the redirect URI but sends the browser back with an error ({said}).",
        "Fix what the provider names (often a scope the client may not ask "
        "for, or a grant not enabled for it).",
    )


def _judge_page(redirect_uri: str, status: int, text: str) -> Finding:
    """The provider answered with a page: a refusal, a failure, or a sign-in form."""
    mention = _REDIRECT_WORDS.search(text)
    if 400 <= status < 500:
        if mention is not None:
            return (
                "fail",
                f"The provider refuses the authorization request (HTTP {status}) with a page "
                f"about the redirect URI: “{excerpt(text, mention)}”",
                _register(redirect_uri),
            )
        return (
            "warn",
            f"The provider refuses the authorization request (HTTP {status}): "
            f"“{excerpt(text, None)}”",
            "Read the provider's words: the client id, the scopes or authUriParams may be wrong.",
        )
    if status >= 500:
        return ("warn", f"The authorization URL answers HTTP {status}.", "Try again later.")
    if mention is not None and _REFUSAL_WORDS.search(text):
        return (
            "fail",
            f"The provider shows a page about the redirect URI: “{excerpt(text, mention)}”",
            _register(redirect_uri),
        )
    return (
        "ok",
        f"The provider shows a page (HTTP {status}) without a redirect URI error: a "
        "consent or sign-in form, presumably.",
        "",
    )

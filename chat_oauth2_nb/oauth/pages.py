"""Reading a provider's answer to an authorization URL: its words, and what it says of the redirect.

Sans-I/O: whoever requested the page (the doctor, the Jupyter server's start link) passes
the answer in. A provider that refuses the redirect URI usually says so before anyone signs
in: with an error page that names it, or by sending the browser back with an error. One
that checks it only after sign-in cannot be caught this way.
"""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import parse_qs, urljoin, urlsplit

from .models import MAX_ANSWER_BYTES

__all__ = [
    "MAX_PAGE_BYTES",
    "RedirectVerdict",
    "excerpt",
    "judge_authorization_answer",
    "page_text",
    "register_advice",
    "where",
]

#: The start of a page that is read (an authorization page may be larger than a token
#: answer may be): what it takes to recognise a provider's error is in its first bytes.
MAX_PAGE_BYTES = 4 * MAX_ANSWER_BYTES
_REDIRECT_WORDS = re.compile(r"redirect[_ ]?ur[il]|reply ?url|callback url", re.IGNORECASE)
_REFUSAL_WORDS = re.compile(
    r"mismatch|not registered|does not match|invalid|not allowed", re.IGNORECASE
)


def where(url: str) -> str:
    """A URL without its query: enough to name a page, never a state or code it carries."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path


class _Text(HTMLParser):
    """The visible text of an HTML page (scripts and styles left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def page_text(content: bytes) -> str:
    """A page's visible words on one line (its HTML dropped)."""
    text = content.decode("utf-8", "replace")
    if "<" in text:
        parser = _Text()
        parser.feed(text)
        parser.close()
        text = " ".join(parser.parts)
    return " ".join(text.split())


def excerpt(text: str, match: re.Match[str] | None, width: int = 160) -> str:
    """Up to ``width`` characters of ``text`` around ``match`` (its start without one)."""
    if match is None:
        return text[:width] + ("…" if len(text) > width else "")
    start = max(0, match.start() - width // 2)
    piece = text[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(text) else "")


@dataclasses.dataclass(frozen=True)
class RedirectVerdict:
    """What a provider's answer to an authorization URL says of its redirect URI."""

    verdict: Literal["ok", "warn", "fail"]
    #: What the provider answered, in a sentence (no query string, so no state).
    evidence: str
    #: What to change ("" when nothing).
    action: str
    #: The provider refuses the redirect URI itself: registering it exactly is the fix.
    refused: bool = False


def register_advice(redirect_uri: str) -> str:
    """The one fix for a redirect URI the provider does not know."""
    return f"Register exactly {redirect_uri} as a redirect URI of this client at the provider."


def judge_authorization_answer(
    redirect_uri: str, url: str, status: int, location: str, content: bytes
) -> RedirectVerdict:
    """Judge the answer (``status``, its ``Location``, its page) to the authorization ``url``."""
    if 300 <= status < 400:
        return _judge_redirect(redirect_uri, urljoin(url, location))
    return _judge_page(redirect_uri, status, page_text(content))


def _judge_redirect(redirect_uri: str, location: str) -> RedirectVerdict:
    """The provider sent the browser on: back to the redirect URI, or to its sign-in."""
    query = parse_qs(urlsplit(location).query)
    error = (query.get("error") or [""])[0][:100]
    if error == "redirect_uri_mismatch":
        # GitHub sends the browser to the client's registered callback with this error.
        return RedirectVerdict(
            "fail",
            f"The provider sends the browser to {where(location)} with "
            "error=redirect_uri_mismatch.",
            register_advice(redirect_uri),
            refused=True,
        )
    if not location.startswith(redirect_uri):
        return RedirectVerdict(
            "ok",
            f"The provider redirects to {where(location)} (its sign-in page, presumably); "
            "some providers check the redirect URI only after sign-in.",
            f"If the provider then shows a redirect_uri error: {register_advice(redirect_uri)}",
        )
    if not error:
        return RedirectVerdict(
            "ok", "The provider sent the browser straight back to the redirect URI.", ""
        )
    description = (query.get("error_description") or [""])[0][:300]
    said = f"{error}: {description}" if description else error
    return RedirectVerdict(
        "fail",
        f"The provider accepts the redirect URI but sends the browser back with an error ({said}).",
        "Fix what the provider names (often a scope the client may not ask "
        "for, or a grant not enabled for it).",
    )


def _judge_page(redirect_uri: str, status: int, text: str) -> RedirectVerdict:
    """The provider answered with a page: a refusal, a failure, or a sign-in form."""
    mention = _REDIRECT_WORDS.search(text)
    if 400 <= status < 500:
        if mention is not None:
            return RedirectVerdict(
                "fail",
                f"The provider refuses the authorization request (HTTP {status}) with a page "
                f"about the redirect URI: “{excerpt(text, mention)}”",
                register_advice(redirect_uri),
                # Sure enough to stop a flow only when the page also says what is wrong.
                refused=_REFUSAL_WORDS.search(text) is not None,
            )
        return RedirectVerdict(
            "warn",
            f"The provider refuses the authorization request (HTTP {status}): "
            f"“{excerpt(text, None)}”",
            "Read the provider's words: the client id, the scopes or authUriParams may be wrong.",
        )
    if status >= 500:
        return RedirectVerdict(
            "warn", f"The authorization URL answers HTTP {status}.", "Try again later."
        )
    if mention is not None and _REFUSAL_WORDS.search(text):
        return RedirectVerdict(
            "fail",
            f"The provider shows a page about the redirect URI: “{excerpt(text, mention)}”",
            register_advice(redirect_uri),
            refused=True,
        )
    return RedirectVerdict(
        "ok",
        f"The provider shows a page (HTTP {status}) without a redirect URI error: a "
        "consent or sign-in form, presumably.",
        "",
    )

"""How the doctor talks to the provider and reads what comes back.

The doctor sends its own requests (no cookies, redirects never followed) and keeps why a
connection failed; a page it gets back is read as a person reads it, as visible text.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx

from ..oauth import MAX_ANSWER_BYTES, HttpRequest, ProviderAnswer
from ..oauth.transport import send

#: The start of a page the doctor reads (an authorization page may be larger than a token
#: answer may be): what it needs to recognise a provider's error is in its first bytes.
MAX_PAGE_BYTES = 4 * MAX_ANSWER_BYTES

__all__ = ["excerpt", "fetch", "is_loopback", "page_text", "where"]


def _describe_failure(exc: Exception) -> str:
    """Why a request got no answer, in words (no secret: only hosts and the TLS library's text)."""
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower():
        return f"its TLS certificate is not valid ({text[:200]})"
    if isinstance(exc, httpx.TimeoutException):
        return "it did not answer in time"
    lowered = text.lower()
    if any(
        word in lowered
        for word in (
            "name or service not known",
            "nodename nor servname",
            "getaddrinfo",
            "name resolution",
            "no address associated",
        )
    ):
        return "its host name does not resolve"
    if "refused" in lowered:
        return "nothing listens there (connection refused)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"it does not speak HTTP properly ({text[:200]})"
    return f"could not connect ({type(exc).__name__}: {text[:200]})"


def fetch(http: httpx.Client, request: HttpRequest, deadline: float) -> tuple[ProviderAnswer, str]:
    """Send ``request`` through the one bounded transport, without following redirects.

    One total deadline and the answer cap hold here as for every provider call (a provider
    that trickles its headers, or sends a compression bomb, cannot hold the doctor); a page
    too large or too slow is cut, not failed: its start is enough here. What it adds is why a
    connection failed (a bad certificate, an unknown host): what a person debugging needs.
    """
    answer = send(http, request, deadline=deadline, cap=MAX_PAGE_BYTES, keep_partial=True)
    if answer.failure is None:
        return answer, ""
    failed = answer.exception
    if answer.failure in ("timeout", "deadline"):
        why = "it did not answer in time"  # the watchdog's cut reads as a disconnect too
    elif isinstance(failed, httpx.HTTPError):
        why = _describe_failure(failed)
    else:
        why = f"could not connect ({answer.failure})"
    return dataclasses.replace(answer, failure="unreachable"), why


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (localhost or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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

"""How the doctor talks to the provider and reads what comes back.

The doctor sends its own requests (no cookies, redirects never followed) and keeps why a
connection failed; a page it gets back is read as a person reads it, as visible text.
"""

from __future__ import annotations

import dataclasses
import ipaddress

import httpx

from ..oauth import HttpRequest, ProviderAnswer
from ..oauth.pages import MAX_PAGE_BYTES, excerpt, page_text, where
from ..oauth.transport import send

__all__ = ["MAX_PAGE_BYTES", "excerpt", "fetch", "is_loopback", "page_text", "where"]


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

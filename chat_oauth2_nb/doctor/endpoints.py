"""Checks of the first family: does every configured endpoint answer (TLS, no redirects)?

One request per distinct URL: a GET for the authorization endpoint (a browser goes there),
an empty POST for the others (what they are for, without any credential in it).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from ..oauth import HttpRequest, ProviderAnswer
from .http import is_loopback, where
from .report import Finding
from .session import Session

__all__ = ["ENDPOINT_FIELDS", "check_endpoints"]

# Config fields with endpoints, in the order a person reads the config.
ENDPOINT_FIELDS = (
    ("authUri", "auth_uri"),
    ("accessTokenUri", "access_token_uri"),
    ("refreshTokenUri", "refresh_token_uri"),
    ("revokeTokenUri", "revoke_token_uri"),
    ("introspectionUri", "introspection_uri"),
    ("deviceAuthorizationUri", "device_authorization_uri"),
)


def check_endpoints(session: Session) -> None:
    """One ``endpoint:<field>`` check per distinct configured URL; note which ones answer."""
    by_url: dict[str, list[str]] = {}
    for seed, field in ENDPOINT_FIELDS:
        url = getattr(session.config, field)
        if url:
            by_url.setdefault(url, []).append(seed)
    for url, names in by_url.items():
        _endpoint(session, url, names)


def _endpoint(session: Session, url: str, names: list[str]) -> None:
    label = " and ".join(names)
    check_id = "endpoint:" + names[0]
    title = f"{label} answer{'' if len(names) > 1 else 's'}"
    browser_side = names == ["authUri"]
    if browser_side:
        request = HttpRequest("GET", url, {"Accept": "text/html"}, "")
    else:
        # An empty POST: what the endpoint is for, without any credential in it.
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        request = HttpRequest("POST", url, headers, "")
    answer, failure = session.request(request)
    session.reachable[url] = answer.status is not None
    if answer.status is None:
        action = (
            "Check the host name and the network."
            if "resolve" in failure or "connect" in failure
            else "Check the URL and the provider's certificate (is the clock right?)."
            if "certificate" in failure
            else "Check the URL, that the provider is up, and the network."
        )
        session.add(check_id, title, "fail", f"{url} cannot be reached: {failure}.", action)
        return
    session.add(check_id, title, *_judge(url, label, answer, answer.status, browser_side))


def _judge(
    url: str, label: str, answer: ProviderAnswer, status: int, browser_side: bool
) -> Finding:
    """What an endpoint's answer says about its URL."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        plain = " over TLS with a valid certificate"
    elif is_loopback(parts.hostname or ""):
        plain = " over plain http, which is fine on this machine (loopback)"
    else:
        return (
            "warn",
            f"{url} answers HTTP {status} over plain http to another machine: the "
            "client secret and tokens cross the network unencrypted.",
            "Use the provider's https:// URL; allow_insecure_http=True is for test providers only.",
        )
    if 300 <= status < 400:
        location = answer.headers.get("location", "")
        target = where(str(httpx.URL(url).join(location))) if location else "nowhere"
        if browser_side:
            return (
                "ok",
                f"{url} answers{plain} with a redirect to {target}, which a browser follows.",
                "",
            )
        return (
            "fail",
            f"{url} redirects (HTTP {status}) to {target}; a token client does not "
            "follow redirects, so every request there fails.",
            f"Put the address it redirects to in {label} (usually the https:// or "
            "trailing-slash form of it).",
        )
    if status == 404:
        return (
            "fail",
            f"{url} answers HTTP 404: the provider has no endpoint at that path.",
            f"Copy {label} again from the provider's documentation or metadata.",
        )
    if status >= 500:
        return (
            "warn",
            f"{url} answers HTTP {status}: the provider fails there right now.",
            "Try again later; if it persists, check the URL and the provider's status page.",
        )
    return ("ok", f"{url} answers HTTP {status}{plain}.", "")

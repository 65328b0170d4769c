"""The provider-config doctor: find what is wrong with a provider set-up before anyone clicks.

:func:`diagnose` runs a handful of checks against the provider, from the kernel, without a
person: do the endpoints answer (TLS, no redirects), does the provider's published metadata
agree with the config, are the client credentials accepted (one token request with a code
that cannot exist), is the redirect URI accepted (a heuristic: the authorization URL is
requested without cookies), is the provider's clock close to ours, and — when a token is
stored — were the requested scopes granted and is there a refresh token.

Every check says only what it can say truthfully: without metadata the metadata checks are
``skipped``, not failed. Nothing is stored (no pending flow, no token) and nothing secret
reaches the report: each sentence passes through :func:`~chat_oauth2_nb.oauth.redact`
with every secret the doctor knows before it is kept.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import ipaddress
import re
import secrets as _random
import time
from collections.abc import Iterable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx

from ..errors import ProviderMismatchError, TokenExchangeError
from ..kernel.users import UserLike, resolve_user
from ..oauth import (
    MAX_ANSWER_BYTES,
    HttpExchange,
    HttpRequest,
    ProviderAnswer,
    authorization_url,
    code_exchange_request,
    new_code_verifier,
    new_state,
    parse_error_response,
    redact,
)
from ..oauth.transport import send

if TYPE_CHECKING:
    from ..notebook.client import OAuth2Client

__all__ = ["Check", "Report", "Verdict", "diagnose"]

Verdict = Literal["ok", "warn", "fail", "skipped"]
_VERDICTS: tuple[Verdict, ...] = ("fail", "warn", "ok", "skipped")
# The provider's clock may drift this far before token expiry and id_token checks suffer.
CLOCK_SKEW_WARN = 30.0
# Config fields with endpoints, in the order a person reads the config.
_ENDPOINT_FIELDS = (
    ("authUri", "auth_uri"),
    ("accessTokenUri", "access_token_uri"),
    ("refreshTokenUri", "refresh_token_uri"),
    ("revokeTokenUri", "revoke_token_uri"),
    ("introspectionUri", "introspection_uri"),
    ("deviceAuthorizationUri", "device_authorization_uri"),
)
# Config field -> the metadata field that advertises it (RFC 8414 §2, RFC 8628 §4).
_ADVERTISED = {
    "auth_uri": "authorization_endpoint",
    "access_token_uri": "token_endpoint",
    "refresh_token_uri": "token_endpoint",
    "revoke_token_uri": "revocation_endpoint",
    "introspection_uri": "introspection_endpoint",
    "device_authorization_uri": "device_authorization_endpoint",
}
_SEED_NAME = {field: seed for seed, field in _ENDPOINT_FIELDS}
# Errors a token endpoint gives a client it does not recognise (GitHub has its own words).
_BAD_CLIENT = {"invalid_client", "unauthorized_client", "incorrect_client_credentials"}
# Errors that mean the client was authenticated and only the made-up code was refused.
_CODE_REFUSED = {"invalid_grant", "bad_verification_code"}
_REDIRECT_WORDS = re.compile(r"redirect[_ ]?ur[il]|reply ?url|callback url", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Check:
    """One check: its id, a title, the verdict, what was seen and what to do."""

    id: str
    title: str
    verdict: Verdict
    evidence: str
    action: str

    def __str__(self) -> str:
        return f"{self.verdict:<7} {self.title}: {self.evidence} {self.action}".rstrip()


@dataclasses.dataclass(frozen=True)
class Report:
    """The doctor's findings for one client: a table in a notebook, text in a terminal."""

    alias: str
    client_id: str
    redirect_uri: str | None
    checks: tuple[Check, ...]

    def __iter__(self) -> Iterator[Check]:
        return iter(self.checks)

    def __len__(self) -> int:
        return len(self.checks)

    def __getitem__(self, check_id: str) -> Check:
        """The check with this id (``credentials``, ``redirect_uri``, ``clock``…)."""
        for check in self.checks:
            if check.id == check_id:
                return check
        raise KeyError(f"no check {check_id!r} in this report; ids: {self.ids()}")

    def __contains__(self, check_id: object) -> bool:
        return any(check.id == check_id for check in self.checks)

    def ids(self) -> list[str]:
        """The ids of the checks, in order."""
        return [check.id for check in self.checks]

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings and skipped checks allowed)."""
        return not self.failed

    @property
    def failed(self) -> list[Check]:
        """The checks that failed."""
        return [check for check in self.checks if check.verdict == "fail"]

    def summary(self) -> str:
        """One line: how many checks ended with each verdict."""
        counts = {v: sum(c.verdict == v for c in self.checks) for v in _VERDICTS}
        parts = [f"{n} {v}" for v, n in counts.items() if n]
        return f"{self.alias!r} (client_id {self.client_id}): " + ", ".join(parts)

    def __str__(self) -> str:
        lines = [f"Configuration check for {self.summary()}"]
        if self.redirect_uri:
            lines.append(f"redirect URI: {self.redirect_uri}")
        for check in self.checks:
            lines.append(f"  {check.verdict.upper():<7} {check.title}")
            lines.append(f"          {check.evidence}")
            if check.action:
                lines.append(f"          -> {check.action}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Report {self.summary()}>"

    def _repr_html_(self) -> str:
        """A table: check, verdict, what was seen, what to do (every value escaped)."""
        e = html.escape
        colors = {"ok": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e", "skipped": "#6e7781"}
        rows = "".join(
            "<tr>"
            f'<td style="text-align:left">{e(c.title)}</td>'
            f'<td style="text-align:left;color:{colors[c.verdict]};font-weight:600">'
            f"{e(c.verdict)}</td>"
            f'<td style="text-align:left">{e(c.evidence)}</td>'
            f'<td style="text-align:left">{e(c.action)}</td>'
            "</tr>"
            for c in self.checks
        )
        uri = f"<br>redirect URI: <code>{e(self.redirect_uri)}</code>" if self.redirect_uri else ""
        return (
            '<div class="chat-oauth2-doctor">'
            f"<p><b>Configuration check</b> for {e(self.summary())}{uri}</p>"
            "<table><thead><tr><th>Check</th><th>Verdict</th><th>What we saw</th>"
            f"<th>What to do</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )


# -- HTTP ----------------------------------------------------------------------------------


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


def _fetch(http: httpx.Client, request: HttpRequest, deadline: float) -> tuple[ProviderAnswer, str]:
    """Send ``request`` without following redirects, bounded like transport.send.

    Unlike :func:`~chat_oauth2_nb.oauth.transport.send` it keeps why a connection failed (a bad
    certificate, an unknown host), which is what a person debugging a config needs.
    """
    started, t0 = time.time(), time.perf_counter()
    end = time.monotonic() + deadline
    try:
        with http.stream(
            request.method, request.url, headers=request.headers, content=request.body or None
        ) as response:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                chunks.append(chunk)
                # A page too large or too slow is cut, not failed: its start is enough here.
                if size > MAX_ANSWER_BYTES or time.monotonic() > end:
                    break
            elapsed = (time.perf_counter() - t0) * 1000
            answer = ProviderAnswer(
                response.status_code, response.headers, b"".join(chunks), started, elapsed
            )
            return answer, ""
    except httpx.HTTPError as exc:
        elapsed = (time.perf_counter() - t0) * 1000
        failure = _describe_failure(exc)
        return ProviderAnswer(None, httpx.Headers(), b"", started, elapsed, "unreachable"), failure


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _where(url: str) -> str:
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


def _page_text(content: bytes) -> str:
    text = content.decode("utf-8", "replace")
    if "<" in text:
        parser = _Text()
        parser.feed(text)
        parser.close()
        text = " ".join(parser.parts)
    return " ".join(text.split())


def _excerpt(text: str, match: re.Match[str] | None, width: int = 160) -> str:
    if match is None:
        return text[:width] + ("…" if len(text) > width else "")
    start = max(0, match.start() - width // 2)
    piece = text[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(text) else "")


# -- the doctor ----------------------------------------------------------------------------


class _Doctor:
    """One diagnosis: the client, an HTTP client without cookies, and the checks so far."""

    def __init__(self, client: OAuth2Client, user: UserLike) -> None:
        self.client = client
        self.config = client.config
        self.user = user
        self.checks: list[Check] = []
        self.dates: list[tuple[str, float, str]] = []  # (url, our time, their Date header)
        self.deadline = client.timeout
        # Its own HTTP client: no cookies from earlier calls, and redirects never followed.
        self.http = httpx.Client(
            timeout=client.timeout,
            transport=client.transport,
            follow_redirects=False,
        )
        self.secrets: list[str | None] = [self.config.client_secret]
        self.metadata: dict[str, Any] | None = None
        self.reachable: dict[str, bool] = {}

    def add(self, check_id: str, title: str, verdict: Verdict, evidence: str, action: str) -> None:
        clean = [redact(s, self.secrets, self.config.client_id) for s in (evidence, action)]
        self.checks.append(Check(check_id, title, verdict, clean[0], clean[1]))

    def request(self, request: HttpRequest) -> tuple[ProviderAnswer, str]:
        answer, failure = _fetch(self.http, request, self.deadline)
        self.note(request, answer)
        return answer, failure

    def note(self, request: HttpRequest, answer: ProviderAnswer) -> None:
        # The person sees every request the doctor made in client.http_log, masked: with
        # every secret the doctor knows, since a provider's page may echo one it never got.
        known = tuple(dict.fromkeys(s for s in (*request.secrets, *self.secrets) if s))
        masked = dataclasses.replace(request, secrets=known, client_id=self.config.client_id)
        self.client.http_log.append(HttpExchange.of(masked, answer))
        date = answer.headers.get("date")
        if date:
            # The provider wrote its Date while we waited: the middle of the wait is our guess.
            midway = answer.started_at + answer.elapsed_ms / 2000
            self.dates.append((request.url, midway, date))

    # 1. endpoints ---------------------------------------------------------------------

    def endpoints(self) -> None:
        by_url: dict[str, list[str]] = {}
        for seed, field in _ENDPOINT_FIELDS:
            url = getattr(self.config, field)
            if url:
                by_url.setdefault(url, []).append(seed)
        for url, names in by_url.items():
            self.endpoint(url, names)

    def endpoint(self, url: str, names: list[str]) -> None:
        label = " and ".join(names)
        check_id = "endpoint:" + names[0]
        title = f"{label} answer{'' if len(names) > 1 else 's'}"
        parts = urlsplit(url)
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
        answer, failure = self.request(request)
        self.reachable[url] = answer.status is not None
        if answer.status is None:
            action = (
                "Check the host name and the network."
                if "resolve" in failure or "connect" in failure
                else "Check the URL and the provider's certificate (is the clock right?)."
                if "certificate" in failure
                else "Check the URL, that the provider is up, and the network."
            )
            self.add(check_id, title, "fail", f"{url} cannot be reached: {failure}.", action)
            return
        status = answer.status
        plain = ""
        if parts.scheme == "http":
            if _is_loopback(parts.hostname or ""):
                plain = " over plain http, which is fine on this machine (loopback)"
            else:
                self.add(
                    check_id,
                    title,
                    "warn",
                    f"{url} answers HTTP {status} over plain http to another machine: the "
                    "client secret and tokens cross the network unencrypted.",
                    "Use the provider's https:// URL; allow_insecure_http=True is for test "
                    "providers only.",
                )
                return
        else:
            plain = " over TLS with a valid certificate"
        if 300 <= status < 400:
            location = answer.headers.get("location", "")
            target = _where(str(httpx.URL(url).join(location))) if location else "nowhere"
            if browser_side:
                self.add(
                    check_id,
                    title,
                    "ok",
                    f"{url} answers{plain} with a redirect to {target}, which a browser follows.",
                    "",
                )
            else:
                self.add(
                    check_id,
                    title,
                    "fail",
                    f"{url} redirects (HTTP {status}) to {target}; a token client does not "
                    "follow redirects, so every request there fails.",
                    f"Put the address it redirects to in {label} (usually the https:// or "
                    "trailing-slash form of it).",
                )
            return
        if status == 404:
            self.add(
                check_id,
                title,
                "fail",
                f"{url} answers HTTP 404: the provider has no endpoint at that path.",
                f"Copy {label} again from the provider's documentation or metadata.",
            )
            return
        if status >= 500:
            self.add(
                check_id,
                title,
                "warn",
                f"{url} answers HTTP {status}: the provider fails there right now.",
                "Try again later; if it persists, check the URL and the provider's status page.",
            )
            return
        self.add(check_id, title, "ok", f"{url} answers HTTP {status}{plain}.", "")

    # 2. metadata ------------------------------------------------------------------------

    def find_metadata(self) -> None:
        from authlib.oauth2.rfc8414 import AuthorizationServerMetadata, get_well_known_url

        configured = self.config.issuer
        if configured:
            issuer, source = configured.rstrip("/"), "the configured issuer"
        else:
            parts = urlsplit(self.config.auth_uri)
            issuer, source = f"{parts.scheme}://{parts.netloc}", "authUri's origin"
        candidates = [
            get_well_known_url(issuer, external=True, suffix="oauth-authorization-server"),
            f"{issuer}/.well-known/openid-configuration",
        ]
        tried: list[str] = []
        for url in candidates:
            answer, failure = self.request(
                HttpRequest("GET", url, {"Accept": "application/json"}, "")
            )
            if answer.status != 200:
                tried.append(f"{url}: {failure or f'HTTP {answer.status}'}")
                continue
            try:
                import json

                document = json.loads(answer.content.decode("utf-8"))
                metadata = AuthorizationServerMetadata(document)
                metadata.validate()
            except (ValueError, UnicodeDecodeError) as exc:
                self.add(
                    "metadata",
                    "Provider metadata",
                    "warn",
                    f"{url} serves metadata that is not valid RFC 8414 ({str(exc)[:200]}).",
                    "Compare the config with the provider's documentation by hand.",
                )
                return
            advertised = str(metadata.get("issuer", "")).rstrip("/")
            if advertised != issuer:
                if configured:
                    self.add(
                        "metadata",
                        "Provider metadata",
                        "fail",
                        f"The metadata at {url} names the issuer {advertised}, not the "
                        f"configured {issuer}.",
                        "Set issuer to exactly the issuer the provider documents.",
                    )
                else:
                    self.add(
                        "metadata",
                        "Provider metadata",
                        "skipped",
                        f"The metadata at {url} is for the issuer {advertised}, not for "
                        f"{issuer}, so it says nothing certain about this config.",
                        f"Set issuer={advertised!r} in the config if that is this provider.",
                    )
                return
            self.metadata = dict(metadata)
            self.add(
                "metadata",
                "Provider metadata",
                "ok",
                f"The provider publishes metadata at {url} (found from {source}).",
                "",
            )
            return
        self.add(
            "metadata",
            "Provider metadata",
            "skipped",
            f"No RFC 8414 or OpenID metadata found from {source} ({'; '.join(tried)}), so the "
            "endpoints, PKCE, client authentication and scopes cannot be compared with it.",
            "Nothing to change; set issuer in the config if the provider publishes metadata "
            "elsewhere.",
        )

    def metadata_checks(self) -> None:
        meta = self.metadata
        titles = {
            "metadata:endpoints": "Endpoints match the metadata",
            "metadata:pkce": "PKCE S256 supported",
            "metadata:client_auth": "Client authentication supported",
            "metadata:scopes": "Scopes offered",
            "metadata:iss": "Issuer in the redirect (RFC 9207)",
        }
        if meta is None:
            for check_id, title in titles.items():
                self.add(check_id, title, "skipped", "The provider publishes no metadata.", "")
            return
        self.metadata_endpoints(meta, titles["metadata:endpoints"])
        self.metadata_pkce(meta, titles["metadata:pkce"])
        self.metadata_client_auth(meta, titles["metadata:client_auth"])
        self.metadata_scopes(meta, titles["metadata:scopes"])
        self.metadata_iss(meta, titles["metadata:iss"])

    def metadata_endpoints(self, meta: Mapping[str, Any], title: str) -> None:
        wrong: list[str] = []
        missing: list[str] = []
        fixes: list[str] = []
        for field, advertised_field in _ADVERTISED.items():
            configured = getattr(self.config, field)
            if not configured:
                continue
            advertised = meta.get(advertised_field)
            name = _SEED_NAME[field]
            if not advertised:
                missing.append(f"{name} ({advertised_field} is not advertised)")
            elif str(advertised).rstrip("/") != configured.rstrip("/"):
                wrong.append(f"{name} is {configured} but the provider advertises {advertised}")
                fixes.append(f"{name}={advertised}")
        if wrong:
            self.add(
                "metadata:endpoints",
                title,
                "fail",
                "; ".join(wrong) + ".",
                "Set " + ", ".join(fixes) + " (or build the config with discover_config()).",
            )
        elif missing:
            self.add(
                "metadata:endpoints",
                title,
                "warn",
                "The metadata lists no endpoint for " + ", ".join(missing) + ".",
                "Check those URLs in the provider's documentation; remove them if the "
                "provider has no such endpoint.",
            )
        else:
            self.add(
                "metadata:endpoints",
                title,
                "ok",
                "Every configured endpoint is the one the provider advertises.",
                "",
            )

    def metadata_pkce(self, meta: Mapping[str, Any], title: str) -> None:
        methods = meta.get("code_challenge_methods_supported")
        if not isinstance(methods, list):
            self.add(
                "metadata:pkce",
                title,
                "skipped",
                "The metadata has no code_challenge_methods_supported.",
                "",
            )
        elif "S256" in methods:
            self.add("metadata:pkce", title, "ok", f"The provider supports {methods}.", "")
        else:
            self.add(
                "metadata:pkce",
                title,
                "fail",
                f"code_challenge_methods_supported is {methods}, without S256, which this "
                "client always sends.",
                "Enable PKCE with S256 for this client at the provider.",
            )

    def metadata_client_auth(self, meta: Mapping[str, Any], title: str) -> None:
        method = self.config.client_auth_method
        # RFC 8414 §2: when absent, the default is client_secret_basic.
        methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if not isinstance(methods, list):
            methods = [str(methods)]
        if method in methods:
            self.add(
                "metadata:client_auth",
                title,
                "ok",
                f"client_auth_method {method!r} is among the provider's {methods}.",
                "",
            )
        else:
            usable = [
                m for m in methods if m in ("client_secret_basic", "client_secret_post", "none")
            ]
            action = (
                f"Pass client_auth_method={usable[0]!r} to create_oauth2_client()."
                if usable
                else "The provider wants a method this kit does not offer (e.g. private_key_jwt)."
            )
            self.add(
                "metadata:client_auth",
                title,
                "fail",
                f"client_auth_method is {method!r} but the provider supports {methods}.",
                action,
            )

    def metadata_scopes(self, meta: Mapping[str, Any], title: str) -> None:
        offered = meta.get("scopes_supported")
        wanted = list(self.config.default_scopes)
        if not isinstance(offered, list):
            self.add(
                "metadata:scopes", title, "skipped", "The metadata has no scopes_supported.", ""
            )
            return
        if not wanted:
            self.add("metadata:scopes", title, "skipped", "The config requests no scopes.", "")
            return
        unlisted = [s for s in wanted if s not in offered]
        if unlisted:
            self.add(
                "metadata:scopes",
                title,
                "warn",
                f"{unlisted} are not in scopes_supported {offered} (many providers list only "
                "some of their scopes).",
                "Check the scope names in the provider's documentation.",
            )
        else:
            self.add(
                "metadata:scopes", title, "ok", f"Every requested scope {wanted} is offered.", ""
            )

    def metadata_iss(self, meta: Mapping[str, Any], title: str) -> None:
        advertised = meta.get("authorization_response_iss_parameter_supported") is True
        configured = self.config.authorization_response_iss_parameter_supported
        if advertised == configured:
            said = "sends" if advertised else "does not send"
            self.add(
                "metadata:iss",
                title,
                "ok",
                f"The provider {said} iss in its redirects, as configured.",
                "",
            )
        elif advertised:
            self.add(
                "metadata:iss",
                title,
                "warn",
                "The provider sends iss in its redirects but the config does not expect it, "
                "so a mix-up attack is not caught by the issuer.",
                f"Set issuer={meta.get('issuer')!r} and authorizationResponseIssParameterSupported"
                "=True (discover_config() fills both).",
            )
        else:
            self.add(
                "metadata:iss",
                title,
                "fail",
                "The config expects iss in the redirect but the provider does not advertise "
                "sending it, so its redirects would be refused.",
                "Remove authorizationResponseIssParameterSupported from the config.",
            )

    # 3. credentials ---------------------------------------------------------------------

    def credentials(self, redirect_uri: str | None) -> None:
        title = "Client credentials accepted"
        url = self.config.access_token_uri
        if not self.reachable.get(url, True):
            self.add("credentials", title, "skipped", f"{url} cannot be reached.", "")
            return
        # A code that cannot exist: the provider must authenticate the client before it can
        # say the code is bad. One request, never retried.
        code = _random.token_urlsafe(32)
        verifier = new_code_verifier()
        self.secrets += [code, verifier]
        request = code_exchange_request(
            self.config,
            code=code,
            redirect_uri=redirect_uri or "",
            code_verifier=verifier,
        )
        if not redirect_uri:
            body = "&".join(p for p in request.body.split("&") if not p.startswith("redirect_uri="))
            request = dataclasses.replace(request, body=body)
        self.secrets += list(request.secrets)
        answer = send(self.http, request, deadline=self.deadline)
        self.note(request, answer)
        method = self.config.client_auth_method
        if answer.status is None:
            self.add(
                "credentials",
                title,
                "fail",
                f"The probe token request to {url} got no answer ({answer.failure}).",
                "Check accessTokenUri and the network.",
            )
            return
        status = answer.status
        if 300 <= status < 400:
            target = _where(answer.headers.get("location", "")) or "nowhere"
            self.add(
                "credentials",
                title,
                "fail",
                f"{url} redirects the token request to {target} instead of answering it.",
                "Put the address it redirects to in accessTokenUri.",
            )
            return
        error = parse_error_response(
            TokenExchangeError,
            "The probe",
            status,
            answer.headers,
            answer.content,
            request.secrets,
            request.client_id,
        )
        words = error.error or ""
        said = f"{words}: {error.error_description}" if error.error_description else words
        if words in _BAD_CLIENT or (status == 401 and words not in _CODE_REFUSED):
            who = (
                "the client id (a public client: no secret)"
                if method == "none"
                else f"the client id, the client secret and client_auth_method (now {method!r}: "
                "the provider may want the other of client_secret_basic / client_secret_post)"
            )
            self.add(
                "credentials",
                title,
                "fail",
                f"A token request with a made-up code was refused as a bad client "
                f"(HTTP {status}, the provider said {said or 'nothing readable'}).",
                f"Check {who}.",
            )
        elif words in _CODE_REFUSED:
            self.add(
                "credentials",
                title,
                "ok",
                f"A token request with a made-up code was refused only for the code "
                f"({words}): the provider accepted the client credentials ({method}).",
                "",
            )
        elif 200 <= status < 300 and not words:
            self.add(
                "credentials",
                title,
                "fail",
                f"{url} answered HTTP {status} to a token request with a made-up code.",
                "Check accessTokenUri points at the provider's token endpoint.",
            )
        elif words:
            self.add(
                "credentials",
                title,
                "warn",
                f"A token request with a made-up code was refused with {said} (HTTP {status}), "
                "which does not tell whether the credentials are right.",
                "Read the provider's words; the credentials are checked for sure at the first "
                "authorization.",
            )
        else:
            self.add(
                "credentials",
                title,
                "warn",
                f"{url} answered HTTP {status} with {answer.content_type or 'no content type'}, "
                "not an OAuth error.",
                "Check accessTokenUri points at the provider's token endpoint.",
            )

    # 4. redirect URI --------------------------------------------------------------------

    def redirect(self, redirect_uri: str | None) -> None:
        title = "Redirect URI accepted (heuristic)"
        if not redirect_uri:
            self.add(
                "redirect_uri",
                title,
                "skipped",
                "This client authorizes by device code, without a redirect URI.",
                "",
            )
            return
        if not self.reachable.get(self.config.auth_uri, True):
            self.add("redirect_uri", title, "skipped", "authUri cannot be reached.", "")
            return
        # A throwaway state and verifier: no flow is recorded, so nothing is left pending.
        url = authorization_url(
            self.config,
            redirect_uri=redirect_uri,
            scopes=self.config.default_scopes,
            state=new_state(),
            code_verifier=new_code_verifier(),
        )
        answer, failure = self.request(HttpRequest("GET", url, {"Accept": "text/html"}, ""))
        register = (
            f"Register exactly {redirect_uri} as a redirect URI of this client at the provider."
        )
        if answer.status is None:
            self.add(
                "redirect_uri",
                title,
                "skipped",
                f"The authorization URL got no answer: {failure}.",
                "",
            )
            return
        status = answer.status
        if 300 <= status < 400:
            location = str(httpx.URL(url).join(answer.headers.get("location", "")))
            if location.startswith(redirect_uri):
                query = parse_qs(urlsplit(location).query)
                error = (query.get("error") or [""])[0][:100]
                if error:
                    description = (query.get("error_description") or [""])[0][:300]
                    said = f"{error}: {description}" if description else error
                    self.add(
                        "redirect_uri",
                        title,
                        "fail",
                        f"The provider accepts the redirect URI but sends the browser back "
                        f"with an error ({said}).",
                        "Fix what the provider names (often a scope the client may not ask "
                        "for, or a grant not enabled for it).",
                    )
                    return
                self.add(
                    "redirect_uri",
                    title,
                    "ok",
                    "The provider sent the browser straight back to the redirect URI.",
                    "",
                )
                return
            self.add(
                "redirect_uri",
                title,
                "ok",
                f"The provider redirects to {_where(location)} (its sign-in page, presumably); "
                "some providers check the redirect URI only after sign-in.",
                f"If the provider then shows a redirect_uri error: {register}",
            )
            return
        text = _page_text(answer.content)
        mention = _REDIRECT_WORDS.search(text)
        if 400 <= status < 500:
            if mention is not None:
                self.add(
                    "redirect_uri",
                    title,
                    "fail",
                    f"The provider refuses the authorization request (HTTP {status}) with a page "
                    f"about the redirect URI: “{_excerpt(text, mention)}”",
                    register,
                )
            else:
                self.add(
                    "redirect_uri",
                    title,
                    "warn",
                    f"The provider refuses the authorization request (HTTP {status}): "
                    f"“{_excerpt(text, None)}”",
                    "Read the provider's words: the client id, the scopes or authUriParams "
                    "may be wrong.",
                )
            return
        if status >= 500:
            self.add(
                "redirect_uri",
                title,
                "warn",
                f"The authorization URL answers HTTP {status}.",
                "Try again later.",
            )
            return
        refused = mention is not None and re.search(
            r"mismatch|not registered|does not match|invalid|not allowed", text, re.IGNORECASE
        )
        if refused:
            self.add(
                "redirect_uri",
                title,
                "fail",
                f"The provider shows a page about the redirect URI: “{_excerpt(text, mention)}”",
                register,
            )
            return
        self.add(
            "redirect_uri",
            title,
            "ok",
            f"The provider shows a page (HTTP {status}) without a redirect URI error: a "
            "consent or sign-in form, presumably.",
            "",
        )

    # 5. clock ---------------------------------------------------------------------------

    def clock(self) -> None:
        title = "Provider's clock"
        for _url, received, header in self.dates:
            try:
                theirs = parsedate_to_datetime(header)
            except (TypeError, ValueError):
                continue
            if theirs.tzinfo is None:
                theirs = theirs.replace(tzinfo=dt.timezone.utc)
            # Date drops the fraction of its second: the middle of that second is the guess.
            skew = theirs.timestamp() + 0.5 - received
            ahead = "ahead of" if skew > 0 else "behind"
            if abs(skew) > CLOCK_SKEW_WARN:
                self.add(
                    "clock",
                    title,
                    "warn",
                    f"The provider's Date header ({header}) is {abs(skew):.0f} s {ahead} this "
                    "machine's clock; token expiry and id_token checks depend on it.",
                    "Synchronise this machine's clock (NTP), or tell the provider's operator.",
                )
            else:
                self.add(
                    "clock",
                    title,
                    "ok",
                    f"The provider's clock is within {max(1.0, abs(skew)):.0f} s of this "
                    "machine's.",
                    "",
                )
            return
        self.add("clock", title, "skipped", "No answer carried a Date header.", "")

    # 6. stored token --------------------------------------------------------------------

    def token(self) -> None:
        key = resolve_user(self.user)
        try:
            record = self.client.stored_token(key)
        except ProviderMismatchError:
            self.add(
                "scopes",
                "Granted scopes",
                "warn",
                f"The token stored for {key!r} belongs to another provider configuration.",
                "Authorize again with this configuration: client.get_user_authorization_url().",
            )
            return
        if record is None:
            for check_id, title in (("scopes", "Granted scopes"), ("refresh", "Refresh token")):
                self.add(check_id, title, "skipped", f"No token is stored for {key!r}.", "")
            return
        data = record.data
        self.secrets += [data.token, data.refresh_token, data.id_token]
        wanted = list(self.config.default_scopes)
        granted = list(data.scopes)
        missing = [s for s in wanted if s not in granted]
        if not data.scope:
            self.add(
                "scopes",
                "Granted scopes",
                "ok" if not wanted else "skipped",
                "The provider did not say which scopes it granted (RFC 6749 allows that when "
                "they are the requested ones).",
                "",
            )
        elif missing:
            self.add(
                "scopes",
                "Granted scopes",
                "warn",
                f"The token for {key!r} lacks {missing} of the requested {wanted} "
                f"(granted: {granted}).",
                "Authorize again and approve every scope; if the provider drops them, enable "
                "them for this client at the provider.",
            )
        else:
            self.add(
                "scopes",
                "Granted scopes",
                "ok",
                f"The token for {key!r} has every requested scope ({granted}).",
                "",
            )
        if data.refresh_token:
            self.add(
                "refresh",
                "Refresh token",
                "ok",
                f"A refresh token is stored for {key!r}: expired tokens are renewed without "
                "a person.",
                "",
            )
            return
        expires = "never expires" if data.expires_at is None else "expires"
        verdict: Verdict = "ok" if data.expires_at is None else "warn"
        self.add(
            "refresh",
            "Refresh token",
            verdict,
            f"No refresh token is stored for {key!r} and the access token {expires}.",
            _refresh_hint(self.config.auth_uri, self.config.default_scopes)
            if verdict == "warn"
            else "",
        )

    def close(self) -> None:
        self.http.close()


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


def diagnose(client: OAuth2Client, user: UserLike = None) -> Report:
    """Check ``client``'s provider configuration against the provider; return the report.

    Makes a handful of requests to the provider (one per endpoint, its metadata, one token
    request with a made-up code, the authorization URL without cookies); records nothing in
    the store. ``user`` picks the stored token whose scopes and refresh token are checked.
    """
    redirect_uri = client.redirect_uri if client.way is not None else client.setup()
    doctor = _Doctor(client, user)
    try:
        doctor.endpoints()
        doctor.find_metadata()
        doctor.metadata_checks()
        doctor.credentials(redirect_uri)
        doctor.redirect(redirect_uri)
        doctor.clock()
        doctor.token()
    finally:
        doctor.close()
    return Report(
        alias=client.alias,
        client_id=client.config.client_id,
        redirect_uri=redirect_uri or None,
        checks=tuple(doctor.checks),
    )

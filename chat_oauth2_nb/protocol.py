"""The OAuth2 protocol without I/O: state, PKCE, URLs, token requests and responses.

Request preparation and PKCE come from Authlib's protocol modules; this module adds the
strict parsing a notebook user needs: every bad answer becomes a typed error that names
what was wrong, and never repeats a secret.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7009.parameters import prepare_revoke_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from .config import ProviderConfig
from .errors import ProviderError

__all__ = [
    "AuthData",
    "HttpExchange",
    "HttpRequest",
    "authorization_url",
    "code_exchange_request",
    "mask",
    "new_code_verifier",
    "new_state",
    "parse_error_response",
    "parse_token_response",
    "redact",
    "redact_response_body",
    "refresh_request",
    "revoke_request",
    "utcnow",
]

# 43 characters from a 62-letter alphabet: 256 bits, more than RFC 6749 §10.10 asks.
_STATE_LENGTH = 43
# RFC 7636 §4.1: 43..128 characters; the longest gives the most entropy for free.
_VERIFIER_LENGTH = 128


def utcnow() -> dt.datetime:
    """Return the current time, timezone-aware (UTC)."""
    return dt.datetime.now(dt.timezone.utc)


def mask(secret: str | None) -> str:
    """Show a secret as ``eyJh…x9Q``: enough to tell two apart, never enough to use."""
    if not secret:
        return ""
    # Reveal at most a sixth of the characters (and never more than 8), head and tail, so a
    # mask of a short secret gives away next to nothing; under 12 characters, nothing at all.
    shown = min(len(secret) // 6, 8)
    if shown < 2:
        return "…"
    tail = shown // 2
    return f"{secret[: shown - tail]}…{secret[-tail:]}"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each secret in ``text`` by its mask."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, mask(secret) or "…")
    return text


def new_state() -> str:
    """Return a fresh, unguessable ``state`` value (256 bits)."""
    return str(generate_token(_STATE_LENGTH))


def new_code_verifier() -> str:
    """Return a fresh PKCE code verifier (RFC 7636)."""
    return str(generate_token(_VERIFIER_LENGTH))


@dataclasses.dataclass(frozen=True, repr=False)
class AuthData:
    """A stored token, as the seed's IAuthData: ``token``, ``expires_at``, ``scope``, ``refresh_token``."""

    token: str
    token_type: str = "Bearer"  # noqa: S105 - a token type, not a password
    expires_at: dt.datetime | None = None
    scope: str = ""
    refresh_token: str | None = None
    id_token: str | None = None
    obtained_at: dt.datetime = dataclasses.field(default_factory=utcnow)

    def __repr__(self) -> str:
        expires = self.expires_at.isoformat(timespec="seconds") if self.expires_at else None
        return (
            f"AuthData(token={mask(self.token)!r}, token_type={self.token_type!r}, "
            f"expires_at={expires!r}, scope={self.scope!r}, "
            f"refresh_token={'<set>' if self.refresh_token else None}, "
            f"id_token={'<set>' if self.id_token else None})"
        )

    __str__ = __repr__

    @property
    def scopes(self) -> tuple[str, ...]:
        """The granted scopes as a tuple."""
        return tuple(self.scope.split())

    def expires_in(self, now: dt.datetime | None = None) -> float | None:
        """Seconds until expiry (negative once expired), None when the provider gave no expiry."""
        if self.expires_at is None:
            return None
        return (self.expires_at - (now or utcnow())).total_seconds()

    def is_expired(self, leeway: float = 30.0, now: dt.datetime | None = None) -> bool:
        """True when the token expires within ``leeway`` seconds (capped at half its lifetime)."""
        if self.expires_at is None:
            return False
        lifetime = (self.expires_at - self.obtained_at).total_seconds()
        # A 30 s leeway on a 20 s token would make it useless: keep half its life usable.
        effective = min(leeway, max(lifetime, 0.0) / 2)
        remaining = self.expires_in(now)
        return remaining is not None and remaining <= effective

    def to_json(self) -> str:
        """Serialise for the store."""
        return json.dumps(
            {
                "token": self.token,
                "token_type": self.token_type,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "scope": self.scope,
                "refresh_token": self.refresh_token,
                "id_token": self.id_token,
                "obtained_at": self.obtained_at.isoformat(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> AuthData:
        """Load what :meth:`to_json` wrote."""
        raw = json.loads(text)
        return cls(
            token=raw["token"],
            token_type=raw["token_type"],
            expires_at=dt.datetime.fromisoformat(raw["expires_at"]) if raw["expires_at"] else None,
            scope=raw["scope"],
            refresh_token=raw["refresh_token"],
            id_token=raw["id_token"],
            obtained_at=dt.datetime.fromisoformat(raw["obtained_at"]),
        )


@dataclasses.dataclass(frozen=True, repr=False)
class HttpRequest:
    """A prepared request: credentials are in the body or the Authorization header, never the URL."""

    method: str
    url: str
    headers: dict[str, str]
    body: str
    secrets: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"HttpRequest({self.method} {self.url})"

    def redacted_body(self) -> str:
        """The body with every secret masked, for logs and the HTTP log panel."""
        return redact(self.body, self.secrets)


@dataclasses.dataclass(frozen=True)
class HttpExchange:
    """One request made to the provider, with every secret masked (for logs and the panel)."""

    method: str
    url: str
    status: int | None
    elapsed_ms: float
    request_body: str
    response_body: str
    started_at: float
    error: str | None = None

    @classmethod
    def of(
        cls,
        request: HttpRequest,
        status: int | None,
        content: bytes,
        *,
        started_at: float,
        elapsed_ms: float,
        error: str | None = None,
    ) -> HttpExchange:
        """Record ``request`` and the provider's answer with every secret masked."""
        return cls(
            method=request.method,
            url=request.url,
            status=status,
            elapsed_ms=elapsed_ms,
            request_body=request.redacted_body(),
            response_body=redact_response_body(content, request.secrets),
            started_at=started_at,
            error=error,
        )


# Fields of token, error and introspection answers whose values are credentials.
_SECRET_FIELDS = (
    "access_token",
    "refresh_token",
    "id_token",
    "code",
    "client_secret",
    "code_verifier",
    "token",
)


def redact_response_body(content: bytes, secrets: Iterable[str | None]) -> str:
    """A provider's answer as text for a log, credential fields and known secrets masked."""
    text = content.decode("utf-8", "replace")[:4000]
    try:
        data = json.loads(text)
    except ValueError:
        return redact(text, secrets)
    if isinstance(data, dict):
        found = [data[key] for key in _SECRET_FIELDS if isinstance(data.get(key), str)]
        for key in _SECRET_FIELDS:
            if isinstance(data.get(key), str):
                data[key] = mask(data[key])
        text = json.dumps(data, ensure_ascii=False)
        # The same value may sit in another field too (an echoing error_description).
        secrets = (*secrets, *found)
    return redact(text, secrets)


def authorization_url(
    config: ProviderConfig,
    *,
    redirect_uri: str,
    scopes: Iterable[str],
    state: str,
    code_verifier: str,
) -> str:
    """Build the authorization URL: response_type=code, client_id, redirect_uri, scope, state, PKCE S256."""
    return str(
        prepare_grant_uri(
            config.auth_uri,
            client_id=config.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=" ".join(scopes) or None,
            state=state,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
            **dict(config.auth_uri_params),
        )
    )


def _authenticated(config: ProviderConfig, url: str, body: str) -> HttpRequest:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    client_auth = ClientAuth(config.client_id, config.client_secret, config.client_auth_method)
    url, headers, body = client_auth.prepare("POST", url, headers, body)
    secrets = tuple(s for s in (config.client_secret, headers.get("Authorization")) if s)
    return HttpRequest("POST", url, dict(headers), body, secrets)


def code_exchange_request(
    config: ProviderConfig, *, code: str, redirect_uri: str, code_verifier: str
) -> HttpRequest:
    """Prepare the authorization code grant request (RFC 6749 §4.1.3, RFC 7636 §4.5)."""
    body = prepare_token_request(
        "authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
    )
    request = _authenticated(config, config.access_token_uri, body)
    return dataclasses.replace(request, secrets=(*request.secrets, code, code_verifier))


def refresh_request(
    config: ProviderConfig, *, refresh_token: str, scopes: Iterable[str] = ()
) -> HttpRequest:
    """Prepare the refresh token grant request (RFC 6749 §6)."""
    extra: dict[str, Any] = {"refresh_token": refresh_token}
    scope = " ".join(scopes)
    if scope:
        extra["scope"] = scope
    body = prepare_token_request("refresh_token", **extra)
    request = _authenticated(config, config.refresh_token_uri, body)
    return dataclasses.replace(request, secrets=(*request.secrets, refresh_token))


def revoke_request(config: ProviderConfig, *, token: str, token_type_hint: str) -> HttpRequest:
    """Prepare a token revocation request (RFC 7009 §2.1)."""
    if config.revoke_token_uri is None:
        raise ValueError("revoke_request() needs a revokeTokenUri")
    body, _ = prepare_revoke_token_request(token, token_type_hint)
    request = _authenticated(config, config.revoke_token_uri, body)
    return dataclasses.replace(request, secrets=(*request.secrets, token))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None


def _content_kind(headers: Mapping[str, str], content: bytes) -> str:
    ctype = (headers.get("content-type") or headers.get("Content-Type") or "").split(";")[0].strip()
    return ctype or ("empty body" if not content else "no content type")


def _load_json(content: bytes) -> Any:
    try:
        return json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def parse_error_response(
    error_class: type[ProviderError],
    what: str,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    secrets: Iterable[str | None] = (),
) -> ProviderError:
    """Turn a non-2xx (or unreadable) provider answer into a typed error, secrets masked."""
    secrets = tuple(secrets)
    data = _load_json(content)
    retry_after = _retry_after(headers) if status in (429, 503) else None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        description = data.get("error_description")
        return error_class(
            f"{what} failed",
            error=redact(data["error"], secrets),
            error_description=redact(description, secrets)
            if isinstance(description, str)
            else None,
            status_code=status,
            retry_after=retry_after,
        )
    kind = _content_kind(headers, content)
    if status == 429:
        detail = "the provider is rate limiting this client"
    elif status >= 500:
        detail = f"the provider failed (HTTP {status}, {kind})"
    else:
        detail = f"the provider answered HTTP {status} with {kind} instead of a JSON error"
    return error_class(f"{what} failed: {detail}", status_code=status, retry_after=retry_after)


def parse_token_response(
    error_class: type[ProviderError],
    what: str,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    received_at: dt.datetime,
    previous: AuthData | None = None,
    requested_scopes: Iterable[str] = (),
    secrets: Iterable[str | None] = (),
) -> AuthData:
    """Validate a token endpoint answer (RFC 6749 §5.1/§5.2) and build the AuthData to store.

    ``expires_at`` counts from ``received_at`` on this machine's clock, so a provider whose
    clock is off does not make tokens look expired. On refresh, ``previous`` supplies the
    refresh token and scope the provider may leave out (RFC 6749 §6).
    """
    secrets = tuple(secrets)
    if not 200 <= status < 300:
        raise parse_error_response(error_class, what, status, headers, content, secrets)
    data = _load_json(content)
    if not isinstance(data, dict):
        kind = _content_kind(headers, content)
        raise error_class(
            f"{what} failed: the token endpoint answered HTTP {status} with {kind} that is not a "
            "JSON object; check accessTokenUri points at the token endpoint, not a web page",
            status_code=status,
        )
    if "error" in data:
        # Some providers answer errors with 200.
        raise parse_error_response(error_class, what, 400, headers, content, secrets)
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise error_class(
            f"{what} failed: the token response has no access_token", status_code=status
        )
    secrets = (*secrets, token)
    token_type = data.get("token_type")
    if not isinstance(token_type, str) or not token_type:
        raise error_class(
            f"{what} failed: the token response has no token_type (RFC 6749 §5.1 requires it)",
            status_code=status,
        )
    expires_at: dt.datetime | None = None
    if "expires_in" in data and data["expires_in"] is not None:
        raw = data["expires_in"]
        seconds: float | None = None
        # Some providers (Azure AD v1, older Facebook) send "3599" as a string.
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            seconds = float(raw)
        elif isinstance(raw, str):
            try:
                seconds = float(raw.strip())
            except ValueError:
                seconds = None
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            raise error_class(
                f"{what} failed: the token response's expires_in is {type(raw).__name__} "
                f"{redact(repr(raw), secrets)[:40]}, not a number of seconds >= 0",
                status_code=status,
            )
        expires_at = received_at + dt.timedelta(seconds=seconds)
    scope = data.get("scope")
    if isinstance(scope, list):
        scope = " ".join(str(s) for s in scope)
    if not isinstance(scope, str):
        # RFC 6749 §5.1: omitted scope means "as requested" (or, on refresh, as before).
        scope = previous.scope if previous else " ".join(requested_scopes)
    refresh_token = data.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        refresh_token = previous.refresh_token if previous else None
    id_token = data.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        id_token = previous.id_token if previous else None
    return AuthData(
        token=token,
        token_type=token_type,
        expires_at=expires_at,
        scope=scope,
        refresh_token=refresh_token,
        id_token=id_token,
        obtained_at=received_at,
    )

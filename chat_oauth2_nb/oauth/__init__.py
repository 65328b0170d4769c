"""The OAuth2 protocol without I/O: state, PKCE, URLs, token requests and responses.

Request preparation and PKCE come from Authlib's protocol modules; this module adds the
strict parsing a notebook user needs: every bad answer becomes a typed error that names
what was wrong, and never repeats a secret.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit

from authlib.common.security import generate_token
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7009.parameters import prepare_revoke_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from ..config import ProviderConfig
from ..errors import (
    AuthorizationDeniedError,
    ConfigurationError,
    DeviceAuthorizationError,
    DeviceCodeExpiredError,
    OAuth2Error,
    ProviderError,
    TokenExchangeError,
    hint_for,
)

__all__ = [
    "CREDENTIAL_PARAMS",
    "DEFAULT_POLL_INTERVAL",
    "DEVICE_CODE_GRANT_TYPE",
    "MAX_ANSWER_BYTES",
    "MAX_EXPIRES_IN",
    "MAX_FIELD_CHARS",
    "MAX_POLL_WAIT",
    "SLOW_DOWN_STEP",
    "AuthData",
    "DeviceAuthorization",
    "DevicePending",
    "DevicePollOutcome",
    "HttpExchange",
    "HttpRequest",
    "ProviderAnswer",
    "authorization_url",
    "classify_device_poll",
    "code_exchange_request",
    "device_authorization_request",
    "device_code_expired_error",
    "device_poll_backoff",
    "device_token_request",
    "introspection_request",
    "is_credential_field",
    "mask",
    "new_code_verifier",
    "new_state",
    "parse_device_authorization",
    "parse_error_response",
    "parse_introspection",
    "parse_token_response",
    "redact",
    "redact_response_body",
    "refresh_request",
    "revoke_request",
    "secret_forms",
    "token_from_answer",
    "transport_error",
    "utcnow",
]

E = TypeVar("E", bound=ProviderError)
_LOWER_HEX = re.compile(r"%[0-9A-F]{2}")
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


def secret_forms(secret: str, client_id: str | None = None) -> set[str]:
    """Every way ``secret`` can appear in text: raw, percent-encoded, JSON-escaped, in Basic auth.

    Form bodies encode ``/`` as ``%2F`` and ``+`` as ``%2B`` (Google's ``1//0g…`` refresh
    tokens, ``4/0A…`` codes and ``GOCSPX-…+…/…==`` secrets are full of them), so masking only
    the raw string would let them through.
    """
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
    }
    forms |= {_LOWER_HEX.sub(lambda m: m.group(0).lower(), form) for form in forms}
    forms.add(quote(quote(secret, safe=""), safe=""))
    forms.add(base64.b64encode(secret.encode()).decode().rstrip("="))
    forms.add(base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="))
    if client_id is not None:
        for joined in (f"{client_id}:{secret}", f"{quote_plus(client_id)}:{quote_plus(secret)}"):
            forms.add(base64.b64encode(joined.encode()).decode().rstrip("="))
    return {form for form in forms if len(form) >= 4}


def redact(text: str, secrets: Iterable[str | None], client_id: str | None = None) -> str:
    """Replace every occurrence of each secret in ``text``, in any encoding, by its mask."""
    wanted = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
    for secret in wanted:
        shown = mask(secret) or "…"
        # Longest forms first, so a raw match inside an encoded one cannot split it.
        for form in sorted(secret_forms(secret, client_id), key=len, reverse=True):
            if form in text:
                text = text.replace(form, shown)
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
    #: The id_token's claims once its signature, issuer, audience, expiry and nonce were
    #: verified (OpenID Connect); None when there is no id_token or it was not verified.
    claims: Mapping[str, Any] | None = dataclasses.field(default=None, compare=False)

    def __repr__(self) -> str:
        expires = self.expires_at.isoformat(timespec="seconds") if self.expires_at else None
        return (
            f"AuthData(token={mask(self.token)!r}, token_type={self.token_type!r}, "
            f"expires_at={expires!r}, scope={self.scope!r}, "
            f"refresh_token={'<set>' if self.refresh_token else None}, "
            f"id_token={'<set>' if self.id_token else None}, "
            f"claims={'<verified>' if self.claims is not None else None})"
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
                "claims": dict(self.claims) if self.claims is not None else None,
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
            claims=raw.get("claims"),
        )


# Request parameters whose values are credentials (RFC 6749, 7009, 7521, 7636, 8628).
CREDENTIAL_PARAMS = frozenset(
    {
        "code",
        "code_verifier",
        "refresh_token",
        "access_token",
        "id_token",
        "client_secret",
        "client_assertion",
        "token",
        "assertion",
        "device_code",
        "password",
    }
)
# The most a token endpoint answers, with room to spare: Entra's largest tokens are a few KiB.
MAX_ANSWER_BYTES = 64 * 1024
# The longest token or scope string accepted from a provider.
MAX_FIELD_CHARS = 16 * 1024
# expires_in beyond this is taken as "no practical expiry" (1e300 would overflow a datetime).
MAX_EXPIRES_IN = 10 * 365 * 86400.0
# What a log keeps of a provider's answer, after masking.
_LOG_CHARS = 4000


def is_credential_field(name: str) -> bool:
    """True for a parameter or JSON field whose value is a credential (``*_token``, secrets…)."""
    key = name.lower()
    if key in ("token_type", "token_type_hint"):
        return False
    return (
        key in CREDENTIAL_PARAMS
        or key.endswith("token")
        or key.endswith("secret")
        or key in ("password", "api_key", "apikey")
    )


def _masked_pairs(pairs: Iterable[tuple[str, str]], found: list[str]) -> str:
    shown = []
    for name, value in pairs:
        if is_credential_field(name):
            found.append(value)
            shown.append(f"{quote_plus(name)}={mask(value) or '…'}")
        else:
            shown.append(urlencode([(name, value)]))
    return "&".join(shown)


@dataclasses.dataclass(frozen=True, repr=False)
class HttpRequest:
    """A prepared request: credentials are in the body or the Authorization header, never the URL."""

    method: str
    url: str
    headers: dict[str, str]
    body: str
    secrets: tuple[str, ...] = ()
    client_id: str | None = None

    def __repr__(self) -> str:
        return f"HttpRequest({self.method} {self.url})"

    def redacted_body(self) -> str:
        """The body for logs: built from its parameters with every credential masked first."""
        found: list[str] = []
        if _media_type({"content-type": self.headers.get("Content-Type", "")}).endswith("json"):
            shown = json.dumps(_mask_tree(_load_json(self.body.encode()), found))
        else:
            shown = _masked_pairs(parse_qsl(self.body, keep_blank_values=True), found)
        # A secret may also sit in a parameter of no credential name (an assertion's claims…).
        return redact(shown, (*self.secrets, *found), self.client_id)


@dataclasses.dataclass(frozen=True)
class ProviderAnswer:
    """What came back from one request to the provider, or why nothing usable did."""

    status: int | None
    headers: Mapping[str, str]
    content: bytes
    started_at: float
    elapsed_ms: float
    # None, "timeout", "deadline", "too_large", or the transport error's type name.
    failure: str | None = None

    @property
    def content_type(self) -> str:
        """The media type without parameters, or '' when none was sent."""
        return _media_type(self.headers)


def _media_type(headers: Mapping[str, str]) -> str:
    return (headers.get("content-type") or "").split(";")[0].strip().lower()


def transport_error(error_class: type[E], what: str, url: str, failure: str, timeout: float) -> E:
    """The typed error for a request that got no usable answer (the same words everywhere)."""
    if failure == "timeout":
        return error_class(
            f"{what} failed: the provider did not answer within {timeout:g} s ({url})",
            hint="Check the endpoint URL and the network; raise timeout= if the provider is slow.",
        )
    if failure == "deadline":
        return error_class(
            f"{what} failed: the provider's answer took more than {timeout:g} s in all ({url})",
            hint="The provider sends its answer too slowly: check the endpoint URL, or raise "
            "timeout= if the provider is known to be slow.",
        )
    if failure == "too_large":
        return error_class(
            f"{what} failed: the provider's answer is larger than {MAX_ANSWER_BYTES // 1024} KiB "
            f"({url}), far more than any token endpoint sends",
            hint="Check the endpoint URL points at the provider's token endpoint.",
        )
    return error_class(
        f"{what} failed: could not reach {url} ({failure})",
        hint="Check the endpoint URL, that the provider is up, and the network.",
    )


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
    def of(cls, request: HttpRequest, answer: ProviderAnswer) -> HttpExchange:
        """Record ``request`` and the provider's answer with every secret masked."""
        return cls(
            method=request.method,
            url=request.url,
            status=answer.status,
            elapsed_ms=answer.elapsed_ms,
            request_body=request.redacted_body(),
            response_body=redact_response_body(
                answer.content,
                request.secrets,
                content_type=answer.content_type,
                status=answer.status,
                client_id=request.client_id,
            ),
            started_at=answer.started_at,
            error=answer.failure,
        )


def _mask_tree(value: Any, found: list[str]) -> Any:
    # Credentials may sit deep (Slack's authed_user.access_token) or in lists.
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, str) and is_credential_field(str(key)):
                found.append(item)
                out[key] = mask(item) or "…"
            else:
                out[key] = _mask_tree(item, found)
        return out
    if isinstance(value, list):
        return [_mask_tree(item, found) for item in value]
    return value


def redact_response_body(
    content: bytes,
    secrets: Iterable[str | None],
    *,
    content_type: str = "",
    status: int | None = None,
    client_id: str | None = None,
) -> str:
    """A provider's answer as text for a log: parsed whole, credentials masked, then cut short.

    JSON (any depth) and form-encoded answers are masked field by field; a successful answer
    that cannot be parsed is shown only by size and type, since its secrets can't be found.
    """
    found: list[str] = []
    data = _load_json(content)
    pairs = _load_form(content, content_type) if data is None else None
    if isinstance(data, (dict, list)):
        text = json.dumps(_mask_tree(data, found), ensure_ascii=False)
    elif pairs is not None:
        text = _masked_pairs(pairs, found)
    elif status is not None and 200 <= status < 300 and content:
        return (
            f"({len(content)} bytes of {content_type or 'no content type'}, not shown: it "
            "could not be parsed, so the secrets in it could not be masked)"
        )
    else:
        text = content.decode("utf-8", "replace")
    text = redact(text, (*secrets, *found), client_id)
    return text if len(text) <= _LOG_CHARS else text[:_LOG_CHARS] + "…"


def _load_form(content: bytes, content_type: str) -> list[tuple[str, str]] | None:
    """Form-encoded pairs when the answer says it is a form, or plainly is a token form."""
    try:
        text = content.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    if content_type == "application/x-www-form-urlencoded":
        return pairs
    # GitHub answers form-encoded unless asked for JSON, and some proxies drop the type.
    names = {name for name, _ in pairs}
    return pairs if names & {"access_token", "error", "refresh_token"} else None


def authorization_url(
    config: ProviderConfig,
    *,
    redirect_uri: str,
    scopes: Iterable[str],
    state: str,
    code_verifier: str,
    nonce: str | None = None,
) -> str:
    """Build the authorization URL: response_type=code, client_id, redirect_uri, scope, state, PKCE S256.

    With ``nonce`` (OpenID Connect), the id_token must carry it back: a replayed id_token
    from another login does not.
    """
    extra = dict(config.auth_uri_params)
    if nonce is not None:
        extra["nonce"] = nonce
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
            **extra,
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
    return HttpRequest("POST", url, dict(headers), body, secrets, config.client_id)


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


def revoke_request(
    config: ProviderConfig, *, token: str, token_type_hint: str | None = None
) -> HttpRequest:
    """Prepare a token revocation request in the provider's :attr:`~ProviderConfig.revoke_style`.

    ``rfc7009``: RFC 7009 §2.1, the client authenticated as at the token endpoint.
    ``google``: one ``token`` parameter and nothing else, as Google documents it.
    ``github``: ``DELETE /applications/{client_id}/token`` with Basic auth
    (client_id:client_secret) and the JSON body ``{"access_token": ...}``.
    """
    if config.revoke_token_uri is None:
        raise ValueError("revoke_request() needs a revokeTokenUri")
    if config.revoke_style == "google":
        body = urlencode([("token", token)])
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        return HttpRequest(
            "POST", config.revoke_token_uri, headers, body, (token,), config.client_id
        )
    if config.revoke_style == "github":
        basic = base64.b64encode(
            f"{config.client_id}:{config.client_secret or ''}".encode()
        ).decode()
        url = config.revoke_token_uri.replace("{client_id}", quote(config.client_id, safe=""))
        headers = {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/json",
            "Accept": "application/vnd.github+json",
        }
        secrets = tuple(s for s in (config.client_secret, headers["Authorization"], token) if s)
        body = json.dumps({"access_token": token})
        return HttpRequest("DELETE", url, headers, body, secrets, config.client_id)
    body, _ = prepare_revoke_token_request(token, token_type_hint)
    request = _authenticated(config, config.revoke_token_uri, body)
    return dataclasses.replace(request, secrets=(*request.secrets, token))


def introspection_request(
    config: ProviderConfig,
    *,
    token: str,
    token_type_hint: str = "access_token",  # noqa: S107
) -> HttpRequest:
    """Prepare a token introspection request (RFC 7662 §2.1), client authenticated."""
    if config.introspection_uri is None:
        raise ValueError("introspection_request() needs an introspectionUri")
    body = urlencode([("token", token), ("token_type_hint", token_type_hint)])
    request = _authenticated(config, config.introspection_uri, body)
    return dataclasses.replace(request, secrets=(*request.secrets, token))


def parse_introspection(
    error_class: type[ProviderError],
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    secrets: Iterable[str | None] = (),
    client_id: str | None = None,
) -> dict[str, Any]:
    """What the provider says about a token (RFC 7662 §2.2), credential fields left out."""
    what = "Introspecting the token"
    if not 200 <= status < 300:
        raise parse_error_response(error_class, what, status, headers, content, secrets, client_id)
    data = _load_json(content)
    if not isinstance(data, dict) or not isinstance(data.get("active"), bool):
        raise error_class(
            f"{what} failed: the answer is not a JSON object with a boolean 'active' "
            "(RFC 7662 §2.2); check introspectionUri",
            status_code=status,
        )
    return {key: value for key, value in data.items() if not is_credential_field(str(key))}


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
    return _media_type(headers) or ("empty body" if not content else "no content type")


def _load_json(content: bytes) -> Any:
    try:
        return json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _load_answer(headers: Mapping[str, str], content: bytes) -> dict[str, Any] | None:
    """A token or error answer as a dict: JSON, or form-encoded (GitHub's default)."""
    data = _load_json(content)
    if isinstance(data, dict):
        return data
    if data is None:
        pairs = _load_form(content, _media_type(headers))
        if pairs is not None:
            return dict(pairs)
    return None


def parse_error_response(
    error_class: type[ProviderError],
    what: str,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    secrets: Iterable[str | None] = (),
    client_id: str | None = None,
) -> ProviderError:
    """Turn a non-2xx (or unreadable) provider answer into a typed error, secrets masked."""
    secrets = tuple(secrets)
    data = _load_answer(headers, content)
    retry_after = _retry_after(headers) if status in (429, 503) else None
    if data is not None and isinstance(data.get("error"), str):
        # A hostile or buggy provider may echo the request (code, secret) in its words.
        found: list[str] = []
        _mask_tree(data, found)
        secrets = (*secrets, *found)
        description = data.get("error_description")
        return error_class(
            f"{what} failed",
            error=redact(data["error"][:200], secrets, client_id),
            error_description=redact(description[:1000], secrets, client_id)
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


def _bounded_string(
    error_class: type[ProviderError], what: str, status: int, name: str, value: object
) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    if len(value) > MAX_FIELD_CHARS:
        raise error_class(
            f"{what} failed: the token response's {name} is {len(value)} characters long, more "
            f"than the {MAX_FIELD_CHARS} this client accepts from any provider",
            status_code=status,
            hint="Check accessTokenUri points at the provider's token endpoint.",
        )
    return value


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
    client_id: str | None = None,
) -> AuthData:
    """Validate a token endpoint answer (RFC 6749 §5.1/§5.2) and build the AuthData to store.

    JSON and form-encoded answers are both read. ``expires_at`` counts from ``received_at``
    on this machine's clock, so a provider whose clock is off does not make tokens look
    expired. On refresh, ``previous`` supplies the refresh token and scope the provider may
    leave out (RFC 6749 §6).
    """
    secrets = tuple(secrets)
    if not 200 <= status < 300:
        raise parse_error_response(error_class, what, status, headers, content, secrets, client_id)
    data = _load_answer(headers, content)
    if data is None:
        kind = _content_kind(headers, content)
        raise error_class(
            f"{what} failed: the token endpoint answered HTTP {status} with {kind} that is "
            "not a JSON object or a token form; check accessTokenUri points at the token "
            "endpoint, not a web page",
            status_code=status,
        )
    if "error" in data:
        # Some providers answer errors with 200.
        raise parse_error_response(error_class, what, 400, headers, content, secrets, client_id)
    token = _bounded_string(error_class, what, status, "access_token", data.get("access_token"))
    if token is None:
        raise error_class(
            f"{what} failed: the token response has no access_token", status_code=status
        )
    secrets = (*secrets, token)
    token_type = _bounded_string(error_class, what, status, "token_type", data.get("token_type"))
    if token_type is None:
        raise error_class(
            f"{what} failed: the token response has no token_type (RFC 6749 §5.1 requires it)",
            status_code=status,
        )
    expires_at: dt.datetime | None = None
    if "expires_in" in data and data["expires_in"] not in (None, ""):
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
            shown = redact(repr(raw)[:40], secrets, client_id)
            raise error_class(
                f"{what} failed: the token response's expires_in is {type(raw).__name__} "
                f"{shown}, not a number of seconds >= 0",
                status_code=status,
            )
        expires_at = received_at + dt.timedelta(seconds=min(seconds, MAX_EXPIRES_IN))
    scope = data.get("scope")
    if isinstance(scope, list):
        scope = " ".join(str(s) for s in scope)
    if isinstance(scope, str) and "," in scope and not any(c.isspace() for c in scope):
        # GitHub (and Facebook, older Slack) separate granted scopes by commas. RFC 6749
        # §3.3 allows a comma inside one scope token, but no provider we know names its
        # scopes so, while comma lists are common: "repo,gist" reads as two scopes.
        scope = " ".join(part for part in scope.split(",") if part)
    if isinstance(scope, str) and scope:
        scope = _bounded_string(error_class, what, status, "scope", scope)
    if not isinstance(scope, str):
        # RFC 6749 §5.1: omitted scope means "as requested" (or, on refresh, as before).
        scope = previous.scope if previous else " ".join(requested_scopes)
    refresh_token = _bounded_string(
        error_class, what, status, "refresh_token", data.get("refresh_token")
    )
    if refresh_token is None:
        refresh_token = previous.refresh_token if previous else None
    id_token = _bounded_string(error_class, what, status, "id_token", data.get("id_token"))
    if id_token is None:
        id_token = previous.id_token if previous else None
    return AuthData(
        token=token,
        token_type=token_type,
        expires_at=expires_at,
        scope=scope,
        refresh_token=refresh_token,
        id_token=id_token,
        obtained_at=received_at,
        # Verified claims stay with the id_token they were verified from.
        claims=previous.claims if previous and previous.id_token == id_token else None,
    )


# -- device authorization grant (RFC 8628) -------------------------------------------------

DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
# RFC 8628 §3.5: "the interval MUST be increased by 5 seconds" on every slow_down.
SLOW_DOWN_STEP = 5.0
# RFC 8628 §3.2: without an interval the client waits 5 seconds between polls.
DEFAULT_POLL_INTERVAL = 5.0
# The longest a poller waits between two polls, however the provider answers; a longer wait
# would let the code expire before the next poll sees the approval.
MAX_POLL_WAIT = 300.0
# User codes are read and typed by people (RFC 8628 §6.1: short, case-insensitive).
MAX_USER_CODE_CHARS = 128
MAX_URI_CHARS = 2048
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


@dataclasses.dataclass(frozen=True, repr=False)
class DeviceAuthorization:
    """What the device authorization endpoint answered (RFC 8628 §3.2): show the person the
    ``user_code`` and ``verification_uri``; keep ``device_code`` (a credential) for polling."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: dt.datetime
    interval: float = DEFAULT_POLL_INTERVAL

    def __repr__(self) -> str:
        # The device_code is a bearer credential until it expires: never shown, not even masked.
        return (
            f"DeviceAuthorization(user_code={self.user_code!r}, "
            f"verification_uri={self.verification_uri!r}, "
            f"verification_uri_complete={self.verification_uri_complete!r}, "
            f"expires_at={self.expires_at.isoformat(timespec='seconds')!r}, "
            f"interval={self.interval:g})"
        )

    __str__ = __repr__

    def expires_in(self, now: dt.datetime | None = None) -> float:
        """Seconds until the codes expire (negative once they have)."""
        return (self.expires_at - (now or utcnow())).total_seconds()

    def is_expired(self, now: dt.datetime | None = None) -> bool:
        """True once the codes have expired: polling can only answer expired_token then."""
        return self.expires_in(now) <= 0

    def to_json(self) -> str:
        """Serialise for the store (with the device code: store it where secrets go)."""
        return json.dumps(
            {
                "device_code": self.device_code,
                "user_code": self.user_code,
                "verification_uri": self.verification_uri,
                "verification_uri_complete": self.verification_uri_complete,
                "expires_at": self.expires_at.isoformat(),
                "interval": self.interval,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> DeviceAuthorization:
        """Load what :meth:`to_json` wrote."""
        raw = json.loads(text)
        return cls(
            device_code=raw["device_code"],
            user_code=raw["user_code"],
            verification_uri=raw["verification_uri"],
            verification_uri_complete=raw["verification_uri_complete"],
            expires_at=dt.datetime.fromisoformat(raw["expires_at"]),
            interval=float(raw["interval"]),
        )


@dataclasses.dataclass(frozen=True)
class DevicePending:
    """Keep polling: wait ``wait`` seconds, then poll again; pass ``interval`` and ``failures``
    to the next :func:`classify_device_poll`.

    ``reason`` is ``authorization_pending``, ``slow_down`` (``interval`` grew by 5 s, RFC 8628
    §3.5) or ``retry`` (the provider failed; ``error`` says how, ``wait`` backs off).
    """

    reason: str
    interval: float
    wait: float
    failures: int = 0
    error: ProviderError | None = None


DevicePollOutcome = AuthData | DevicePending | OAuth2Error


def device_authorization_request(config: ProviderConfig, scopes: Iterable[str] = ()) -> HttpRequest:
    """Prepare the device authorization request (RFC 8628 §3.1), client authenticated as at /token."""
    if config.device_authorization_uri is None:
        raise ConfigurationError(
            "deviceAuthorizationUri",
            "is missing, so this provider cannot be used with a device code",
            "Put the provider's device authorization endpoint there (discover_config() fills "
            "it when the provider advertises one), or authorize with a redirect instead.",
        )
    scope = " ".join(scopes)
    body = urlencode([("scope", scope)]) if scope else ""
    return _authenticated(config, config.device_authorization_uri, body)


def device_token_request(config: ProviderConfig, device_code: str) -> HttpRequest:
    """Prepare one poll of the token endpoint with the device code (RFC 8628 §3.4)."""
    body = prepare_token_request(DEVICE_CODE_GRANT_TYPE, device_code=device_code)
    request = _authenticated(config, config.access_token_uri, body)
    return dataclasses.replace(request, secrets=(*request.secrets, device_code))


def _seconds(raw: object) -> float | None:
    # Some providers send numbers as strings ("1800"), as for expires_in.
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) else None


def _device_field_error(
    name: str,
    problem: str,
    status: int,
    shown: object,
    secrets: tuple[str, ...],
    client_id: str | None,
) -> DeviceAuthorizationError:
    # Masked before it is cut short, so no secret can survive as a cut-off prefix.
    preview = redact(repr(shown), secrets, client_id)[:80]
    return DeviceAuthorizationError(
        f"Device authorization failed: the answer's {name} {problem} (got {type(shown).__name__} "
        f"{preview})",
        status_code=status,
        hint="Check deviceAuthorizationUri points at the provider's device authorization "
        "endpoint (RFC 8628).",
    )


def _device_uri(
    name: str, value: object, status: int, secrets: tuple[str, ...], client_id: str | None
) -> str:
    # Shown to the person as a link: only http(s), never javascript: or data:.
    if isinstance(value, str) and 0 < len(value) <= MAX_URI_CHARS and not _CONTROL.search(value):
        parts = urlsplit(value)
        if parts.scheme in ("https", "http") and parts.hostname:
            return value
    raise _device_field_error(
        name,
        f"is not an absolute http(s) URL of at most {MAX_URI_CHARS} characters",
        status,
        value,
        secrets,
        client_id,
    )


def parse_device_authorization(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    received_at: dt.datetime,
    secrets: Iterable[str | None] = (),
    client_id: str | None = None,
) -> DeviceAuthorization:
    """Validate the device authorization endpoint's answer (RFC 8628 §3.2, §3.3 errors).

    ``verification_url`` (Google's spelling) stands in for ``verification_uri``; ``interval``
    defaults to 5 s. ``expires_at`` counts from ``received_at`` on this machine's clock.

    Raises:
        DeviceAuthorizationError: the provider refused, or the answer is malformed. The
            message never contains the device code.
    """
    what = "Device authorization"
    known: tuple[str, ...] = tuple(s for s in secrets if s)
    data = _load_answer(headers, content)
    if not 200 <= status < 300 or (data is not None and "error" in data):
        raise parse_error_response(
            DeviceAuthorizationError,
            what,
            status if status >= 300 else 400,
            headers,
            content,
            known,
            client_id,
        )
    if data is None:
        raise DeviceAuthorizationError(
            f"{what} failed: the endpoint answered HTTP {status} with "
            f"{_content_kind(headers, content)} that is not a JSON object; check "
            "deviceAuthorizationUri points at the device authorization endpoint, not a web page",
            status_code=status,
        )
    device_code = data.get("device_code")
    if not isinstance(device_code, str) or not 0 < len(device_code) <= MAX_FIELD_CHARS:
        # Never shown, not even in part: it is the credential this answer hands over.
        raise DeviceAuthorizationError(
            f"{what} failed: the answer's device_code is missing or not a string of 1 to "
            f"{MAX_FIELD_CHARS} characters (RFC 8628 §3.2 requires it)",
            status_code=status,
            hint="Check deviceAuthorizationUri points at the provider's device authorization "
            "endpoint (RFC 8628).",
        )
    known = (*known, device_code)
    user_code = data.get("user_code")
    if (
        not isinstance(user_code, str)
        or not user_code.strip()
        or len(user_code) > MAX_USER_CODE_CHARS
        or _CONTROL.search(user_code)
    ):
        raise _device_field_error(
            "user_code",
            f"is not a printable string of 1 to {MAX_USER_CODE_CHARS} characters",
            status,
            user_code,
            known,
            client_id,
        )
    name = "verification_uri" if "verification_uri" in data else "verification_url"
    verification_uri = _device_uri(name, data.get(name), status, known, client_id)
    complete = data.get("verification_uri_complete")
    verification_uri_complete = (
        _device_uri("verification_uri_complete", complete, status, known, client_id)
        if complete not in (None, "")
        else None
    )
    expires_in = _seconds(data.get("expires_in"))
    if expires_in is None or expires_in <= 0:
        raise _device_field_error(
            "expires_in",
            "is not a number of seconds > 0 (RFC 8628 §3.2 requires it)",
            status,
            data.get("expires_in"),
            known,
            client_id,
        )
    expires_in = min(expires_in, MAX_EXPIRES_IN)
    raw_interval = data.get("interval")
    interval = DEFAULT_POLL_INTERVAL if raw_interval in (None, "") else _seconds(raw_interval)
    if interval is None or interval < 0:
        raise _device_field_error(
            "interval", "is not a number of seconds >= 0", status, raw_interval, known, client_id
        )
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code.strip(),
        verification_uri=verification_uri,
        verification_uri_complete=verification_uri_complete,
        expires_at=received_at + dt.timedelta(seconds=expires_in),
        # Never wait longer than the codes live (or than MAX_POLL_WAIT) between two polls.
        interval=min(interval, expires_in, MAX_POLL_WAIT),
    )


def device_poll_backoff(
    interval: float,
    failures: int,
    error: ProviderError | None = None,
    retry_after: float | None = None,
) -> DevicePending:
    """Keep polling after a failed poll (no answer, 5xx, 429): wait twice as long each time.

    RFC 8628 §3.5 asks clients to reduce their polling frequency on connection timeouts,
    doubling the interval being the recommended way. ``failures`` counts the failed polls
    before this one; ``retry_after`` (seconds the provider asked for) is honoured.
    """
    count = failures + 1
    wait = interval * (2 ** min(count, 16)) if interval > 0 else float(min(2**count, 64))
    if retry_after is not None:
        wait = max(wait, retry_after)
    return DevicePending("retry", interval, min(wait, MAX_POLL_WAIT), count, error)


def device_code_expired_error(
    *,
    error_description: str | None = None,
    status_code: int | None = None,
    expired_at: dt.datetime | None = None,
) -> DeviceCodeExpiredError:
    """The error for a device code that expired unapproved (from the provider or our clock)."""
    when = f" at {expired_at.isoformat(timespec='seconds')}" if expired_at else ""
    return DeviceCodeExpiredError(
        f"The device code expired{when} before the person approved it",
        error="expired_token",
        error_description=error_description,
        status_code=status_code,
        hint=hint_for("expired_token"),
    )


def classify_device_poll(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    interval: float,
    received_at: dt.datetime,
    failures: int = 0,
    requested_scopes: Iterable[str] = (),
    secrets: Iterable[str | None] = (),
    client_id: str | None = None,
) -> DevicePollOutcome:
    """Tell a poller what one token endpoint answer to a device code poll means (RFC 8628 §3.5).

    Returns (never raises for the provider's answer):
        AuthData: done, the token to store.
        DevicePending: keep polling, ``wait`` seconds from now, with ``interval`` and
            ``failures`` passed to the next call (``slow_down`` adds 5 s to the interval;
            5xx, 429, ``server_error`` and ``temporarily_unavailable`` back off).
        OAuth2Error: stop; raise it. ``AuthorizationDeniedError`` for ``access_denied``,
            ``DeviceCodeExpiredError`` for ``expired_token``, ``TokenExchangeError`` for any
            other error or a malformed token.

    ``interval`` is the poller's current interval (``DeviceAuthorization.interval`` at
    first); ``secrets`` are the request's (``device_token_request(...).secrets``), so no
    message repeats the device code even when the provider echoes it.
    """
    what = "Token request for the device code"
    secrets = tuple(secrets)
    interval = float(interval)
    data = _load_answer(headers, content)
    # GitHub answers its device errors with HTTP 200, so the error field decides, not status.
    if 200 <= status < 300 and (data is None or "error" not in data):
        try:
            return parse_token_response(
                TokenExchangeError,
                what,
                status,
                headers,
                content,
                received_at=received_at,
                requested_scopes=requested_scopes,
                secrets=secrets,
                client_id=client_id,
            )
        except TokenExchangeError as error:
            return error
    failed = parse_error_response(
        TokenExchangeError,
        what,
        status if status >= 300 else 400,
        headers,
        content,
        secrets,
        client_id,
    )
    code = failed.error or ""
    if code == "authorization_pending":
        return DevicePending(code, interval, interval)
    if code == "slow_down":
        slower = min(interval + SLOW_DOWN_STEP, MAX_POLL_WAIT)
        return DevicePending(code, slower, slower)
    if code == "access_denied":
        return AuthorizationDeniedError(
            "The authorization was denied at the verification page",
            error=code,
            error_description=failed.error_description,
            status_code=status,
        )
    if code == "expired_token":
        return device_code_expired_error(
            error_description=failed.error_description, status_code=status
        )
    if code in _TRANSIENT_ERRORS or status == 429 or status >= 500:
        return device_poll_backoff(interval, failures, failed, failed.retry_after)
    if code == "invalid_grant":
        return TokenExchangeError(
            failed.message,
            error=code,
            error_description=failed.error_description,
            status_code=status,
            hint="The device code is unknown, already used or revoked: start again with "
            "client.start_device_authorization().",
        )
    return failed


def token_from_answer(
    error_class: type[ProviderError],
    what: str,
    request: HttpRequest,
    answer: ProviderAnswer,
    *,
    timeout: float,
    previous: AuthData | None = None,
    requested_scopes: Iterable[str] = (),
) -> AuthData:
    """The token a token endpoint's answer to ``request`` carries, or its typed error.

    One reading for every grant, in the kernel (refresh, device polls) and the server (code
    exchange), so both sides say the same words about the same answer.
    """
    if answer.failure is not None:
        raise transport_error(error_class, what, request.url, answer.failure, timeout)
    return parse_token_response(
        error_class,
        what,
        answer.status or 0,
        answer.headers,
        answer.content,
        received_at=utcnow(),
        previous=previous,
        requested_scopes=requested_scopes,
        secrets=request.secrets,
        client_id=request.client_id,
    )

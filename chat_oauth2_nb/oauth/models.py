"""What the protocol passes around: tokens, prepared requests, the provider's answers.

Each one's repr (and :class:`HttpExchange`, the record kept for logs and the panel)
masks every secret it holds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from ._bodies import load_json, media_type
from .redaction import mask, mask_tree, masked_pairs, redact, redact_response_body

__all__ = [
    "MAX_ANSWER_BYTES",
    "AuthData",
    "HttpExchange",
    "HttpRequest",
    "ProviderAnswer",
    "utcnow",
]


def utcnow() -> dt.datetime:
    """Return the current time, timezone-aware (UTC)."""
    return dt.datetime.now(dt.timezone.utc)


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
    #: When the refresh token ends, if the provider said (Keycloak ``refresh_expires_in``,
    #: GitHub ``refresh_token_expires_in``); None: unknown, or it does not expire.
    refresh_expires_at: dt.datetime | None = None
    #: The refresh token's whole life in seconds, as the provider gave it when it was issued.
    refresh_lifetime: float | None = None
    #: RFC 9449: the private JWK (JSON) of the key this token is bound to; None for a bearer
    #: token. Stored sealed with the token, never shown.
    dpop_key: str | None = dataclasses.field(default=None, compare=False)
    #: RFC 8707: the resource this token is for ('' for the grant's own token).
    resource: str = ""

    def __repr__(self) -> str:
        expires = self.expires_at.isoformat(timespec="seconds") if self.expires_at else None
        ending = self.refresh_expires_at
        refresh = ending.isoformat(timespec="seconds") if ending else None
        return (
            f"AuthData(token={mask(self.token)!r}, token_type={self.token_type!r}, "
            f"expires_at={expires!r}, scope={self.scope!r}, "
            f"refresh_token={'<set>' if self.refresh_token else None}, "
            f"id_token={'<set>' if self.id_token else None}, "
            f"claims={_claims_word(self)}"
            + (f", refresh_expires_at={refresh!r}" if refresh else "")
            + (", bound='DPoP'" if self.dpop_key else "")
            + (f", resource={self.resource!r}" if self.resource else "")
            + ")"
        )

    __str__ = __repr__

    @property
    def id_token_verified(self) -> bool | None:
        """None without an id_token; else whether its claims were verified.

        False means an id_token came but could not be checked (the config has no jwksUri or
        no issuer): its contents must not be trusted, and the panel and doctor say so.
        """
        if self.id_token is None:
            return None
        return self.claims is not None

    @property
    def bound(self) -> str | None:
        """How the token is bound to its holder ("DPoP"), or None for a bearer token."""
        return "DPoP" if self.dpop_key else None

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

    def refresh_expires_in(self, now: dt.datetime | None = None) -> float | None:
        """Seconds until the refresh token ends (negative once ended); None when unknown."""
        if self.refresh_expires_at is None:
            return None
        return (self.refresh_expires_at - (now or utcnow())).total_seconds()

    def refresh_ending(self, now: dt.datetime | None = None) -> bool:
        """True in the last quarter of the refresh token's life (or past it): authorize soon."""
        remaining = self.refresh_expires_in(now)
        if remaining is None:
            return False
        lifetime = self.refresh_lifetime or 0.0
        return remaining <= lifetime / 4

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
                "refresh_expires_at": (
                    self.refresh_expires_at.isoformat() if self.refresh_expires_at else None
                ),
                "refresh_lifetime": self.refresh_lifetime,
                "dpop_key": self.dpop_key,
                "resource": self.resource,
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
            refresh_expires_at=(
                dt.datetime.fromisoformat(raw["refresh_expires_at"])
                if raw.get("refresh_expires_at")
                else None
            ),
            refresh_lifetime=raw.get("refresh_lifetime"),
            dpop_key=raw.get("dpop_key"),
            resource=raw.get("resource") or "",
        )


def _claims_word(data: AuthData) -> str | None:
    verified = data.id_token_verified
    return None if verified is None else "<verified>" if verified else "<unverified>"


# The most a token endpoint answers, with room to spare: Entra's largest tokens are a few KiB.
MAX_ANSWER_BYTES = 64 * 1024


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
        if media_type({"content-type": self.headers.get("Content-Type", "")}).endswith("json"):
            shown = json.dumps(mask_tree(load_json(self.body.encode()), found))
        else:
            shown = masked_pairs(parse_qsl(self.body, keep_blank_values=True), found)
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
    #: Why no answer came, for a person debugging a config (a TLS or DNS failure's words);
    #: kept out of repr and comparisons, and never logged as it is.
    exception: BaseException | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def content_type(self) -> str:
        """The media type without parameters, or '' when none was sent."""
        return media_type(self.headers)


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

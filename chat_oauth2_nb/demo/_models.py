"""In-memory records of the demo provider: clients, users, codes, grants and tokens.

Every mutation happens under ``MemoryStore.lock``; the HTTP layer holds that lock for the
whole of a token, revocation or introspection request, which is what makes single-use
codes and refresh-token rotation race-free.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

__all__ = [
    "AUTH_METHODS",
    "CODE_LIFETIME",
    "DEVICE_CODE_GRANT_TYPE",
    "LOOPBACK_HOSTS",
    "AuthorizationCode",
    "DemoClient",
    "DemoUser",
    "DeviceCredential",
    "Grant",
    "IssuedToken",
    "MemoryStore",
    "TokenKind",
    "normalize_user_code",
]

AUTH_METHODS = frozenset({"client_secret_basic", "client_secret_post", "none", "private_key_jwt"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# RFC 6749 §4.1.2 recommends 10 minutes at most.
CODE_LIFETIME = 600
CONSENT_TICKET_LIFETIME = 600
DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
_GRANT_TYPES = frozenset(
    {"authorization_code", "refresh_token", DEVICE_CODE_GRANT_TYPE, "client_credentials"}
)
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+\Z")

TokenKind = Literal["access_token", "refresh_token"]


def is_loopback_redirect(uri: str) -> bool:
    """Whether ``uri`` is an http(s) URI on a loopback host, without fragment or userinfo."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and parts.hostname in LOOPBACK_HOSTS
        and not parts.fragment
        and "#" not in uri
        and parts.username is None
        and parts.password is None
    )


@dataclass(frozen=True)
class DemoUser:
    """The person who approved a request (whatever name they typed on the consent page)."""

    username: str

    def get_user_id(self) -> str:
        """Return the user's identifier (the ``sub`` claim)."""
        return self.username


@dataclass
class DemoClient:
    """A registered client, duck-typed to Authlib's ``ClientMixin``."""

    client_id: str
    client_secret: str | None = field(repr=False)
    auth_methods: frozenset[str]
    redirect_uris: tuple[str, ...] | None  # None: any loopback URI
    scopes: tuple[str, ...] | None  # None: any syntactically valid scope
    client_name: str
    #: A private_key_jwt client's public keys (a JWK set); it has no secret.
    jwks: dict[str, Any] | None = None

    @property
    def is_public(self) -> bool:
        """Whether the client has no credential (PKCE is then its only protection)."""
        return self.client_secret is None and self.jwks is None

    def get_client_id(self) -> str:
        """Return the client identifier."""
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        """Return the only registered redirect URI, if exactly one is registered."""
        if self.redirect_uris is not None and len(self.redirect_uris) == 1:
            return self.redirect_uris[0]
        return None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """Return the normalised scope string, or None when a requested scope is not allowed."""
        requested = (scope or "").split()
        if not requested:
            return " ".join(self.scopes) if self.scopes is not None else ""
        if not all(_SCOPE_TOKEN.match(s) for s in requested):
            return None
        if self.scopes is not None and not set(requested) <= set(self.scopes):
            return None
        return " ".join(dict.fromkeys(requested))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact match against the registered list, or any loopback URI when none is."""
        if self.redirect_uris is None:
            return is_loopback_redirect(redirect_uri)
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        """Compare the secret in constant time."""
        if self.client_secret is None:
            return False
        return secrets.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Whether the client may authenticate with ``method`` at ``endpoint``."""
        if self.is_public:
            # Introspection reveals other tokens' metadata: confidential clients only.
            return method == "none" and endpoint != "introspection"
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        """Only the authorization code flow is offered."""
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        """The code, device code (RFC 8628), refresh token and (confidential clients only)
        client credentials grants are offered."""
        if grant_type == "client_credentials" and self.is_public:
            return False
        return grant_type in _GRANT_TYPES


@dataclass(eq=False)
class Grant:
    """One authorization: the code exchange and every refresh that follows share it."""

    grant_id: str
    client_id: str
    user: DemoUser
    scope: str
    created_at: float
    revoked: bool = False


@dataclass(eq=False)
class AuthorizationCode:
    """An issued authorization code, duck-typed to Authlib's code mixins (OAuth2 and OIDC)."""

    code: str
    client_id: str
    redirect_uri: str | None
    scope: str
    user: DemoUser
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    auth_time: int
    expires_at: float
    used: bool = False
    grant: Grant | None = None

    def get_redirect_uri(self) -> str | None:
        """Return the redirect_uri sent with the authorization request (None if omitted)."""
        return self.redirect_uri

    def get_scope(self) -> str:
        """Return the approved scope."""
        return self.scope

    def get_nonce(self) -> str | None:
        """Return the OIDC nonce of the authorization request."""
        return self.nonce

    def get_auth_time(self) -> int:
        """Return when the user approved."""
        return self.auth_time

    def get_acr(self) -> str | None:
        """No authentication context classes here."""
        return None

    def get_amr(self) -> list[str] | None:
        """No authentication method references here."""
        return None

    def is_expired(self) -> bool:
        """Whether the code is past its 10 minutes."""
        return time.time() >= self.expires_at


@dataclass(eq=False)
class IssuedToken:
    """An access or refresh token, duck-typed to Authlib's ``TokenMixin``."""

    value: str = field(repr=False)
    kind: TokenKind
    grant: Grant
    client_id: str
    scope: str
    issued_at: int
    expires_in: int | None  # None: does not expire (refresh tokens)
    revoked: bool = False
    used: bool = False  # refresh tokens: rotated away by a refresh
    #: RFC 9449: the thumbprint of the key the token is bound to (``cnf.jkt``), or None.
    jkt: str | None = None
    #: RFC 8707: the resources (audiences) an access token is for.
    audience: tuple[str, ...] = ()

    @property
    def expires_at(self) -> int | None:
        """Return the expiry as a Unix time, or None when the token does not expire."""
        return None if self.expires_in is None else self.issued_at + self.expires_in

    def check_client(self, client: DemoClient) -> bool:
        """Whether the token was issued to ``client``."""
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        """Return the token's scope."""
        return self.scope

    def get_expires_in(self) -> int:
        """Return the lifetime in seconds (0 for tokens that do not expire)."""
        return self.expires_in or 0

    def is_expired(self) -> bool:
        """Whether the token's lifetime is over."""
        expires_at = self.expires_at
        return expires_at is not None and time.time() >= expires_at

    def is_revoked(self) -> bool:
        """Whether the token, or its whole grant, was revoked or rotated away."""
        return self.revoked or self.used or self.grant.revoked

    def is_active(self) -> bool:
        """Whether the token can still be used."""
        return not (self.is_expired() or self.is_revoked())

    def get_user(self) -> DemoUser:
        """Return the user who approved the grant."""
        return self.grant.user


def normalize_user_code(user_code: str) -> str:
    """A user code as compared: upper case, without dashes or spaces (RFC 8628 §6.1)."""
    return "".join(ch for ch in user_code.upper() if ch.isalnum())


@dataclass(eq=False)
class DeviceCredential:
    """A device code and its user code (RFC 8628), duck-typed to Authlib's ``DeviceCredentialMixin``."""

    device_code: str = field(repr=False)
    user_code: str
    client_id: str
    scope: str
    expires_at: float  # time.time()
    interval: float
    #: The spacing this device must keep: the interval, plus the step for every slow_down.
    required_interval: float
    #: None until the person answers at the verification page; then approved or not.
    approved: bool | None = None
    user: DemoUser | None = None
    used: bool = False
    #: time.monotonic() of every poll of the token endpoint with this device code.
    polls: list[float] = field(default_factory=list)
    slow_downs: int = 0

    def get_client_id(self) -> str:
        """Return the client the codes were issued to."""
        return self.client_id

    def get_scope(self) -> str:
        """Return the scope asked for at the device authorization endpoint."""
        return self.scope

    def get_user_code(self) -> str:
        """Return the user code as issued."""
        return self.user_code

    def is_expired(self) -> bool:
        """Whether the codes are past their lifetime."""
        return time.time() >= self.expires_at

    def is_waiting(self) -> bool:
        """Whether the person can still approve or deny it at the verification page."""
        return self.approved is None and not self.used and not self.is_expired()


class MemoryStore:
    """All state of one provider; callers hold ``lock`` around every read-modify-write."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clients: dict[str, DemoClient] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.grants: dict[str, Grant] = {}
        self.tokens: dict[str, IssuedToken] = {}
        #: The jti of every client assertion accepted (RFC 7523 §3: each is good once).
        self.assertion_ids: set[str] = set()
        self.devices: dict[str, DeviceCredential] = {}  # by device code
        self._user_codes: dict[str, DeviceCredential] = {}  # by normalized user code
        self._tickets: dict[str, tuple[str, float]] = {}

    def new_grant(self, client_id: str, user: DemoUser, scope: str) -> Grant:
        """Create and remember a grant."""
        with self.lock:
            grant = Grant(secrets.token_hex(8), client_id, user, scope, time.time())
            self.grants[grant.grant_id] = grant
            return grant

    def add_code(self, code: AuthorizationCode) -> None:
        """Remember a code; forget codes that expired (reuse of those is just unknown)."""
        with self.lock:
            now = time.time()
            for old in [c for c in self.codes.values() if c.expires_at <= now]:
                del self.codes[old.code]
            self.codes[code.code] = code

    def nonce_seen(self, client_id: str, nonce: str) -> bool:
        """Whether a live code of ``client_id`` already carries ``nonce`` (OIDC replay check)."""
        with self.lock:
            return any(c.client_id == client_id and c.nonce == nonce for c in self.codes.values())

    def add_device(self, credential: DeviceCredential) -> None:
        """Remember a device credential; forget those that expired an hour ago."""
        with self.lock:
            # Kept a while after expiry, so a late poll still hears expired_token.
            stale = time.time() - 3600
            for old in [d for d in self.devices.values() if d.expires_at <= stale]:
                del self.devices[old.device_code]
                self._user_codes.pop(normalize_user_code(old.user_code), None)
            self.devices[credential.device_code] = credential
            self._user_codes[normalize_user_code(credential.user_code)] = credential

    def device_by_user_code(self, user_code: str) -> DeviceCredential | None:
        """Find a device credential by the code a person typed (any case, dashes optional)."""
        with self.lock:
            return self._user_codes.get(normalize_user_code(user_code))

    def add_token(self, token: IssuedToken) -> None:
        """Remember an issued token."""
        with self.lock:
            self.tokens[token.value] = token

    def revoke_grant(self, grant: Grant) -> None:
        """Revoke a grant, which makes every token issued under it inactive."""
        with self.lock:
            grant.revoked = True

    def revoke_token(self, token: IssuedToken) -> None:
        """RFC 7009: an access token alone; a refresh token takes its grant with it (§2.1)."""
        with self.lock:
            if token.kind == "refresh_token":
                self.revoke_grant(token.grant)
            else:
                token.revoked = True

    def active_grants(self) -> int:
        """Count grants that were not revoked."""
        with self.lock:
            return sum(not g.revoked for g in self.grants.values())

    def new_ticket(self, query: str) -> str:
        """Issue a one-time consent ticket bound to the authorization request's query."""
        with self.lock:
            now = time.time()
            for key in [k for k, (_, exp) in self._tickets.items() if exp <= now]:
                del self._tickets[key]
            ticket = secrets.token_urlsafe(24)
            self._tickets[ticket] = (query, now + CONSENT_TICKET_LIFETIME)
            return ticket

    def take_ticket(self, ticket: str, query: str) -> bool:
        """Use up a consent ticket; False if unknown, expired or issued for another request."""
        with self.lock:
            entry = self._tickets.pop(ticket, None)
        if entry is None:
            return False
        bound_query, expires_at = entry
        return time.time() < expires_at and secrets.compare_digest(
            bound_query.encode(), query.encode()
        )

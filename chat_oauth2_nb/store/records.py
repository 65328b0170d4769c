"""What the store holds, whichever database it is in: flows, their errors, tokens.

The kernel and the Jupyter server are different processes; these records are the schema
they share. :class:`HeldTokenStore` is what a broker needs of a store, so the SQLite store
and the hub service's PostgreSQL one are interchangeable behind it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeVar

from ..config import ProviderConfig
from ..errors import (
    AuthorizationDeniedError,
    BrowserBindingError,
    DeviceCodeExpiredError,
    IdTokenError,
    IssuerMismatchError,
    OAuth2Error,
    ProviderError,
    RedirectUriError,
    StateError,
    StoreError,
    TokenExchangeError,
)
from ..oauth import AuthData, authorization_url, mask

__all__ = [
    "DEFAULT_FLOW_TTL",
    "FLOW_EXPIRED",
    "STORE_PATIENCE",
    "FlowEndpoint",
    "FlowError",
    "FlowErrorKind",
    "FlowOrigin",
    "FlowStatus",
    "HeldTokenStore",
    "PendingFlow",
    "TokenRecord",
]

T = TypeVar("T")
#: How long a new authorization link stays valid, in seconds.
DEFAULT_FLOW_TTL = 600.0
#: How long a write of a token the provider already issued waits for a store another
#: process holds locked (``HeldTokenStore.patiently``): dropping it would lose the token,
#: and a rotated refresh token with it.
STORE_PATIENCE = 30.0

#: Who started a flow: code in a cell, a panel, a device grant or a paste-back.
FlowOrigin = Literal["code", "panel", "device", "paste"]
# Where a flow's redirect may arrive: the Jupyter server's callback or a loopback listener.
FlowEndpoint = Literal["server", "loopback", "paste", "device"]

#: Where a flow is in its life.
FlowStatus = Literal["pending", "exchanging", "done", "error"]

# How a flow can fail, and the error type each kind turns back into in the kernel.
FlowErrorKind = Literal[
    "denied",
    "mixup",
    "binding",
    "exchange",
    "state",
    "store",
    "expired",
    "device_expired",
    "id_token",
    "redirect_uri",
]
_ERROR_CLASSES: dict[str, type[OAuth2Error]] = {
    "denied": AuthorizationDeniedError,
    "mixup": IssuerMismatchError,
    "binding": BrowserBindingError,
    "exchange": TokenExchangeError,
    "state": StateError,
    "expired": StateError,
    "store": StoreError,
    "device_expired": DeviceCodeExpiredError,
    "id_token": IdTokenError,
    "redirect_uri": RedirectUriError,
}


@dataclasses.dataclass(frozen=True)
class FlowError:
    """How a flow failed: written by whichever process ended it, read by the waiting kernel.

    The server and the kernel are different processes; this record is the one schema they
    share for it (stored as JSON in ``flows.error``). It holds no secret.
    """

    kind: FlowErrorKind
    message: str
    error: str | None = None
    error_description: str | None = None
    status_code: int | None = None
    retry_after: float | None = None
    hint: str | None = None

    @classmethod
    def of(cls, exc: OAuth2Error, kind: FlowErrorKind) -> FlowError:
        """Record a typed error as ``kind``."""
        return cls(
            kind=kind,
            message=exc.message,
            error=exc.error,
            error_description=exc.error_description,
            status_code=exc.status_code,
            retry_after=getattr(exc, "retry_after", None),
            hint=exc.hint,
        )

    def to_json(self) -> str:
        """Serialise for the flows table."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FlowError:
        """Load what :meth:`to_json` wrote (unknown fields, from a newer version, are dropped)."""
        raw = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        if values.get("kind") not in _ERROR_CLASSES:
            values["kind"] = "exchange"
        values.setdefault("message", "The authorization failed")
        return cls(**values)

    def to_exception(self) -> OAuth2Error:
        """The typed error to raise in the kernel."""
        cls = _ERROR_CLASSES.get(self.kind, TokenExchangeError)
        details: dict[str, Any] = {
            "error": self.error,
            "error_description": self.error_description,
            "status_code": self.status_code,
            "hint": self.hint,
        }
        if issubclass(cls, ProviderError):
            details["retry_after"] = self.retry_after
        return cls(self.message, **details)


#: The record of a link that expired before its redirect came back.
FLOW_EXPIRED = FlowError(
    kind="expired",
    message="The authorization link expired before it was used",
    hint="Get a fresh one with client.get_user_authorization_url() and use it within its lifetime.",
)


@dataclasses.dataclass(frozen=True, repr=False)
class PendingFlow:
    """One authorization in progress: what the callback needs to finish it."""

    state: str
    alias: str
    user: str
    code_verifier: str
    redirect_uri: str
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float
    status: FlowStatus = "pending"
    error: FlowError | None = None
    finished_at: float | None = None
    exchange: dict[str, Any] | None = None
    # The provider as this flow's client saw it: two notebooks may use one alias for two
    # different providers, and the code must be exchanged where it was issued.
    provider: ProviderConfig | None = dataclasses.field(default=None, compare=False)
    #: The opaque id of the start link (``…/chat-oauth2/start/<start_id>``); not the state.
    start_id: str | None = None
    #: Who started it: code in a cell, a panel, (later) device or paste-back.
    origin: FlowOrigin = "code"
    #: The client instance that started it; wait_for_authorization() follows only its own.
    client_ref: str | None = None
    endpoint: FlowEndpoint = "server"
    #: The Jupyter user who opened the start link (None on the loopback).
    owner: str | None = None
    #: SHA-256 of the browser-binding cookie set by the start link; None until opened.
    binding: str | None = None
    #: A device flow's public state: user_code, verification URIs, interval, next_poll_at.
    device: dict[str, Any] | None = None
    #: OpenID Connect: the nonce sent with the authorization, checked in the id_token.
    nonce: str | None = None

    def authorization_url(self, config: ProviderConfig | None = None) -> str:
        """The provider's authorization URL for this flow (state, S256 challenge, nonce).

        Built the same way wherever it is needed: the kernel (the link it shows) and the
        server's start page (the redirect it answers) must send the same parameters.
        """
        provider = config or self.provider
        if provider is None:
            raise StateError("This flow has no provider", hint="Start again from the notebook.")
        return authorization_url(
            provider,
            redirect_uri=self.redirect_uri,
            scopes=self.scopes,
            state=self.state,
            code_verifier=self.code_verifier,
            nonce=self.nonce,
        )

    def __repr__(self) -> str:
        return (
            f"PendingFlow(state={mask(self.state)!r}, alias={self.alias!r}, user={self.user!r}, "
            f"status={self.status!r}, scopes={list(self.scopes)!r})"
        )


@dataclasses.dataclass(frozen=True)
class TokenRecord:
    """A stored token with its version (bumped on every write), write time and provider."""

    alias: str
    user: str
    data: AuthData
    version: int
    updated_at: float
    # provider_identity() of the config the token was issued to; None for tokens stored
    # before providers were recorded.
    provider: str | None = None


class HeldTokenStore(Protocol):
    """What a broker needs of a store: tokens, held refresh tokens, refresh leases.

    :class:`~chat_oauth2_nb.store.Store` (SQLite) is one; the hub service's PostgreSQL backend
    (``chat_oauth2_nb.store.postgres``) is the other, for a service run as several replicas.
    """

    def get_token(self, alias: str, user: str) -> TokenRecord | None:
        """The stored token for (alias, user), or None."""

    def put_token(
        self,
        alias: str,
        user: str,
        data: AuthData,
        *,
        provider: str | None = None,
        expect_version: int | None = None,
    ) -> TokenRecord | None:
        """Store a token; with ``expect_version``, only if nobody wrote since (else None)."""

    def put_held_token(
        self,
        alias: str,
        user: str,
        data: AuthData,
        *,
        provider: str,
        expect_version: int | None = None,
    ) -> TokenRecord | None:
        """Store a declared provider's token, its refresh token held apart."""

    def get_held_refresh_token(self, alias: str, user: str, provider: str) -> str | None:
        """The refresh token held apart for (alias, user) and ``provider``, or None."""

    def delete_token(self, alias: str, user: str, *, expect_version: int | None = None) -> bool:
        """Delete the token and its held refresh token; False when there was none."""

    def get_resource_token(self, alias: str, user: str, resource: str) -> TokenRecord | None:
        """The access token stored for (alias, user) and ``resource`` (RFC 8707), or None."""

    def put_resource_token(
        self,
        alias: str,
        user: str,
        resource: str,
        data: AuthData,
        *,
        provider: str | None = None,
    ) -> TokenRecord:
        """Store the access token for ``resource``, without any refresh token."""

    def acquire_lease(self, alias: str, user: str, owner: str, ttl: float) -> bool:
        """Take the refresh lease for (alias, user) unless another owner holds a live one."""

    def release_lease(self, alias: str, user: str, owner: str) -> None:
        """Give the lease back (only if ``owner`` still holds it)."""

    def patiently(self, write: Callable[[], T], patience: float) -> T:
        """Run ``write``, retrying while the store is busy, up to ``patience`` seconds."""

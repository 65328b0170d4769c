"""The token lifecycle, written once: one protocol, two implementations.

Whoever holds the client secret exchanges codes, refreshes (single flight), revokes and
introspects with :class:`~chat_oauth2_nb.lifecycle.local.LocalGrants`: a kernel with its own
credentials, the Jupyter server for the providers declared on it, the hub's service in broker
mode. Whoever does not asks the holder over HTTP with
:class:`~chat_oauth2_nb.lifecycle.remote.RemoteGrants` (a kernel asks its Jupyter server, a
server asks the hub's service) and keeps the access tokens it gets in its own store.

Everything here is synchronous: the store and one HTTP call. Async callers wrap a call once
with ``asyncio.to_thread``. Whether a token is stale is decided by the holder; a caller
passes what it has (a digest of its access token) so the holder can tell it a newer one.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import httpx

from ..config import ProviderConfig, provider_identity
from ..errors import (
    GrantRevokedError,
    NotAuthorizedError,
    OAuth2Error,
    ProviderError,
    ProviderMismatchError,
    StoreError,
)
from ..oauth import AuthData, HttpExchange, HttpRequest, ProviderAnswer, transport_error, utcnow
from ..oauth.transport import send
from ..store import STORE_PATIENCE, HeldTokenStore, PendingFlow, TokenRecord

__all__ = [
    "DEAD",
    "AuthorizationCode",
    "Connections",
    "Grants",
    "TokenShelf",
    "cannot_revoke",
    "digest",
    "grant_ended",
    "is_dead",
    "nothing_stored",
    "patiently",
    "revocations",
    "revoke_advice",
    "tombstone",
]

log = logging.getLogger("chat_oauth2_nb")
T = TypeVar("T")
#: Gets the redacted record of a code exchange (for the kernel's HTTP log).
Noter = Callable[[dict[str, Any]], None]

#: Seconds between two looks at a refresh lease another process holds.
POLL = 0.05

#: The token type of what stays stored once the provider ended a grant (a tombstone): every
#: reader then says "authorize again" instead of sending a dead token, in every process that
#: shares the store, and a new authorization simply writes over it.
DEAD = "chat-oauth2-dead-grant"


def patiently(store: HeldTokenStore, write: Callable[[], T]) -> T:
    """Run the store ``write``, retrying while another process holds the store locked."""
    return store.patiently(write, STORE_PATIENCE)


def lease_ttl(timeout: float) -> float:
    """How long one refresh may hold the grant's lease.

    The request (its total deadline, plus at most one read timeout past it) and the patient
    write of its answer, with a margin: a slow provider never outlives the lease.
    """
    return 2 * timeout + STORE_PATIENCE + 10.0


def digest(token: str) -> str:
    """What a caller says it has: the SHA-256 of its access token (never the token itself)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class AuthorizationCode:
    """An authorization code to exchange, with what its flow kept for it (PKCE verifier, nonce)."""

    code: str = dataclasses.field(repr=False)
    redirect_uri: str
    code_verifier: str = dataclasses.field(repr=False)
    scopes: tuple[str, ...] = ()
    nonce: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def of(cls, flow: PendingFlow, code: str) -> AuthorizationCode:
        """The code a redirect brought back for ``flow``."""
        return cls(code, flow.redirect_uri, flow.code_verifier, flow.scopes, flow.nonce)


class Grants(Protocol):
    """Exchange, refresh, revoke and introspect one provider's tokens in one store."""

    @property
    def config(self) -> ProviderConfig:
        """The provider's config (with its secret only where the secret is held)."""

    def stored(self, user: str) -> TokenRecord | None:
        """The user's stored token; ProviderMismatchError when another provider issued it."""

    def token(self, user: str, *, leeway: float | None = None) -> TokenRecord | None:
        """The user's token, refreshed first (single flight) when the holder finds it stale.

        As it is when it cannot be refreshed; None when nothing is stored.
        """

    def refresh(
        self, user: str, *, have: str | None = None, optional: bool = False
    ) -> TokenRecord | None:
        """Refresh the user's token now, joining a refresh in flight; None when nothing is stored.

        ``have`` is the :func:`digest` of the caller's token: when the stored one differs it
        is newer, and comes back without a request. Without a refresh token: None with
        ``optional``, else TokenRefreshError.
        """

    def refused(self, user: str, have: str) -> None:
        """An API refused the token ``have`` (a digest) right after a refresh: the grant is dead."""

    def exchange(
        self, user: str, code: AuthorizationCode, note: Noter | None = None
    ) -> TokenRecord:
        """Exchange ``code`` and store the token; ``note`` gets the redacted HTTP exchange."""

    def keep(self, user: str, data: AuthData) -> TokenRecord:
        """Store a token the provider just issued (patiently: it cannot be fetched again).

        Where the secret is held, the grant it replaces is revoked afterwards (best effort).
        """

    def revoke(self, user: str) -> bool:
        """Revoke the user's tokens at the provider, then delete them; False when none is stored."""

    def introspect(self, user: str) -> dict[str, Any]:
        """What the provider says of the user's access token (RFC 7662)."""

    def needs_secret(self, what: str) -> None:
        """Raise ConfigurationError when ``what`` needs the client secret and it is held elsewhere."""

    def proof(self, user: str, request: Mapping[str, object]) -> str:
        """A DPoP proof for one API request with the user's bound token (RFC 9449 §7).

        ``request``: ``method``, ``url``, ``have`` (the digest of the caller's token), ``nonce``.
        """


class TokenShelf:
    """One provider's tokens in one store: the provider-checked read and the patient write.

    What both grants share; neither overrides any of it.
    """

    def __init__(
        self,
        config: ProviderConfig,
        store: Callable[[], HeldTokenStore],
        *,
        leeway: float,
        hold_refresh_tokens: bool,
    ) -> None:
        self._config = config
        self._store = store
        self.leeway = leeway
        #: Whether refresh tokens are kept apart from the token row kernels read.
        self.hold_refresh_tokens = hold_refresh_tokens
        self._identity = provider_identity(config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias={self.alias!r}>"

    @property
    def config(self) -> ProviderConfig:
        """The provider's config (with its secret only where the secret is held)."""
        return self._config

    @property
    def alias(self) -> str:
        """The provider's alias."""
        return self._config.alias

    def stored(self, user: str) -> TokenRecord | None:
        """The token stored for ``user``, only if this provider issued it and it is alive.

        Every token read goes through here: a token issued by another provider configured
        under the same alias is never used, refreshed or revoked with this configuration
        (ProviderMismatchError), and a grant the provider ended is never sent again
        (GrantRevokedError: authorize again).
        """
        record = self._mine(user)
        if record is not None and is_dead(record.data):
            raise grant_ended(user, self.alias)
        return record

    def _mine(self, user: str) -> TokenRecord | None:
        """The record stored for ``user``, dead or alive, if this provider issued it."""
        record = self._store().get_token(self.alias, user)
        if record is None or record.provider is None or record.provider == self._identity:
            return record
        raise ProviderMismatchError(
            f"The token stored for {user!r} under the alias {self.alias!r} belongs to another "
            f"provider ({record.provider}); this client is configured for {self._identity}, so "
            "it is not used here",
            hint="Authorize again with this configuration to replace it "
            "(client.get_user_authorization_url()), or give this provider another alias.",
        )

    def _current(self, user: str) -> TokenRecord:
        current = self.stored(user)
        if current is None:
            raise NotAuthorizedError(
                f"The token for {user!r} was deleted while refreshing",
                hint="Authorize again: client.get_user_authorization_url().",
            )
        return current

    def _write(self, user: str, data: AuthData, version: int | None) -> TokenRecord:
        """Store ``data`` patiently; with ``version``, only over that version.

        When someone wrote meanwhile (another refresh, a new authorization, the holder on a
        store it shares with this side), what is stored now wins.
        """
        store = self._store()
        put = store.put_held_token if self.hold_refresh_tokens else store.put_token
        written = patiently(
            store,
            lambda: put(self.alias, user, data, provider=self._identity, expect_version=version),
        )
        return written or self._current(user)

    def bury(self, user: str, record: TokenRecord) -> None:
        """Replace ``record`` by its tombstone: the provider ended its grant.

        Only over that very version (a new authorization written meanwhile stays); a store
        that stays locked loses only the mark, never a token. A refresh token held apart
        (declared providers) stays in its table, dead at the provider and never read again:
        every read stops at the tombstone, and the next grant's write replaces it.
        """
        store = self._store()
        try:
            patiently(
                store,
                lambda: store.put_token(
                    self.alias,
                    user,
                    tombstone(record.data),
                    provider=self._identity,
                    expect_version=record.version,
                ),
            )
        except StoreError as exc:
            log.warning("could not mark the dead grant of %r at %r: %s", user, self.alias, exc)
            return
        log.warning(
            "the grant of %r at %r ended at the provider: its token is no longer used; "
            "authorize again",
            user,
            self.alias,
        )

    def refused(self, user: str, have: str) -> None:
        """An API refused the token whose digest is ``have`` right after a refresh brought it.

        Refreshing once more would only repeat the refresh and the refusal at every call, for
        ever: the grant is treated as dead (a newer token stored meanwhile stays).
        """
        record = self._mine(user)
        if record is None or is_dead(record.data):
            return
        if hmac.compare_digest(digest(record.data.token), have):
            self.bury(user, record)


class Connections:
    """What one owner's grants share: an HTTP connection pool and a lock per (alias, user).

    The locks keep the threads of one process from polling a refresh lease one of them holds;
    across processes the lease row in the store does that.
    """

    def __init__(
        self,
        timeout: float = 10.0,
        *,
        transport: httpx.BaseTransport | None = None,
        record: Callable[[HttpExchange], None] | None = None,
    ) -> None:
        self.timeout = timeout
        self._transport = transport
        self._record = record
        self._client: httpx.Client | None = None
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = collections.defaultdict(threading.Lock)

    def __repr__(self) -> str:
        return f"<Connections timeout={self.timeout!r}>"

    def http(self) -> httpx.Client:
        """The HTTP client (made on first use)."""
        with self._guard:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, transport=self._transport)
            return self._client

    def lock(self, alias: str, user: str) -> threading.Lock:
        """The in-process lock for refreshing (alias, user)."""
        with self._guard:
            return self._locks[(alias, user)]

    def send(self, request: HttpRequest) -> ProviderAnswer:
        """Send ``request`` to the provider (bounded: size cap, total deadline); never raises."""
        answer = send(self.http(), request, deadline=self.timeout)
        if self._record is not None:
            self._record(HttpExchange.of(request, answer))
        log.debug(
            "%s %s -> %s in %.1f ms",
            request.method,
            request.url,
            answer.status or answer.failure,
            answer.elapsed_ms,
        )
        return answer

    def call(
        self, request: HttpRequest, what: str, error_class: type[ProviderError]
    ) -> ProviderAnswer:
        """:meth:`send`, raising ``error_class`` when no answer came (network, deadline)."""
        answer = self.send(request)
        if answer.failure is not None:
            raise transport_error(error_class, what, request.url, answer.failure, self.timeout)
        return answer

    def close(self) -> None:
        """Close the HTTP connections (a later call opens new ones)."""
        with self._guard:
            if self._client is not None:
                self._client.close()
                self._client = None


def nothing_stored(user: str, alias: str) -> NotAuthorizedError:
    """The error for a token that was never stored: authorize first."""
    return NotAuthorizedError(
        f"Nothing is stored for {user!r} at {alias!r}",
        hint="Authorize first: client.get_user_authorization_url().",
    )


def tombstone(data: AuthData) -> AuthData:
    """What stays stored of ``data`` once its grant died: its scopes; no token; expired now.

    A reader that does not know the mark sees an expired token it cannot refresh.
    """
    now = utcnow()
    return AuthData(token="", token_type=DEAD, expires_at=now, scope=data.scope, obtained_at=now)


def is_dead(data: AuthData) -> bool:
    """Whether ``data`` is a tombstone: the provider ended the grant."""
    return data.token_type == DEAD


def grant_ended(user: str, alias: str, cause: OAuth2Error | None = None) -> GrantRevokedError:
    """The error for a grant the provider ended (``cause``: its answer): authorize again."""
    ended = (
        f"the grant of {user!r} at {alias!r} is dead (the provider ended it: revoked there, or "
        "expired); its token is no longer used, so authorize again"
    )
    if cause is None:
        return GrantRevokedError(
            ended[0].upper() + ended[1:],
            hint="Authorize again: client.get_user_authorization_url(), or the panel's "
            "Authorize link.",
        )
    # The provider's words come first, as for any refused refresh; its hint says the rest.
    return GrantRevokedError(
        f"{cause.message}: {ended}",
        error=cause.error,
        error_description=cause.error_description,
        status_code=cause.status_code,
    )


def revocations(config: ProviderConfig, data: AuthData) -> list[tuple[str, str | None]]:
    """The (token, hint) requests that revoke a grant, in the provider's ``revokeStyle``."""
    if config.revoke_style == "google":
        # Google revokes the whole grant for either token, and answers 400 for a token
        # already revoked: a second request would fail after the first succeeded.
        return [(data.refresh_token or data.token, None)]
    if config.revoke_style == "github":
        # GitHub's endpoint takes the access token only; it ends that authorization.
        return [(data.token, None)]
    pairs = [(data.refresh_token, "refresh_token"), (data.token, "access_token")]
    return [(token, hint) for token, hint in pairs if token]


def cannot_revoke(config: ProviderConfig, *, secret_elsewhere: bool = False) -> str | None:
    """Why the kit can never revoke this provider's tokens itself (None: it can).

    ``secret_elsewhere``: the Jupyter server or the hub holds the secret and revokes.
    """
    if config.revoke_token_uri is None:
        return f"{config.alias!r} has no revokeTokenUri (the provider has no revocation endpoint)"
    if config.revoke_style == "github" and not config.client_secret and not secret_elsewhere:
        # DELETE /applications/{client_id}/token takes Basic auth with the client secret
        # only: a device-flow client without one would get 404 for every token.
        return (
            f"{config.alias!r} revokes GitHub-style (DELETE /applications/{{client_id}}/token), "
            "which GitHub answers only with the client secret, and this client has none"
        )
    return None


def revoke_advice(config: ProviderConfig, *, secret_elsewhere: bool = False) -> str | None:
    """Why the kit cannot revoke, and where a person does it themselves (None: the kit can)."""
    why = cannot_revoke(config, secret_elsewhere=secret_elsewhere)
    if why is None:
        return None
    where = config.revoke_url_for_people
    place = f"remove it at {where}" if where else "remove it in your account at the provider"
    return f"{why}. To end the app's access at the provider too, {place}"


def replaced_grant_kept(config: ProviderConfig) -> str | None:
    """Why the grant a new authorization replaces is not revoked (None: it is)."""
    why = cannot_revoke(config)
    if why is not None:
        return why
    if config.revoke_style == "google":
        return (
            "Google ends all of an app's access for a person with any one token, the new "
            "token's too; the older grant ends when unused for six months"
        )
    return None


def warn_if_local_only(config: ProviderConfig, *, secret_elsewhere: bool = False) -> bool:
    """Say that a revocation deletes the token here only, when the kit cannot revoke; whether so."""
    advice = revoke_advice(config, secret_elsewhere=secret_elsewhere)
    if advice is None:
        return False
    log.warning(
        "Deleting the token here only; it stays valid at the provider until it expires: %s",
        advice,
    )
    return True

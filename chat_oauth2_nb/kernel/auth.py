"""``httpx.Auth`` for API calls: the user's bearer token, refreshed on expiry or a 401."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from ..errors import ConfigurationError, NotAuthorizedError
from ..oauth import AuthData

__all__ = [
    "OAuth2Auth",
    "Prover",
    "TokenKeeper",
    "TokenSource",
    "auth_headers",
    "bearer_header",
    "is_dpop",
    "nonce_asked",
    "require_tls",
    "same_origin",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class TokenSource(Protocol):
    """Where :class:`OAuth2Auth` gets tokens (an :class:`~chat_oauth2_nb.OAuth2Client` is one)."""

    @property
    def alias(self) -> str:
        """The provider's alias, for messages."""

    @property
    def leeway(self) -> float:
        """Seconds before expiry at which a token counts as expired."""

    def get_access_token_for_user(self, user: str) -> AuthData | None:
        """The user's token, refreshed if it expired; None if never authorized."""

    def refresh_after_rejection(self, user: str, used: AuthData) -> AuthData | None:
        """After an API answered 401 to ``used``: a newer or refreshed token, or None."""

    def refused_after_refresh(self, user: str, used: AuthData) -> None:
        """The API refused ``used`` too, right after a 401 refreshed it: the grant is dead."""


def _is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (also written as an IPv4-mapped address)."""
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").rstrip("."), port or _DEFAULT_PORTS.get(scheme)


def same_origin(first: str, second: str) -> bool:
    """True when both URLs have the same scheme, host and port (default ports filled in)."""
    return _origin(first) == _origin(second)


def require_tls(url: str) -> None:
    """Refuse to put a bearer token on ``url`` when it is plain http to another machine.

    RFC 6750 §5.3: a bearer token is sent only over TLS. Plain http stays allowed to this
    machine's loopback addresses (the demo provider, a local API under development), where
    no network sees the token.

    Raises:
        ConfigurationError: ``url`` is plain http to a host that is not loopback.
    """
    scheme, host, port = _origin(url)
    if scheme == "http" and not _is_loopback(host):
        # Only the origin is shown: a query string may carry an API key.
        where = f"http://{host}" + (f":{port}" if port not in (None, 80) else "")
        raise ConfigurationError(
            "url",
            f"is plain http to {where}, which is not this machine: a bearer token is sent "
            "only over TLS (RFC 6750 §5.3), so it was not sent",
            "Use the API's https:// address; plain http is allowed only to 127.0.0.1, ::1 "
            "and localhost.",
        )


def bearer_header(data: AuthData, url: str) -> str:
    """The ``Authorization`` value that sends ``data`` to ``url`` (see :func:`require_tls`)."""
    require_tls(url)
    return f"Bearer {data.token}"


#: Signs a DPoP proof for (method, url, nonce) with a key held elsewhere (the holder).
Prover = Callable[[str, str, "str | None"], str]


def is_dpop(data: AuthData) -> bool:
    """Whether ``data`` is sent as a DPoP token (RFC 9449 §7), not as a Bearer token."""
    return (data.token_type or "").lower() == "dpop"


def auth_headers(
    data: AuthData,
    method: str,
    url: str,
    nonce: str | None = None,
    prover: Prover | None = None,
) -> dict[str, str]:
    """The headers that send ``data`` to ``url``: Bearer, or DPoP with a fresh proof (RFC 9449 §7).

    The proof's nonce is ``nonce``, or the last one ``url``'s server gave this process. The
    key is the token's own, or held by whoever holds the grant (``prover`` asks it).
    """
    if not is_dpop(data):
        return {"Authorization": bearer_header(data, url)}
    from ..lifecycle.proofs import NONCES, key_of

    require_tls(url)
    nonce = nonce or NONCES.get(url)
    key = key_of(data)
    if key is not None:
        proof = key.proof(method, url, access_token=data.token, nonce=nonce)
    elif prover is not None:
        proof = prover(method, url, nonce)
    else:
        raise NotAuthorizedError("A DPoP-bound token cannot be sent without its key")
    return {"Authorization": f"DPoP {data.token}", "DPoP": proof}


def nonce_asked(url: str, status: int, headers: Mapping[str, str]) -> str | None:
    """Note a resource server's ``DPoP-Nonce``; the nonce when its 401 asks for one (§9)."""
    from ..lifecycle.proofs import NONCES
    from ..oauth.dpop import nonce_challenge

    NONCES.note(url, headers)
    return nonce_challenge(status, headers)


def _bearer_only(data: AuthData) -> AuthData:
    """``data`` without its refresh token and id_token: all an API call needs.

    The keeper is handed to other libraries (requests, google-auth, azure-core); what it
    holds is what they could leak, so it holds no more than the bearer token.
    """
    if data.refresh_token is None and data.id_token is None:
        return data
    return dataclasses.replace(data, refresh_token=None, id_token=None)


class TokenKeeper:
    """One user's bearer token for an API client: cached, refreshed when expired or rejected.

    Shared by :class:`OAuth2Auth` and the adapters for other HTTP libraries
    (:mod:`chat_oauth2_nb.kernel.adapters`), so all of them refresh the same way: through the
    :class:`TokenSource`, whose refresh is single-flight across threads and processes. The
    token is kept in memory between requests, so a call costs no store read until the token
    nears expiry or the API answers 401.
    """

    #: Whether this keeper's HTTP library sends a DPoP proof with each request (RFC 9449 §7);
    #: the others (google-auth, azure-core) can only send Bearer tokens.
    carries_dpop = False

    def __init__(self, client: TokenSource, user: str) -> None:
        self._client = client
        self._user = user
        self._cached: AuthData | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias={self._client.alias!r} user={self._user!r}>"

    def _fresh_cached(self) -> AuthData | None:
        """The cached token while it is not expired (no I/O), else None."""
        cached = self._cached
        if cached is not None and not cached.is_expired(self._client.leeway):
            return cached
        return None

    def current(self) -> AuthData:
        """The token to send: the cached one, or the stored one (refreshed if it expired)."""
        cached = self._fresh_cached()
        if cached is not None:
            return cached
        with self._lock:
            data = self._client.get_access_token_for_user(self._user)
            if data is None:
                raise NotAuthorizedError(
                    f"{self._user!r} has not authorized {self._client.alias!r}",
                    hint="Authorize first: open client.get_user_authorization_url(), or show client.panel().",
                )
            self._cached = data = self._usable(data)
            return data

    def _usable(self, data: AuthData) -> AuthData:
        """``data`` trimmed to what an API call needs, once it is known to be a bearer token."""
        # RFC 6749 §7.1: a client must not use a token whose type it does not understand;
        # a MAC or DPoP token sent as a bearer token is a proof-of-possession token without
        # its proof. A missing type is taken as Bearer: many providers omit it.
        kind = data.token_type or "Bearer"
        if kind.lower() == "dpop" and data.dpop_key is None and self._prover(data) is None:
            raise NotAuthorizedError(
                f"{self._user!r} holds a token of type {kind[:40]!r} for "
                f"{self._client.alias!r}, not a Bearer token, and not the key it is bound "
                "to, so it is not sent (RFC 9449: without a proof of that key the API "
                "refuses it)",
                hint="Use a client with its own credentials and dpop=True, which keeps the "
                "key with the token; or have the provider issue Bearer tokens.",
            )
        if kind.lower() == "dpop" and not self.carries_dpop:
            raise NotAuthorizedError(
                f"{self._user!r} holds a DPoP-bound token for {self._client.alias!r}; "
                f"{type(self).__name__} can only send Bearer tokens (no proof per request), "
                "so it is not sent",
                hint="Use client.auth() (httpx) or client.requests_auth() (requests), which "
                "send a DPoP proof with every request; or set dpop=False for this provider.",
            )
        if kind.lower() not in ("bearer", "dpop"):
            raise NotAuthorizedError(
                f"{self._user!r} holds a token of type {kind[:40]!r} for "
                f"{self._client.alias!r}, not a Bearer token, so it is not sent "
                "(RFC 6749 §7.1: a token is used only as its type says)",
                hint="Configure the provider (or the client's registration there) to issue "
                "Bearer tokens, or sign requests yourself as that token type requires, with "
                "client.get_access_token_for_user(user).token.",
            )
        return _bearer_only(data)

    def _prover(self, data: AuthData) -> Prover | None:
        """Who signs proofs for ``data`` when its key is held elsewhere (a declared provider)."""
        from ..lifecycle.grants import digest
        from ..lifecycle.remote import RemoteGrants

        grants = getattr(self._client, "grants", None)
        if data.dpop_key is not None or not isinstance(grants, RemoteGrants):
            return None
        have, user = digest(data.token), self._user

        def prove(method: str, url: str, nonce: str | None) -> str:
            request = {"method": method, "url": url, "have": have, "nonce": nonce}
            return grants.proof(user, request)

        return prove

    def headers(
        self, data: AuthData, method: str, url: str, nonce: str | None = None
    ) -> dict[str, str]:
        """The headers that send ``data`` with one request (see :func:`auth_headers`)."""
        return auth_headers(data, method, url, nonce, self._prover(data))

    def after_rejection(self, used: AuthData) -> AuthData | None:
        """After ``used`` was refused (or will not do): a newer or refreshed token, or None."""
        with self._lock:
            # Forget the refused token even when no usable one comes back (or the grant died).
            self._cached = None
            data = self._client.refresh_after_rejection(self._user, used)
            self._cached = data = None if data is None else self._usable(data)
            return data

    def refused_again(self, fresh: AuthData) -> None:
        """The API refused ``fresh`` too, the token a refusal just brought: the grant is dead.

        Refreshing again would repeat a refresh and a refusal at every call, for ever; the
        next call says "authorize again" instead (GrantRevokedError).
        """
        with self._lock:
            self._cached = None
            self._client.refused_after_refresh(self._user, fresh)


class OAuth2Auth(TokenKeeper, httpx.Auth):
    """Sends ``Authorization: Bearer …`` (or DPoP with a proof) for one user; refreshes when needed.

    The token is kept in memory between requests, so an API call costs no store read
    until the token nears expiry or the API answers 401. A token whose type is not Bearer
    raises :class:`~chat_oauth2_nb.errors.NotAuthorizedError`, a plain-http URL to another
    machine :class:`~chat_oauth2_nb.errors.ConfigurationError`; neither is sent.
    """

    carries_dpop = True

    def _sign(self, request: httpx.Request, data: AuthData, nonce: str | None = None) -> None:
        request.headers.update(self.headers(data, request.method, str(request.url), nonce))

    async def _asign(
        self, request: httpx.Request, data: AuthData, nonce: str | None = None
    ) -> None:
        if is_dpop(data) and data.dpop_key is None:  # the holder signs: a request to it
            await asyncio.to_thread(self._sign, request, data, nonce)
        else:
            self._sign(request, data, nonce)

    @staticmethod
    def _rejected(request: httpx.Request, data: AuthData, response: httpx.Response) -> bool:
        """True when the API that refused is the one this request signed, with ``data``."""
        # After redirects the response is the last hop's: a 401 from another origin (which
        # httpx sent no token) must not cost a refresh, and a retry would go to it again.
        refused = response.request
        scheme = "DPoP" if is_dpop(data) else "Bearer"
        return (
            response.status_code == 401
            and same_origin(str(refused.url), str(request.url))
            and refused.headers.get("Authorization") == f"{scheme} {data.token}"
        )

    @staticmethod
    def _nonce(request: httpx.Request, data: AuthData, response: httpx.Response) -> str | None:
        """The nonce a DPoP resource server asks for, when it refused for want of one."""
        if not is_dpop(data):
            return None
        return nonce_asked(str(request.url), response.status_code, response.headers)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign the request; on a 401 from the origin it was signed for, refresh once and retry.

        A 401 to the retry too ends the grant (:meth:`refused_again`).
        """
        data = self.current()
        self._sign(request, data)
        response = yield request
        nonce = self._nonce(request, data, response)
        if nonce is not None and self._rejected(request, data, response):
            self._sign(request, data, nonce)  # RFC 9449 §9: once more, with its nonce
            response = yield request
        if self._rejected(request, data, response):
            fresh = self.after_rejection(data)
            if fresh is not None:
                self._sign(request, fresh)
                again = yield request
                if self._rejected(request, fresh, again):
                    self.refused_again(fresh)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Async twin of :meth:`sync_auth_flow`; store and provider I/O run in a worker thread."""
        cached = self._fresh_cached()
        data = cached if cached is not None else await asyncio.to_thread(self.current)
        await self._asign(request, data)
        response = yield request
        nonce = self._nonce(request, data, response)
        if nonce is not None and self._rejected(request, data, response):
            await self._asign(request, data, nonce)  # RFC 9449 §9: once more, with its nonce
            response = yield request
        if self._rejected(request, data, response):
            fresh = await asyncio.to_thread(self.after_rejection, data)
            if fresh is not None:
                await self._asign(request, fresh)
                again = yield request
                if self._rejected(request, fresh, again):
                    await asyncio.to_thread(self.refused_again, fresh)

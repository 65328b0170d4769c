"""Hand a user's token to the libraries people already use: requests, google-auth, azure-core.

Each adapter is a thin face over :class:`~chat_oauth2_nb.kernel.auth.TokenKeeper`, the same
cache-and-refresh logic as :meth:`OAuth2Client.auth`, so every refresh still goes through the
client's single-flight refresh (one request per refresh token, across threads and
processes) and the refresh token never leaves this package: the other library only ever
sees an access token and its expiry. The libraries are optional extras, imported when an
adapter is made, so ``import chat_oauth2_nb`` never loads them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import importlib
import time
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigurationError, NotAuthorizedError, TokenRefreshError
from ..lifecycle.grants import Grants
from ..oauth import AuthData
from .auth import TokenKeeper, TokenSource, is_dpop, nonce_asked, require_tls, same_origin
from .resources import resource_token

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import AccessToken
    from google.oauth2.credentials import Credentials

__all__ = ["AsyncAzureCredential", "AzureCredential", "google_credentials", "requests_auth"]

# What each adapter needs, and the pip name that provides it.
_PACKAGES = {
    "requests": "requests",
    "google.oauth2.credentials": "google-auth",
    "azure.core.credentials": "azure-core",
}
# A token without an expiry (GitHub's classic OAuth tokens) still needs one for azure-core.
_NO_EXPIRY_SECONDS = 365 * 24 * 3600


def _require(module: str) -> ModuleType:
    """Import an optional library, or say which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = _PACKAGES[module]
        raise ConfigurationError(
            "adapter",
            f"needs the {package!r} package, which is not installed",
            f"Install it: pip install {package}",
        ) from None


# requests ----------------------------------------------------------------------------------


@functools.cache
def _requests_auth_class() -> type[Any]:
    # Defined on first use: subclassing requests.auth.AuthBase needs requests imported.
    requests_auth_module = _require("requests").auth
    cookies = importlib.import_module("requests.cookies")

    class RequestsAuth(TokenKeeper, requests_auth_module.AuthBase):  # type: ignore[misc,name-defined]
        """A ``requests`` auth: the user's bearer token, refreshed on expiry and once on a 401."""

        carries_dpop = True

        def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
            data = self.current()
            signed = request.url or ""
            request.headers.update(self.headers(data, request.method or "GET", signed))
            # A body that is a stream must be rewound before the request is sent again.
            tell = getattr(request.body, "tell", None)
            position = tell() if callable(tell) else None
            request.register_hook(
                "response",
                functools.partial(self._retry_once, used=data, signed=signed, position=position),
            )
            return request

        def _retry_once(
            self,
            response: requests.Response,
            *,
            used: AuthData,
            signed: str,
            position: int | None,
            **kwargs: Any,
        ) -> requests.Response:
            # requests copies this hook onto every redirected request, after stripping the
            # Authorization header from those that leave the origin: a 401 from there is
            # not this token's refusal, and a retry must not put a token back on it.
            refused = response.request
            scheme = "DPoP" if is_dpop(used) else "Bearer"
            if (
                response.status_code != 401
                or not same_origin(refused.url or "", signed)
                or refused.headers.get("Authorization") != f"{scheme} {used.token}"
            ):
                return response
            # RFC 9449 §9: a DPoP resource server that wants a nonce gets the same token again.
            nonce = nonce_asked(signed, 401, response.headers) if is_dpop(used) else None
            fresh = used if nonce is not None else self.after_rejection(used)
            if fresh is None or response.connection is None:
                return response
            body = response.request.body
            if position is not None and hasattr(body, "seek"):
                body.seek(position)  # type: ignore[union-attr]
            # Release the connection before reusing it, as requests' own digest auth does.
            _ = response.content
            response.close()
            retry = response.request.copy()
            # The retry is sent by the adapter directly, so this hook does not run again.
            cookies.extract_cookies_to_jar(retry._cookies, response.request, response.raw)
            retry.prepare_cookies(retry._cookies)
            retry.headers.update(self.headers(fresh, retry.method or "GET", retry.url or "", nonce))
            again: requests.Response = response.connection.send(retry, **kwargs)
            again.history.append(response)
            again.request = retry
            if again.status_code == 401 and nonce is None:
                self.refused_again(fresh)  # sent by the adapter: the signed origin refused
            return again

    return RequestsAuth


def requests_auth(client: TokenSource, user: str) -> requests.auth.AuthBase:
    """A ``requests.auth.AuthBase`` that sends ``user``'s bearer token and refreshes it.

    It refuses, as :class:`~chat_oauth2_nb.kernel.auth.OAuth2Auth` does, a token that is not
    Bearer and a plain-http URL to another machine, and retries after a 401 only at the
    origin it signed (never at a redirect target, which requests sends no token).
    """
    auth: requests.auth.AuthBase = _requests_auth_class()(client, user)
    return auth


# google-auth ------------------------------------------------------------------------------


class _GoogleRefresh(TokenKeeper):
    """google-auth's ``refresh_handler``: a new access token and expiry, from our store."""

    def __init__(self, client: TokenSource, user: str, threshold: dt.timedelta) -> None:
        super().__init__(client, user)
        self._threshold = threshold
        self._handed: str | None = None

    def _too_short(self, data: AuthData) -> bool:
        left = data.expires_in()
        # A few seconds on top: the token must still be fresh when google-auth checks it.
        return left is not None and left <= self._threshold.total_seconds() + 5

    def first(self) -> AuthData:
        """The token the credentials start with."""
        data = self.current()
        self._handed = data.token
        return data

    def __call__(
        self, request: Any, scopes: Sequence[str] | None = None
    ) -> tuple[str, dt.datetime]:
        """Return (access token, naive UTC expiry), as google-auth's refresh_handler must."""
        data = self.current()
        # google-auth asks only when the token it holds is stale (its own, longer, threshold)
        # or was rejected: the token it holds is not good enough, so get a newer one.
        if data.token == self._handed or self._too_short(data):
            fresh = self.after_rejection(data)
            if fresh is None:
                raise NotAuthorizedError(
                    f"{self._user!r} has no usable token for {self._client.alias!r} any more",
                    hint="Authorize again: client.get_user_authorization_url(), or client.panel().",
                )
            data = fresh
        if self._too_short(data):
            raise TokenRefreshError(
                f"{self._client.alias!r} issues tokens that expire within google-auth's "
                f"refresh threshold ({int(self._threshold.total_seconds())} s), so "
                "google-auth would refuse them",
                hint="Use client.auth() or client.requests_auth() for this provider.",
            )
        self._handed = data.token
        return data.token, _naive_utc_expiry(data)


def _naive_utc_expiry(data: AuthData) -> dt.datetime:
    # google-auth compares expiries with a naive UTC "now".
    if data.expires_at is None:
        return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(
            seconds=_NO_EXPIRY_SECONDS
        )
    return data.expires_at.astimezone(dt.timezone.utc).replace(tzinfo=None)


@functools.cache
def _google_credentials_class() -> type[Any]:
    # Defined on first use: subclassing google-auth's Credentials needs google-auth imported.
    base = _require("google.oauth2.credentials").Credentials

    class TlsOnlyCredentials(base):  # type: ignore[misc,valid-type]
        """google-auth ``Credentials`` that put the token on https (or loopback http) URLs only."""

        def before_request(self, request: Any, method: str, url: str, headers: Any) -> None:
            require_tls(url)
            super().before_request(request, method, url, headers)

        def __reduce__(self) -> tuple[Any, ...]:
            # This class is made at run time, so pickle could not find it by name: pickled
            # credentials come back as google-auth's own (the refresh handler is dropped
            # by google-auth anyway).
            return _unpickle_google_credentials, (self.__getstate__(),)

    return TlsOnlyCredentials


def _unpickle_google_credentials(state: dict[str, Any]) -> Credentials:
    """Rebuild pickled credentials as google-auth's own ``Credentials``."""
    cls = _require("google.oauth2.credentials").Credentials
    credentials: Credentials = cls.__new__(cls)
    credentials.__setstate__(state)  # type: ignore[no-untyped-call]
    return credentials


def google_credentials(client: TokenSource, user: str) -> Credentials:
    """``google.oauth2.credentials.Credentials`` for ``user`` that refresh through the store.

    They hold the access token and its expiry only; when google-auth refreshes them (on
    expiry, or after a 401 in ``AuthorizedSession``) its ``refresh_handler`` asks the client,
    which refreshes single-flight. No refresh token, client secret or token URI is handed over.
    They refuse to sign a plain-http URL to another machine (RFC 6750 §5.3).
    """
    helpers = importlib.import_module("google.auth._helpers")
    handler = _GoogleRefresh(client, user, helpers.REFRESH_THRESHOLD)
    data = handler.first()
    credentials: Credentials = _google_credentials_class()(
        token=data.token,
        expiry=None if data.expires_at is None else _naive_utc_expiry(data),
        refresh_handler=handler,
        granted_scopes=list(data.scopes) or None,
    )
    return credentials


# azure-core -------------------------------------------------------------------------------


class _AzureSource(TokenSource, Protocol):
    """A token source with its grants: what per-scope tokens come from."""

    @property
    def grants(self) -> Grants:
        """The token lifecycle of the client's provider."""


class AzureCredential(TokenKeeper):
    """An ``azure.core.credentials.TokenCredential`` for one user of a chat_oauth2_nb client.

    ``get_token(*scopes)`` returns a token for the resource the scopes name
    (``https://storage.azure.com/.default``: Storage), got from the user's one grant with its
    refresh token (Entra's multi-resource refresh; RFC 8707 elsewhere) and kept per resource;
    scopes that name no resource, or that the grant's own token carries, get that token.
    ``claims=`` (a claims challenge, Entra's continuous access evaluation) always gets a new
    token. A token that is not Bearer is refused. azure-core asks without saying for which
    URL, so the https rule is azure-core's own (``BearerTokenCredentialPolicy``'s
    ``enforce_https``).
    """

    def __init__(self, client: _AzureSource | TokenSource, user: str) -> None:
        self._access_token = _require("azure.core.credentials").AccessToken
        super().__init__(client, user)
        # A token source without grants (a test double, another library's client) has one
        # token for every scope, as before tokens were kept per resource.
        self._grants: Grants | None = getattr(client, "grants", None)

    def _for_scopes(self, scopes: tuple[str, ...], claims: str | None) -> AuthData:
        if self._grants is None:
            return self.current()
        grant = self._grants.stored(self._user)
        if grant is not None:
            self._usable(grant.data)  # a grant whose tokens azure-core cannot send: no request
        record = resource_token(self._grants, self._user, scopes, claims=claims or None)
        if record is None:
            raise NotAuthorizedError(
                f"{self._user!r} has not authorized {self._client.alias!r}",
                hint="Authorize first: open client.get_user_authorization_url(), or show "
                "client.panel().",
            )
        return self._usable(record.data)

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """A token for the scopes' resource and its expiry (Unix seconds), as azure-core expects."""
        data = self._for_scopes(scopes, claims)
        if data.expires_at is None:
            expires_on = int(time.time()) + _NO_EXPIRY_SECONDS
        else:
            expires_on = int(data.expires_at.timestamp())
        token: AccessToken = self._access_token(data.token, expires_on)
        return token

    def close(self) -> None:
        """Nothing to release: the client owns the connections."""

    def __enter__(self) -> AzureCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAzureCredential:
    """An ``azure.core.credentials_async.AsyncTokenCredential``: :class:`AzureCredential` for
    azure-core's async clients; the store and the provider are asked in a worker thread."""

    def __init__(self, client: _AzureSource, user: str) -> None:
        self._sync = AzureCredential(client, user)

    def __repr__(self) -> str:
        return f"<AsyncAzureCredential {self._sync!r}>"

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """Async twin of :meth:`AzureCredential.get_token`."""
        return await asyncio.to_thread(self._sync.get_token, *scopes, claims=claims)

    async def close(self) -> None:
        """Nothing to release: the client owns the connections."""

    async def __aenter__(self) -> AsyncAzureCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

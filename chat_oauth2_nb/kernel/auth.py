"""``httpx.Auth`` for API calls: the user's bearer token, refreshed on expiry or a 401."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncGenerator, Generator
from typing import Protocol

import httpx

from ..errors import NotAuthorizedError
from ..oauth import AuthData

__all__ = ["OAuth2Auth", "TokenKeeper", "TokenSource"]


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
            self._cached = data = _bearer_only(data)
            return data

    def after_rejection(self, used: AuthData) -> AuthData | None:
        """After ``used`` was refused (or will not do): a newer or refreshed token, or None."""
        with self._lock:
            data = self._client.refresh_after_rejection(self._user, used)
            self._cached = data = None if data is None else _bearer_only(data)
            return data


class OAuth2Auth(TokenKeeper, httpx.Auth):
    """Sends ``Authorization: Bearer …`` for one user; refreshes when expired or rejected.

    The token is kept in memory between requests, so an API call costs no store read
    until the token nears expiry or the API answers 401.
    """

    @staticmethod
    def _sign(request: httpx.Request, data: AuthData) -> None:
        request.headers["Authorization"] = f"Bearer {data.token}"

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign the request; on a 401, refresh once and retry."""
        data = self.current()
        self._sign(request, data)
        response = yield request
        if response.status_code == 401:
            fresh = self.after_rejection(data)
            if fresh is not None:
                self._sign(request, fresh)
                yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Async twin of :meth:`sync_auth_flow`; store and provider I/O run in a worker thread."""
        cached = self._fresh_cached()
        data = cached if cached is not None else await asyncio.to_thread(self.current)
        self._sign(request, data)
        response = yield request
        if response.status_code == 401:
            fresh = await asyncio.to_thread(self.after_rejection, data)
            if fresh is not None:
                self._sign(request, fresh)
                yield request

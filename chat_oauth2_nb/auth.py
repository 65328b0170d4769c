"""``httpx.Auth`` for API calls: the user's bearer token, refreshed on expiry or a 401."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Generator
from typing import Protocol

import httpx

from .errors import NotAuthorizedError
from .protocol import AuthData

__all__ = ["OAuth2Auth", "TokenSource"]


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


class OAuth2Auth(httpx.Auth):
    """Sends ``Authorization: Bearer …`` for one user; refreshes when expired or rejected.

    The token is kept in memory between requests, so an API call costs no store read
    until the token nears expiry or the API answers 401.
    """

    def __init__(self, client: TokenSource, user: str) -> None:
        self._client = client
        self._user = user
        self._cached: AuthData | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<OAuth2Auth alias={self._client.alias!r} user={self._user!r}>"

    def _current(self) -> AuthData:
        cached = self._cached
        if cached is not None and not cached.is_expired(self._client.leeway):
            return cached
        with self._lock:
            data = self._client.get_access_token_for_user(self._user)
            if data is None:
                raise NotAuthorizedError(
                    f"{self._user!r} has not authorized {self._client.alias!r}",
                    hint="Authorize first: open client.get_user_authorization_url(), or show client.panel().",
                )
            self._cached = data
            return data

    def _after_rejection(self, used: AuthData) -> AuthData | None:
        with self._lock:
            data = self._client.refresh_after_rejection(self._user, used)
            self._cached = data
            return data

    @staticmethod
    def _sign(request: httpx.Request, data: AuthData) -> None:
        request.headers["Authorization"] = f"Bearer {data.token}"

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign the request; on a 401, refresh once and retry."""
        data = self._current()
        self._sign(request, data)
        response = yield request
        if response.status_code == 401:
            fresh = self._after_rejection(data)
            if fresh is not None:
                self._sign(request, fresh)
                yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Async twin of :meth:`sync_auth_flow`; store and provider I/O run in a worker thread."""
        cached = self._cached
        if cached is not None and not cached.is_expired(self._client.leeway):
            data = cached
        else:
            data = await asyncio.to_thread(self._current)
        self._sign(request, data)
        response = yield request
        if response.status_code == 401:
            fresh = await asyncio.to_thread(self._after_rejection, data)
            if fresh is not None:
                self._sign(request, fresh)
                yield request

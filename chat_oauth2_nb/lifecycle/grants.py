"""Declared providers, held by the Jupyter server: refresh and revoke with the secret it alone has.

Kernels of this server get access tokens only (through the shared store, and by asking
this server's API when one expired). The client secret stays in this process's memory and
the refresh token in the store's ``held_refresh_tokens`` table, which the kernel's client
never reads. Refreshes are single flight with the same lease row kernels use.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from ..config import ProviderConfig, provider_identity
from ..declarations import error_from_payload, error_payload, public_part
from ..errors import (
    NotAuthorizedError,
    OAuth2Error,
    TokenExchangeError,
    TokenRefreshError,
    TokenRevokeError,
)
from ..oauth import (
    AuthData,
    HttpExchange,
    code_exchange_request,
    parse_error_response,
    parse_token_response,
    refresh_request,
    revoke_request,
    transport_error,
    utcnow,
)
from ..oauth.oidc import verify_for_config
from ..oauth.transport import send
from ..store import HeldTokenStore, TokenRecord

__all__ = ["Broker", "RemoteBroker", "error_payload", "revocations", "token_payload"]

log = logging.getLogger("chat_oauth2_nb.server")

_STORE_PATIENCE = 30.0
_POLL = 0.05


def revocations(config: ProviderConfig, data: AuthData) -> list[tuple[str, str | None]]:
    """The (token, hint) requests that revoke a grant, in the provider's ``revokeStyle``."""
    if config.revoke_style == "google":
        return [(data.refresh_token or data.token, None)]
    if config.revoke_style == "github":
        return [(data.token, None)]
    pairs = [(data.refresh_token, "refresh_token"), (data.token, "access_token")]
    return [(token, hint) for token, hint in pairs if token]


class Broker:
    """Holds the declared providers' full configs; refreshes and revokes for this server's kernels."""

    #: Whether the secret is elsewhere (the hub's service): exchange, refresh, revoke go there.
    remote = False

    def __init__(self, declared: Mapping[str, ProviderConfig], *, timeout: float = 10.0) -> None:
        self.declared = dict(declared)
        self.timeout = timeout
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = collections.defaultdict(
            threading.Lock
        )

    def __repr__(self) -> str:
        return f"<Broker providers={sorted(self.declared)!r}>"

    def public(self) -> dict[str, dict[str, Any]]:
        """alias -> the public part of each declared provider (no secret)."""
        return {alias: public_part(config) for alias, config in self.declared.items()}

    def config_for(self, alias: str) -> ProviderConfig:
        """The declared config of ``alias``, secret included; NotAuthorizedError when undeclared."""
        config = self.declared.get(alias)
        if config is None:
            raise NotAuthorizedError(
                f"No provider is declared as {alias!r} on this server",
                hint="Ask the administrator to declare it (c.ChatOAuth2App.providers), or "
                "pass a config and credentials to create_oauth2_client().",
            )
        return config

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self.timeout)
            return self._http

    def close(self) -> None:
        """Close the HTTP connections."""
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def _record(self, store: HeldTokenStore, alias: str, user: str) -> TokenRecord | None:
        record = store.get_token(alias, user)
        if record is None or record.provider != provider_identity(self.config_for(alias)):
            return None  # never hand out (or refresh) a token another config stored
        return record

    def token(
        self,
        store: HeldTokenStore,
        alias: str,
        user: str,
        *,
        seen_version: int | None,
        leeway: float,
        optional: bool = False,
    ) -> TokenRecord | None:
        """The user's token; refreshed unless its version moved past ``seen_version``.

        Without ``seen_version``: refreshed only when it expires within ``leeway``, and
        returned as it is when no refresh token is held. With ``optional``: None instead of
        an error when no refresh token is held.
        """
        record = self._record(store, alias, user)
        if record is None:
            raise NotAuthorizedError(
                f"Nothing is stored for {user!r} at {alias!r}",
                hint="Authorize first: client.get_user_authorization_url().",
            )
        identity = provider_identity(self.config_for(alias))
        refreshable = store.get_held_refresh_token(alias, user, identity) is not None
        if seen_version is None:
            if not record.data.is_expired(leeway) or not refreshable:
                return record
            seen_version = record.version
        if optional and not refreshable and record.version == seen_version:
            return None
        return self._refresh(store, alias, user, seen_version)

    def _refresh(self, store: HeldTokenStore, alias: str, user: str, seen: int) -> TokenRecord:
        owner = f"server:{os.getpid()}:{uuid.uuid4().hex}"
        ttl = 2 * self.timeout + _STORE_PATIENCE + 10.0
        with self._key_locks[(alias, user)]:
            while True:
                current = self._record(store, alias, user)
                if current is None:
                    raise NotAuthorizedError(
                        f"The token for {user!r} was deleted while refreshing",
                        hint="Authorize again: client.get_user_authorization_url().",
                    )
                if current.version != seen:
                    return current
                if store.acquire_lease(alias, user, owner, ttl):
                    break
                time.sleep(_POLL)
            try:
                current = self._record(store, alias, user)
                if current is None or current.version != seen:
                    return current or self._refresh_gone(user)
                return self._do_refresh(store, alias, user, current)
            finally:
                store.release_lease(alias, user, owner)

    @staticmethod
    def _refresh_gone(user: str) -> TokenRecord:
        raise NotAuthorizedError(
            f"The token for {user!r} was deleted while refreshing",
            hint="Authorize again: client.get_user_authorization_url().",
        )

    def _do_refresh(
        self, store: HeldTokenStore, alias: str, user: str, record: TokenRecord
    ) -> TokenRecord:
        config = self.config_for(alias)
        identity = provider_identity(config)
        held = store.get_held_refresh_token(alias, user, identity)
        if held is None:
            raise TokenRefreshError(
                "No refresh token is held for this token, so it cannot be refreshed",
                hint="Authorize again; the administrator may need to ask the provider for "
                "refresh tokens in the declaration (Google: authUriParams "
                "{'access_type': 'offline', 'prompt': 'consent'}).",
            )
        request = refresh_request(config, refresh_token=held)
        what = "Refreshing the token"
        answer = send(self._client(), request, deadline=self.timeout)
        if answer.failure is not None:
            raise transport_error(
                TokenRefreshError, what, request.url, answer.failure, self.timeout
            )
        data = parse_token_response(
            TokenRefreshError,
            what,
            answer.status or 0,
            answer.headers,
            answer.content,
            received_at=utcnow(),
            previous=dataclasses.replace(record.data, refresh_token=held),
            secrets=request.secrets,
            client_id=request.client_id,
        )
        stored = store.patiently(
            lambda: store.put_held_token(
                alias, user, data, provider=identity, expect_version=record.version
            ),
            _STORE_PATIENCE,
        )
        log.info("refreshed the token for %r at %r (declared provider)", user, alias)
        return stored or self._record(store, alias, user) or self._refresh_gone(user)

    def exchange(
        self,
        store: HeldTokenStore,
        alias: str,
        user: str,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str,
        scopes: tuple[str, ...],
        nonce: str | None,
    ) -> tuple[dict[str, Any], TokenRecord]:
        """Exchange a code with the held secret; store the token (refresh token held apart).

        Returns the redacted exchange (for the kernel's HTTP log) and the stored record.
        Raises TokenExchangeError (or IdTokenError) with the provider's words.
        """
        config = self.config_for(alias)
        request = code_exchange_request(
            config, code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
        )
        answer = send(self._client(), request, deadline=self.timeout)
        exchange = dataclasses.asdict(HttpExchange.of(request, answer))
        what = "Exchanging the authorization code"
        if answer.failure is not None:
            raise transport_error(
                TokenExchangeError, what, request.url, answer.failure, self.timeout
            )
        data = parse_token_response(
            TokenExchangeError,
            what,
            answer.status or 0,
            answer.headers,
            answer.content,
            received_at=utcnow(),
            requested_scopes=scopes,
            secrets=request.secrets,
            client_id=request.client_id,
        )
        if data.id_token is not None:
            claims = verify_for_config(config, data.id_token, nonce, timeout=self.timeout)
            data = dataclasses.replace(data, claims=claims)
        record = store.patiently(
            lambda: store.put_held_token(alias, user, data, provider=provider_identity(config)),
            _STORE_PATIENCE,
        )
        assert record is not None  # no expected version: always written
        return exchange, record

    def revoke(self, store: HeldTokenStore, alias: str, user: str) -> bool:
        """Revoke the user's tokens at the provider, then delete them; False when none is stored."""
        config = self.config_for(alias)
        record = self._record(store, alias, user)
        if record is None:
            return False
        if config.revoke_token_uri is not None:
            held = store.get_held_refresh_token(alias, user, provider_identity(config))
            data = dataclasses.replace(record.data, refresh_token=held)
            for token, hint in revocations(config, data):
                request = revoke_request(config, token=token, token_type_hint=hint)
                answer = send(self._client(), request, deadline=self.timeout)
                what = "Revoking the token"
                if answer.failure is not None:
                    raise transport_error(
                        TokenRevokeError, what, request.url, answer.failure, self.timeout
                    )
                status = answer.status or 0
                if not 200 <= status < 300:
                    raise parse_error_response(
                        TokenRevokeError,
                        what,
                        status,
                        answer.headers,
                        answer.content,
                        request.secrets,
                        request.client_id,
                    )
        store.delete_token(alias, user)
        log.info("revoked the token for %r at %r (declared provider)", user, alias)
        return True


def token_payload(record: TokenRecord | None) -> dict[str, Any]:
    """The JSON answer for a kernel: the access token and its version, never a refresh token."""
    if record is None:
        return {"data": None, "version": None}
    data = json.loads(dataclasses.replace(record.data, refresh_token=None).to_json())
    return {"data": data, "version": record.version}


class RemoteBroker(Broker):
    """Declared providers whose secret the hub's chat-oauth2 service holds (broker mode).

    This server keeps the public configs and, in the user's store, access tokens only; the
    service exchanges codes, refreshes and revokes, keeping the refresh tokens in its own
    encrypted store. Requests carry this server's ``JUPYTERHUB_API_TOKEN``: the service
    answers only for that token's hub user.
    """

    remote = True

    def __init__(
        self,
        declared: Mapping[str, ProviderConfig],
        *,
        url: str,
        api_token: str,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(declared, timeout=timeout)
        self.url = url.rstrip("/")
        self._api_token = api_token

    def __repr__(self) -> str:
        return f"<RemoteBroker providers={sorted(self.declared)!r} url={self.url!r}>"

    def _post(self, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            answer = self._client().post(
                f"{self.url}/{path}",
                json=body,
                headers={"Authorization": f"token {self._api_token}"},
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            raise OAuth2Error(
                f"The hub's chat-oauth2 service at {self.url} did not answer "
                f"({type(exc).__name__})",
                hint="Ask the hub administrator to check the chat-oauth2 service "
                "(python -m chat_oauth2_nb.hub check).",
            ) from None
        try:
            result = answer.json()
        except ValueError:
            result = None
        if answer.status_code != 200 or not isinstance(result, dict):
            raise error_from_payload(
                result,
                f"The hub's chat-oauth2 service answered HTTP {answer.status_code}; ask the hub "
                "administrator to check it",
            )
        return result

    def exchange(
        self,
        store: HeldTokenStore,
        alias: str,
        user: str,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str,
        scopes: tuple[str, ...],
        nonce: str | None,
    ) -> tuple[dict[str, Any], TokenRecord]:
        """Have the service exchange the code; store the access token it hands back."""
        config = self.config_for(alias)
        body = {
            "user": user,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
            "scopes": list(scopes),
            "nonce": nonce,
        }
        answer = self._post(f"exchange/{alias}", body, 3 * self.timeout + 10.0)
        data = AuthData.from_json(json.dumps(answer["data"]))
        record = store.patiently(
            lambda: store.put_token(alias, user, data, provider=provider_identity(config)),
            _STORE_PATIENCE,
        )
        assert record is not None
        return dict(answer.get("exchange") or {}), record

    def token(
        self,
        store: HeldTokenStore,
        alias: str,
        user: str,
        *,
        seen_version: int | None,
        leeway: float,
        optional: bool = False,
    ) -> TokenRecord | None:
        """The access token in the user's store, or a fresher one from the service."""
        config = self.config_for(alias)
        record = self._record(store, alias, user)
        if record is None:
            raise NotAuthorizedError(
                f"Nothing is stored for {user!r} at {alias!r}",
                hint="Authorize first: client.get_user_authorization_url().",
            )
        if seen_version is None and not record.data.is_expired(leeway):
            return record
        if seen_version is not None and record.version != seen_version:
            return record  # another kernel of this server got a newer one meanwhile
        # The service refreshes only if this is still its latest token: one refresh for
        # all of the user's servers and kernels.
        have = hashlib.sha256(record.data.token.encode()).hexdigest()
        body = {"user": user, "have": have, "optional": optional, "leeway": leeway}
        answer = self._post(f"token/{alias}", body, 3 * self.timeout + 40.0)
        if answer.get("data") is None:
            return None if optional else record
        data = AuthData.from_json(json.dumps(answer["data"]))
        if data.token == record.data.token:
            return record
        stored = store.patiently(
            lambda: store.put_token(
                alias, user, data, provider=provider_identity(config), expect_version=record.version
            ),
            _STORE_PATIENCE,
        )
        return stored or self._record(store, alias, user)

    def revoke(self, store: HeldTokenStore, alias: str, user: str) -> bool:
        """Have the service revoke at the provider, then delete the token here too."""
        self.config_for(alias)
        if self._record(store, alias, user) is None:
            return False
        answer = self._post(f"revoke/{alias}", {"user": user}, 3 * self.timeout + 10.0)
        store.delete_token(alias, user)
        return bool(answer.get("revoked", True))

"""The hub login as a declared provider: each user's own sign-in tokens, for their kernels.

``configure_hub(c, login_provider="login")`` declares the hub's OAuthenticator client as the
provider ``login``. Its tokens are not in any store of ours: they are the user's
``auth_state``, which the hub keeps encrypted (``JUPYTERHUB_CRYPT_KEY``). The service reads
it through the hub's API with its own token (scopes ``admin:auth_state`` and ``admin:users``),
hands users' servers the access token only, and refreshes where the refresh token lives:
here, one refresh at a time per user, the answer written back to the same ``auth_state``
before anyone else reads it, so the hub's own ``refresh_user`` and this service never send
a refresh token the provider has already rotated.

No consent: the user consented when they signed in to the hub.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn
from urllib.parse import quote

import httpx

from ..config import ProviderConfig
from ..errors import (
    ConfigurationError,
    GrantRevokedError,
    NotAuthorizedError,
    OAuth2Error,
    TokenExchangeError,
    TokenRefreshError,
)
from ..lifecycle.grants import AuthorizationCode, Connections, Noter, digest
from ..oauth import AuthData
from ..oauth.answers import token_from_answer
from ..oauth.models import HttpExchange
from ..oauth.requests import code_exchange_request, refresh_request
from ..store import TokenRecord

__all__ = ["EXPIRES_KEY", "LoginGrants", "keep_written_back", "stamp_expiry"]

log = logging.getLogger("chat_oauth2_nb.hub")

#: What ``stamp_expiry`` adds to the auth_state: when the access token expires (epoch s).
EXPIRES_KEY = "chat_oauth2_nb_expires_at"
_ASK_FOR_REFRESH = (
    "Ask the hub administrator to request a refresh token at sign-in: the scope "
    "'offline_access' for most OpenID providers (c.GenericOAuthenticator.scope), "
    "access_type=offline for Google (c.GenericOAuthenticator.extra_authorize_params)."
)


def stamp_expiry(authenticator: Any, auth_state: dict[str, Any]) -> dict[str, Any]:
    """OAuthenticator's ``modify_auth_state_hook``: note when the access token expires.

    The token answer says ``expires_in`` (seconds from now); the auth_state keeps no time,
    so without this no one could tell a stale token from a fresh one without a request.
    """
    answer = auth_state.get("token_response")
    if not isinstance(answer, dict):
        return auth_state
    at = answer.get(EXPIRES_KEY)
    seconds = answer.get("expires_in")
    if not isinstance(at, (int, float)) and isinstance(seconds, (int, float, str)):
        # Once, when the answer arrives: the hub's refresh_user rebuilds the auth_state from
        # this same answer later, and must not move the expiry each time.
        with contextlib.suppress(ValueError):
            at = answer[EXPIRES_KEY] = time.time() + float(seconds)
    if isinstance(at, (int, float)):
        auth_state[EXPIRES_KEY] = at
    return auth_state


def keep_written_back(authenticator: Any, user: Any, auth_state: Any) -> bool | None:
    """OAuthenticator's ``refresh_user_hook``: no change while the access token is valid.

    Without it the hub's ``refresh_user`` rebuilds the auth_state from the token answer it
    read at its start and saves it, even when nothing changed: one that started just before
    this service wrote a refresh back would put the spent refresh token back (the provider's
    reuse detection then ends the sign-in). Past the expiry: OAuthenticator's own refresh.
    """
    at = auth_state.get(EXPIRES_KEY) if isinstance(auth_state, Mapping) else None
    if isinstance(at, (int, float)) and auth_state.get("access_token") and at > time.time():
        return True
    return None


class _Hub:
    """The hub's REST API, with the service's own token: read and write a user's auth_state."""

    def __init__(self, api_url: str, token: str, timeout: float) -> None:
        self.api_url = api_url.rstrip("/")
        self.headers = {"Authorization": f"token {token}"}
        self.timeout = timeout

    def auth_state(self, user: str) -> dict[str, Any] | None:
        with httpx.Client(timeout=self.timeout, trust_env=False) as http:
            answer = http.get(f"{self.api_url}/users/{quote(user, safe='')}", headers=self.headers)
        if answer.status_code == 403:
            raise ConfigurationError(
                "the chat-oauth2 service's hub token",
                "may not read users' auth_state (HTTP 403)",
                "configure_hub(c, login_provider=...) grants it admin:auth_state and "
                "admin:users; keep that role in c.JupyterHub.load_roles.",
            )
        answer.raise_for_status()
        state = answer.json().get("auth_state")
        return state if isinstance(state, dict) else None

    def save(self, user: str, state: dict[str, Any]) -> None:
        with httpx.Client(timeout=self.timeout, trust_env=False) as http:
            answer = http.patch(
                f"{self.api_url}/users/{quote(user, safe='')}",
                headers=self.headers,
                json={"auth_state": state},
            )
        answer.raise_for_status()


class LoginGrants:
    """The grants of the hub login's provider for one hub user: their auth_state, no store."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        api_url: str,
        api_token: str,
        login_url: str,
        connections: Connections,
        leeway: float = 60.0,
        locks: Callable[[str], threading.Lock] | None = None,
    ) -> None:
        """``login_url``: where a person signs in to the hub again (shown when the grant died)."""
        self._config = config
        self._hub = _Hub(api_url, api_token, connections.timeout)
        self.login_url = login_url
        self._connections = connections
        self.leeway = leeway
        self._locks = locks or _user_locks()

    def __repr__(self) -> str:
        return f"<LoginGrants alias={self._config.alias!r}>"

    @property
    def config(self) -> ProviderConfig:
        """The hub login's provider (its client secret held in this process only)."""
        return self._config

    # reading ----------------------------------------------------------------------------

    def _state(self, user: str) -> dict[str, Any]:
        state = self._hub.auth_state(user)
        if not state or not isinstance(state.get("access_token"), str):
            raise NotAuthorizedError(
                f"The hub holds no sign-in token for {user!r} (no auth_state)",
                hint=f"Sign in to the hub again: {self.login_url}. If that does not help, ask "
                "the hub administrator to set c.Authenticator.enable_auth_state = True and "
                "JUPYTERHUB_CRYPT_KEY.",
            )
        return state

    def _record(self, user: str, state: Mapping[str, Any]) -> TokenRecord:
        expires = state.get(EXPIRES_KEY)
        scope = state.get("scope") or []
        expires_at = obtained_at = None
        if isinstance(expires, (int, float)):
            expires_at = dt.datetime.fromtimestamp(float(expires), dt.timezone.utc)
            answer = state.get("token_response")
            lifetime = answer.get("expires_in") if isinstance(answer, Mapping) else None
            if isinstance(lifetime, (int, float)):
                # When it was issued: the leeway is capped at half the token's life.
                obtained_at = expires_at - dt.timedelta(seconds=float(lifetime))
        id_token = state.get("id_token")
        data = AuthData(
            token=str(state["access_token"]),
            expires_at=expires_at,
            scope=" ".join(scope) if isinstance(scope, list) else str(scope),
            id_token=id_token if isinstance(id_token, str) else None,
            obtained_at=obtained_at or dt.datetime.now(dt.timezone.utc),
        )
        version = int(float(expires or 0))  # changes with every refresh
        return TokenRecord(self._config.alias, user, data, version, time.time())

    def stored(self, user: str) -> TokenRecord | None:
        """The user's login token as the hub holds it (never its refresh token)."""
        return self._record(user, self._state(user))

    def token(self, user: str, *, leeway: float | None = None) -> TokenRecord | None:
        """The login's access token, refreshed here first when it expires within ``leeway``."""
        leeway = self.leeway if leeway is None else max(leeway, self.leeway)
        record = self.stored(user)
        if record is None or not record.data.is_expired(leeway):
            return record
        return self.refresh(user, have=digest(record.data.token))

    # refreshing -------------------------------------------------------------------------

    def refresh(
        self, user: str, *, have: str | None = None, optional: bool = False
    ) -> TokenRecord | None:
        """Refresh at the provider, one at a time per user, and write the answer back first."""
        with self._locks(user):
            # Read again under the lock: whoever held it may have refreshed already.
            state = self._state(user)
            current = self._record(user, state)
            if have is not None and have != digest(current.data.token):
                return current
            refresh_token = state.get("refresh_token")
            if not isinstance(refresh_token, str) or not refresh_token:
                if optional:
                    return None
                raise TokenRefreshError(
                    f"The hub sign-in of {user!r} came with no refresh token, so its access "
                    "token cannot be renewed",
                    hint=f"Sign in to the hub again for a fresh one: {self.login_url}. "
                    + _ASK_FOR_REFRESH,
                )
            return self._refreshed(user, state, refresh_token)

    def _refreshed(self, user: str, state: dict[str, Any], refresh_token: str) -> TokenRecord:
        request = refresh_request(self._config, refresh_token=refresh_token)
        answer = self._connections.send(request)
        try:
            data = token_from_answer(
                TokenRefreshError,
                "Refreshing the hub sign-in's token",
                request,
                answer,
                timeout=self._connections.timeout,
            )
        except TokenRefreshError as exc:
            if answer.status != 400 or exc.error != "invalid_grant":
                raise
            # The sign-in's grant is over: the hub must not use it either, so the next hub
            # request asks the person to sign in again.
            self._hub.save(user, {**state, "access_token": None, "refresh_token": None})
            raise GrantRevokedError(
                f"The hub sign-in of {user!r} has ended at the provider (its refresh token "
                "was refused: revoked, expired or signed out there)",
                hint=f"Sign in to the hub again: {self.login_url}",
            ) from None
        new_state = _merged(state, data, refresh_token)
        # Written back before anyone sees the new token: the hub's refresh_user and every
        # other caller then start from the rotated refresh token, never the spent one.
        self._hub.save(user, new_state)
        log.info("refreshed the hub sign-in token of %r", user)
        return self._record(user, new_state)

    def refused(self, user: str, have: str) -> None:
        """An API refused a just-refreshed token: nothing to bury here; the hub keeps the state."""

    # not for the login ------------------------------------------------------------------

    def exchange(
        self, user: str, code: AuthorizationCode, note: Noter | None = None
    ) -> TokenRecord:
        """A scope upgrade: more scopes than the sign-in's, through the hub's redirect URI.

        The answer replaces the sign-in's tokens in the auth_state (the hub's own refresh
        then keeps the upgraded grant going), but only when its id_token names the person
        the hub signed in: another account at the provider never lands in this user's state.
        """
        request = code_exchange_request(
            self._config,
            code=code.code,
            redirect_uri=code.redirect_uri,
            code_verifier=code.code_verifier,
        )
        answer = self._connections.send(request)
        if note is not None:
            note(dataclasses.asdict(HttpExchange.of(request, answer)))
        data = token_from_answer(
            TokenExchangeError,
            "Exchanging the authorization code (more scopes for the hub sign-in)",
            request,
            answer,
            timeout=self._connections.timeout,
            requested_scopes=code.scopes,
        )
        with self._locks(user):
            state = self._state(user)
            self._same_person(user, state, data, code)
            new_state = _merged(state, data, None)
            self._hub.save(user, new_state)
        return self._record(user, new_state)

    def _same_person(
        self, user: str, state: Mapping[str, Any], data: AuthData, code: AuthorizationCode
    ) -> None:
        from ..oauth.oidc import verify_for_config

        signed_in = state.get("oauth_user")
        sub = signed_in.get("sub") if isinstance(signed_in, Mapping) else None
        claims = (
            verify_for_config(
                self._config, data.id_token, code.nonce, timeout=self._connections.timeout
            )
            if data.id_token
            else None
        )
        if not sub or claims is None or claims.get("sub") != sub:
            raise NotAuthorizedError(
                f"The authorization for more scopes of {user!r} was not signed by the person "
                "the hub signed in (or had no id_token to tell), so it was not kept",
                hint="Authorize with the account you signed in to the hub with.",
            )

    def keep(self, user: str, data: AuthData) -> TokenRecord:
        """Not offered (see :meth:`exchange`)."""
        raise NotAuthorizedError("The hub sign-in's tokens are the hub's to keep")

    def revoke(self, user: str) -> bool:
        """Not from a notebook: signing out of the hub (or the provider) ends the sign-in."""
        raise OAuth2Error(
            "The hub sign-in's token is not revoked from a notebook",
            hint=f"Sign out of the hub to end it: {self.login_url.rsplit('/', 1)[0]}/logout",
        )

    def introspect(self, user: str) -> dict[str, Any]:
        """Not offered for the hub sign-in."""
        self.needs_secret("Introspection")

    def proof(self, user: str, request: Mapping[str, object]) -> str:
        """Not offered: the hub's authenticator got a Bearer token, bound to no DPoP key."""
        raise NotAuthorizedError(
            f"The hub sign-in's token at {self._config.alias!r} is a Bearer token: it takes "
            "no DPoP proof",
            hint="Send it as a Bearer token (client.auth()), or declare a provider with "
            "dpop=True in configure_hub(c, providers=...) for DPoP-bound tokens.",
        )

    def needs_secret(self, what: str) -> NoReturn:
        """Refuse ``what`` for the hub sign-in's provider."""
        raise ConfigurationError(
            "config",
            f"names the hub sign-in's provider {self._config.alias!r}",
            f"{what} is not offered.",
        )


def _merged(state: Mapping[str, Any], data: AuthData, refresh_token: str | None) -> dict[str, Any]:
    """The auth_state with the provider's new answer in it, as OAuthenticator reads it."""
    return {
        **state,
        "access_token": data.token,
        # A provider that does not rotate sends none: the one we have stays valid.
        "refresh_token": data.refresh_token or refresh_token,
        "id_token": data.id_token or state.get("id_token"),
        "scope": data.scope.split() if data.scope else state.get("scope"),
        "token_response": _public_answer(data, state),
        EXPIRES_KEY: data.expires_at.timestamp() if data.expires_at else None,
    }


def _public_answer(data: AuthData, state: Mapping[str, Any]) -> dict[str, Any]:
    """The token answer as OAuthenticator keeps it (``token_response``), refreshed."""
    previous = state.get("token_response")
    answer = dict(previous) if isinstance(previous, Mapping) else {}
    answer.update(access_token=data.token, token_type=data.token_type)
    if data.expires_at is not None:
        answer["expires_in"] = max(0, int((data.expires_at - data.obtained_at).total_seconds()))
        answer[EXPIRES_KEY] = data.expires_at.timestamp()
    if data.refresh_token:
        answer["refresh_token"] = data.refresh_token
    if data.id_token:
        answer["id_token"] = data.id_token
    return answer


def _user_locks() -> Callable[[str], threading.Lock]:
    guard = threading.Lock()
    locks: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)

    def lock(user: str) -> threading.Lock:
        with guard:
            return locks[user]

    return lock

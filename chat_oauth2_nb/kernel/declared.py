"""Providers declared on the Jupyter server running this kernel: found by name, no secret here.

The administrator declares them once (``c.ChatOAuth2App.providers``); the server keeps the
client secret in its memory and the refresh tokens apart in the store, and tells its kernels
its API (``CHAT_OAUTH2_NB_SERVER_API_URL``, with a bearer token). A kernel learns the public
part (endpoints, scopes, client id), starts flows as usual (the server's callback exchanges
the code), reads access tokens from the shared store while they are valid, and asks the
server to refresh or revoke.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import httpx

from ..config import ProviderConfig
from ..declarations import error_from_payload
from ..errors import ConfigurationError, OAuth2Error
from ..notebook.client import OAuth2Client
from ..oauth import AuthData
from ..routes import SERVER_API_ENV, SERVER_API_TOKEN_ENV
from ..store import TokenRecord
from .users import UserLike, resolve_user
from .ways import Mode

__all__ = ["DeclaredClient", "declared_client", "declared_config", "providers"]

log = logging.getLogger("chat_oauth2_nb")

_PUBLIC_FIELDS = ("alias", "default_scopes", "client_id", "auth_uri", "issuer", "revoke_token_uri")


def _api() -> tuple[str, str] | None:
    url, token = os.environ.get(SERVER_API_ENV), os.environ.get(SERVER_API_TOKEN_ENV)
    return (url.rstrip("/"), token) if url and token else None


def _raise_from(answer: httpx.Response) -> None:
    try:
        body = answer.json()
    except ValueError:
        body = None
    raise error_from_payload(
        body, f"The Jupyter server answered HTTP {answer.status_code} for a declared provider"
    )


def _call(method: str, path: str, body: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
    api = _api()
    if api is None:
        raise ConfigurationError(
            "config",
            "names a provider declared on the Jupyter server, but this kernel has no server API",
            "Run the notebook in the Jupyter server that declares it.",
        )
    url, token = api
    try:
        answer = httpx.request(
            method,
            f"{url}/{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise OAuth2Error(
            f"The Jupyter server's chat-oauth2 API at {url} did not answer ({type(exc).__name__})",
            hint="Check that the Jupyter server running this kernel is still up.",
        ) from None
    if answer.status_code != 200:
        _raise_from(answer)
    result: dict[str, Any] = answer.json()
    return result


def _declared(timeout: float = 10.0) -> dict[str, dict[str, Any]]:
    if _api() is None:
        return {}
    found: dict[str, dict[str, Any]] = _call("GET", "providers", None, timeout)["providers"]
    return found


def providers() -> dict[str, dict[str, Any]]:
    """The providers declared on this kernel's Jupyter server: alias -> scopes, client id, endpoints.

    No secret is in it (the server never sends one). Empty when none are declared or the
    kernel runs outside a Jupyter server with the extension.
    """
    return {
        alias: {field: public.get(field) for field in _PUBLIC_FIELDS}
        for alias, public in _declared().items()
    }


def declared_config(name: str, timeout: float = 10.0) -> ProviderConfig | None:
    """The public config of the provider declared as ``name`` (no secret), or None."""
    public = _declared(timeout).get(name)
    if public is None:
        return None
    # The kernel's copy is a public client: it never talks to the token endpoint itself.
    return ProviderConfig.from_mapping(
        {**public, "client_auth_method": "none"}, allow_insecure_http=True, environ={}
    )


class DeclaredClient(OAuth2Client):
    """A client for a declared provider: the Jupyter server holds its secret and refresh tokens."""

    def __init__(self, config: ProviderConfig, *, mode: Mode | None = None, **kwargs: Any) -> None:
        if mode not in (None, "auto", "jupyter"):
            raise ConfigurationError(
                "mode",
                f"is {mode!r}, but {config.alias!r} is declared on the Jupyter server",
                "Leave mode out: a declared provider authorizes through the server's callback, "
                "where its client secret is.",
            )
        super().__init__(config, mode="jupyter", **kwargs)

    def __repr__(self) -> str:
        return f"<DeclaredClient alias={self.alias!r} client_id={self.config.client_id!r}>"

    @property
    def held_elsewhere(self) -> bool:
        """True: the Jupyter server (or the hub) holds this provider's secret."""
        return True

    def setup(self) -> str:
        """Pick the server's redirect URI; the server registered the provider itself."""
        with self._lock:
            self._closed.clear()
            return self.ways.choose()

    def _ask(self, key: str, seen: int | None, *, optional: bool = False) -> AuthData | None:
        """The server's token for ``key``: refreshed there unless its version moved past ``seen``."""
        body = {"user": key, "seen_version": seen, "leeway": self.leeway, "optional": optional}
        answer = _call("POST", f"token/{self.alias}", body, 3 * self.timeout + 40.0)
        if answer.get("data") is None:
            return None
        return AuthData.from_json(json.dumps(answer["data"]))

    def get_access_token_for_user(self, user: UserLike = None) -> AuthData | None:
        """The user's token from the store; the server refreshes it once it expired."""
        key = resolve_user(user)
        record = self._stored(key)
        if record is None:
            return None
        if record.data.is_expired(self.leeway):
            return self._ask(key, None) or record.data
        return record.data

    def refresh_user_access_token(self, user: UserLike = None) -> AuthData:
        """Have the server refresh the user's token now (joining one in flight); return it."""
        key = resolve_user(user)
        record = self._stored_or_raise(key)
        return self._refresh(key, record)

    def _refresh(self, key: str, seen: TokenRecord) -> AuthData:
        data = self._ask(key, seen.version)
        assert data is not None  # the server answers a token or an error for a refresh
        return data

    def _do_refresh(self, key: str, record: TokenRecord) -> AuthData:
        # Never here: the kernel has no refresh token of a declared provider to send.
        return self._refresh(key, record)

    def refresh_after_rejection(self, user: UserLike, used: AuthData) -> AuthData | None:
        """After an API answered 401 to ``used``: a newer or refreshed token, or None."""
        key = resolve_user(user)
        record = self._stored(key)
        if record is None:
            return None
        if record.data.token != used.token:
            return record.data
        return self._ask(key, record.version, optional=True)

    def revoke_user_access_token(self, user: UserLike = None) -> bool:
        """Have the server revoke the user's tokens at the provider and delete them."""
        key = resolve_user(user)
        if self._stored(key) is None:
            return False
        if self.config.revoke_token_uri is None:
            log.warning(
                "%r has no revokeTokenUri: deleting the token here only. %s",
                self.alias,
                self.revoke_advice() or "",
            )
        answer = _call("POST", f"revoke/{self.alias}", {"user": key}, 3 * self.timeout + 10.0)
        return bool(answer.get("revoked"))

    def _secret_needed(self, what: str) -> ConfigurationError:
        return ConfigurationError(
            "config",
            f"names {self.alias!r}, declared on the Jupyter server, which holds its secret",
            f"{what} is not available for declared providers from a kernel; ask the "
            "administrator (python -m chat_oauth2_nb.hub check runs the diagnosis).",
        )

    def introspect_user_token(self, user: UserLike = None) -> dict[str, Any]:
        """Not for declared providers: introspection needs the client secret."""
        raise self._secret_needed("Introspection")

    def start_device_authorization(self, user: UserLike = None, scopes: Any = None) -> Any:
        """Not for declared providers: the device grant needs the client secret."""
        raise self._secret_needed("The device authorization grant")


def declared_client(
    name: str, preset_params: dict[str, Any], **kwargs: Any
) -> DeclaredClient | None:
    """A client for ``name`` if it is declared on this server and no credentials were given here.

    A preset name with credentials in this kernel's environment stays the preset (the
    person's own client); any other name is looked up among the declared providers.
    """
    from ..config import env_var_name
    from ..presets import PRESETS

    if _api() is None or preset_params:
        return None
    own = os.environ.get(env_var_name(name, "CLIENT_ID"))
    if name in PRESETS and own:
        return None
    config = declared_config(name, timeout=float(kwargs.get("timeout", 10.0)))
    if config is None:
        return None
    return DeclaredClient(config, **kwargs)

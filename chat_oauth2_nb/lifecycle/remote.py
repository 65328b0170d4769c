"""The grants of whoever does not hold the client secret: ask the holder over HTTP.

A kernel asks its Jupyter server (the server's kernel API, with the token only its kernels
inherit); a Jupyter server in broker mode asks the hub's chat-oauth2 service (with its
``JUPYTERHUB_API_TOKEN``). Same class, another :class:`Holder`. The access tokens the holder
hands back are kept in this side's store; a refresh token never comes here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import httpx

from ..config import ProviderConfig, provider_identity
from ..declarations import error_from_payload
from ..errors import ConfigurationError, OAuth2Error
from ..oauth import AuthData
from ..store import HeldTokenStore, TokenRecord
from .grants import (
    deleted_while_refreshing,
    digest,
    nothing_stored,
    patiently,
    stored_for,
    warn_if_local_only,
)
from .wire import data_from_payload

__all__ = ["Holder", "RemoteGrants", "ask"]

log = logging.getLogger("chat_oauth2_nb")


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds the secret: where to ask, how to authenticate, and what to call it in errors."""

    url: str
    #: The Authorization header (a bearer token): never in a repr.
    headers: Mapping[str, str] = dataclasses.field(repr=False)
    #: What the holder is, for messages ("The hub's chat-oauth2 service").
    name: str
    #: Where it is, for messages ("the Jupyter server").
    place: str
    #: What to do when it does not answer.
    hint: str


def ask(
    holder: Holder, method: str, path: str, body: dict[str, Any] | None, timeout: float
) -> dict[str, Any]:
    """One call to the holder; its typed error raised again here when it answers one.

    A connection per call: calls are rare (a token gone stale, a revocation), and a pool
    kept by a client nobody closes would hold the holder's sockets open.
    """
    url = holder.url.rstrip("/")
    try:
        with httpx.Client() as http:
            answer = http.request(
                method, f"{url}/{path}", json=body, headers=dict(holder.headers), timeout=timeout
            )
    except httpx.HTTPError as exc:
        raise OAuth2Error(
            f"{holder.name} at {url} did not answer ({type(exc).__name__})", hint=holder.hint
        ) from None
    try:
        result = answer.json()
    except ValueError:
        result = None
    if answer.status_code != 200 or not isinstance(result, dict):
        raise error_from_payload(
            result, f"{holder.name} answered HTTP {answer.status_code}; {holder.hint}"
        )
    return result


class RemoteGrants:
    """Grants whose secret another process holds: it exchanges, refreshes and revokes."""

    def __init__(
        self,
        config: ProviderConfig,
        store: Callable[[], HeldTokenStore],
        *,
        holder: Holder,
        timeout: float = 10.0,
        leeway: float = 30.0,
    ) -> None:
        self._config = config
        self._store = store
        self.holder = holder
        self.timeout = timeout
        self.leeway = leeway
        self._identity = provider_identity(config)

    def __repr__(self) -> str:
        return f"<RemoteGrants alias={self.alias!r} holder={self.holder.url!r}>"

    @property
    def config(self) -> ProviderConfig:
        """The provider's public config (no secret)."""
        return self._config

    @property
    def alias(self) -> str:
        """The provider's alias."""
        return self._config.alias

    def _ask(self, action: str, body: dict[str, Any], slack: float) -> dict[str, Any]:
        # The holder may itself ask the provider (one deadline) and another holder: slack.
        timeout = 3 * self.timeout + slack
        return ask(self.holder, "POST", f"{action}/{self.alias}", body, timeout)

    def stored(self, user: str) -> TokenRecord | None:
        """The user's stored access token; ProviderMismatchError when another provider issued it."""
        return stored_for(self._store(), self._config, user)

    def token(
        self,
        user: str,
        *,
        have: str | None = None,
        force: bool = False,
        optional: bool = False,
        leeway: float | None = None,
    ) -> TokenRecord | None:
        """The stored access token while fresh; else what the holder decides (and refreshes).

        The holder refreshes only if the token this side has is still its latest: one
        refresh for all the kernels and servers that ask at once.
        """
        leeway = self.leeway if leeway is None else leeway
        record = self.stored(user)
        if record is None:
            return None
        mine = digest(record.data.token)
        if have is not None and have != mine:
            return record  # this side got a newer one meanwhile
        if not force and not record.data.is_expired(leeway):
            return record  # fresh: no need to ask
        body = {"user": user, "have": mine, "leeway": leeway, "force": force, "optional": optional}
        data = data_from_payload(self._ask("token", body, 40.0))
        if data is None:
            if optional:
                return None
            raise nothing_stored(user, self.alias)
        if data.token == record.data.token:
            return record
        return self._keep(user, data, record.version)

    def _keep(self, user: str, data: AuthData, version: int | None) -> TokenRecord:
        store = self._store()
        stored = patiently(
            store,
            lambda: store.put_token(
                self.alias, user, data, provider=self._identity, expect_version=version
            ),
        )
        # None: written meanwhile (on a shared store, by the holder itself): read what is there.
        found = stored or self.stored(user)
        if found is None:
            raise deleted_while_refreshing(user)
        return found

    def keep(self, user: str, data: AuthData) -> TokenRecord:
        """Store an access token the holder just handed over."""
        return self._keep(user, data, None)

    def exchange(
        self,
        user: str,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str,
        scopes: tuple[str, ...],
        nonce: str | None,
        note: Callable[[dict[str, Any]], None] | None = None,
    ) -> TokenRecord:
        """Have the holder exchange the code; store the access token it hands back."""
        body = {
            "user": user,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
            "scopes": list(scopes),
            "nonce": nonce,
        }
        answer = self._ask("exchange", body, 10.0)
        if note is not None and answer.get("exchange"):
            note(dict(answer["exchange"]))
        data = data_from_payload(answer)
        if data is None:
            raise OAuth2Error(
                f"{self.holder.name} exchanged the code but handed back no token",
                hint=self.holder.hint,
            )
        return self.keep(user, data)

    def revoke(self, user: str) -> bool:
        """Have the holder revoke at the provider; then delete the token here too."""
        if self.stored(user) is None:
            return False
        warn_if_local_only(self._config)
        answer = self._ask("revoke", {"user": user}, 10.0)
        self._store().delete_token(self.alias, user)
        return answer.get("revoked") is True

    def needs_secret(self, what: str) -> NoReturn:
        """Refuse ``what``: it needs the client secret, which the holder keeps."""
        raise ConfigurationError(
            "config",
            f"names {self.alias!r}, declared on {self.holder.place}, which holds its secret",
            f"{what} is not available for declared providers from here; ask the "
            "administrator (python -m chat_oauth2_nb.hub check runs the diagnosis).",
        )

    def introspect(self, user: str) -> dict[str, Any]:
        """Not here: introspection needs the client secret."""
        self.needs_secret("Introspection")

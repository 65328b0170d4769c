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

from ..config import ProviderConfig
from ..declarations import error_from_payload
from ..errors import ConfigurationError, GrantRevokedError, OAuth2Error, UntrustedPeer
from ..oauth import AuthData
from ..store import HeldTokenStore, TokenRecord
from .grants import (
    AuthorizationCode,
    Noter,
    TokenShelf,
    digest,
    nothing_stored,
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
    #: Makes the HTTP client for one call (url, timeout); it may refuse (``UntrustedPeer``)
    #: before the header is sent. The hub's service: ``store.hubpeer.hub_client``.
    connect: Callable[[str, float], httpx.Client] = dataclasses.field(
        default=lambda url, timeout: httpx.Client(timeout=timeout), repr=False
    )
    #: Aliases whose tokens the holder has before anyone authorizes here (the hub sign-in's).
    eager: frozenset[str] = frozenset()


def ask(
    holder: Holder, method: str, path: str, body: dict[str, Any] | None, timeout: float
) -> dict[str, Any]:
    """One call to the holder; its typed error raised again here when it answers one.

    A connection per call: calls are rare (a token gone stale, a revocation), and a pool
    kept by a client nobody closes would hold the holder's sockets open.
    """
    url = holder.url.rstrip("/")
    try:
        with holder.connect(url, timeout) as http:
            answer = http.request(
                method, f"{url}/{path}", json=body, headers=dict(holder.headers), timeout=timeout
            )
    except UntrustedPeer as exc:
        raise OAuth2Error(f"{holder.name} was not asked: {exc}", hint=holder.hint) from None
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


class RemoteGrants(TokenShelf):
    """Grants whose secret another process holds: it exchanges, refreshes and revokes."""

    def __init__(
        self,
        config: ProviderConfig,
        store: Callable[[], HeldTokenStore],
        *,
        holder: Holder,
        timeout: float = 10.0,
        leeway: float = 30.0,
        ask_when_empty: bool = False,
    ) -> None:
        """``timeout``: the holder's own deadline with the provider (this side waits longer).

        ``ask_when_empty``: with nothing stored here, ask the holder rather than answer None
        (the hub sign-in's token, which the holder has before anyone authorizes here).
        """
        super().__init__(config, store, leeway=leeway, hold_refresh_tokens=False)
        self.holder = holder
        self.timeout = timeout
        self.ask_when_empty = ask_when_empty or config.alias in holder.eager

    def _ask(self, action: str, body: dict[str, Any], slack: float) -> dict[str, Any]:
        # The holder may itself ask the provider (one deadline) and another holder: slack.
        timeout = 3 * self.timeout + slack
        return ask(self.holder, "POST", f"{action}/{self.alias}", body, timeout)

    def token(self, user: str, *, leeway: float | None = None) -> TokenRecord | None:
        """The stored access token while fresh (no request); else whatever the holder decides.

        The holder refreshes when it finds its own copy stale: one refresh for all the
        kernels and servers that ask at once.
        """
        leeway = self.leeway if leeway is None else leeway
        record = self.stored(user)
        if record is None and self._config.grant == "client_credentials":
            # The holder gets the client's own token: nothing to authorize first.
            return self._from_holder(user, None, {"leeway": leeway}, optional=False)
        if record is None and self.ask_when_empty:
            return self._from_holder(
                user, None, {"leeway": leeway, "optional": True}, optional=True
            )
        if record is None or not record.data.is_expired(leeway):
            return record
        return self._from_holder(user, record, {"leeway": leeway}, optional=False)

    def refresh(
        self, user: str, *, have: str | None = None, optional: bool = False
    ) -> TokenRecord | None:
        """Have the holder refresh now, unless a newer token than the caller's is here or there."""
        record = self.stored(user)
        if record is None and self.ask_when_empty:
            return self._from_holder(
                user, None, {"force": True, "optional": optional}, optional=optional
            )
        if record is None:
            return None
        mine = digest(record.data.token)
        if have is not None and have != mine:
            return record  # this side got a newer one meanwhile
        body = {"force": True, "have": mine, "optional": optional}
        return self._from_holder(user, record, body, optional=optional)

    def _from_holder(
        self, user: str, record: TokenRecord | None, body: dict[str, Any], *, optional: bool
    ) -> TokenRecord | None:
        try:
            answer = self._ask("token", {"user": user, **body}, 40.0)
        except GrantRevokedError:
            # The holder found the grant dead: so is this side's copy of its access token.
            if record is not None:
                self.bury(user, record)
            raise
        data = data_from_payload(answer)
        if data is None:
            if optional:
                return None
            raise nothing_stored(user, self.alias)
        if record is not None and data.token == record.data.token:
            return record
        return self._write(
            user, self._with_held_key(user, data), record.version if record is not None else None
        )

    def _with_held_key(self, user: str, data: AuthData) -> AuthData:
        """``data`` with the DPoP key of the same token, when this store holds it already.

        A kernel may share the holder's store: the holder wrote the token with its key, and
        the copy the holder hands back (which never carries a key) must not erase it.
        """
        current = self._store().get_token(self.alias, user)
        if current is None or current.data.token != data.token or not current.data.dpop_key:
            return data
        return dataclasses.replace(data, dpop_key=current.data.dpop_key)

    def exchange(
        self, user: str, code: AuthorizationCode, note: Noter | None = None
    ) -> TokenRecord:
        """Have the holder exchange the code; store the access token it hands back."""
        answer = self._ask("exchange", {"user": user, **dataclasses.asdict(code)}, 10.0)
        if note is not None and answer.get("exchange"):
            note(dict(answer["exchange"]))
        data = data_from_payload(answer)
        if data is None:
            raise OAuth2Error(
                f"{self.holder.name} exchanged the code but handed back no token",
                hint=self.holder.hint,
            )
        return self.keep(user, data)

    def keep(self, user: str, data: AuthData) -> TokenRecord:
        """Store the access token the holder handed back (it revoked any grant it replaced)."""
        return self._write(user, self._with_held_key(user, data), None)

    def revoke(self, user: str) -> bool:
        """Have the holder revoke at the provider; then delete the token here too."""
        if self._mine(user) is None:
            return False
        warn_if_local_only(self._config, secret_elsewhere=True)
        answer = self._ask("revoke", {"user": user}, 10.0)
        self._store().delete_token(self.alias, user)
        return answer.get("revoked") is True

    def proof(self, user: str, request: Mapping[str, object]) -> str:
        """A DPoP proof from the holder, which keeps the key (RFC 9449: it never travels)."""
        answer = self._ask("proof", {**request, "user": user}, 10.0)
        proof = answer.get("proof")
        if not isinstance(proof, str):
            raise OAuth2Error(f"{self.holder.name} gave no DPoP proof", hint=self.holder.hint)
        return proof

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

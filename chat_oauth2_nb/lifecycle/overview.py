"""Every provider and token of one user, and what can be done with each: the sidebar's truth.

The server's REST API (``server/api.py``) is a thin layer over this: which providers the
server knows (declared on it, declared on the hub, registered by a kernel's ``setup()``),
their stored tokens as masked views, and the actions — authorize (a pending flow and its
one-time start link, recorded as a kernel records one), refresh, revoke, the verified
claims — all through the one lifecycle. No secret leaves this module: a view holds masked
tokens, and an error is its typed form (what failed / what the provider said / what to do).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any, Literal

from ..config import ProviderConfig, provider_identity
from ..errors import (
    ActionUnavailableError,
    NotAuthorizedError,
    OAuth2Error,
    UnknownProviderError,
    did_you_mean,
)
from ..oauth import AuthData, mask
from ..oauth.redaction import redact
from ..store import DEFAULT_FLOW_TTL, PendingFlow, Store, TokenRecord
from .declared import DeclaredProviders
from .flows import new_flow
from .grants import Grants, is_dead
from .local import LocalGrants

__all__ = [
    "SOON",
    "Known",
    "Overview",
    "TokenStatus",
    "error_view",
    "token_status",
    "token_view",
]

#: Seconds before expiry from which a token "expires soon".
SOON = 300.0
TokenStatus = Literal[
    "authorized", "expires_soon", "expired", "refresh_expiring", "revoked", "error"
]
Way = Literal["jupyter", "hub", "loopback", "device", "paste", "none"]
#: Who started the flows this module records (``PendingFlow.client_ref``).
CLIENT_REF = "server-api"
_WAY_TEXT = {
    "jupyter": "The provider redirects the browser to this Jupyter server's callback.",
    "hub": "The provider redirects to the hub's chat-oauth2 service, which passes the "
    "browser on to this server.",
    "loopback": "The provider redirects to a listener on 127.0.0.1 in the notebook's kernel.",
    "paste": "The browser ends on an address nothing serves; the person pastes it back "
    "into the notebook.",
    "device": "The person types a code at the provider; the notebook polls for the token.",
    "none": "No redirect: this provider cannot be authorized from here.",
}


def error_view(exc: OAuth2Error, secrets: Sequence[str | None] = ()) -> dict[str, Any]:
    """A typed error as the API answers it: what failed, what the provider said, what to change.

    ``secrets``: masked wherever they appear, in any encoding (see :meth:`Overview.secrets`).
    """
    said = None
    if exc.error:
        said = exc.error + (f": {exc.error_description}" if exc.error_description else "")
    texts = (str(exc), exc.message, said, exc.hint)
    message, what, said, hint = (None if t is None else redact(t, secrets) for t in texts)
    return {
        "type": type(exc).__name__,
        "message": message,
        "what_failed": what,
        "provider_said": said,
        "what_to_change": hint,
    }


def token_status(data: AuthData, now: float, failed: bool = False) -> TokenStatus:
    """The one word for a stored token at ``now``; a later failed authorization wins over age."""
    if is_dead(data):
        return "revoked"
    if failed:
        return "error"
    if data.expires_at is None:
        return "authorized"
    remaining = data.expires_at.timestamp() - now
    if remaining <= 0:
        return "expired"
    return "expires_soon" if remaining <= SOON else "authorized"


def token_view(
    record: TokenRecord,
    *,
    now: float,
    requested: tuple[str, ...] = (),
    held_refresh: bool = False,
    error: OAuth2Error | None = None,
) -> dict[str, Any]:
    """The API's Token: status, times, scopes, the masked access token; never a secret."""
    data = record.data
    dead = is_dead(data)
    return {
        "alias": record.alias,
        "user": record.user,
        "status": token_status(data, now, failed=error is not None),
        "expires_at": data.expires_at.timestamp() if data.expires_at else None,
        "obtained_at": None if dead else data.obtained_at.timestamp(),
        "refreshed_at": record.updated_at,
        "scopes_granted": list(data.scopes),
        "scopes_requested": list(requested),
        "masked": "" if dead else mask(data.token),
        "has_refresh_token": not dead and (data.refresh_token is not None or held_refresh),
        # Providers give no refresh-token expiry in their answers; none is known.
        "refresh_expires_at": None,
        "bound": None if data.token_type.lower() == "bearer" or dead else data.token_type,
        "has_id_token": data.id_token is not None,
        "error": error_view(error) if error is not None else None,
    }


@dataclasses.dataclass(frozen=True)
class Known:
    """A provider the server knows, where it comes from, and what the server can do with it."""

    config: ProviderConfig
    source: Literal["server", "hub", "kernel"]
    redirect_uri: str | None
    way: Way
    can_authorize: bool
    can_act: bool
    why_not: str | None = None

    def view(self) -> dict[str, Any]:
        """The API's Provider (public part only)."""
        config = self.config
        return {
            "alias": config.alias,
            "title": config.alias,
            "source": self.source,
            "redirect_uri": self.redirect_uri,
            "way": self.way,
            "way_text": _WAY_TEXT[self.way],
            "scopes": list(config.default_scopes),
            "issuer": config.issuer,
            "can_authorize": self.can_authorize,
            "can_refresh": self.can_act,
            "can_revoke": self.can_act,
            "why_not": self.why_not,
        }


def _way_of(flow: PendingFlow | None, hub_base: str) -> Way:
    if flow is None or flow.endpoint == "server":
        return "hub" if hub_base and flow and flow.redirect_uri.startswith(hub_base) else "jupyter"
    return flow.endpoint if flow.endpoint in ("loopback", "paste", "device") else "none"


class Overview:
    """One user's providers and tokens in one store, and the actions on them."""

    def __init__(
        self,
        declared: DeclaredProviders,
        store: Store,
        *,
        user: str,
        callback_base: str,
        hub_callback_base: str = "",
        flow_ttl: float = DEFAULT_FLOW_TTL,
    ) -> None:
        """``callback_base``: the redirect URI base kernels of this server use (``…/callback``)."""
        self.declared = declared
        self.store = store
        self.user = user
        self.callback_base = callback_base.rstrip("/")
        self.hub_base = hub_callback_base.rstrip("/")
        self.flow_ttl = flow_ttl

    def _declared_known(self, config: ProviderConfig) -> Known:
        on_hub = self.declared.holder is not None
        uri = f"{self.callback_base}/{config.alias}"
        way: Way = "hub" if self.hub_base and uri.startswith(self.hub_base) else "jupyter"
        return Known(config, "hub" if on_hub else "server", uri, way, True, True)

    def _kernel_known(self, config: ProviderConfig) -> Known:
        flow = self.store.latest_flow(config.alias, self.user)
        way = _way_of(flow, self.hub_base)
        uri = flow.redirect_uri if flow is not None else f"{self.callback_base}/{config.alias}"
        can_act = config.client_auth_method == "none" or bool(config.client_secret)
        why = None
        if not can_act:
            why = (
                "The notebook that set it up holds its client secret: refresh or revoke "
                "there (open it), or declare the provider on the server."
            )
        can_authorize = can_act and way in ("jupyter", "hub")
        if can_act and not can_authorize:
            why = (
                f"It authorizes by {way} (its redirect URI is {uri or 'none'}): open the "
                "notebook that set it up to authorize."
            )
        return Known(config, "kernel", uri or None, way, can_authorize, can_act, why)

    def providers(self) -> list[Known]:
        """Declared providers first (the server's or the hub's), then kernels' registrations."""
        known = [self._declared_known(config) for config in self.declared.declared.values()]
        seen = {k.config.alias for k in known}
        for config in self.store.list_providers():
            if config.alias not in seen:
                seen.add(config.alias)
                known.append(self._kernel_known(config))
        return known

    def find(self, alias: str, providers: list[Known] | None = None) -> Known:
        """The provider ``alias``; UnknownProviderError (with a did-you-mean) when none is."""
        known = self.providers() if providers is None else providers
        for entry in known:
            if entry.config.alias == alias:
                return entry
        aliases = [k.config.alias for k in known]
        hint = did_you_mean(alias, aliases) or None
        listed = ", ".join(repr(a) for a in aliases) or "none"
        raise UnknownProviderError(
            f"No provider is known here as {alias!r} (known: {listed})",
            hint=hint
            or "Declare it (c.ChatOAuth2App.providers) or run its notebook's setup() first.",
        )

    def grants(self, alias: str) -> Grants:
        """The grants that act on ``alias``'s tokens from this server."""
        entry = self.find(alias)
        if not entry.can_act:
            raise ActionUnavailableError(
                f"This server cannot act for {alias!r}", hint=entry.why_not
            )
        if entry.source != "kernel":
            return self.declared.grants(alias, self.store)
        return LocalGrants(entry.config, lambda: self.store, connections=self.declared.connections)

    def state(self) -> dict[str, Any]:
        """``{"now", "user", "providers", "tokens"}`` as the API's ``api/state`` answers."""
        now = time.time()
        known = self.providers()
        configs = {k.config.alias: k.config for k in known}
        tokens = [
            self._view(record, configs.get(record.alias), now)
            for record in self.store.list_tokens()
            if record.user == self.user
        ]
        return {
            "now": now,
            "user": self.user,
            "providers": [k.view() for k in known],
            "tokens": tokens,
        }

    def _view(
        self, record: TokenRecord, config: ProviderConfig | None, now: float
    ) -> dict[str, Any]:
        flow = self.store.latest_flow(record.alias, self.user)
        failed = (
            flow.error.to_exception()
            if flow is not None
            and flow.error is not None
            and (flow.finished_at or 0) > record.updated_at
            else None
        )
        requested = config.default_scopes if config is not None else ()
        if flow is not None and flow.status == "done":
            requested = flow.scopes
        held = False
        if config is not None and record.data.refresh_token is None:
            identity = record.provider or provider_identity(config)
            held = self.store.get_held_refresh_token(record.alias, self.user, identity) is not None
        return token_view(record, now=now, requested=requested, held_refresh=held, error=failed)

    def token(self, alias: str) -> dict[str, Any] | None:
        """The view of ``alias``'s stored token for this user, or None."""
        record = self.store.get_token(alias, self.user)
        if record is None:
            return None
        config = self.find(alias).config
        return self._view(record, config, time.time())

    def authorize(self, alias: str) -> PendingFlow:
        """Record a pending flow for ``alias`` as a kernel does; the caller hands out its start link."""
        entry = self.find(alias)
        if not entry.can_authorize or not entry.redirect_uri:
            raise ActionUnavailableError(
                f"{alias!r} cannot be authorized from this server", hint=entry.why_not
            )
        flow = new_flow(
            entry.config,
            user=self.user,
            redirect_uri=entry.redirect_uri,
            scopes=entry.config.default_scopes,
            origin="panel",
            client_ref=CLIENT_REF,
            endpoint="server",
            ttl=self.flow_ttl,
        )
        self.store.add_flow(flow)
        return flow

    def refresh(self, alias: str) -> dict[str, Any]:
        """Refresh ``alias``'s token now; its new view."""
        grants = self.grants(alias)
        if grants.refresh(self.user) is None:
            raise NotAuthorizedError(
                f"Nothing is stored for {self.user!r} at {alias!r}", hint="Authorize first."
            )
        view = self.token(alias)
        assert view is not None
        return view

    def revoke(self, alias: str) -> bool:
        """Revoke ``alias``'s token at the provider and delete it; False when none was stored."""
        return self.grants(alias).revoke(self.user)

    def stored_token(self, alias: str, user: str) -> TokenRecord | None:
        """``alias``'s record for ``user`` as the doctor reads it: with the refresh token held apart.

        A declared provider's refresh token is kept out of the token row (kernels read the
        row); without it the doctor would warn that no refresh token is stored.
        """
        record = self.store.get_token(alias, user)
        if record is None or record.data.refresh_token is not None:
            return record
        config = self.find(alias).config
        identity = record.provider or provider_identity(config)
        held = self.store.get_held_refresh_token(alias, user, identity)
        if held is None:
            return record
        return dataclasses.replace(
            record, data=dataclasses.replace(record.data, refresh_token=held)
        )

    def secrets(self, alias: str) -> list[str | None]:
        """Every secret this server holds for ``alias`` and this user, to mask in any answer.

        A provider's error text is masked with the secrets of the request it answered; a
        hostile or careless one may also quote a token it was not sent (the access token in
        an answer to a refresh, an earlier token): the API masks all of them.
        """
        found: list[str | None] = []
        for config in [k.config for k in self.providers() if k.config.alias == alias]:
            found.append(config.client_secret)
            record = self.store.get_token(alias, self.user)
            if record is not None:
                data = record.data
                found += [data.token, data.refresh_token, data.id_token]
                identity = record.provider or provider_identity(config)
                found.append(self.store.get_held_refresh_token(alias, self.user, identity))
        return found

    def claims(self, alias: str) -> dict[str, Any]:
        """The verified id_token claims of ``alias``'s token; NotAuthorizedError when there are none."""
        self.find(alias)
        record = self.store.get_token(alias, self.user)
        claims = record.data.claims if record is not None and not is_dead(record.data) else None
        if claims is None:
            raise NotAuthorizedError(
                f"No verified id_token claims are stored for {self.user!r} at {alias!r}",
                hint="Authorize with the 'openid' scope at a provider whose issuer and jwksUri "
                "are configured.",
            )
        masked: dict[str, Any] = _masked(dict(claims), self.secrets(alias))
        return masked


def _masked(value: Any, secrets: Sequence[str | None]) -> Any:
    """A JSON value with every secret in its strings masked (a provider may put one in a claim)."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {str(key): _masked(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item, secrets) for item in value]
    return value

"""Tokens for other resources (RFC 8707) from the one grant: what is asked, where it is kept.

A grant (one sign-in) has its own token, in the token row. A token for another resource, or
for scopes the grant's token does not carry (Entra: one resource per access token), comes
from the grant's refresh token and is kept apart, by (alias, user, resource), without any
refresh token. A claims challenge (Entra's continuous access evaluation) always gets a new
one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from urllib.parse import urlsplit

from ..config import ProviderConfig
from ..errors import ConfigurationError
from ..oauth import AuthData, HttpRequest, refresh_request
from ..store import TokenRecord

__all__ = ["Target", "is_entra", "resource_of_scopes", "target_for"]


@dataclasses.dataclass(frozen=True)
class Target:
    """What a token is asked for: a resource, scopes, and the claims a challenge wants."""

    #: The resource URI ('' when the scopes alone say what the token is for).
    resource: str = ""
    scopes: tuple[str, ...] = ()
    #: The claims a resource's challenge asked for (JSON); forces a new token.
    claims: str | None = None
    #: Whether the request names the resource (RFC 8707); Entra's v2.0 endpoint wants the
    #: resource in the scope only and refuses the parameter.
    send_resource: bool = True

    @property
    def key(self) -> str:
        """Where the token is kept: the resource, else the scopes it was asked for."""
        return self.resource or "scope:" + " ".join(sorted(self.scopes))

    def still_good(
        self, held: TokenRecord | None, provider: str, leeway: float
    ) -> TokenRecord | None:
        """``held`` (the token kept for this resource) while it does; never for a challenge."""
        if held is None or self.claims is not None or held.provider != provider:
            return None
        return None if held.data.is_expired(leeway) else held

    def refresh_request(self, config: ProviderConfig, refresh_token: str) -> HttpRequest:
        """The refresh request that asks the grant for a token for this target."""
        return refresh_request(
            config,
            refresh_token=refresh_token,
            scopes=self.scopes,
            resource=self.resource if self.send_resource else "",
            claims=self.claims,
        )

    def served_by(self, data: AuthData) -> bool:
        """Whether ``data`` (the grant's own token) already is what is asked."""
        if self.claims is not None:
            return False
        if not self.scopes:
            return not self.resource or self.resource == data.resource
        # Scopes the grant's token carries: it is for their resource (unless it says otherwise).
        other = bool(self.resource and data.resource and self.resource != data.resource)
        return not other and set(self.scopes) <= set(data.scopes)


def is_entra(config: ProviderConfig) -> bool:
    """Whether the token endpoint is Microsoft Entra ID's v2.0 one (scope names the resource)."""
    parts = urlsplit(config.access_token_uri)
    host = (parts.hostname or "").lower()
    return host.startswith("login.microsoftonline.") or host == "login.microsoft.com"


def resource_of_scopes(scopes: Iterable[str]) -> str:
    """The resource the scopes name (``https://storage.azure.com/.default`` → its origin part).

    '' when no scope is a URI (Entra reads those as Microsoft Graph's).
    """
    found = dict.fromkeys(
        scope.rsplit("/", 1)[0] for scope in scopes if "://" in scope and "/" in scope[8:]
    )
    if len(found) > 1:
        raise ConfigurationError(
            "scopes",
            f"name several resources ({', '.join(found)}); one access token is for one",
            "Ask for one resource's scopes at a time, e.g. get_token('https://storage.azure.com/.default').",
        )
    return next(iter(found), "")


def target_for(
    config: ProviderConfig,
    scopes: Iterable[str] = (),
    *,
    resource: str | None = None,
    claims: str | None = None,
) -> Target:
    """What to ask ``config``'s provider for, for these scopes (and resource, and claims)."""
    wanted = tuple(dict.fromkeys(scopes))
    uri = resource if resource is not None else resource_of_scopes(wanted)
    return Target(uri, wanted, claims, send_resource=bool(uri) and not is_entra(config))

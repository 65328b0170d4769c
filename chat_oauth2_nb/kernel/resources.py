"""Tokens for other resources from the user's one grant (RFC 8707; Entra's multi-resource refresh).

What a kernel asks; the grants (:meth:`LocalGrants.token_for`) decide whether the token
kept for that resource still does or a new one comes from the refresh token.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ConfigurationError
from ..lifecycle.grants import Grants
from ..lifecycle.local import LocalGrants
from ..lifecycle.resources import target_for
from ..store import TokenRecord

__all__ = ["resource_token"]


def resource_token(
    grants: Grants,
    user: str,
    scopes: Iterable[str] = (),
    resource: str | None = None,
    claims: str | None = None,
) -> TokenRecord | None:
    """The user's token for ``resource`` (else the resource ``scopes`` name); None if none is stored.

    ``claims``: a resource's claims challenge, which always gets a new token.
    """
    if not isinstance(grants, LocalGrants):
        raise ConfigurationError(
            "resource",
            f"tokens for other resources of {grants.config.alias!r} need the refresh token, "
            "which the Jupyter server or the hub holds for a declared provider",
            "Ask the administrator to declare one provider per resource, or use a client "
            "with its own credentials.",
        )
    target = target_for(grants.config, scopes, resource=resource, claims=claims)
    return grants.token_for(user, target)

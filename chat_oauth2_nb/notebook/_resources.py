"""The client's tokens for other resources (RFC 8707) and its azure-core credentials.

A part of :class:`~chat_oauth2_nb.notebook.client.OAuth2Client`, kept in its own room.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from ..kernel.users import UserLike, resolve_user
from ..oauth import AuthData

if TYPE_CHECKING:
    from ..kernel.adapters import AsyncAzureCredential, AzureCredential, _AzureSource
    from ..lifecycle.grants import Grants

__all__ = ["ResourceMethods"]


class ResourceMethods:
    """Tokens per resource from the user's one grant; azure-core credentials built on them."""

    grants: Grants

    def _key(self, user: UserLike) -> str:
        """Under which name ``user``'s token is stored (the client overrides it)."""
        return resolve_user(user)

    def get_access_token_for_resource(
        self, user: UserLike = None, *, resource: str | None = None, scopes: Iterable[str] = ()
    ) -> AuthData | None:
        """A token for ``resource`` (RFC 8707) or the resource ``scopes`` name, from one grant.

        The grant's own token when it serves; else one kept per (alias, user, resource), got
        with the refresh token when missing or stale. None when the user never authorized.
        """
        from ..kernel.resources import resource_token

        record = resource_token(self.grants, self._key(user), scopes, resource)
        return None if record is None else record.data

    def azure_credential(self, user: UserLike = None) -> AzureCredential:
        """An azure-core ``TokenCredential``: a token per scope's resource from one grant."""
        from ..kernel.adapters import AzureCredential

        return AzureCredential(cast("_AzureSource", self), self._key(user))

    def azure_async_credential(self, user: UserLike = None) -> AsyncAzureCredential:
        """:meth:`azure_credential` as an ``AsyncTokenCredential``, for azure-core async clients."""
        from ..kernel.adapters import AsyncAzureCredential

        return AsyncAzureCredential(cast("_AzureSource", self), self._key(user))

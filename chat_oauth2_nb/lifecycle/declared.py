"""The providers an administrator declared, and the grants of each.

The Jupyter server holds its declared providers' full configs (client secrets in its memory)
and refreshes and revokes for its kernels, the refresh tokens kept apart in the store; in
broker mode (JupyterHub) the hub's service holds them instead and this server asks it. The hub's
service holds them itself. Each is a :class:`DeclaredProviders` with or without a
:class:`~chat_oauth2_nb.lifecycle.remote.Holder` to ask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import ProviderConfig, provider_identity
from ..declarations import public_part
from ..errors import UnknownProviderError, did_you_mean
from ..store import HeldTokenStore
from .grants import Connections, Grants
from .local import LocalGrants
from .remote import Holder, RemoteGrants

__all__ = ["DeclaredProviders"]


class DeclaredProviders:
    """alias -> declared config; the grants that refresh and revoke each one's tokens."""

    def __init__(
        self,
        declared: Mapping[str, ProviderConfig],
        *,
        timeout: float = 10.0,
        holder: Holder | None = None,
        where: str = "c.ChatOAuth2App.providers",
        login: str | None = None,
    ) -> None:
        """``holder``: who holds the secrets (the hub's service); None: this process does.

        ``where``: where an administrator declares them, for messages. ``login``: the alias
        of the hub sign-in's provider, whose tokens the holder has before anyone authorizes
        here.
        """
        self.declared = dict(declared)
        self.where = where
        self.holder = holder
        self.login = login
        self.connections = Connections(timeout)

    def __repr__(self) -> str:
        return f"<DeclaredProviders providers={sorted(self.declared)!r} holder={self.holder!r}>"

    def public(self) -> dict[str, dict[str, Any]]:
        """alias -> the public part of each declared provider (no secret)."""
        return {alias: public_part(config) for alias, config in self.declared.items()}

    def config_for(self, alias: str) -> ProviderConfig:
        """The declared config of ``alias``, secret included; UnknownProviderError when undeclared."""
        config = self.declared.get(alias)
        if config is None:
            guess = did_you_mean(alias, self.declared)
            declared = ", ".join(sorted(self.declared)) or "none"
            hint = (
                f"Declared ({self.where}): {declared}. Ask the administrator to declare it "
                "there, or pass a config and credentials to create_oauth2_client()."
            )
            raise UnknownProviderError(
                f"No provider is declared as {alias!r} here", hint=f"{guess} {hint}".strip()
            )
        return config

    def grants(self, alias: str, store: HeldTokenStore) -> Grants:
        """The grants of the declared provider ``alias`` over ``store``."""
        config = self.config_for(alias)
        if self.holder is not None:
            return RemoteGrants(
                config,
                lambda: store,
                holder=self.holder,
                timeout=self.connections.timeout,
                ask_when_empty=alias == self.login,
            )
        return LocalGrants(
            config, lambda: store, connections=self.connections, hold_refresh_tokens=True
        )

    def for_flow(self, config: ProviderConfig, store: HeldTokenStore) -> Grants:
        """The grants a flow's code is exchanged with.

        The declared provider's when the flow's provider is it (same alias, client id and
        issuer or token endpoint: the kernel's copy has no secret); else the flow's own
        provider, registered by a kernel with its secret, its refresh token in the token row.
        """
        held = self.declared.get(config.alias)
        if (
            held is not None
            and held.client_id == config.client_id
            and provider_identity(held) == provider_identity(config)
        ):
            return self.grants(config.alias, store)
        return LocalGrants(config, lambda: store, connections=self.connections)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.connections.close()

"""What the widgets need from a client, declared here so that they never import the façade.

The notebook façade (``chat_oauth2_nb.notebook.client.OAuth2Client``) sits above the widgets
and hands itself to them; these protocols name the part of it the panel and the dashboard
call, and a type checker holds the façade to them where it builds a panel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeAlias

from ..config import ProviderConfig
from ..kernel.users import UserLike
from ..oauth import AuthData, DeviceAuthorization, HttpExchange
from ..store import FlowOrigin, PendingFlow, Store, TokenRecord

__all__ = ["Check", "ClientFactory", "PanelClient", "Report", "TokenClient"]


class Check(Protocol):
    """One row of a configuration check's report."""

    @property
    def title(self) -> str:
        """What was checked."""

    @property
    def verdict(self) -> str:
        """ok, warn, fail or skipped."""

    @property
    def evidence(self) -> str:
        """What was seen."""

    @property
    def action(self) -> str:
        """What to do (empty: nothing)."""


class Report(Protocol):
    """A configuration check's report, as the panel shows it (it holds no secret)."""

    @property
    def checks(self) -> Sequence[Check]:
        """Every check, in the doctor's order."""

    def summary(self) -> str:
        """One line: how many checks ended with each verdict."""

    def _repr_html_(self) -> str:
        """The report as an HTML table."""


class TokenClient(Protocol):
    """What the dashboard calls: refresh, revoke and close, for one provider."""

    @property
    def config(self) -> ProviderConfig:
        """The provider's configuration."""

    @property
    def alias(self) -> str:
        """The provider's alias."""

    def refresh_user_access_token(self, user: UserLike = None) -> AuthData:
        """Refresh ``user``'s token now; the new one."""

    def revoke_user_access_token(self, user: UserLike = None) -> bool:
        """Revoke ``user``'s token and delete it here; False when nothing was stored."""

    def close(self) -> None:
        """Stop what the client started (listener, connections)."""


class PanelClient(TokenClient, Protocol):
    """What the panel calls: set-up, the flows of every way, tokens, and the HTTP log."""

    @property
    def store(self) -> Store:
        """The token store shared with the Jupyter server."""

    @property
    def redirect_uri(self) -> str | None:
        """The redirect URI in use once setup() ran."""

    @property
    def way(self) -> str | None:
        """How the client authorizes once setup() ran: jupyter, loopback, device or paste."""

    @property
    def held_elsewhere(self) -> bool:
        """Whether another process (the Jupyter server or the hub) holds the secret."""

    @property
    def http_log(self) -> Sequence[HttpExchange]:
        """The client's recent requests, secrets masked."""

    def setup(self) -> str:
        """Register the provider and pick the redirect URI; return it."""

    def stored_token(self, user: UserLike = None) -> TokenRecord | None:
        """The record stored for ``user``; raises ProviderMismatchError for another provider's."""

    def start_flow(
        self, user: UserLike = None, scopes: str | None = None, *, origin: FlowOrigin = "code"
    ) -> tuple[PendingFlow, str]:
        """Record a new flow the client's way; return it with its link (opaque id only)."""

    def start_paste_flow(
        self, user: UserLike = None, scopes: str | None = None, *, origin: FlowOrigin = "panel"
    ) -> tuple[PendingFlow, str]:
        """Record a new paste-back flow whatever the client's way; return it with its link."""

    def start_link(self, flow: PendingFlow) -> str:
        """The start link of a pending flow this client can serve."""

    def note_flow_exchange(self, flow: PendingFlow) -> None:
        """Add the code exchange the callback made for ``flow`` to the HTTP log, once."""

    def start_device_authorization(self, user: UserLike = None) -> DeviceAuthorization:
        """Ask the provider for a device code (recorded as a flow in the store)."""

    def poll_device_authorization(self, flow: PendingFlow) -> None:
        """Poll for a device flow once, if due; an expired code is marked so without a request."""

    def complete_authorization(self, url_or_query: str, user: UserLike = None) -> AuthData:
        """Finish a flow from the address the browser ended on, pasted by the person."""

    def revoke_advice(self) -> str | None:
        """How to revoke at the provider when it has no revocation endpoint."""

    def diagnose(self, user: UserLike = None) -> Report:
        """Check the configuration against the provider."""


#: Builds a client for a provider registered in a store (the dashboard's rows).
ClientFactory: TypeAlias = Callable[[ProviderConfig, Store], TokenClient]

"""What the doctor diagnoses: a provider configuration and the few things around it.

The doctor sits below the notebook's client façade, so it never takes the client itself:
``OAuth2Client.diagnose()`` builds a :class:`Subject` from its documented members, and the
hub's ``check`` command builds one from a declared configuration alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import httpx

from ..config import ProviderConfig
from ..errors import ConfigurationError
from ..oauth import HttpExchange
from ..store import TokenRecord

__all__ = ["Subject"]


def _nothing_stored(user: str) -> TokenRecord | None:
    """No store at all: nothing is stored for anyone."""
    return None


def _forget(exchange: HttpExchange) -> None:
    """Nobody keeps the doctor's requests."""


@dataclasses.dataclass(frozen=True)
class Subject:
    """One provider configuration to diagnose, and how to reach the provider.

    Attributes:
        config: the provider configuration, client secret included (it never reaches
            the report: every sentence is masked with it).
        redirect_uri: the redirect URI the client uses; empty or None for a client that
            authorizes by device code.
        timeout: seconds each request to the provider may take.
        transport: the httpx transport to send through (None: the network).
        stored_token: the token record stored for a user key, or None; may raise
            ProviderMismatchError when the stored token belongs to another configuration.
        log: called with every request the doctor makes and its answer, both masked
            (the client's ``http_log.append``).
    """

    config: ProviderConfig
    redirect_uri: str | None
    timeout: float = 10.0
    transport: httpx.BaseTransport | None = None
    stored_token: Callable[[str], TokenRecord | None] = _nothing_stored
    log: Callable[[HttpExchange], object] = _forget

    def __post_init__(self) -> None:
        # The hub's `check` passes --timeout straight through: refuse what httpx would
        # turn into an odd failure on every request, as the client's constructor does.
        if not isinstance(self.timeout, (int, float)) or not self.timeout > 0:
            raise ConfigurationError(
                "timeout", f"is {self.timeout!r}", "Give a number of seconds > 0."
            )

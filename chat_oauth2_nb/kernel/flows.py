"""Authorization flows on the kernel side: start one, watch it, wait for it, read how it ended.

A flow lives in the store, not in this process: the browser's redirect may finish it in the
Jupyter server, another kernel may wait for it, a panel may show it. So everything here reads
the store, and a failure comes back as the typed :class:`~chat_oauth2_nb.store.FlowError`
record the finishing process wrote. Waiting is plain polling of indexed rows (a few SQLite
reads every 50 ms), in a loop that the sync and the async waits share; the async one awaits
between looks, so a cancelled task or :meth:`Waiter.stop` ends it at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable

from ..config import ProviderConfig, provider_identity
from ..errors import (
    AuthorizationCancelledError,
    AuthorizationTimeoutError,
    NotAuthorizedError,
    OAuth2Error,
    StateError,
)
from ..lifecycle.flows import new_flow
from ..oauth import AuthData, device_code_expired_error
from ..store import FLOW_EXPIRED, FlowError, PendingFlow, Store

__all__ = [
    "POLL_INTERVAL",
    "Outcome",
    "Waiter",
    "belongs_to",
    "error_from_flow",
    "new_flow",
    "provider_url",
    "read_outcome",
]

#: Seconds between two looks at the store while waiting.
POLL_INTERVAL = 0.05


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a flow ended: the token, or the typed error."""

    data: AuthData | None
    error: OAuth2Error | None

    def result(self) -> AuthData:
        """The token, or raise the error."""
        if self.error is not None:
            raise self.error
        assert self.data is not None
        return self.data


def belongs_to(flow: PendingFlow, config: ProviderConfig) -> bool:
    """Whether ``flow`` was started with ``config``'s provider (issuer, or endpoint + client id).

    Two kernels may use one alias for two providers: a flow's link, device code and code go
    only to the provider that issued them (mix-up, RFC 9700 §4.4), so a client never polls,
    links, adopts or finishes another provider's flow.
    """
    return flow.provider is not None and provider_identity(flow.provider) == provider_identity(
        config
    )


def provider_url(config: ProviderConfig, flow: PendingFlow) -> str:
    """The provider's authorization URL for ``flow`` (state, S256 challenge, nonce).

    Built from the provider recorded with the flow, as the start link's redirect is.
    """
    return flow.authorization_url(flow.provider or config)


_UNKNOWN = FlowError(kind="exchange", message="The authorization failed")


def error_from_flow(flow: PendingFlow) -> OAuth2Error:
    """The typed error recorded for a failed flow."""
    return (flow.error or _UNKNOWN).to_exception()


def read_outcome(
    store: Store,
    flow: PendingFlow,
    token_of: Callable[[str], AuthData | None],
    seen: Callable[[PendingFlow], None] = lambda _: None,
) -> Outcome | None:
    """How ``flow`` ended, or None while it is still running.

    ``token_of(user)`` reads the token a finished flow stored; ``seen(flow)`` is called with
    every fresh read of the flow (the client adds the callback's exchange to its HTTP log).
    """
    current = store.get_flow(flow.state)
    if current is None:
        return Outcome(None, StateError("The pending authorization disappeared from the store"))
    seen(current)
    if current.status == "done":
        data = token_of(flow.user)
        if data is None:
            return Outcome(None, NotAuthorizedError("The token was removed after authorization"))
        return Outcome(data, None)
    if current.status == "error":
        return Outcome(None, error_from_flow(current))
    if current.status == "pending" and current.expires_at <= time.time():
        if current.origin == "device":
            return Outcome(None, device_code_expired_error())
        return Outcome(None, error_from_flow(dataclasses.replace(current, error=FLOW_EXPIRED)))
    return None


class Waiter:
    """Follows one flow a client started (and the others it starts for the same user).

    Another link of the same client and user (the panel's, say) finishing first is the
    authorization the caller waits for too; flows of other clients (another kernel, another
    notebook) never are.
    """

    def __init__(
        self,
        store: Store,
        flow: PendingFlow,
        *,
        client_ref: str | None,
        token_of: Callable[[str], AuthData | None],
        seen: Callable[[PendingFlow], None],
        stopped: threading.Event,
        timeout: float,
        step: Callable[[PendingFlow], None] | None = None,
    ) -> None:
        self._store = store
        self._flow = flow
        self._client_ref = client_ref
        self._token_of = token_of
        self._seen = seen
        self._stopped = stopped
        self._timeout = timeout
        # Work a flow needs from its waiter (a device flow: poll the token endpoint when due).
        self._step = step
        self._since = min(time.time(), flow.created_at)

    def look(self) -> Outcome | None:
        """One look at the store: the outcome, or None while nothing ended yet."""
        if self._step is not None:
            self._step(self._flow)
        outcome = read_outcome(self._store, self._flow, self._token_of, self._seen)
        if outcome is not None:
            return outcome
        flow = self._flow
        other = self._store.finished_flow_since(
            flow.alias, flow.user, self._since, client_ref=self._client_ref
        )
        if other is not None and other.state != flow.state:
            return read_outcome(self._store, other, self._token_of, self._seen)
        return None

    def _ended_without(self) -> OAuth2Error:
        if self._stopped.is_set():
            return AuthorizationCancelledError(
                "The client was closed while waiting for the authorization",
                hint="Call client.setup() and wait_for_authorization() again.",
            )
        if self._flow.origin == "device":
            hint = (
                "Open the verification page, type the code and approve, or call "
                "wait_for_authorization() again with a longer timeout."
            )
        else:
            hint = (
                "Open the authorization link and approve, or call wait_for_authorization() "
                "again with a longer timeout. If the provider showed its own error page, "
                f"register exactly {self._flow.redirect_uri} as a redirect URI there."
            )
        return AuthorizationTimeoutError(
            f"No browser completed the authorization for {self._flow.user!r} within "
            f"{self._timeout:g} s",
            hint=hint,
        )

    def wait(self) -> AuthData:
        """Block until the flow ends; return its token or raise its typed error."""
        deadline = time.monotonic() + self._timeout
        while True:
            outcome = self.look()
            if outcome is not None:
                return outcome.result()
            if time.monotonic() >= deadline or self._stopped.wait(POLL_INTERVAL):
                raise self._ended_without()

    async def wait_async(self) -> AuthData:
        """Await the flow's end without blocking the event loop (cancellable at every look)."""
        deadline = time.monotonic() + self._timeout
        while True:
            outcome = await asyncio.to_thread(self.look)
            if outcome is not None:
                return outcome.result()
            if time.monotonic() >= deadline or self._stopped.is_set():
                raise self._ended_without()
            await asyncio.sleep(POLL_INTERVAL)

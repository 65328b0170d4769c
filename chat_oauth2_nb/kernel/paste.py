"""Paste-back: read the address the browser ended on, as the person pasted it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ..config import ProviderConfig
from ..errors import ConfigurationError, StateError
from ..lifecycle.callback import Arrival, complete_with_registered
from ..routes import CALLBACK_TAIL
from ..store import PendingFlow, Store
from .flows import belongs_to

__all__ = ["Pasted", "finish_pasted", "read_pasted"]


@dataclasses.dataclass(frozen=True)
class Pasted:
    """A pasted redirect: its query parameters, and where it was sent (when a whole URL was pasted)."""

    params: dict[str, list[str]]
    #: scheme://host/path the browser ended on; None when only the query was pasted.
    at: str | None
    #: The alias in the callback path (``…/callback/<alias>``), if any.
    path_alias: str | None

    @property
    def state(self) -> str:
        """The ``state`` parameter ('' when missing)."""
        return (self.params.get("state") or [""])[0]


def read_pasted(url_or_query: str) -> Pasted:
    """Read a whole address or just its query; an empty paste says what to paste."""
    text = url_or_query.strip()
    if not text:
        raise ConfigurationError(
            "url_or_query",
            "is empty",
            "Paste the whole address from the browser's address bar.",
        )
    at: str | None = None
    path_alias: str | None = None
    if "://" in text:
        parts = urlsplit(text)
        query = parts.query
        at = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        match = CALLBACK_TAIL.search(parts.path)
        path_alias = match.group(1)[1:] if match and match.group(1) else None
    else:
        query = text.lstrip("?")
    return Pasted(parse_qs(query, keep_blank_values=True), at, path_alias)


def _same_address(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port, pa.path.rstrip("/")) == (
        pb.scheme,
        pb.hostname,
        pb.port,
        pb.path.rstrip("/"),
    )


def finish_pasted(
    store: Store,
    url_or_query: str,
    *,
    config: ProviderConfig,
    user: str,
    timeout: float,
    seen: Callable[[PendingFlow], None],
) -> None:
    """Finish ``user``'s paste-back flow of ``config``'s provider from the pasted address.

    As a callback would: the state is checked exactly as the callback checks it (single use,
    this alias, provider and user, not expired, ``error=`` becomes a typed error); the pasted
    address must be the flow's redirect URI. ``seen`` gets the finished flow (its code exchange, for the HTTP log).
    Blocking, like every sync method of the client: it never touches the kernel's event loop.
    """
    pasted = read_pasted(url_or_query)
    flow = store.get_flow(pasted.state) if pasted.state else None
    if flow is not None and (
        flow.alias != config.alias or flow.user != user or not belongs_to(flow, config)
    ):
        raise StateError(
            "This address belongs to another authorization (another provider or user)",
            hint="Paste it into the notebook that started it, or start again here.",
        )
    at = pasted.at
    arrival = Arrival(
        kind="paste",
        path_alias=pasted.path_alias,
        cookies={},
        user=None,
        accepts=lambda uri: at is None or _same_address(uri, at),
    )
    outcome = complete_with_registered(store, pasted.params, arrival, timeout)
    done = store.get_flow(flow.state) if flow is not None else None
    if done is not None:
        seen(done)
    if outcome.exception is not None:
        raise outcome.exception

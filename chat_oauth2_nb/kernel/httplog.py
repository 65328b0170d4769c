"""The client's HTTP log: the latest exchanges with the provider, bounded and thread-safe."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator, Sequence
from typing import overload

from ..oauth import HttpExchange

__all__ = ["HttpLog"]


class HttpLog(Sequence[HttpExchange]):
    """The last ``maxlen`` exchanges, oldest first; reads are snapshots, safe while others append.

    A sequence like a list: ``log[-1]``, ``log[-6:]`` (a list), ``len(log)``, iteration.
    Refreshes, the watcher and the doctor append from their threads while a cell reads it.
    """

    def __init__(self, maxlen: int = 200) -> None:
        self._lock = threading.Lock()
        self._entries: collections.deque[HttpExchange] = collections.deque(maxlen=maxlen)

    @property
    def maxlen(self) -> int | None:
        """How many exchanges are kept (the oldest go first)."""
        return self._entries.maxlen

    def append(self, exchange: HttpExchange) -> None:
        """Keep ``exchange``, dropping the oldest one when full."""
        with self._lock:
            self._entries.append(exchange)

    def clear(self) -> None:
        """Forget every exchange."""
        with self._lock:
            self._entries.clear()

    def _snapshot(self) -> list[HttpExchange]:
        with self._lock:
            return list(self._entries)

    @overload
    def __getitem__(self, index: int) -> HttpExchange: ...

    @overload
    def __getitem__(self, index: slice) -> list[HttpExchange]: ...

    def __getitem__(self, index: int | slice) -> HttpExchange | list[HttpExchange]:
        """One exchange, or a list of them for a slice."""
        return self._snapshot()[index]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[HttpExchange]:
        return iter(self._snapshot())

    def __eq__(self, other: object) -> bool:
        """Equal to a log or a list holding the same exchanges in the same order."""
        if isinstance(other, (HttpLog, list, tuple, collections.deque)):
            return self._snapshot() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"HttpLog({self._snapshot()!r})"

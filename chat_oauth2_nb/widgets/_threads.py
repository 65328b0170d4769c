"""Background threads for the widgets: a stoppable ticker and one-shot workers.

The browser's callback lands in another process, so a widget learns about it only by
looking at the shared store; a daemon thread does the looking so the kernel stays free.
ipykernel sends comm messages from any thread, so the thread may update widgets itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Ticker", "start_worker"]

log = logging.getLogger("chat_oauth2_nb")


class Ticker:
    """Call ``tick()`` every ``interval`` seconds on a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        tick: Callable[[], None],
        interval: float,
        name: str,
        *,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self._tick = tick
        self._on_stop = on_stop
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start ticking."""
        self._thread.start()

    def _run(self) -> None:
        # wait() returns True once stop() was called, so a stop is noticed within one interval.
        while not self._stop.wait(self._interval):
            try:
                self._tick()
            except Exception as exc:
                # Keep ticking: one bad tick must not freeze the widget for good. Only the type
                # is logged, because a foreign exception's message was never checked for secrets.
                log.warning("%s: a tick failed with %s", self._thread.name, type(exc).__name__)
        if self._on_stop is not None:
            try:
                self._on_stop()
            except Exception as exc:
                log.warning("%s: cleanup failed with %s", self._thread.name, type(exc).__name__)

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop and wait up to ``timeout`` seconds for the thread to end; True once it ended."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()


def start_worker(
    target: Callable[[], None], name: str, *, on_stop: Callable[[], None] | None = None
) -> threading.Thread:
    """Run ``target`` once on a daemon thread (a request must not block the kernel)."""

    def run() -> None:
        try:
            target()
        finally:
            if on_stop is not None:
                on_stop()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread

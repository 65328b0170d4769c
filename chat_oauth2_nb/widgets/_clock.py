"""One alarm clock for every widget of the process: wake a widget when time alone changes it.

An idle panel changes only when the store changes (the watcher in ``_threads`` says so) or
when a moment it knows in advance comes: a link or code expires, a device code is due a poll,
the fallback offer is due, the coarse "in about N min" text moves on. Each widget keeps one
:class:`Alarm` set to its next such moment; one daemon thread sleeps until the earliest alarm
of the process and exits when none is set, so ten idle panels cost one sleeping thread, not
ten ticks a second. The live countdowns are drawn by the browser (``_views.Countdown``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["MIN_DELAY", "Alarm"]

log = logging.getLogger("chat_oauth2_nb")

# The closest an alarm may ring after it is set: a moment computed as "now" (or a state that
# does not move past it) must not turn into a busy loop.
MIN_DELAY = 0.25


class _Clock:
    """The one thread; lives while an alarm is set."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Alarm]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def set(self, alarm: Alarm, when: float) -> None:
        with self._cond:
            alarm._when = when
            heapq.heappush(self._heap, (when, next(self._seq), alarm))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="chat-oauth2-clock", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _due(self) -> list[Alarm] | None:
        """The alarms due now (waiting until one is); None once nothing is set."""
        with self._cond:
            while True:
                while self._heap and self._heap[0][2]._when != self._heap[0][0]:
                    heapq.heappop(self._heap)  # moved or cancelled since it was pushed
                if not self._heap:
                    self._thread = None
                    return None
                wait = self._heap[0][0] - time.time()
                if wait <= 0:
                    break
                self._cond.wait(wait)
            due: list[Alarm] = []
            now = time.time()
            while self._heap and self._heap[0][0] <= now:
                when, _seq, alarm = heapq.heappop(self._heap)
                if alarm._when == when:
                    alarm._when = None
                    due.append(alarm)
            return due

    def _run(self) -> None:
        while (due := self._due()) is not None:
            for alarm in due:
                try:
                    alarm._callback()
                except Exception as exc:
                    # One widget's bad update must not stop the others' alarms; the type only,
                    # as a foreign exception's message was never checked for secrets.
                    log.warning("%s: a timed update failed with %s", alarm.name, type(exc).__name__)


_CLOCK = _Clock()


class Alarm:
    """One widget's next wake-up: :meth:`set` moves it, :meth:`cancel` drops it."""

    def __init__(self, callback: Callable[[], None], name: str) -> None:
        self._callback = callback
        self.name = name
        self._when: float | None = None

    @property
    def when(self) -> float | None:
        """When it rings next (epoch seconds), or None when not set."""
        return self._when

    def set(self, when: float | None) -> None:
        """Ring at ``when`` (epoch seconds, at least :data:`MIN_DELAY` from now); None: never."""
        if when is None:
            self.cancel()
            return
        when = max(when, time.time() + MIN_DELAY)
        current = self._when
        # Set for that moment already (every render asks again): nothing to move.
        if current is not None and abs(current - when) < 0.05:
            return
        _CLOCK.set(self, when)

    def cancel(self) -> None:
        """Never ring (until set again)."""
        with _CLOCK._cond:
            self._when = None

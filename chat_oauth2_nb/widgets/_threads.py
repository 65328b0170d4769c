"""Background threads for the widgets: one shared store watcher, one-shot action workers.

The browser's callback lands in another process, so a widget learns about it only from the
shared store. Rather than one polling thread per widget, every panel and dashboard of the
process subscribes to ONE daemon thread, which sleeps until the store's files are written
(:class:`~chat_oauth2_nb.store.changes.ChangeNotifier`: inotify on Linux, a look every
:data:`CHECK_INTERVAL` seconds elsewhere) and then asks SQLite, on a dedicated connection,
``PRAGMA data_version``: only when another connection (another process, or another thread
of this one) committed do subscribers re-read the store. Subscribers that still want a
countdown tick get one every :data:`TICK_INTERVAL`; with none, an idle watcher wakes only
every :data:`SAFETY_INTERVAL` seconds. ipykernel sends comm messages from any thread, so
callbacks may update widgets themselves.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import GrantRevokedError
from ..store.changes import POLL_INTERVAL, ChangeNotifier, DataVersions
from .state import ErrorInfo

__all__ = [
    "CHECK_INTERVAL",
    "SAFETY_INTERVAL",
    "TICK_INTERVAL",
    "ActionRunner",
    "Subscription",
    "start_worker",
    "watch_store",
]

log = logging.getLogger("chat_oauth2_nb")

# Where the store's changes are not notified: how often the watcher asks SQLite whether the
# store changed (callback → panel latency is at most this plus one re-read).
CHECK_INTERVAL = POLL_INTERVAL
# How often countdowns are re-rendered for subscribers that ask for ticks (whole seconds).
TICK_INTERVAL = 1.0
# Where changes are notified: the longest an idle watcher sleeps before asking SQLite anyway
# (a file system that drops events); one pragma, so the cost is nil.
SAFETY_INTERVAL = 30.0

BUSY_WORDS = {
    "refresh": "Refreshing…",
    "revoke": "Revoking…",
    "code": "Asking the provider for a code…",
    "paste": "Finishing the authorization…",
    "check": "Checking the configuration with the provider…",
}
_FAILED_WORDS = {
    "refresh": "refresh",
    "revoke": "revocation",
    "code": "request for a code",
    "paste": "authorization",
    "check": "configuration check",
}


@dataclasses.dataclass(eq=False)
class Subscription:
    """One widget's interest in one store file; :meth:`cancel` ends it."""

    path: Path
    on_change: Callable[[], None]
    on_tick: Callable[[], None] | None
    # Runs on the watcher thread once the subscription ended: closes the thread's
    # SQLite connection of the widget's Store (the store keeps one per thread).
    on_end: Callable[[], None]
    name: str
    _watcher: _Watcher | None = None

    @property
    def alive(self) -> bool:
        """True while subscribed and the watcher thread runs."""
        watcher = self._watcher
        return watcher is not None and watcher.serves(self)

    def cancel(self) -> None:
        """Unsubscribe; the watcher thread ends with its last subscription."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.remove(self)


class _Watcher:
    """The one thread; lives while it has subscribers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._ended: list[Subscription] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._notifier: ChangeNotifier | None = None
        #: Whether the store's changes are notified (else polled); for tests and benchmarks.
        self.native = True

    def add(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.append(sub)
            sub._watcher = self
            if self._thread is None or not self._thread.is_alive() or self._stop.is_set():
                # A thread told to stop may still be finishing: leave it, start a new one.
                self._stop = threading.Event()
                self._notifier = ChangeNotifier(native=self.native)
                self._thread = threading.Thread(
                    target=self._run,
                    args=(self._stop, self._notifier),
                    name="chat-oauth2-watcher",
                    daemon=True,
                )
                self._thread.start()
            else:
                self._poke()

    def _poke(self) -> None:
        if self._notifier is not None:
            self._notifier.poke()

    @property
    def wakeups(self) -> int:
        """How often the current thread woke up (0 without one)."""
        notifier = self._notifier
        return notifier.wakeups if notifier is not None else 0

    @property
    def notified(self) -> bool:
        """Whether the current thread is told of the store's changes (False: it polls)."""
        notifier = self._notifier
        return notifier is not None and notifier.native

    def serves(self, sub: Subscription) -> bool:
        with self._lock:
            thread = self._thread
            return sub in self._subs and thread is not None and thread.is_alive()

    def remove(self, sub: Subscription, timeout: float = 2.0) -> None:
        with self._lock:
            if sub not in self._subs:
                return
            self._subs.remove(sub)
            self._ended.append(sub)
            thread = self._thread
            self._poke()
            if self._subs or thread is None:
                return
            self._stop.set()
        if thread.is_alive() and threading.current_thread() is not thread:
            thread.join(timeout)

    def _run(self, stop: threading.Event, notifier: ChangeNotifier) -> None:
        versions = DataVersions()
        served: dict[int, Subscription] = {}
        watched: set[Path] = set()
        next_tick = time.monotonic() + TICK_INTERVAL
        try:
            while not stop.is_set():
                with self._lock:
                    subs, ended, self._ended = list(self._subs), self._ended, []
                self._end(ended)
                served.update((id(sub), sub) for sub in subs)
                paths = {sub.path for sub in subs}
                for path in paths - watched:
                    notifier.watch(path)
                for path in watched - paths:
                    notifier.unwatch(path)
                watched = paths
                versions.keep_only(paths)
                changed = {p for p in paths if versions.changed(p)}
                tick = time.monotonic() >= next_tick
                if tick:
                    next_tick = time.monotonic() + TICK_INTERVAL
                for sub in subs:
                    if sub.path in changed:
                        self._call(sub.on_change, sub.name)
                    elif tick and sub.on_tick is not None:
                        self._call(sub.on_tick, sub.name)
                ticking = any(sub.on_tick is not None for sub in subs)
                wait = max(0.0, next_tick - time.monotonic()) if ticking else SAFETY_INTERVAL
                recheck = notifier.recheck_in(bool(changed))
                notifier.wait(wait if recheck is None else min(wait, recheck))
        finally:
            versions.close()
            notifier.close()
            with self._lock:
                ended, self._ended = self._ended, []
            # Every store connection this thread opened for its subscribers closes here (a
            # replacing thread opens its own); closing one twice is harmless.
            self._end([*ended, *served.values()])

    @staticmethod
    def _call(callback: Callable[[], None], name: str) -> None:
        try:
            callback()
        except Exception as exc:
            # One widget's bad update must not stop the others. Only the type is logged: a
            # foreign exception's message was never checked for secrets.
            log.warning("%s: an update failed with %s", name, type(exc).__name__)

    def _end(self, ended: list[Subscription]) -> None:
        for sub in ended:
            self._call(sub.on_end, sub.name)


_WATCHER = _Watcher()


def watch_store(
    path: Path,
    *,
    on_change: Callable[[], None],
    on_tick: Callable[[], None] | None = None,
    on_end: Callable[[], None],
    name: str,
) -> Subscription:
    """Subscribe to the process's shared store watcher (started on first use).

    ``on_change`` runs on the watcher thread after another connection committed to the
    store at ``path``; ``on_tick`` (optional) once a second otherwise; ``on_end`` after
    :meth:`Subscription.cancel` and when the thread ends (closing the thread's connections).
    """
    sub = Subscription(path=path, on_change=on_change, on_tick=on_tick, on_end=on_end, name=name)
    _WATCHER.add(sub)
    return sub


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


class ActionRunner:
    """Refresh and Revoke for the panel and the dashboard: busy → worker → error → re-sync → render.

    ``begin(name, busy_words)`` marks the target busy and renders (False: refuse, e.g. already
    busy); the action runs on a worker thread; ``finish(name, outcome, error)`` re-reads the
    store, clears busy and renders. Both run under ``lock`` and never after ``closed()``.
    """

    def __init__(
        self,
        lock: threading.RLock,
        closed: Callable[[], bool],
        *,
        thread_prefix: str,
        on_worker_end: Callable[[], None],
    ) -> None:
        self._lock = lock
        self._closed = closed
        self._prefix = thread_prefix
        self._on_worker_end = on_worker_end

    def start(
        self,
        name: str,
        action: Callable[[], str],
        *,
        begin: Callable[[str, str], bool],
        finish: Callable[[str, str, ErrorInfo | None], None],
    ) -> bool:
        """Start ``action`` (returns the outcome line) unless closed or ``begin`` refuses."""
        with self._lock:
            if self._closed() or not begin(name, BUSY_WORDS.get(name, "Working…")):
                return False
        # close() does not wait for it: a slow provider may take the client's whole timeout.
        start_worker(
            lambda: self._run(name, action, finish),
            f"{self._prefix}-{name}",
            on_stop=self._on_worker_end,
        )
        return True

    def _run(
        self,
        name: str,
        action: Callable[[], str],
        finish: Callable[[str, str, ErrorInfo | None], None],
    ) -> None:
        error: ErrorInfo | None = None
        try:
            outcome = action()
        except Exception as exc:
            error = ErrorInfo.from_exception(exc)
            outcome = f"The {_FAILED_WORDS.get(name, name)} failed; " + (
                "the provider ended the grant: authorize again."
                if isinstance(exc, GrantRevokedError)
                else "the stored token is unchanged."
            )
        with self._lock:
            if not self._closed():
                finish(name, outcome, error)

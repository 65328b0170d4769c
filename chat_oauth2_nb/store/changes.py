"""Being told that the store changed, instead of asking every few milliseconds.

The browser's callback commits in the Jupyter server, a refresh in another kernel: whoever
shows the store (a panel, the sidebar's ``api/changes``) must learn of it fast, and an idle
notebook must not spend a core asking. Two parts, used by the kernel's watcher thread
(``widgets/_threads.py``) and the server's change feed (``server/changes.py``) alike:

- :class:`ChangeNotifier` blocks until a watched store's files are written. On Linux it asks
  the kernel (inotify, through ``inotify_simple``) to wake it when the SQLite file, its WAL or
  its journal changes in the store's folder: one commit anywhere on the machine wakes every
  watcher at once, and nothing runs in between. Elsewhere (no inotify, a folder it cannot
  watch, a network file system that sends no events) it wakes every :data:`POLL_INTERVAL`
  seconds, as the old poll did.
- :class:`DataVersions` says whether another connection really committed
  (``PRAGMA data_version`` on a connection of its own that never writes), so a wake-up that
  changed nothing (a checkpoint, our own reader) costs one pragma and no re-read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["POLL_INTERVAL", "ChangeNotifier", "DataVersions", "inotify_available"]

log = logging.getLogger("chat_oauth2_nb")

#: Where no notification comes: seconds between two looks at the store (the old poll).
POLL_INTERVAL = 0.15
# The files a commit writes: the database, its write-ahead log, a rollback journal.
_SUFFIXES = ("", "-wal", "-journal")
# A commit writes its WAL frames (the events), then syncs them and only then publishes the
# commit in the shared-memory index, which sends no event: after an event that showed no
# commit yet, look again after these delays (seconds) before sleeping for good.
RECHECKS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256)


def _inotify() -> Any | None:
    """An inotify instance, or None where the platform or the library offers none."""
    try:
        from inotify_simple import INotify
    except ImportError:
        return None
    try:
        return INotify()
    except OSError as exc:
        # Out of instances (fs.inotify.max_user_instances): fall back to looking.
        log.info("chat_oauth2_nb: no inotify (%s); the store is polled", type(exc).__name__)
        return None


def inotify_available() -> bool:
    """Whether this process can be told of store changes (else it polls)."""
    probe = _inotify()
    if probe is None:
        return False
    probe.close()
    return True


class ChangeNotifier:
    """Wakes :meth:`wait` when a watched store file is written, or when :meth:`poke` is called.

    One instance belongs to one thread (the one calling :meth:`wait`); :meth:`watch`,
    :meth:`unwatch`, :meth:`poke` and :meth:`close` may be called from any thread.
    """

    def __init__(self, *, native: bool = True) -> None:
        """``native=False``: poll every :data:`POLL_INTERVAL` s even where inotify exists."""
        self._inotify = _inotify() if native else None
        self._lock = threading.Lock()
        # Watch descriptor -> the names in that folder we care about.
        self._names: dict[int, set[str]] = {}
        self._paths: dict[Path, int | None] = {}  # None: that path is polled
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        #: How many times :meth:`wait` returned (tests show that an idle watcher sleeps).
        self.wakeups = 0
        self._rechecks: int | None = None  # None: no event waiting for its commit

    @property
    def native(self) -> bool:
        """True when every watched path is notified (no poll)."""
        with self._lock:
            return self._inotify is not None and None not in self._paths.values()

    def watch(self, path: Path) -> None:
        """Be woken when the store at ``path`` (or its WAL or journal) is written."""
        path = Path(path).resolve()
        with self._lock:
            if path in self._paths:
                return
            wd = None
            if self._inotify is not None:
                from inotify_simple import flags

                mask = flags.MODIFY | flags.CLOSE_WRITE | flags.CREATE | flags.MOVED_TO
                try:
                    wd = self._inotify.add_watch(str(path.parent), mask | flags.DELETE)
                except OSError as exc:
                    log.info(
                        "chat_oauth2_nb: cannot watch %s (%s); polling it",
                        path.parent,
                        type(exc).__name__,
                    )
            self._paths[path] = wd
            if wd is not None:
                self._names.setdefault(wd, set()).update(path.name + s for s in _SUFFIXES)
        self.poke()

    def unwatch(self, path: Path) -> None:
        """Stop watching ``path`` (its folder's watch ends with its last path)."""
        path = Path(path).resolve()
        with self._lock:
            wd = self._paths.pop(path, None)
            if wd is None or wd in self._paths.values():
                if wd is not None:
                    self._names[wd].difference_update(path.name + s for s in _SUFFIXES)
                return
            self._names.pop(wd, None)
            if self._inotify is not None:
                # A folder already gone: the kernel dropped the watch itself.
                with contextlib.suppress(OSError):
                    self._inotify.rm_watch(wd)

    def poke(self) -> None:
        """Wake the waiting thread now (a new subscriber, a stop)."""
        # A full pipe wakes the waiter anyway; a closed one has nobody waiting.
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b".")

    def wait(self, timeout: float | None) -> bool:
        """Block until a watched file is written, a poke, or ``timeout`` s; True unless idle.

        Where a path is polled, returns True at least every :data:`POLL_INTERVAL` s.
        """
        with self._lock:
            ino = self._inotify
            polled = ino is None or None in self._paths.values()
        if polled:
            timeout = POLL_INTERVAL if timeout is None else min(timeout, POLL_INTERVAL)
        readers: list[Any] = [self._wake_r] + ([ino.fileno()] if ino is not None else [])
        try:
            ready, _, _ = select.select(readers, [], [], timeout)
        except (OSError, ValueError):
            ready = []  # closed under us: the caller's stop flag says what to do
        self.wakeups += 1
        woke = self._drain_pipe() if self._wake_r in ready else False
        if ino is not None and ready and ino.fileno() in ready and self._relevant(ino):
            woke, self._rechecks = True, 0
        return woke or polled

    def recheck_in(self, changed: bool) -> float | None:
        """After a look at the store: how soon to look again, or None to sleep as usual.

        ``changed``: whether that look found a commit. An event whose commit was not
        visible yet (still syncing) asks for a few more looks, ever further apart.
        """
        if changed or self._rechecks is None or self._rechecks >= len(RECHECKS):
            self._rechecks = None
            return None
        delay = RECHECKS[self._rechecks]
        self._rechecks += 1
        return delay

    def _drain_pipe(self) -> bool:
        try:
            while os.read(self._wake_r, 512):
                pass
        except (BlockingIOError, OSError):
            pass
        return True

    def _relevant(self, ino: Any) -> bool:
        try:
            events = ino.read(timeout=0)
        except OSError:
            return True
        with self._lock:
            return any(
                not event.name or event.name in self._names.get(event.wd, ()) for event in events
            )

    def close(self) -> None:
        """Release the inotify instance and the wake-up pipe."""
        with self._lock:
            ino, self._inotify = self._inotify, None
            self._names.clear()
        if ino is not None:
            ino.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


class DataVersions:
    """Whether another connection committed to a store since the last look.

    Its own read-only connection per store: ``PRAGMA data_version`` counts the commits of
    every OTHER connection, in this process or another. Belongs to the one thread asking.
    """

    def __init__(self) -> None:
        self._versions: dict[Path, int | None] = {}
        self._connections: dict[Path, sqlite3.Connection] = {}

    def changed(self, path: Path) -> bool:
        """True on the first look at ``path`` and whenever another connection committed since."""
        try:
            db = self._connections.get(path)
            if db is None:
                # mode=rw: a store file deleted under us must not be re-created empty.
                uri = f"{path.resolve().as_uri()}?mode=rw"
                db = self._connections[path] = sqlite3.connect(
                    uri, uri=True, timeout=1.0, isolation_level=None, check_same_thread=False
                )
            version = int(db.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error as exc:
            # Say "changed" on every look: a missed change would freeze what shows the store.
            log.warning("chat-oauth2-watcher: cannot watch the store (%s)", type(exc).__name__)
            stale = self._connections.pop(path, None)
            if stale is not None:
                stale.close()
            self._versions[path] = None
            return True
        if path in self._versions and self._versions[path] == version:
            return False
        self._versions[path] = version
        return True

    def keep_only(self, paths: set[Path]) -> None:
        """Close the connections of stores no longer watched."""
        for path in [p for p in self._connections if p not in paths]:
            self._connections.pop(path).close()
            self._versions.pop(path, None)

    def close(self) -> None:
        """Close every connection."""
        self.keep_only(set())

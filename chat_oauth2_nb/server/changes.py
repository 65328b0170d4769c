"""The version ``api/changes`` reports, moved by every commit to the store, from any process.

One daemon thread sleeps on the store's change notification (the same
:class:`~chat_oauth2_nb.store.changes.ChangeNotifier` a kernel's panels use: inotify, else a
poll) and, when another connection committed, moves the version and wakes every long-poll
waiting on the event loop. So a callback this server finished, a refresh in a kernel and a
revocation from the sidebar all reach the sidebar and the panels within milliseconds of
each other.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from ..store.changes import ChangeNotifier, DataVersions

__all__ = ["SAFETY_INTERVAL", "ChangeFeed"]

#: The longest the feed's thread sleeps before asking the store anyway: where events are
#: lost (a network file system), the version still moves within a second, as docs/rest-api.md
#: promises. One pragma a second in one process of the machine.
SAFETY_INTERVAL = 1.0


class ChangeFeed:
    """A version that moves on every store change, and long-polls that wait for it to move."""

    def __init__(self) -> None:
        # Milliseconds since the epoch: a browser that saw a version before a restart still
        # sees the next one differ.
        self.version = time.time_ns() // 1_000_000
        self._loop: asyncio.AbstractEventLoop | None = None
        self._moved = asyncio.Event()
        self._path: Path | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._notifier: ChangeNotifier | None = None
        self._thread: threading.Thread | None = None

    def follow(self, path: Path) -> None:
        """Watch the store at ``path`` (call on the event loop; starts the thread once)."""
        with self._lock:
            self._loop = asyncio.get_running_loop()
            if self._path == path and self._thread is not None:
                return
            self._path = path
            if self._thread is None:
                self._notifier = ChangeNotifier()
                self._thread = threading.Thread(
                    target=self._run,
                    args=(self._notifier,),
                    name="chat-oauth2-feed",
                    daemon=True,
                )
                self._thread.start()
            else:
                assert self._notifier is not None
                self._notifier.poke()

    def bump(self) -> None:
        """Move the version now (from any thread): this server changed the store itself."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._move)

    def _move(self) -> None:
        self.version += 1
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def wait(self, since: int, timeout: float) -> int:
        """The version once it differs from ``since``, or after ``timeout`` s as it is."""
        deadline = time.monotonic() + timeout
        while self.version == since:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(self._moved.wait(), left)
            except asyncio.TimeoutError:
                break
        return self.version

    def _run(self, notifier: ChangeNotifier) -> None:
        versions = DataVersions()
        watched: Path | None = None
        try:
            while not self._stop.is_set():
                with self._lock:
                    path = self._path
                changed = False
                if path is not None and path != watched:
                    if watched is not None:
                        notifier.unwatch(watched)
                    notifier.watch(path)
                    versions.keep_only({path})
                    versions.changed(path)  # the baseline: nothing moved yet
                    watched = path
                elif path is not None and versions.changed(path):
                    changed = True
                    self.bump()
                recheck = notifier.recheck_in(changed)
                notifier.wait(SAFETY_INTERVAL if recheck is None else recheck)
        finally:
            versions.close()
            notifier.close()

    @property
    def native(self) -> bool:
        """Whether the store's changes are notified (else polled)."""
        notifier = self._notifier
        return notifier is not None and notifier.native

    @property
    def wakeups(self) -> int:
        """How often the feed's thread woke up (0 before it started)."""
        notifier = self._notifier
        return notifier.wakeups if notifier is not None else 0

    def close(self) -> None:
        """Stop the thread."""
        self._stop.set()
        notifier, thread = self._notifier, self._thread
        if notifier is not None:
            notifier.poke()
        if thread is not None:
            thread.join(2.0)

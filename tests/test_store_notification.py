"""The store watcher is told of another process's commit; it does not poll for it.

The kernel's one watcher thread (``widgets/_threads.py``) sleeps on the store's change
notification. Here its safety wake-up is an hour away and no subscriber asks for ticks, so
only a notification can wake it: another process commits a token, and the subscriber hears
of it with the thread having woken a handful of times, not every 150 ms.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import otheruser
from support.otheruser import OtherUser

from chat_oauth2_nb.oauth import AuthData
from chat_oauth2_nb.store import Store
from chat_oauth2_nb.store.changes import ChangeNotifier, DataVersions, inotify_available
from chat_oauth2_nb.widgets import _threads

pytestmark = pytest.mark.skipif(not inotify_available(), reason="no inotify on this platform")
other_user = otheruser.other_user  # the fixture: a throwaway local user

COMMIT = """
import sys
from chat_oauth2_nb.oauth import AuthData
from chat_oauth2_nb.store import Store
Store(sys.argv[1]).put_token("demo", "ada", AuthData(token="from-another-process"))
"""


def commit_elsewhere(path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", COMMIT, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_the_watcher_wakes_on_another_process_commit_without_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_threads, "SAFETY_INTERVAL", 3600.0)
    store = Store(tmp_path / "store.sqlite3")
    store.put_token("demo", "ada", AuthData(token="first"))
    changes: list[str] = []
    heard = threading.Event()

    def on_change() -> None:
        record = store.get_token("demo", "ada")
        changes.append(record.data.token if record else "")
        if changes[-1] == "from-another-process":
            heard.set()

    sub = _threads.watch_store(
        store.path, on_change=on_change, on_end=store.close, name="test-watcher"
    )
    try:
        deadline = time.monotonic() + 60
        while not changes and time.monotonic() < deadline:
            time.sleep(0.01)  # the first look reads the store once
        assert changes == ["first"]
        before = _threads._WATCHER.wakeups
        commit_elsewhere(store.path)
        assert heard.wait(60), changes
        # A poll every 150 ms would have woken dozens of times while the process started.
        assert _threads._WATCHER.wakeups - before <= 6
        assert _threads._WATCHER.notified
    finally:
        sub.cancel()


def test_without_notification_the_store_is_polled(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.sqlite3")
    notifier = ChangeNotifier(native=False)
    versions = DataVersions()
    try:
        notifier.watch(store.path)
        assert not notifier.native
        assert versions.changed(store.path)  # the baseline
        store.put_token("demo", "ada", AuthData(token="polled"))
        deadline = time.monotonic() + 60
        while not versions.changed(store.path):
            assert time.monotonic() < deadline
            # A poll returns by itself, with no event, within its interval.
            assert notifier.wait(3600.0) is True
    finally:
        notifier.close()
        versions.close()
        store.close()


# The other user's code: for a while, try to write every file the watchers listen for.
TOUCH = """
import sys, time
folder, name = sys.argv[1], sys.argv[2]
done = refused = 0
end = time.monotonic() + 1.0
while time.monotonic() < end:
    for suffix in ("", "-wal", "-journal"):
        try:
            with open(f"{folder}/{name}{suffix}", "a") as f:
                f.write("x")
            done += 1
        except OSError:
            refused += 1
print(f"done={done} refused={refused}")
"""


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder any user may enter, holding a store folder made writable by everyone (umask 0)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as top:
        os.chmod(top, 0o755)  # noqa: S103
        folder = Path(top) / "store"
        folder.mkdir()
        os.chmod(folder, 0o777)  # noqa: S103
        yield folder


def test_another_user_cannot_wake_the_watchers(open_folder: Path, other_user: OtherUser) -> None:
    store = Store(open_folder / "store.sqlite3")  # opening it makes its folder 0700
    store.put_token("demo", "ada", AuthData(token="first"))
    notifier = ChangeNotifier()
    try:
        notifier.watch(store.path)
        assert notifier.native
        notifier.wait(0)  # the watch's own poke
        attacker = other_user.start(TOUCH, open_folder, store.path.name)
        lines = other_user.finish(attacker)
        assert lines == [lines[-1]] and lines[-1].startswith("done=0 refused="), lines
        # Nothing reached the kernel's queue: the watcher sleeps through the attack.
        assert notifier.wait(0.5) is False
    finally:
        notifier.close()
        store.close()

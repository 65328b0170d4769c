"""One SQLite connection per thread, a transaction per call: what every table family shares.

The store's parts (providers, flows, tokens) are mixins over :class:`Connections`; it also
seals and opens their secret columns, so each part writes its SQL and nothing else.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from ..errors import StoreError, StoreLockedError
from .files import check_same_file
from .keys import STORE_KEY_ENV, KeySource
from .sealing import Cipher, is_sealed

__all__ = ["Connections", "no_key_error"]

T = TypeVar("T")


def no_key_error(path: Path) -> StoreError:
    """The error for a sealed store opened without a key."""
    return StoreError(
        f"The token store {path} is encrypted and no store key is set",
        hint=f"Set {STORE_KEY_ENV} to the store's key in both the Jupyter server's and the "
        "kernel's environment (set it where the Jupyter server starts: kernels inherit it), "
        "or pass store_key= to create_oauth2_client().",
    )


class _Held:
    """This thread's connection; when the thread ends, its finalizer closes the connection."""

    __slots__ = ("__weakref__", "db", "serial")

    def __init__(self, db: sqlite3.Connection, serial: int) -> None:
        self.db = db
        self.serial = serial


def _close_one(connections: dict[int, sqlite3.Connection], serial: int) -> None:
    # dict.pop is atomic: the finalizer of a thread ending and close_all() never both close.
    db = connections.pop(serial, None)
    if db is not None:
        db.close()


def _close_all(connections: dict[int, sqlite3.Connection]) -> None:
    while connections:
        try:
            _serial, db = connections.popitem()
        except KeyError:
            break
        db.close()


class Connections:
    """The SQLite store's connections: one per thread, every write in its own transaction."""

    def __init__(
        self,
        path: Path,
        busy_timeout: float,
        cipher: Cipher | None,
        key_source: KeySource | None,
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._cipher = cipher
        self._key_source = key_source
        self._local = threading.local()
        self._serials = itertools.count()
        # Every open connection, by serial: close_all() and the threads' finalizers close them.
        self._connections: dict[int, sqlite3.Connection] = {}
        weakref.finalize(self, _close_all, self._connections)
        # (st_dev, st_ino) of the file checked at open; every new connection checks it again.
        self._file_id: tuple[int, int] | None = None

    @property
    def encrypted(self) -> bool:
        """True when secret columns are sealed with AES-GCM (a store key is in use)."""
        return self._cipher is not None

    @property
    def key_source(self) -> KeySource | None:
        """Where the key came from (``"hub"``: the hub's chat-oauth2 service), None without one."""
        return self._key_source

    @property
    def open_connections(self) -> int:
        """How many SQLite connections this store holds open (one per thread that used it)."""
        return len(self._connections)

    # sealing -----------------------------------------------------------------------------

    def _writable(self, db: sqlite3.Connection) -> None:
        """Refuse to write secrets in clear into a store that another process has sealed since."""
        if (
            self._cipher is None
            and db.execute("SELECT 1 FROM meta WHERE name = 'key_check'").fetchone()
        ):
            raise no_key_error(self.path)

    def _seal(self, value: str, aad: bytes) -> str:
        """``value`` sealed for its row; as it is without a key."""
        return self._cipher.seal(value, aad) if self._cipher is not None else value

    def _open(self, value: str, aad: bytes) -> str:
        """A column value in clear; a StoreError when it is sealed and will not open."""
        if not is_sealed(value):
            return value  # written before a key was in use
        if self._cipher is None:
            raise no_key_error(self.path)
        plain = self._cipher.open(value, aad)
        if plain is None:
            raise StoreError(
                f"A row of the token store {self.path} failed its integrity check: it was "
                "altered or moved from another row",
                hint="Authorize again to replace it; if this repeats, someone is editing the "
                "store file.",
            )
        return plain

    # connections -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the file checked again) on first use."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and held.serial in self._connections:
            return held.db
        check_same_file(self.path, self._file_id)
        # mode=rw: SQLite never creates a file here; it opens the one checked at open or fails.
        uri = f"file:{quote(str(self.path.absolute()))}?mode=rw"
        db = sqlite3.connect(
            uri,
            uri=True,
            timeout=self.busy_timeout,
            isolation_level=None,
            # Used by one thread only; close_all() may close it from another.
            check_same_thread=False,
        )
        try:
            # Before the first statement touches it: the path may have been swapped meanwhile.
            check_same_file(self.path, self._file_id)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # Deleted rows are zeroed, so an old token does not linger in free pages.
            db.execute("PRAGMA secure_delete=ON")
        except BaseException:
            db.close()
            raise
        held = _Held(db, next(self._serials))
        self._connections[held.serial] = db
        # Runs when this thread ends (its thread-local data is dropped): the connection is
        # closed then, not by the garbage collector (a ResourceWarning on Python >= 3.13).
        weakref.finalize(held, _close_one, self._connections, held.serial)
        self._local.held = held
        return db

    @contextlib.contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction on this thread's connection: committed, or rolled back on error."""
        try:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        try:
            yield db
        except sqlite3.DatabaseError as exc:
            db.execute("ROLLBACK")
            raise self._error(exc) from None
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            try:
                db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                db.execute("ROLLBACK")
                raise self._error(exc) from None

    def _error(self, exc: sqlite3.DatabaseError) -> StoreError:
        """The StoreError (StoreLockedError when busy) that says what failed and where."""
        if "locked" in str(exc) or "busy" in str(exc):
            return StoreLockedError(
                f"The token store {self.path} stayed locked by another process for "
                f"{self.busy_timeout:g} s",
                hint="Another process is writing it or hung holding it: retry, or end that process.",
            )
        return StoreError(f"The token store {self.path} failed: {exc}")

    def patiently(self, write: Callable[[], T], patience: float) -> T:
        """Run ``write``, retrying while another process holds the store locked, up to ``patience`` s.

        For writes that must not be dropped: a token the provider has already issued.
        """
        deadline = time.monotonic() + patience
        while True:
            try:
                return write()
            except StoreLockedError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)  # each attempt already waited the busy timeout

    def close(self) -> None:
        """Close this thread's connection."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None:
            _close_one(self._connections, held.serial)
            self._local.held = None

    def close_all(self) -> None:
        """Close every thread's connection (a thread that uses the store again reopens one)."""
        self.close()
        _close_all(self._connections)

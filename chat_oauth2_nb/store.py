"""The on-disk store shared by the kernel and the Jupyter server process (SQLite, 0600).

The kernel registers providers and pending flows here; the server's callback consumes a
flow, exchanges its code and writes the token here; the kernel sees it appear. SQLite
transactions make every write atomic (a process killed mid-write leaves the last committed
state), and a lease row makes refreshes single-flight across processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from .config import ProviderConfig
from .errors import BrowserBindingError, StateError, StoreError, StoreLockedError
from .protocol import AuthData, mask

__all__ = [
    "DEFAULT_FLOW_TTL",
    "FlowEndpoint",
    "FlowOrigin",
    "FlowStatus",
    "PendingFlow",
    "Store",
    "TokenRecord",
    "default_store_path",
    "open_store",
]

T = TypeVar("T")
DEFAULT_FLOW_TTL = 600.0
# Finished flows are kept this long so a kernel that polls late still learns the outcome.
_FINISHED_FLOW_RETENTION = 3600.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS providers (
    alias TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    client_secret TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS flows (
    state TEXT PRIMARY KEY,
    alias TEXT NOT NULL,
    user TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    finished_at REAL,
    exchange TEXT,
    provider TEXT
);
CREATE INDEX IF NOT EXISTS flows_by_user ON flows (alias, user, created_at);
CREATE TABLE IF NOT EXISTS tokens (
    alias TEXT NOT NULL,
    user TEXT NOT NULL,
    data TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (alias, user)
);
CREATE TABLE IF NOT EXISTS leases (
    alias TEXT NOT NULL,
    user TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (alias, user)
);
"""

# Columns added after the first release: a store an older version wrote gets them on open.
_ADDED_COLUMNS: dict[str, dict[str, str]] = {
    # Who started a flow and where it may finish (DESIGN.md, "Decisions for the field").
    "flows": {
        "start_id": "TEXT",
        "origin": "TEXT NOT NULL DEFAULT 'code'",
        "client_ref": "TEXT",
        "endpoint": "TEXT",
        "owner": "TEXT",
        "binding": "TEXT",
    },
}

FlowOrigin = Literal["code", "panel", "device", "paste"]
# Where a flow's redirect may arrive: the Jupyter server's callback or a loopback listener.
FlowEndpoint = Literal["server", "loopback"]

FlowStatus = Literal["pending", "exchanging", "done", "error"]


def _ensure_columns(db: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    """Add the ``columns`` (name -> SQL type) that a store written by an older version lacks."""
    have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    for name, decl in columns.items():
        if name not in have:
            with contextlib.suppress(sqlite3.OperationalError):  # another process added it
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


def default_store_path() -> Path:
    """Where the store lives: ``jupyter_data_dir()/chat_oauth2_nb/store.sqlite3``, read now."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "chat_oauth2_nb" / "store.sqlite3"


@dataclasses.dataclass(frozen=True, repr=False)
class PendingFlow:
    """One authorization in progress: what the callback needs to finish it."""

    state: str
    alias: str
    user: str
    code_verifier: str
    redirect_uri: str
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float
    status: FlowStatus = "pending"
    error: dict[str, Any] | None = None
    finished_at: float | None = None
    exchange: dict[str, Any] | None = None
    # The provider as this flow's client saw it: two notebooks may use one alias for two
    # different providers, and the code must be exchanged where it was issued.
    provider: ProviderConfig | None = dataclasses.field(default=None, compare=False)
    #: The opaque id of the start link (``…/chat-oauth2/start/<start_id>``); not the state.
    start_id: str | None = None
    #: Who started it: code in a cell, a panel, (later) device or paste-back.
    origin: FlowOrigin = "code"
    #: The client instance that started it; wait_for_authorization() follows only its own.
    client_ref: str | None = None
    endpoint: FlowEndpoint = "server"
    #: The Jupyter user who opened the start link (None on the loopback).
    owner: str | None = None
    #: SHA-256 of the browser-binding cookie set by the start link; None until opened.
    binding: str | None = None

    def __repr__(self) -> str:
        return (
            f"PendingFlow(state={mask(self.state)!r}, alias={self.alias!r}, user={self.user!r}, "
            f"status={self.status!r}, scopes={list(self.scopes)!r})"
        )


@dataclasses.dataclass(frozen=True)
class TokenRecord:
    """A stored token with its version (bumped on every write) and write time."""

    alias: str
    user: str
    data: AuthData
    version: int
    updated_at: float


def _flow(row: sqlite3.Row) -> PendingFlow:
    return PendingFlow(
        state=row["state"],
        alias=row["alias"],
        user=row["user"],
        code_verifier=row["code_verifier"],
        redirect_uri=row["redirect_uri"],
        scopes=tuple(json.loads(row["scopes"])),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        status=row["status"],
        error=json.loads(row["error"]) if row["error"] else None,
        finished_at=row["finished_at"],
        exchange=json.loads(row["exchange"]) if row["exchange"] else None,
        provider=_provider(json.loads(row["provider"])) if row["provider"] else None,
        start_id=row["start_id"],
        origin=row["origin"] or "code",
        client_ref=row["client_ref"],
        endpoint=row["endpoint"] or "server",
        owner=row["owner"],
        binding=row["binding"],
    )


def _provider(values: dict[str, Any]) -> ProviderConfig:
    values["default_scopes"] = tuple(values["default_scopes"])
    return ProviderConfig(**values)


class Store:
    """The SQLite store; one connection per thread, every write in its own transaction."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, busy_timeout: float = 5.0
    ) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._prepare_file()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def _prepare_file(self) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if stat.S_IMODE(folder.stat().st_mode) != 0o700:
                folder.chmod(0o700)
            # Create the file 0600 before SQLite does, so it is never readable by others;
            # SQLite gives its -wal and -shm files the database file's mode. Never open and
            # close an existing one: closing any descriptor of the file drops every POSIX
            # lock this process holds on it, under SQLite connections already open here.
            if not self.path.exists():
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
            if stat.S_IMODE(self.path.stat().st_mode) != 0o600:
                self.path.chmod(0o600)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the token store at {self.path} ({exc.strerror})",
                hint="Check JUPYTER_DATA_DIR points at a folder you can write, or pass store=.",
            ) from None
        try:
            # executescript() commits on its own; IF NOT EXISTS makes it safe to race.
            db = self._connection()
            db.executescript(_SCHEMA)
            for table, columns in _ADDED_COLUMNS.items():
                _ensure_columns(db, table, columns)
            db.execute("CREATE UNIQUE INDEX IF NOT EXISTS flows_by_start ON flows (start_id)")
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
        return db

    @contextlib.contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
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
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # providers ---------------------------------------------------------------------------

    def put_provider(self, config: ProviderConfig) -> None:
        """Register (or update) a provider so the server can exchange codes for it."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO providers (alias, config, client_secret, updated_at) "
                "VALUES (?, ?, ?, ?)",
                (config.alias, json.dumps(config.to_mapping()), config.client_secret, time.time()),
            )

    def get_provider(self, alias: str) -> ProviderConfig | None:
        """The registered provider for ``alias``, with its secret, or None."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT config, client_secret FROM providers WHERE alias = ?", (alias,)
            ).fetchone()
        if row is None:
            return None
        return _provider({**json.loads(row["config"]), "client_secret": row["client_secret"]})

    # flows -------------------------------------------------------------------------------

    def add_flow(self, flow: PendingFlow) -> None:
        """Record a new pending flow, and purge the ones long expired."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "DELETE FROM flows WHERE expires_at < ? OR finished_at < ?",
                (now - _FINISHED_FLOW_RETENTION, now - _FINISHED_FLOW_RETENTION),
            )
            db.execute(
                "INSERT INTO flows (state, alias, user, code_verifier, redirect_uri, scopes, "
                "created_at, expires_at, status, provider, start_id, origin, client_ref, endpoint) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                (
                    flow.state,
                    flow.alias,
                    flow.user,
                    flow.code_verifier,
                    flow.redirect_uri,
                    json.dumps(list(flow.scopes)),
                    flow.created_at,
                    flow.expires_at,
                    json.dumps(flow.provider.to_mapping(include_secret=True))
                    if flow.provider
                    else None,
                    flow.start_id,
                    flow.origin,
                    flow.client_ref,
                    flow.endpoint,
                ),
            )

    def flow_by_start_id(self, start_id: str) -> PendingFlow | None:
        """The flow whose start link has this opaque id, or None."""
        with self._transaction(write=False) as db:
            row = db.execute("SELECT * FROM flows WHERE start_id = ?", (start_id,)).fetchone()
        return _flow(row) if row else None

    def bind_flow(self, start_id: str, binding: str, owner: str | None) -> PendingFlow:
        """Bind a pending flow to the browser that opened its start link (and its Jupyter user).

        Raises StateError when the flow is unknown, used or expired, and BrowserBindingError
        when another Jupyter user already opened it.
        """
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT * FROM flows WHERE start_id = ?", (start_id,)).fetchone()
            if row is None or row["status"] != "pending" or row["expires_at"] <= now:
                raise StateError(
                    "This authorization link is unknown, used or expired",
                    hint="Get a fresh link from your notebook (the panel's Authorize link or "
                    "client.get_user_authorization_url()).",
                )
            if row["owner"] is not None and row["owner"] != owner:
                raise BrowserBindingError(
                    "This authorization link was opened by another Jupyter user",
                    hint="Each person authorizes from a link their own notebook shows.",
                )
            # The latest browser to open the link wins: a second tab of the same person works.
            db.execute(
                "UPDATE flows SET binding = ?, owner = ? WHERE start_id = ?",
                (binding, owner, start_id),
            )
        return dataclasses.replace(_flow(row), binding=binding, owner=owner)

    def has_pending_flow(self, redirect_prefix: str) -> bool:
        """True while an unexpired pending flow's redirect URI starts with ``redirect_prefix``."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT 1 FROM flows WHERE status = 'pending' AND expires_at > ? "
                "AND substr(redirect_uri, 1, ?) = ? LIMIT 1",
                (time.time(), len(redirect_prefix), redirect_prefix),
            ).fetchone()
        return row is not None

    def consume_flow(
        self, state: str, check: Callable[[PendingFlow], None] | None = None
    ) -> PendingFlow:
        """Take a pending flow for its callback, exactly once; raise StateError otherwise.

        ``check`` runs on the pending flow inside the transaction and may raise to refuse it:
        a refused flow stays pending, so the person who started it can still finish it.
        """
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT * FROM flows WHERE state = ?", (state,)).fetchone()
            if row is None:
                raise StateError(
                    "The callback's state is unknown",
                    hint="Start again from a fresh authorization link "
                    "(client.get_user_authorization_url()); links from another machine or an "
                    "old session do not work here.",
                )
            if row["status"] != "pending":
                raise StateError(
                    "This authorization link was already used",
                    hint="Each link works once: get a fresh one with "
                    "client.get_user_authorization_url().",
                )
            if check is not None:
                check(_flow(row))
            if row["expires_at"] <= now:
                db.execute(
                    "UPDATE flows SET status = 'error', error = ?, finished_at = ? WHERE state = ?",
                    (json.dumps({"kind": "state", "message": "expired"}), now, state),
                )
                raise StateError(
                    "This authorization link expired",
                    hint="Get a fresh one with client.get_user_authorization_url() and use it "
                    "within its lifetime.",
                )
            db.execute("UPDATE flows SET status = 'exchanging' WHERE state = ?", (state,))
        return dataclasses.replace(_flow(row), status="exchanging")

    def finish_flow(
        self,
        state: str,
        *,
        error: dict[str, Any] | None = None,
        exchange: dict[str, Any] | None = None,
    ) -> None:
        """Mark a consumed flow done, or failed with ``error``; keep the redacted ``exchange``.

        Both are JSON-able and hold no secret: the kernel shows them in its HTTP log.
        """
        with self._transaction() as db:
            db.execute(
                "UPDATE flows SET status = ?, error = ?, finished_at = ?, exchange = ? "
                "WHERE state = ?",
                (
                    "error" if error else "done",
                    json.dumps(error) if error else None,
                    time.time(),
                    json.dumps(exchange) if exchange else None,
                    state,
                ),
            )

    def get_flow(self, state: str) -> PendingFlow | None:
        """The flow for ``state`` in whatever status it is, or None."""
        with self._transaction(write=False) as db:
            row = db.execute("SELECT * FROM flows WHERE state = ?", (state,)).fetchone()
        return _flow(row) if row else None

    def latest_flow(
        self, alias: str, user: str, client_ref: str | None = None
    ) -> PendingFlow | None:
        """The most recently started flow for (alias, user) (of one client, if given), or None."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT * FROM flows WHERE alias = ? AND user = ? "
                "AND (? IS NULL OR client_ref = ?) ORDER BY created_at DESC LIMIT 1",
                (alias, user, client_ref, client_ref),
            ).fetchone()
        return _flow(row) if row else None

    def finished_flow_since(
        self, alias: str, user: str, since: float, client_ref: str | None = None
    ) -> PendingFlow | None:
        """The latest flow for (alias, user) (of one client, if given) that ended since ``since``."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT * FROM flows WHERE alias = ? AND user = ? AND finished_at >= ? "
                "AND (? IS NULL OR client_ref = ?) ORDER BY finished_at DESC LIMIT 1",
                (alias, user, since, client_ref, client_ref),
            ).fetchone()
        return _flow(row) if row else None

    def count_flows(self) -> int:
        """How many flow rows the store holds (to show it stays bounded)."""
        with self._transaction(write=False) as db:
            return int(db.execute("SELECT COUNT(*) FROM flows").fetchone()[0])

    # tokens ------------------------------------------------------------------------------

    def get_token(self, alias: str, user: str) -> TokenRecord | None:
        """The stored token for (alias, user), or None."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT * FROM tokens WHERE alias = ? AND user = ?", (alias, user)
            ).fetchone()
        return self._record(row) if row else None

    @staticmethod
    def _record(row: sqlite3.Row) -> TokenRecord:
        return TokenRecord(
            row["alias"],
            row["user"],
            AuthData.from_json(row["data"]),
            row["version"],
            row["updated_at"],
        )

    def list_tokens(self) -> list[TokenRecord]:
        """Every stored token, ordered by alias and user."""
        with self._transaction(write=False) as db:
            rows = db.execute("SELECT * FROM tokens ORDER BY alias, user").fetchall()
        return [self._record(row) for row in rows]

    def put_token(
        self, alias: str, user: str, data: AuthData, *, expect_version: int | None = None
    ) -> TokenRecord | None:
        """Store a token atomically; with ``expect_version``, only if nobody wrote since.

        Returns the new record, or None when ``expect_version`` no longer matches.
        """
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT version FROM tokens WHERE alias = ? AND user = ?", (alias, user)
            ).fetchone()
            current = row["version"] if row else 0
            if expect_version is not None and current != expect_version:
                return None
            db.execute(
                "INSERT OR REPLACE INTO tokens (alias, user, data, version, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (alias, user, data.to_json(), current + 1, now),
            )
        return TokenRecord(alias, user, data, current + 1, now)

    def delete_token(self, alias: str, user: str, *, expect_version: int | None = None) -> bool:
        """Delete the stored token; False when there was none (or it changed meanwhile)."""
        with self._transaction() as db:
            if expect_version is None:
                cur = db.execute("DELETE FROM tokens WHERE alias = ? AND user = ?", (alias, user))
            else:
                cur = db.execute(
                    "DELETE FROM tokens WHERE alias = ? AND user = ? AND version = ?",
                    (alias, user, expect_version),
                )
            return cur.rowcount > 0

    # leases: one refresh at a time per (alias, user), across processes --------------------

    def acquire_lease(self, alias: str, user: str, owner: str, ttl: float) -> bool:
        """Take the refresh lease for (alias, user) unless a live one is held by another owner."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT owner, expires_at FROM leases WHERE alias = ? AND user = ?", (alias, user)
            ).fetchone()
            if row is not None and row["owner"] != owner and row["expires_at"] > now:
                return False
            db.execute(
                "INSERT OR REPLACE INTO leases (alias, user, owner, expires_at) VALUES (?, ?, ?, ?)",
                (alias, user, owner, now + ttl),
            )
            return True

    def release_lease(self, alias: str, user: str, owner: str) -> None:
        """Give the lease back (only if we still hold it)."""
        with self._transaction() as db:
            db.execute(
                "DELETE FROM leases WHERE alias = ? AND user = ? AND owner = ?",
                (alias, user, owner),
            )


_stores: dict[Path, Store] = {}
_stores_lock = threading.Lock()


def open_store(path: str | os.PathLike[str] | None = None) -> Store:
    """Open (once per process and path) the store at ``path`` or the default location."""
    resolved = Path(path) if path is not None else default_store_path()
    with _stores_lock:
        store = _stores.get(resolved)
        if store is None:
            store = _stores[resolved] = Store(resolved)
        return store

"""The SQLite store shared by the kernel and the Jupyter server process (0600).

The kernel registers providers and pending flows here; the server's callback consumes a
flow, exchanges its code and writes the token here; the kernel sees it appear. SQLite
transactions make every write atomic (a process killed mid-write leaves the last committed
state), and a lease row makes refreshes single-flight across processes.

:class:`Store` is its parts put together: the connections (``connections``), providers,
flows and tokens (one module per table family); this module opens the file, brings an
older store's tables up to date and checks the key.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
from pathlib import Path

from ..config import provider_identity
from ..errors import StoreError
from .connections import no_key_error
from .files import default_store_path, prepare_store_file
from .flows import FlowTable
from .keys import STORE_KEY_ENV, KeySource, store_key_from_environment
from .providers import stored_provider
from .sealing import (
    Cipher,
    aad,
    flow_aad,
    held_aad,
    is_sealed,
    parse_key,
    provider_aad,
    resource_aad,
    token_aad,
)
from .tokens import TokenTable

__all__ = ["Store"]

# PRAGMA user_version: 2 = providers keyed by (alias, provider, client_id), tokens.provider,
# flows hold their provider without the client secret; 3 = resource_tokens (RFC 8707).
_SCHEMA_VERSION = 3
# A provider is keyed by who it is, not by its alias alone: two notebooks may use one alias
# for two providers, and each flow's exchange needs its own provider's secret.
_PROVIDERS = """
CREATE TABLE IF NOT EXISTS {name} (
    alias TEXT NOT NULL,
    provider TEXT NOT NULL,
    client_id TEXT NOT NULL,
    config TEXT NOT NULL,
    client_secret TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (alias, provider, client_id)
);"""
_SCHEMA = (
    _PROVIDERS.format(name="providers")
    + """
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
    provider TEXT,
    PRIMARY KEY (alias, user)
);
CREATE TABLE IF NOT EXISTS leases (
    alias TEXT NOT NULL,
    user TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (alias, user)
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS resource_tokens (
    alias TEXT NOT NULL,
    user TEXT NOT NULL,
    resource TEXT NOT NULL,
    data TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    provider TEXT,
    PRIMARY KEY (alias, user, resource)
);
CREATE TABLE IF NOT EXISTS held_refresh_tokens (
    alias TEXT NOT NULL,
    user TEXT NOT NULL,
    provider TEXT,
    refresh_token TEXT NOT NULL,
    PRIMARY KEY (alias, user)
);
"""
)

# Columns added after the first release: a store an older version wrote gets them on open.
_ADDED_COLUMNS: dict[str, dict[str, str]] = {
    # tokens.provider stays NULL for tokens stored before it existed, unless the migration
    # finds the provider the alias had then.
    "tokens": {"provider": "TEXT"},
    # Who started a flow and where it may finish (docs/ARCHITECTURE.md, "Three processes, one store").
    "flows": {
        "start_id": "TEXT",
        "origin": "TEXT NOT NULL DEFAULT 'code'",
        "client_ref": "TEXT",
        "endpoint": "TEXT",
        "owner": "TEXT",
        "binding": "TEXT",
        # A device flow's public state (user code, verification URI, poll interval, next
        # poll time); its device code, a credential, sits in code_verifier (sealed).
        "device": "TEXT",
        # OpenID Connect: the nonce the id_token must carry back.
        "nonce": "TEXT",
    },
}


def _ensure_columns(db: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    """Add the ``columns`` (name -> SQL type) that a store written by an older version lacks."""
    have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    for name, decl in columns.items():
        if name not in have:
            with contextlib.suppress(sqlite3.OperationalError):  # another process added it
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


def _wrong_key_error(path: Path, source: KeySource | None) -> StoreError:
    if source == "hub":
        # Never a fresh store in its place: the tokens stay, sealed with the key they had.
        return StoreError(
            f"The hub's chat-oauth2 service gave a store key that does not open the token "
            f"store {path}; the store is left as it is",
            hint="Ask the hub administrator whether the hub secret (chat_oauth2_nb_hub_secret) "
            "was replaced: with the old one back, the store opens again. To start afresh "
            f"instead, move {path.parent} aside and authorize again.",
        )
    return StoreError(
        f"The token store {path} cannot be decrypted with the store key given (a wrong key)",
        hint=f"Set {STORE_KEY_ENV} to the key the store was written with, in both the Jupyter "
        "server's and the kernel's environment (set it where the Jupyter server starts: "
        "kernels inherit it).",
    )


class Store(FlowTable, TokenTable):
    """The SQLite store; one connection per thread, every write in its own transaction."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout: float = 5.0,
        key: str | bytes | None = None,
    ) -> None:
        resolved = Path(path) if path is not None else default_store_path()
        source: KeySource | None = "argument"
        if key is None:
            key, source = store_key_from_environment()
        cipher = Cipher(parse_key(key)) if key else None
        super().__init__(resolved, busy_timeout, cipher, source if key else None)
        self._prepare_file()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def _prepare_file(self) -> None:
        """Make (or check) the file, its tables and their columns; then migrate, check the key."""
        self._file_id = prepare_store_file(self.path)
        try:
            # executescript() commits on its own; IF NOT EXISTS makes it safe to race.
            db = self._connection()
            db.executescript(_SCHEMA)
            for table, columns in _ADDED_COLUMNS.items():
                _ensure_columns(db, table, columns)
            db.execute("CREATE UNIQUE INDEX IF NOT EXISTS flows_by_start ON flows (start_id)")
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        with self._transaction() as db:
            self._migrate(db)
            self._check_key(db)

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Bring a store written by an older version up to date (in the caller's transaction)."""
        # Cheap and idempotent: run on every open, so columns added later always arrive.
        for table, columns in _ADDED_COLUMNS.items():
            _ensure_columns(db, table, columns)
        db.execute("CREATE UNIQUE INDEX IF NOT EXISTS flows_by_start ON flows (start_id)")
        if db.execute("PRAGMA user_version").fetchone()[0] >= _SCHEMA_VERSION:
            return
        if "provider" not in {row[1] for row in db.execute("PRAGMA table_info(providers)")}:
            # Keyed by alias alone before: rebuild it with the new primary key.
            db.execute(_PROVIDERS.format(name="providers_v2"))
            for row in db.execute("SELECT * FROM providers").fetchall():
                config = stored_provider(json.loads(row["config"]))
                identity = provider_identity(config)
                db.execute(
                    "INSERT OR REPLACE INTO providers_v2 VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        row["alias"],
                        identity,
                        config.client_id,
                        json.dumps(config.to_mapping()),
                        self._seal_secret(row["client_secret"], row["alias"], identity, config),
                        row["updated_at"],
                    ),
                )
                # One provider per alias then: its tokens were most likely issued by it.
                db.execute(
                    "UPDATE tokens SET provider = ? WHERE alias = ? AND provider IS NULL",
                    (identity, row["alias"]),
                )
            db.execute("DROP TABLE providers")
            db.execute("ALTER TABLE providers_v2 RENAME TO providers")
        for row in db.execute(
            "SELECT state, provider FROM flows WHERE provider IS NOT NULL"
        ).fetchall():
            values = json.loads(row["provider"])
            if values.pop("client_secret", None) is not None:
                db.execute(
                    "UPDATE flows SET provider = ? WHERE state = ?",
                    (json.dumps(values), row["state"]),
                )
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def _check_key(self, db: sqlite3.Connection) -> None:
        """Refuse a missing or wrong key at open, with the words to fix it."""
        row = db.execute("SELECT value FROM meta WHERE name = 'key_check'").fetchone()
        if row is None:
            if self._cipher is not None:
                db.execute(
                    "INSERT INTO meta (name, value) VALUES ('key_check', ?)",
                    (self._cipher.seal(secrets.token_urlsafe(16), aad("meta", "key_check")),),
                )
                self._seal_plain_rows(db)
            return
        if self._cipher is None:
            raise no_key_error(self.path)
        if self._cipher.open(row["value"], aad("meta", "key_check")) is None:
            raise _wrong_key_error(self.path, self.key_source)

    def _seal_plain_rows(self, db: sqlite3.Connection) -> None:
        """Seal what an unencrypted store already holds (the first open with a key)."""
        for row in db.execute("SELECT * FROM tokens").fetchall():
            if not is_sealed(row["data"]):
                db.execute(
                    "UPDATE tokens SET data = ? WHERE alias = ? AND user = ?",
                    (
                        self._seal(
                            row["data"], token_aad(row["alias"], row["user"], row["provider"])
                        ),
                        row["alias"],
                        row["user"],
                    ),
                )
        for row in db.execute("SELECT * FROM resource_tokens").fetchall():
            if not is_sealed(row["data"]):
                where = (row["alias"], row["user"], row["resource"])
                sealed = self._seal(
                    row["data"], resource_aad(*where[:2], row["provider"], where[2])
                )
                db.execute(
                    "UPDATE resource_tokens SET data = ? WHERE alias = ? AND user = ? "
                    "AND resource = ?",
                    (sealed, *where),
                )
        for row in db.execute("SELECT * FROM held_refresh_tokens").fetchall():
            if not is_sealed(row["refresh_token"]):
                aad = held_aad(row["alias"], row["user"], row["provider"])
                db.execute(
                    "UPDATE held_refresh_tokens SET refresh_token = ? WHERE alias = ? AND user = ?",
                    (self._seal(row["refresh_token"], aad), row["alias"], row["user"]),
                )
        for row in db.execute("SELECT state, code_verifier FROM flows").fetchall():
            if not is_sealed(row["code_verifier"]):
                db.execute(
                    "UPDATE flows SET code_verifier = ? WHERE state = ?",
                    (self._seal(row["code_verifier"], flow_aad(row["state"])), row["state"]),
                )
        for row in db.execute("SELECT * FROM providers").fetchall():
            secret = row["client_secret"]
            if secret and not is_sealed(secret):
                aad = provider_aad(row["alias"], row["provider"], row["client_id"])
                db.execute(
                    "UPDATE providers SET client_secret = ? "
                    "WHERE alias = ? AND provider = ? AND client_id = ?",
                    (self._seal(secret, aad), row["alias"], row["provider"], row["client_id"]),
                )

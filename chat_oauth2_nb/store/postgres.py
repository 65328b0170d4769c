"""The hub service's store in PostgreSQL, for a chat-oauth2 service run as several replicas.

Only what the broker needs (:class:`~chat_oauth2_nb.store.HeldTokenStore`): tokens, the
refresh tokens held apart, and the refresh leases that keep a refresh single flight across
every replica. Token data and refresh tokens are sealed with the same AES-GCM as the SQLite
store, each bound to its row, with the key the service derives from the hub secret: the
database (and its backups and dumps) never holds a token in clear.

Chosen by a URL (``configure_hub(c, store_url="postgresql://…")``); the driver is psycopg 3
(``pip install 'chat_oauth2_nb[postgres]'``). The tables are prefixed ``chat_oauth2_`` so
they can live in the hub's own database.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigurationError, StoreError
from ..oauth import AuthData
from .records import TokenRecord
from .sealing import Cipher, aad, held_aad, parse_key, resource_aad, token_aad

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore", "is_postgres_url", "redact_url", "require_driver"]

T = TypeVar("T")

_SCHEMES = ("postgresql", "postgres")
# Any constant: replicas starting together create the tables one at a time (two concurrent
# CREATE TABLE IF NOT EXISTS can still collide on the catalog's unique index).
_SCHEMA_LOCK = 0x63686174  # "chat"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS chat_oauth2_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chat_oauth2_tokens (
    alias TEXT NOT NULL,
    username TEXT NOT NULL,
    data TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    provider TEXT,
    PRIMARY KEY (alias, username)
);
CREATE TABLE IF NOT EXISTS chat_oauth2_resource_tokens (
    alias TEXT NOT NULL,
    username TEXT NOT NULL,
    resource TEXT NOT NULL,
    data TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    provider TEXT,
    PRIMARY KEY (alias, username, resource)
);
CREATE TABLE IF NOT EXISTS chat_oauth2_held_refresh_tokens (
    alias TEXT NOT NULL,
    username TEXT NOT NULL,
    provider TEXT,
    refresh_token TEXT NOT NULL,
    PRIMARY KEY (alias, username)
);
CREATE TABLE IF NOT EXISTS chat_oauth2_leases (
    alias TEXT NOT NULL,
    username TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (alias, username)
);
"""
# The lease is taken by inserting its row, or by updating it when its owner renews it or it
# expired; RETURNING gives a row only then. Expiry is by the database server's clock, not a
# replica's: replicas on several machines agree on it whatever their clocks' skew.
_ACQUIRE = """
INSERT INTO chat_oauth2_leases (alias, username, owner, expires_at)
VALUES (%s, %s, %s, EXTRACT(EPOCH FROM clock_timestamp()) + %s)
ON CONFLICT (alias, username) DO UPDATE
SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
WHERE chat_oauth2_leases.owner = EXCLUDED.owner
   OR chat_oauth2_leases.expires_at <= EXTRACT(EPOCH FROM clock_timestamp())
RETURNING owner
"""


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return urlsplit(url).scheme.lower() in _SCHEMES


def redact_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def require_driver() -> Any:
    """The psycopg module; a ConfigurationError that says what to install without it."""
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError(
            "store_url",
            "names a PostgreSQL database but the psycopg driver is not installed",
            "pip install 'chat_oauth2_nb[postgres]' where the hub's chat-oauth2 service runs.",
        ) from None
    return psycopg


class PostgresStore:
    """Tokens, held refresh tokens and refresh leases in PostgreSQL, sealed with ``key``.

    One connection per thread (the service runs the broker in worker threads), each write in
    its own transaction.
    """

    def __init__(self, url: str, *, key: str | bytes, connect_timeout: float = 10.0) -> None:
        if not is_postgres_url(url):
            raise ConfigurationError(
                "store_url",
                f"is not a PostgreSQL URL ({redact_url(url)!r})",
                "Use postgresql://user@host:port/database (the password in ~/.pgpass or "
                "PGPASSWORD keeps it out of the hub's config).",
            )
        self._psycopg = require_driver()
        self.url = url
        self.connect_timeout = connect_timeout
        self._cipher = Cipher(parse_key(key))
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[psycopg.Connection[Any]] = []
        weakref.finalize(self, _close_all, self._connections)
        self._prepare()

    def __repr__(self) -> str:
        return f"PostgresStore({redact_url(self.url)!r})"

    # connections -------------------------------------------------------------------------

    def _error(self, exc: Exception) -> StoreError:
        # psycopg's messages name host, port, user and database; never the password.
        return StoreError(
            f"The PostgreSQL store {redact_url(self.url)} failed: "
            f"{type(exc).__name__}: {str(exc).strip()}",
            hint="Check that the database server is up and the URL's user may create tables "
            "in that database (configure_hub(c, store_url=...)).",
        )

    def _connection(self) -> psycopg.Connection[Any]:
        db: psycopg.Connection[Any] | None = getattr(self._local, "db", None)
        if db is not None and not db.closed and not db.broken:
            return db
        try:
            db = self._psycopg.connect(self.url, connect_timeout=max(1, int(self.connect_timeout)))
        except self._psycopg.Error as exc:
            raise self._error(exc) from None
        assert db is not None
        with self._lock:
            self._connections.append(db)
        self._local.db = db
        return db

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        db = self._connection()
        try:
            with db.transaction(), db.cursor() as cur:
                yield cur
        except self._psycopg.Error as exc:
            raise self._error(exc) from None

    def _prepare(self) -> None:
        """Create the tables (once for all replicas) and refuse a wrong key at open."""
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            cur.execute(_SCHEMA)
            cur.execute("SELECT value FROM chat_oauth2_meta WHERE name = 'key_check'")
            row = cur.fetchone()
            if row is None:
                sealed = self._cipher.seal(time.strftime("%Y-%m-%d"), aad("meta", "key_check"))
                cur.execute(
                    "INSERT INTO chat_oauth2_meta (name, value) VALUES ('key_check', %s)",
                    (sealed,),
                )
            elif self._cipher.open(row[0], aad("meta", "key_check")) is None:
                raise StoreError(
                    f"The PostgreSQL store {redact_url(self.url)} was sealed with another key",
                    hint="Give every replica of the chat-oauth2 service the same hub secret "
                    "file (configure_hub's secret_file); a store sealed with a lost secret "
                    "must be emptied and its users must authorize again.",
                )

    def close_all(self) -> None:
        """Close every thread's connection (a thread that uses the store again reopens one)."""
        _close_all(self._connections)

    def patiently(self, write: Callable[[], T], patience: float) -> T:
        """Run ``write``: PostgreSQL waits for row locks itself, so there is nothing to retry."""
        return write()

    # tokens ------------------------------------------------------------------------------

    def _open(self, value: str, aad: bytes) -> str:
        plain = self._cipher.open(value, aad)
        if plain is None:
            raise StoreError(
                f"A row of the PostgreSQL store {redact_url(self.url)} failed its integrity "
                "check: it was altered or moved from another row",
                hint="Authorize again to replace it; if this repeats, someone is editing the "
                "chat_oauth2_ tables.",
            )
        return plain

    def get_token(self, alias: str, user: str) -> TokenRecord | None:
        """The stored token for (alias, user), or None."""
        with self._transaction() as cur:
            cur.execute(
                "SELECT data, version, updated_at, provider FROM chat_oauth2_tokens "
                "WHERE alias = %s AND username = %s",
                (alias, user),
            )
            row = cur.fetchone()
        if row is None:
            return None
        data, version, updated_at, provider = row
        plain = self._open(data, token_aad(alias, user, provider))
        return TokenRecord(alias, user, AuthData.from_json(plain), version, updated_at, provider)

    def _write_token(
        self,
        cur: psycopg.Cursor[Any],
        alias: str,
        user: str,
        data: AuthData,
        provider: str | None,
        expect_version: int | None,
    ) -> TokenRecord | None:
        """Write the token row in the caller's transaction; None when the version moved.

        Each branch is one statement, atomic under READ COMMITTED: two replicas that both
        expect version n cannot both write n + 1.
        """
        sealed = self._cipher.seal(data.to_json(), token_aad(alias, user, provider))
        now = time.time()
        values = (alias, user, sealed, now, provider)
        if expect_version is None:
            # A new grant: the tokens the one it replaces got for other resources go with it.
            cur.execute(
                "DELETE FROM chat_oauth2_resource_tokens WHERE alias = %s AND username = %s",
                (alias, user),
            )
            cur.execute(
                "INSERT INTO chat_oauth2_tokens (alias, username, data, version, updated_at, "
                "provider) VALUES (%s, %s, %s, 1, %s, %s) ON CONFLICT (alias, username) DO "
                "UPDATE SET data = EXCLUDED.data, version = chat_oauth2_tokens.version + 1, "
                "updated_at = EXCLUDED.updated_at, provider = EXCLUDED.provider "
                "RETURNING version",
                values,
            )
        elif expect_version == 0:  # only if no token is stored
            cur.execute(
                "INSERT INTO chat_oauth2_tokens (alias, username, data, version, updated_at, "
                "provider) VALUES (%s, %s, %s, 1, %s, %s) ON CONFLICT (alias, username) DO "
                "NOTHING RETURNING version",
                values,
            )
        else:
            cur.execute(
                "UPDATE chat_oauth2_tokens SET data = %s, version = version + 1, "
                "updated_at = %s, provider = %s WHERE alias = %s AND username = %s "
                "AND version = %s RETURNING version",
                (sealed, now, provider, alias, user, expect_version),
            )
        row = cur.fetchone()
        if row is None:
            return None
        return TokenRecord(alias, user, data, int(row[0]), now, provider)

    def put_token(
        self,
        alias: str,
        user: str,
        data: AuthData,
        *,
        provider: str | None = None,
        expect_version: int | None = None,
    ) -> TokenRecord | None:
        """Store a token; with ``expect_version``, only if nobody wrote since (else None)."""
        with self._transaction() as cur:
            return self._write_token(cur, alias, user, data, provider, expect_version)

    def put_held_token(
        self,
        alias: str,
        user: str,
        data: AuthData,
        *,
        provider: str,
        expect_version: int | None = None,
    ) -> TokenRecord | None:
        """Store a declared provider's token, its refresh token held apart (one transaction).

        A ``data`` without a refresh token keeps the held one (providers that do not rotate),
        unless it is a new authorization.
        """
        public = dataclasses.replace(data, refresh_token=None)
        with self._transaction() as cur:
            record = self._write_token(cur, alias, user, public, provider, expect_version)
            if record is None:
                return None
            if data.refresh_token:
                cur.execute(
                    "INSERT INTO chat_oauth2_held_refresh_tokens (alias, username, provider, "
                    "refresh_token) VALUES (%s, %s, %s, %s) ON CONFLICT (alias, username) DO "
                    "UPDATE SET provider = EXCLUDED.provider, "
                    "refresh_token = EXCLUDED.refresh_token",
                    (
                        alias,
                        user,
                        provider,
                        self._cipher.seal(data.refresh_token, held_aad(alias, user, provider)),
                    ),
                )
            elif record.version == 1 or expect_version is None:
                cur.execute(
                    "DELETE FROM chat_oauth2_held_refresh_tokens "
                    "WHERE alias = %s AND username = %s",
                    (alias, user),
                )
        return record

    def get_held_refresh_token(self, alias: str, user: str, provider: str) -> str | None:
        """The refresh token held apart for (alias, user) and ``provider``, or None."""
        with self._transaction() as cur:
            cur.execute(
                "SELECT refresh_token FROM chat_oauth2_held_refresh_tokens "
                "WHERE alias = %s AND username = %s AND provider = %s",
                (alias, user, provider),
            )
            row = cur.fetchone()
        return None if row is None else self._open(row[0], held_aad(alias, user, provider))

    def delete_token(self, alias: str, user: str, *, expect_version: int | None = None) -> bool:
        """Delete the token and its held refresh token; False when there was none."""
        with self._transaction() as cur:
            cur.execute(
                "DELETE FROM chat_oauth2_tokens WHERE alias = %s AND username = %s "
                "AND (%s::bigint IS NULL OR version = %s::bigint)",
                (alias, user, expect_version, expect_version),
            )
            deleted = cur.rowcount > 0
            if deleted:
                for table in ("chat_oauth2_held_refresh_tokens", "chat_oauth2_resource_tokens"):
                    cur.execute(
                        f"DELETE FROM {table} WHERE alias = %s AND username = %s",  # noqa: S608
                        (alias, user),
                    )
        return deleted

    def get_resource_token(self, alias: str, user: str, resource: str) -> TokenRecord | None:
        """The token stored for (alias, user) and ``resource`` (RFC 8707), or None."""
        with self._transaction() as cur:
            cur.execute(
                "SELECT data, version, updated_at, provider FROM chat_oauth2_resource_tokens "
                "WHERE alias = %s AND username = %s AND resource = %s",
                (alias, user, resource),
            )
            row = cur.fetchone()
        if row is None:
            return None
        data, version, updated_at, provider = row
        plain = self._open(data, resource_aad(alias, user, provider, resource))
        return TokenRecord(alias, user, AuthData.from_json(plain), version, updated_at, provider)

    def put_resource_token(
        self,
        alias: str,
        user: str,
        resource: str,
        data: AuthData,
        *,
        provider: str | None = None,
    ) -> TokenRecord:
        """Store the access token for ``resource`` (never a refresh token: the grant holds it)."""
        kept = dataclasses.replace(data, refresh_token=None, resource=resource)
        sealed = self._cipher.seal(kept.to_json(), resource_aad(alias, user, provider, resource))
        now = time.time()
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO chat_oauth2_resource_tokens (alias, username, resource, data, "
                "version, updated_at, provider) VALUES (%s, %s, %s, %s, 1, %s, %s) "
                "ON CONFLICT (alias, username, resource) DO UPDATE SET data = EXCLUDED.data, "
                "version = chat_oauth2_resource_tokens.version + 1, "
                "updated_at = EXCLUDED.updated_at, provider = EXCLUDED.provider "
                "RETURNING version",
                (alias, user, resource, sealed, now, provider),
            )
            row = cur.fetchone()
        return TokenRecord(alias, user, kept, int(row[0]) if row else 1, now, provider)

    # leases ------------------------------------------------------------------------------
    #
    # A lease row, taken by one upsert, rather than an advisory lock or SELECT … FOR UPDATE:
    # both of those belong to a session or a transaction that would have to stay open for the
    # whole provider request (a connection held per refresh in flight, and lost to a pooler
    # in transaction mode such as pgbouncer's), while the broker already speaks leases with
    # a time to live (the SQLite store's). A replica that dies mid-refresh leaves a row that
    # simply expires; the version-checked write stops a late one from overwriting.

    def acquire_lease(self, alias: str, user: str, owner: str, ttl: float) -> bool:
        """Take the refresh lease for (alias, user) unless another owner holds a live one."""
        with self._transaction() as cur:
            cur.execute(_ACQUIRE, (alias, user, owner, float(ttl)))
            return cur.fetchone() is not None

    def release_lease(self, alias: str, user: str, owner: str) -> None:
        """Give the lease back (only if ``owner`` still holds it)."""
        with self._transaction() as cur:
            cur.execute(
                "DELETE FROM chat_oauth2_leases WHERE alias = %s AND username = %s AND owner = %s",
                (alias, user, owner),
            )


def _close_all(connections: list[Any]) -> None:
    while connections:
        # A connection the server already dropped: nothing to close.
        with contextlib.suppress(Exception):
            connections.pop().close()

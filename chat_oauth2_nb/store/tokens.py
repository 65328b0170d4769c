"""The tokens, the refresh tokens held apart, and the refresh leases: what a broker needs.

Every write bumps a token's version, so a write that expected another version (someone
refreshed meanwhile) is refused rather than lost; a lease row makes a refresh single
flight across processes. Together they implement :class:`~.records.HeldTokenStore`.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time

from ..oauth import AuthData
from .connections import Connections
from .records import TokenRecord
from .sealing import held_aad, resource_aad, token_aad

__all__ = ["TokenTable"]


class TokenTable(Connections):
    """Tokens by (alias, user), their held refresh tokens and refresh leases."""

    def get_token(self, alias: str, user: str) -> TokenRecord | None:
        """The stored token for (alias, user), or None."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT * FROM tokens WHERE alias = ? AND user = ?", (alias, user)
            ).fetchone()
        return self._record(row) if row else None

    def _record(self, row: sqlite3.Row) -> TokenRecord:
        """A tokens row as a record, its data opened."""
        aad = token_aad(row["alias"], row["user"], row["provider"])
        return TokenRecord(
            row["alias"],
            row["user"],
            AuthData.from_json(self._open(row["data"], aad)),
            row["version"],
            row["updated_at"],
            row["provider"],
        )

    def list_tokens(self) -> list[TokenRecord]:
        """Every stored token, ordered by alias and user."""
        with self._transaction(write=False) as db:
            rows = db.execute("SELECT * FROM tokens ORDER BY alias, user").fetchall()
        return [self._record(row) for row in rows]

    def put_token(
        self,
        alias: str,
        user: str,
        data: AuthData,
        *,
        provider: str | None = None,
        expect_version: int | None = None,
    ) -> TokenRecord | None:
        """Store a token atomically, with the ``provider`` identity it was issued by.

        With ``expect_version``, only if nobody wrote since: returns the new record, or None
        when ``expect_version`` no longer matches.
        """
        with self._transaction() as db:
            self._writable(db)
            return self._write_token(db, alias, user, data, provider, expect_version)[0]

    def _write_token(
        self,
        db: sqlite3.Connection,
        alias: str,
        user: str,
        data: AuthData,
        provider: str | None,
        expect_version: int | None,
    ) -> tuple[TokenRecord | None, bool]:
        """Write the tokens row in the caller's transaction: (the record or None, whether new)."""
        row = db.execute(
            "SELECT version FROM tokens WHERE alias = ? AND user = ?", (alias, user)
        ).fetchone()
        current = row["version"] if row else 0
        if expect_version is not None and current != expect_version:
            return None, row is None
        now = time.time()
        if expect_version is None:
            # A new grant: the tokens the one it replaces got for other resources go with it.
            db.execute("DELETE FROM resource_tokens WHERE alias = ? AND user = ?", (alias, user))
        db.execute(
            "INSERT OR REPLACE INTO tokens (alias, user, data, version, updated_at, provider) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                alias,
                user,
                self._seal(data.to_json(), token_aad(alias, user, provider)),
                current + 1,
                now,
                provider,
            ),
        )
        return TokenRecord(alias, user, data, current + 1, now, provider), row is None

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
            deleted = cur.rowcount > 0
            if deleted:
                for table in ("held_refresh_tokens", "resource_tokens"):
                    db.execute(f"DELETE FROM {table} WHERE alias = ? AND user = ?", (alias, user))  # noqa: S608
            return deleted

    # tokens for other resources (RFC 8707), got with the grant's refresh token -------------

    def get_resource_token(self, alias: str, user: str, resource: str) -> TokenRecord | None:
        """The token stored for (alias, user) and ``resource``, or None."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT * FROM resource_tokens WHERE alias = ? AND user = ? AND resource = ?",
                (alias, user, resource),
            ).fetchone()
        if row is None:
            return None
        aad = resource_aad(alias, user, row["provider"], resource)
        return TokenRecord(
            alias,
            user,
            AuthData.from_json(self._open(row["data"], aad)),
            row["version"],
            row["updated_at"],
            row["provider"],
        )

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
        with self._transaction() as db:
            self._writable(db)
            row = db.execute(
                "SELECT version FROM resource_tokens WHERE alias = ? AND user = ? AND resource = ?",
                (alias, user, resource),
            ).fetchone()
            version = (row["version"] if row else 0) + 1
            now = time.time()
            db.execute(
                "INSERT OR REPLACE INTO resource_tokens (alias, user, resource, data, version, "
                "updated_at, provider) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    alias,
                    user,
                    resource,
                    self._seal(kept.to_json(), resource_aad(alias, user, provider, resource)),
                    version,
                    now,
                    provider,
                ),
            )
        return TokenRecord(alias, user, kept, version, now, provider)

    # held refresh tokens: declared providers, whose refresh token only the server reads -----

    def put_held_token(
        self,
        alias: str,
        user: str,
        data: AuthData,
        *,
        provider: str,
        expect_version: int | None = None,
    ) -> TokenRecord | None:
        """Store a declared provider's token: its refresh token apart, where kernels never read.

        The ``tokens`` row (which kernels read) gets ``data`` without its refresh token; the
        refresh token goes to ``held_refresh_tokens``, in the same transaction. A ``data``
        without a refresh token keeps the held one (providers that do not rotate).
        """
        public = dataclasses.replace(data, refresh_token=None)
        with self._transaction() as db:
            self._writable(db)
            record, new = self._write_token(db, alias, user, public, provider, expect_version)
            if record is None:
                return None
            if data.refresh_token:
                db.execute(
                    "INSERT OR REPLACE INTO held_refresh_tokens "
                    "(alias, user, provider, refresh_token) VALUES (?, ?, ?, ?)",
                    (
                        alias,
                        user,
                        provider,
                        self._seal(data.refresh_token, held_aad(alias, user, provider)),
                    ),
                )
            elif new or expect_version is None:
                # A new authorization without a refresh token: an older one must not linger.
                db.execute(
                    "DELETE FROM held_refresh_tokens WHERE alias = ? AND user = ?", (alias, user)
                )
        return record

    def get_held_refresh_token(self, alias: str, user: str, provider: str) -> str | None:
        """The refresh token held apart for a declared provider's (alias, user), or None."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT * FROM held_refresh_tokens WHERE alias = ? AND user = ? AND provider = ?",
                (alias, user, provider),
            ).fetchone()
        if row is None:
            return None
        return self._open(row["refresh_token"], held_aad(alias, user, row["provider"]))

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

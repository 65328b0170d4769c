"""The providers table: what the server needs to exchange a code, client secret included.

A provider is keyed by who it is (alias, :func:`~chat_oauth2_nb.config.provider_identity`,
client id), not by its alias alone: two notebooks may use one alias for two providers, and
each flow's exchange needs its own provider's secret. The secret is stored here once.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from typing import Any

from ..config import ProviderConfig, provider_identity
from .connections import Connections
from .sealing import provider_aad

__all__ = ["ProviderTable", "stored_provider"]


def stored_provider(values: dict[str, Any]) -> ProviderConfig:
    """A provider from its stored JSON form; the writer already applied its http rule."""
    values["default_scopes"] = tuple(values["default_scopes"])
    # The row was checked when it was written, under the writer's http rule (a kernel's
    # allow_insecure_http), which the row does not record: the reader applies none of its own.
    return ProviderConfig(**values, allow_insecure_http=True)


class ProviderTable(Connections):
    """The providers the kernel registered, for the server's code exchanges."""

    def put_provider(self, config: ProviderConfig) -> None:
        """Register (or update) a provider so the server can exchange codes for it."""
        identity = provider_identity(config)
        with self._transaction() as db:
            self._writable(db)
            db.execute(
                "INSERT OR REPLACE INTO providers "
                "(alias, provider, client_id, config, client_secret, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    config.alias,
                    identity,
                    config.client_id,
                    json.dumps(config.to_mapping()),
                    self._seal_secret(config.client_secret, config.alias, identity, config),
                    time.time(),
                ),
            )

    def get_provider(self, alias: str, provider: str | None = None) -> ProviderConfig | None:
        """The provider registered for ``alias`` (and ``provider`` identity), with its secret.

        Without ``provider``: the one registered last for the alias.
        """
        query = "SELECT * FROM providers WHERE alias = ?"
        args: tuple[str, ...] = (alias,)
        if provider is not None:
            query, args = query + " AND provider = ?", (alias, provider)
        with self._transaction(write=False) as db:
            row = db.execute(query + " ORDER BY updated_at DESC LIMIT 1", args).fetchone()
        return self._provider_row(row) if row else None

    def list_providers(self) -> list[ProviderConfig]:
        """Every registered provider, the latest registration of each alias first (secrets opened)."""
        with self._transaction(write=False) as db:
            rows = db.execute("SELECT * FROM providers ORDER BY updated_at DESC").fetchall()
        return [self._provider_row(row) for row in rows]

    def _provider_row(self, row: sqlite3.Row) -> ProviderConfig:
        """A providers row as a config, its client secret opened."""
        secret = row["client_secret"]
        if secret:
            secret = self._open(
                secret, provider_aad(row["alias"], row["provider"], row["client_id"])
            )
        return stored_provider({**json.loads(row["config"]), "client_secret": secret})

    def _with_secret(self, db: sqlite3.Connection, config: ProviderConfig) -> ProviderConfig:
        """``config`` with its client secret, looked up where it is stored once: providers."""
        row = db.execute(
            "SELECT * FROM providers WHERE alias = ? AND provider = ? AND client_id = ?",
            (config.alias, provider_identity(config), config.client_id),
        ).fetchone()
        if row is None:
            return config
        return dataclasses.replace(config, client_secret=self._provider_row(row).client_secret)

    def _seal_secret(
        self, secret: str | None, alias: str, identity: str, config: ProviderConfig
    ) -> str | None:
        """A client secret sealed for its providers row; None for a public client."""
        if not secret:
            return None
        return self._seal(secret, provider_aad(alias, identity, config.client_id))

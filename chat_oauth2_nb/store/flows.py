"""The flows table: authorizations in progress, and how each one ended.

The kernel adds a flow; the server's start link binds it to a browser, its callback
consumes it exactly once and finishes it; the kernel waits for it to end. Finished flows
are kept a while (see ``_FINISHED_FLOW_RETENTION``) and purged when a new one is added.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from ..errors import BrowserBindingError, StateError
from .providers import ProviderTable, stored_provider
from .records import FLOW_EXPIRED, FlowError, PendingFlow
from .sealing import flow_aad

__all__ = ["FlowTable"]

# Finished flows are kept this long so a kernel that polls late still learns the outcome.
_FINISHED_FLOW_RETENTION = 3600.0


# Over the providers: consuming a flow hands the exchange its provider's client secret.
class FlowTable(ProviderTable):
    """Pending flows: added by the kernel, bound, consumed and finished by the server."""

    def _flow(self, row: sqlite3.Row) -> PendingFlow:
        """A flows row as a record, its verifier opened."""
        return PendingFlow(
            state=row["state"],
            alias=row["alias"],
            user=row["user"],
            code_verifier=self._open(row["code_verifier"], flow_aad(row["state"])),
            redirect_uri=row["redirect_uri"],
            scopes=tuple(json.loads(row["scopes"])),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            status=row["status"],
            error=FlowError.from_json(row["error"]) if row["error"] else None,
            finished_at=row["finished_at"],
            exchange=json.loads(row["exchange"]) if row["exchange"] else None,
            provider=stored_provider(json.loads(row["provider"])) if row["provider"] else None,
            start_id=row["start_id"],
            origin=row["origin"] or "code",
            client_ref=row["client_ref"],
            endpoint=row["endpoint"] or "server",
            owner=row["owner"],
            binding=row["binding"],
            device=json.loads(row["device"]) if row["device"] else None,
            nonce=row["nonce"],
        )

    def add_flow(self, flow: PendingFlow) -> None:
        """Record a new pending flow, and purge the ones long expired."""
        now = time.time()
        with self._transaction() as db:
            self._writable(db)
            db.execute(
                "DELETE FROM flows WHERE expires_at < ? OR finished_at < ?",
                (now - _FINISHED_FLOW_RETENTION, now - _FINISHED_FLOW_RETENTION),
            )
            db.execute(
                "INSERT INTO flows (state, alias, user, code_verifier, redirect_uri, scopes, "
                "created_at, expires_at, status, provider, start_id, origin, client_ref, endpoint, "
                "device, nonce) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)",
                (
                    flow.state,
                    flow.alias,
                    flow.user,
                    self._seal(flow.code_verifier, flow_aad(flow.state)),
                    flow.redirect_uri,
                    json.dumps(list(flow.scopes)),
                    flow.created_at,
                    flow.expires_at,
                    # Without the secret: it is stored once, with the provider.
                    json.dumps(flow.provider.to_mapping()) if flow.provider else None,
                    flow.start_id,
                    flow.origin,
                    flow.client_ref,
                    flow.endpoint,
                    json.dumps(flow.device) if flow.device is not None else None,
                    flow.nonce,
                ),
            )

    def update_device(self, state: str, **fields: Any) -> None:
        """Merge ``fields`` into a pending device flow's public state (interval, next poll)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT device FROM flows WHERE state = ? AND status = 'pending'", (state,)
            ).fetchone()
            if row is None or not row["device"]:
                return
            db.execute(
                "UPDATE flows SET device = ? WHERE state = ?",
                (json.dumps({**json.loads(row["device"]), **fields}), state),
            )

    def flow_by_start_id(self, start_id: str) -> PendingFlow | None:
        """The flow whose start link has this opaque id, or None."""
        with self._transaction(write=False) as db:
            row = db.execute("SELECT * FROM flows WHERE start_id = ?", (start_id,)).fetchone()
        return self._flow(row) if row else None

    def bind_flow(self, start_id: str, binding: str, owner: str | None) -> PendingFlow:
        """Bind a pending flow to the browser that opened its start link (and its Jupyter user).

        Only once: raises StateError when the flow is unknown, used, expired or opened
        already, and BrowserBindingError when another Jupyter user opened it.
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
            if row["binding"] is not None:
                # The first browser to open the link holds it: a later one may have read the
                # link off a command line (webbrowser.open) and must not take the flow over.
                raise StateError(
                    "This authorization link was already opened",
                    hint="A start link works once, in the browser that opened it first. Get a "
                    "new link from your notebook (the panel's Authorize link or "
                    "client.get_user_authorization_url()).",
                )
            db.execute(
                "UPDATE flows SET binding = ?, owner = ? WHERE start_id = ? AND binding IS NULL",
                (binding, owner, start_id),
            )
        return dataclasses.replace(self._flow(row), binding=binding, owner=owner)

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
                check(self._flow(row))
            if row["expires_at"] <= now:
                db.execute(
                    "UPDATE flows SET status = 'error', error = ?, finished_at = ? WHERE state = ?",
                    (FLOW_EXPIRED.to_json(), now, state),
                )
                raise StateError(
                    "This authorization link expired",
                    hint="Get a fresh one with client.get_user_authorization_url() and use it "
                    "within its lifetime.",
                )
            db.execute("UPDATE flows SET status = 'exchanging' WHERE state = ?", (state,))
            flow = self._flow(row)
            # The exchange needs the client secret: it lives once, in providers.
            provider = self._with_secret(db, flow.provider) if flow.provider else None
        return dataclasses.replace(flow, status="exchanging", provider=provider)

    def finish_flow(
        self,
        state: str,
        *,
        error: FlowError | None = None,
        exchange: dict[str, Any] | None = None,
    ) -> None:
        """Mark a consumed flow done, or failed with ``error``; keep the redacted ``exchange``.

        Neither holds a secret: the kernel shows the exchange in its HTTP log.
        """
        with self._transaction() as db:
            db.execute(
                "UPDATE flows SET status = ?, error = ?, finished_at = ?, exchange = ? "
                "WHERE state = ?",
                (
                    "error" if error else "done",
                    error.to_json() if error else None,
                    time.time(),
                    json.dumps(exchange) if exchange else None,
                    state,
                ),
            )

    def get_flow(self, state: str) -> PendingFlow | None:
        """The flow for ``state`` in whatever status it is, or None."""
        with self._transaction(write=False) as db:
            row = db.execute("SELECT * FROM flows WHERE state = ?", (state,)).fetchone()
        return self._flow(row) if row else None

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
        return self._flow(row) if row else None

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
        return self._flow(row) if row else None

    def count_flows(self) -> int:
        """How many flow rows the store holds (to show it stays bounded)."""
        with self._transaction(write=False) as db:
            return int(db.execute("SELECT COUNT(*) FROM flows").fetchone()[0])

"""The REST API the JupyterLab sidebar talks to: ``{base_url}chat-oauth2/api/…`` (docs/rest-api.md).

Jupyter's own login (token or cookie, JupyterHub's through the single-user server) and its
XSRF check on POST; ``@authorized`` on the resource ``chat-oauth2``: "read" to list, "write"
to act. Each handler is a few lines around :class:`~chat_oauth2_nb.lifecycle.overview.Overview`
(the one lifecycle) or the doctor, run on the extension's worker pool. Answers are JSON,
never cached, and hold no secret: tokens only masked, errors in their typed form.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web

from ..doctor import Report, Subject, diagnose
from ..errors import (
    ActionUnavailableError,
    ConfigurationError,
    GrantRevokedError,
    NotAuthorizedError,
    OAuth2Error,
    ProviderError,
    StoreError,
    UnknownProviderError,
)
from ..lifecycle.declared import DeclaredProviders
from ..lifecycle.overview import Overview, error_view
from ..routes import SERVER_CALLBACK_ENV, START_PATH
from ..store import Store
from ..users import resolve_user
from .changes import ChangeFeed
from .handlers import hub_guest, in_worker

__all__ = [
    "API_RESOURCE",
    "ActionHandler",
    "ChangesHandler",
    "ClaimsHandler",
    "StateHandler",
    "api_handlers",
    "check_view",
]

#: The resource the API's permissions are checked on (jupyter_server's Authorizer).
API_RESOURCE = "chat-oauth2"
T = TypeVar("T")
_ALIAS = r"([^/]{1,128})"
# Failures first: what a person must fix is at the top.
_ORDER = {"fail": 0, "warn": 1, "ok": 2, "skipped": 3}


def _status_of(exc: OAuth2Error) -> int:
    """The HTTP status an error answers with."""
    for kind, status in (
        (UnknownProviderError, 404),
        (ActionUnavailableError, 403),
        (GrantRevokedError, 409),
        (NotAuthorizedError, 404),
        (ConfigurationError, 400),
        (ProviderError, 502),
        (StoreError, 503),
    ):
        if isinstance(exc, kind):
            return status
    return 500


def check_view(report: Report) -> dict[str, Any]:
    """The doctor's report as the API answers it, failures first."""
    checks = sorted(report.checks, key=lambda c: _ORDER.get(c.verdict, 9))
    return {
        "ok": report.ok,
        "rows": [
            {
                "check": c.title,
                "id": c.id,
                "status": "skip" if c.verdict == "skipped" else c.verdict,
                "detail": c.evidence,
                "todo": c.action,
            }
            for c in checks
        ],
        "summary": report.summary(),
    }


class _Api(ExtensionHandlerMixin, APIHandler):
    auth_resource = API_RESOURCE

    def set_default_headers(self) -> None:
        """Never cached: the answers describe tokens."""
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")

    @property
    def feed(self) -> ChangeFeed:
        """The server's change feed."""
        feed: ChangeFeed = self.settings["chat_oauth2_nb_feed"]
        return feed

    def overview(self) -> Overview:
        """The current user's providers and tokens (opens the store: call in a worker)."""
        open_store: Callable[[], Store] = self.settings["chat_oauth2_nb_store"]
        declared: DeclaredProviders = self.settings["chat_oauth2_nb_declared"]
        return Overview(
            declared,
            open_store(),
            user=resolve_user(None),
            # Where kernels of this server send their redirects: the same variable they read.
            callback_base=os.environ.get(SERVER_CALLBACK_ENV, ""),
            hub_callback_base=self.settings.get("chat_oauth2_nb_hub_callback_url") or "",
        )

    async def run(self, work: Callable[[Overview], T]) -> T | None:
        """``work`` on the worker pool; a typed error becomes the answer (None is returned)."""

        def job() -> tuple[T | None, Store, tuple[int, dict[str, Any]] | None]:
            overview = self.overview()
            try:
                return work(overview), overview.store, None
            except OAuth2Error as exc:
                # Masked with every secret held for the alias, not only the request's.
                alias = self.path_args[-1] if self.path_args else ""
                view = error_view(exc, overview.secrets(alias) if alias else ())
                return None, overview.store, (_status_of(exc), view)

        try:
            result, store, failed = await in_worker(self, job)
        except OAuth2Error as exc:
            self.answer(_status_of(exc), {"error": error_view(exc)})
            return None
        if failed is not None:
            self.answer(failed[0], {"error": failed[1]})
            return None
        self.feed.follow(store.path)
        return result

    def answer(self, status: int, body: dict[str, Any]) -> None:
        """Finish with ``body`` as JSON."""
        self.set_status(status)
        self.finish(body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors Jupyter raises (403, 404…) in the API's typed form too."""
        what = "The request was refused" if status_code < 500 else "The server failed"
        self.set_header("Content-Type", "application/json")
        self.finish(
            {
                "error": {
                    "type": "HTTPError",
                    "message": f"{what} (HTTP {status_code})",
                    "what_failed": f"{what} (HTTP {status_code})",
                    "provider_said": None,
                    "what_to_change": "Log in to Jupyter again, or ask for the permission."
                    if status_code == 403
                    else None,
                }
            }
        )


class StateHandler(_Api):
    """``GET api/state``: the version, the user, every provider and token (masked)."""

    @web.authenticated
    @authorized("read")  # type: ignore[untyped-decorator]
    async def get(self) -> None:
        """Answer the state."""
        state = await self.run(lambda overview: overview.state())
        if state is not None:
            self.answer(200, {"version": self.feed.version, **state})


class ChangesHandler(_Api):
    """``GET api/changes?since=N``: answers when the version moved, or after the long-poll's wait."""

    # A sidebar waiting is not a person working: it must not keep the server from culling.
    _track_activity = False
    _gone = False

    def on_connection_close(self) -> None:
        """The sidebar went away (a reload, a closed tab): nobody to answer."""
        self._gone = True

    @web.authenticated
    @authorized("read")  # type: ignore[untyped-decorator]
    async def get(self) -> None:
        """The version, once it differs from ``since``."""
        try:
            since = int(self.get_argument("since", "0"))
        except ValueError:
            exc = ConfigurationError("since", "is not an integer", "Pass the last version seen.")
            self.answer(400, {"error": error_view(exc)})
            return
        if await self.run(lambda overview: overview.store.path) is None:
            return
        timeout = float(self.settings.get("chat_oauth2_nb_changes_timeout", 25.0))
        version = await self.feed.wait(since, timeout)
        if not self._gone:
            self.answer(200, {"version": version})


class ClaimsHandler(_Api):
    """``GET api/claims/<alias>``: the verified id_token claims."""

    @web.authenticated
    @authorized("read")  # type: ignore[untyped-decorator]
    async def get(self, alias: str) -> None:
        """The claims, or a 404 typed error."""
        claims = await self.run(lambda overview: overview.claims(alias))
        if claims is not None:
            self.answer(200, {"claims": claims})


class ActionHandler(_Api):
    """``POST api/{authorize,refresh,revoke,check}/<alias>``."""

    @web.authenticated
    @authorized("write")  # type: ignore[untyped-decorator]
    async def post(self, action: str, alias: str) -> None:
        """Do ``action`` for ``alias`` through the one lifecycle (or the doctor)."""
        owner = hub_guest(self)
        if owner is not None and action != "check":
            exc = ActionUnavailableError(
                f"This server is {owner}'s: only {owner} can {action} its tokens",
                hint="Authorize, refresh and revoke from your own server.",
            )
            self.answer(403, {"error": error_view(exc)})
            return
        act: Callable[[Overview], dict[str, Any]] = getattr(self, f"_{action}")
        body = await self.run(act)
        if body is not None:
            self.feed.bump()
            self.answer(200, body)

    def _alias(self) -> str:
        return str(self.path_args[1])

    def _authorize(self, overview: Overview) -> dict[str, Any]:
        flow = overview.authorize(self._alias())
        assert flow.start_id is not None
        start = url_path_join(self.base_url, START_PATH, flow.start_id)
        return {"start_url": start, "expires_in": round(flow.expires_at - flow.created_at)}

    def _refresh(self, overview: Overview) -> dict[str, Any]:
        return {"token": overview.refresh(self._alias())}

    def _revoke(self, overview: Overview) -> dict[str, Any]:
        if not overview.revoke(self._alias()):
            raise NotAuthorizedError(
                f"Nothing is stored for {overview.user!r} at {self._alias()!r}",
                hint="There is nothing to revoke: the state shows what is stored.",
            )
        return {"revoked": True}

    def _check(self, overview: Overview) -> dict[str, Any]:
        entry = overview.find(self._alias())
        subject = Subject(
            entry.config,
            entry.redirect_uri,
            timeout=float(self.settings.get("chat_oauth2_nb_token_timeout", 10.0)),
            stored_token=lambda who: overview.stored_token(entry.config.alias, who),
        )
        return check_view(diagnose(subject, overview.user))


def api_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """The API's routes under ``prefix`` (``/chat-oauth2``)."""
    return [
        (rf"{prefix}/api/state", StateHandler),
        (rf"{prefix}/api/changes", ChangesHandler),
        (rf"{prefix}/api/claims/{_ALIAS}", ClaimsHandler),
        (rf"{prefix}/api/(authorize|refresh|revoke|check)/{_ALIAS}", ActionHandler),
    ]

"""The routes, behind the Jupyter login and "write" permission.

``GET {base_url}chat-oauth2/start/<id>`` binds a pending flow to this browser (a cookie)
and this Jupyter user, then sends the browser to the provider.
``GET {base_url}chat-oauth2/callback/<alias>`` (and the plain ``…/callback`` for explicit
redirect URIs) receives the provider's redirect and finishes the flow.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web

from ..declarations import admins_error_payload
from ..errors import NotAuthorizedError, OAuth2Error
from ..lifecycle.callback import (
    ROUTE_VALUE,
    SECURITY_HEADERS,
    Arrival,
    CallbackOutcome,
    binding_cookie,
    complete_authorization,
    open_start_link,
    scrub_uri,
)
from ..lifecycle.declared import DeclaredProviders
from ..lifecycle.pages import render_outcome
from ..lifecycle.probe import RedirectProbe
from ..lifecycle.wire import serve
from ..store import PendingFlow, Store
from ..store.sealing import Cipher

__all__ = [
    "AUTH_RESOURCE",
    "CallbackHandler",
    "GrantsHandler",
    "ProvidersHandler",
    "StartHandler",
    "hub_guest",
]

AUTH_RESOURCE = "chat_oauth2_nb"
T = TypeVar("T")
#: The one query parameter of a callback address that comes back from the login page.
RESUME_PARAM = "chat_oauth2_resume"
# How long a browser may take to log in and come back with a sealed callback query.
_RESUME_TTL = 900.0
_resume_cipher: list[Cipher] = []


def _cipher() -> Cipher:
    """This server process's key for callback queries that pass through the login page."""
    if not _resume_cipher:
        _resume_cipher.append(Cipher(secrets.token_bytes(32)))
    return _resume_cipher[0]


def seal_query(path: str, query: str) -> str:
    """``query`` sealed for a return to ``path`` (AES-GCM, a key that never leaves this process)."""
    # Without the "aesgcm1:" tag: the login page reads a ':' in its next= as a scheme.
    return _cipher().seal(json.dumps([time.time(), query]), path.encode()).partition(":")[2]


def open_query(path: str, sealed: str) -> str | None:
    """The query :func:`seal_query` sealed for ``path``, unless altered, foreign or too old."""
    plain = _cipher().open(f"aesgcm1:{sealed}", path.encode()) if len(sealed) <= 16384 else None
    if plain is None:
        return None
    sealed_at, query = json.loads(plain)
    return str(query) if time.time() - float(sealed_at) <= _RESUME_TTL else None


def hub_guest(handler: web.RequestHandler) -> str | None:
    """On JupyterHub, the owner's name when the logged-in user is someone else (a guest), else None.

    The store's tokens are the server owner's (``JUPYTERHUB_USER``). A guest with
    ``access:servers`` may see their views, but must not start, refresh or revoke them: a
    guest who authorized would put their own provider account in the owner's place.
    """
    owner = os.environ.get("JUPYTERHUB_USER")
    user = handler.current_user
    name = getattr(user, "username", None) or (user if isinstance(user, str) else None)
    return owner if owner and name and name != owner else None


async def in_worker(handler: web.RequestHandler, work: Callable[[], T]) -> T:
    """Run ``work`` (store and provider I/O) in the extension's bounded pool, off the event loop."""
    pool = handler.settings["chat_oauth2_nb_executor"]
    return await asyncio.get_running_loop().run_in_executor(pool, work)


class _Base(ExtensionHandlerMixin, JupyterHandler):
    auth_resource = AUTH_RESOURCE

    def prepare(self, *, _redirect_to_login: Any = True) -> Any:
        # Jupyter's access log and tornado's uncaught-exception log print request.uri: the
        # code must not be in it.
        self._raw_uri = self.request.uri or ""
        self.request.uri = scrub_uri(self._raw_uri)
        return super().prepare(_redirect_to_login=_redirect_to_login)

    def get_login_url(self) -> str:
        """The login URL; the page to come back to is this one, its query sealed.

        A browser not yet logged in to this server (a guest on a shared server, an expired
        session) logs in through JupyterHub and must come back with the redirect intact. The
        login page's address (``next=``) is logged by Jupyter and the hub, at debug level
        and on errors: it carries the code and state only sealed with this process's key.
        """
        path = self.request.path
        query = urlsplit(self._raw_uri).query
        self.request.uri = f"{path}?{RESUME_PARAM}={seal_query(path, query)}" if query else path
        # Left in place: tornado's @authenticated reads it next (redirect() scrubs it again).
        try:
            return str(super().get_login_url())
        except BaseException:
            # No login page (an API-only setup answers 403): the log line must stay clean.
            self.request.uri = scrub_uri(self._raw_uri)
            raise

    def _query(self) -> dict[str, list[str]]:
        """This request's query (decoded), the sealed one opened when it came back from login."""
        args: Mapping[str, Sequence[bytes]] = self.request.query_arguments
        decoded = {
            key: [value.decode("utf-8", "replace") for value in values]
            for key, values in args.items()
        }
        sealed = decoded.get(RESUME_PARAM)
        if sealed is None:
            return decoded
        query = open_query(self.request.path, sealed[0]) if len(decoded) == 1 else None
        # Altered, from before a restart, or too old: no state, so the page says start again.
        return parse_qs(query, keep_blank_values=True) if query else {}

    def redirect(self, url: str, permanent: bool = False, status: int | None = None) -> None:
        """Redirect, with the code scrubbed again from what the access log will print."""
        self.request.uri = scrub_uri(self._raw_uri)
        super().redirect(url, permanent, status)

    def _own_paths(self, path: str) -> set[str]:
        # Behind a proxy that rewrites the prefix, the browser-facing path starts with the
        # public URL's path instead of base_url: both are ours.
        paths = {path}
        public = self.settings.get("chat_oauth2_nb_public_url") or ""
        base = self.base_url
        if public and path.startswith(base):
            paths.add(url_path_join(urlsplit(public).path or "/", path[len(base) :]))
        return paths

    def _issued_for_us(self, uri: str) -> bool:
        """Whether a flow with redirect URI ``uri`` may finish at this server.

        Its own callback paths, or the hub's router (configure_hub), which passes redirects on
        to this server: nothing else.
        """
        callback = url_path_join(self.base_url, "chat-oauth2", "callback")
        path = urlsplit(uri).path
        ours = any(path == p or path.startswith(p + "/") for p in self._own_paths(callback))
        return ours or self._hub_uri(uri)

    def _hub_uri(self, uri: str) -> bool:
        hub = self.settings.get("chat_oauth2_nb_hub_callback_url") or ""
        if not hub or uri == hub:
            return bool(hub)
        # Exactly the router's URI or one alias segment below it.
        rest = uri[len(hub) + 1 :] if uri.startswith(hub + "/") else ""
        return bool(rest) and not any(c in rest for c in "/?#\\")

    def _route_cookie(self, binding_name: str) -> str | None:
        """On a hub's named server: tell the hub's router (by a cookie on its path) where to go.

        The router sends a redirect only to the browser's own hub user's servers; this names
        which one. Not a secret: the same value is in this server's URL.
        """
        hub = self.settings.get("chat_oauth2_nb_hub_callback_url") or ""
        server = self.settings.get("chat_oauth2_nb_server_name") or ""
        if not hub or not ROUTE_VALUE.fullmatch(server):
            return None
        # Same digest of the state as the binding cookie's name (see route_cookie_name).
        name = "chat_oauth2_route_" + binding_name.removeprefix("chat_oauth2_")
        parts = urlsplit(hub)
        return binding_cookie(name, server, parts.path, secure=parts.scheme == "https")

    def _user_name(self) -> str | None:
        user = self.current_user
        return getattr(user, "username", None) or (user if isinstance(user, str) else None)

    def _page(self, outcome: CallbackOutcome) -> None:
        self.set_status(outcome.status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)
        self.finish(render_outcome(outcome))


class StartHandler(_Base):
    """Binds a pending flow to this browser and Jupyter user, then redirects to the provider."""

    @web.authenticated
    @authorized("write")  # type: ignore[untyped-decorator]
    async def get(self, start_id: str) -> None:
        """302 to the provider's authorization URL, with the flow's binding cookie."""

        def accepts(flow: PendingFlow) -> bool:
            return flow.endpoint != "loopback" and self._issued_for_us(flow.redirect_uri)

        server_owner = hub_guest(self)
        if server_owner is not None:
            self._page(
                CallbackOutcome(
                    status=403,
                    title="Authorization refused",
                    message=f"This server is {server_owner}'s: only {server_owner} authorizes "
                    "here. Authorize from your own server.",
                )
            )
            return
        open_store: Callable[[], Store] = self.settings["chat_oauth2_nb_store"]
        probe: RedirectProbe | None = self.settings.get("chat_oauth2_nb_redirect_probe")
        declared: DeclaredProviders = self.settings["chat_oauth2_nb_declared"]

        def refusal(flow: PendingFlow, secrets: list[str | None]) -> OAuth2Error | None:
            assert probe is not None
            held = declared.declared.get(flow.alias)  # a declared provider's secret is here
            return probe.refusal(flow, [*secrets, held.client_secret if held else None])

        owner = self._user_name()
        cookies = {name: morsel.value for name, morsel in self.request.cookies.items()}
        result = await in_worker(
            self,
            lambda: open_start_link(
                open_store(),
                start_id,
                owner=owner,
                accepts=accepts,
                cookies=cookies,
                refusal=refusal if probe is not None else None,
            ),
        )
        if isinstance(result, str):
            self._page(CallbackOutcome(status=400, title="Authorization failed", message=result))
            return
        location, name, value = result
        cookie_path = url_path_join(self.base_url, "chat-oauth2") + "/"
        secure = self.request.protocol == "https"
        self.set_status(302)
        for header, header_value in SECURITY_HEADERS.items():
            self.set_header(header, header_value)
        self.add_header("Set-Cookie", binding_cookie(name, value, cookie_path, secure=secure))
        route = self._route_cookie(name)
        if route is not None:
            self.add_header("Set-Cookie", route)
        self.set_header("Location", location)
        self.finish()


class CallbackHandler(_Base):
    """Receives the provider's redirect, finishes the flow and answers a small page."""

    @web.authenticated
    @authorized("write")  # type: ignore[untyped-decorator]
    async def get(self, alias: str | None = None) -> None:
        """Exchange the code for the flow named by ``state`` and say what happened."""
        decoded = self._query()
        own = self._own_paths(self.request.path)
        arrival = Arrival(
            kind="server",
            path_alias=alias,
            cookies={name: morsel.value for name, morsel in self.request.cookies.items()},
            user=self._user_name(),
            accepts=lambda uri: urlsplit(uri).path in own or self._hub_uri(uri),
        )
        open_store: Callable[[], Store] = self.settings["chat_oauth2_nb_store"]
        declared: DeclaredProviders = self.settings["chat_oauth2_nb_declared"]

        def complete() -> CallbackOutcome:
            store = open_store()
            return complete_authorization(
                store, decoded, arrival, lambda config: declared.for_flow(config, store)
            )

        self._page(await in_worker(self, complete))


class _KernelApi(web.RequestHandler):
    """This server's API for its own kernels: a bearer token only its kernels inherit.

    Not the Jupyter login: kernels have no browser session and, on a hub, no hub token for
    this server. The token is random at each start and exported only to kernels this
    server starts (``CHAT_OAUTH2_NB_SERVER_API_TOKEN``); another OS user cannot read their
    environment. No cookie authenticates here, so no cross-site request can either.
    """

    def check_xsrf_cookie(self) -> None:
        """No XSRF check: only the Authorization header authenticates, which no page can forge."""

    def prepare(self) -> None:
        """Refuse any request without this server's kernel token."""
        expected = self.settings.get("chat_oauth2_nb_api_token") or ""
        header = self.request.headers.get("Authorization", "")
        given = header[7:] if header[:7].lower() == "bearer " else ""
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            self.set_status(403)
            self.set_header("Content-Type", "application/json")
            self.finish(
                {
                    "error_type": "NotAuthorizedError",
                    "message": "This API answers only the kernels of this Jupyter server",
                    "hint": "Call it from a notebook of this server (its kernels know the token).",
                }
            )

    @property
    def declared(self) -> DeclaredProviders:
        """The declared providers of this server."""
        declared: DeclaredProviders = self.settings["chat_oauth2_nb_declared"]
        return declared

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def _body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("user"), str):
            raise web.HTTPError(400, "the body must be JSON with a 'user' string")
        return body

    def _failed(self, exc: OAuth2Error) -> None:
        status = 404 if isinstance(exc, NotAuthorizedError) else 502
        self._answer(status, admins_error_payload(exc, self.declared.where))


class ProvidersHandler(_KernelApi):
    """``GET …/chat-oauth2/providers``: the declared providers' public part (no secret)."""

    def get(self) -> None:
        """alias -> endpoints, scopes, client id."""
        self._answer(200, {"providers": self.declared.public()})


class GrantsHandler(_KernelApi):
    """``POST …/chat-oauth2/{token,revoke}/<alias>``: this server's grants, for its kernels.

    ``token``: body ``{"user", "have"?, "leeway"?, "force"?, "optional"?}``, answers
    ``{"data", "version"}`` (an access token, refreshed here when this server finds it
    stale); ``revoke``: body ``{"user"}``, answers ``{"revoked": bool}``.
    """

    async def post(self, action: str, alias: str) -> None:
        """Answer the kernel's call with the declared provider's grants."""
        body = self._body()
        open_store: Callable[[], Store] = self.settings["chat_oauth2_nb_store"]
        declared = self.declared

        def act() -> dict[str, Any]:
            return serve(declared.grants(alias, open_store()), action, body["user"], body)

        try:
            answer = await in_worker(self, act)
        except OAuth2Error as exc:
            self._failed(exc)
            return
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        self._answer(200, answer)

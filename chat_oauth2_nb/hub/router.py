"""The router: ``{hub}/services/chat-oauth2/callback[/<alias>]`` → the browser's own server.

It logs the browser in through the hub (HubOAuth) and answers 302 to that hub user's server,
``{base_url}user/<name>[/<server>]/chat-oauth2/callback[/<alias>]``, with the same query.
The user's server checks the flow (state, browser binding, Jupyter user) and exchanges the
code with the PKCE verifier it alone holds. The router keeps nothing: no flows, no tokens.

Where the redirect goes is built here from the authenticated hub user, never taken from the
request: the path is always on this host, under that user's own prefix. A named server is
named by a cookie its start link set (``route_cookie_name``), checked against a strict
pattern.

``{hub}/services/chat-oauth2/store-key`` gives a user's server its store key: derived from
the hub-held secret and the hub user its ``Authorization: token`` header identifies (never a
name from the request, never a browser cookie), so a user only ever gets their own key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jupyterhub.services.auth import HubAuth, HubOAuthCallbackHandler, HubOAuthenticated
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

from ..declarations import (
    HUB_PROVIDERS,
    admins_error_payload,
    error_payload,
    resolve_declarations,
)
from ..errors import NotAuthorizedError, OAuth2Error
from ..lifecycle.callback import ROUTE_VALUE, SECURITY_HEADERS, route_cookie_name, scrub_uri
from ..lifecycle.declared import DeclaredProviders
from ..lifecycle.wire import serve
from ..routes import HUB_BROKER_PATH, HUB_KEY_PATH, HUB_SOCKET_ENV
from ..store import HeldTokenStore, open_store
from ..store.keys import derive_store_key
from ..store.postgres import PostgresStore, is_postgres_url
from .keys import load_hub_secret
from .login import LoginGrants
from .unix import listen_unix

__all__ = [
    "BROKER_PROVIDERS_ENV",
    "BROKER_PROVIDERS_FILE_ENV",
    "BROKER_STORE_ENV",
    "BrokerApi",
    "CallbackRouter",
    "ScopeMissing",
    "StoreKey",
    "load_declared",
    "load_login",
    "main",
    "make_app",
]

log = logging.getLogger("chat_oauth2_nb.hub")

#: Set by configure_hub() for the managed service: the 0600 JSON file of the declared
#: providers, client secrets included (broker mode).
BROKER_PROVIDERS_FILE_ENV = "CHAT_OAUTH2_NB_BROKER_PROVIDERS_FILE"
#: The same declarations in the service's environment (configure_hub's way: no file).
BROKER_PROVIDERS_ENV = "CHAT_OAUTH2_NB_BROKER_PROVIDERS"
#: The alias of the hub sign-in's provider (configure_hub(c, login_provider=...)), and the
#: hub's login page a person is sent to when that sign-in has ended.
BROKER_LOGIN_ENV = "CHAT_OAUTH2_NB_BROKER_LOGIN_ALIAS"
BROKER_LOGIN_URL_ENV = "CHAT_OAUTH2_NB_HUB_LOGIN_URL"
#: Where the service keeps its store (refresh tokens, sealed): a SQLite file (default: in its
#: directory) or a ``postgresql://`` URL (several replicas of the service share it).
BROKER_STORE_ENV = "CHAT_OAUTH2_NB_BROKER_STORE"
DEFAULT_BROKER_STORE = "chat_oauth2_nb_broker.sqlite3"

_ALIAS = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_MAX_STATE = 4096
_TOKEN = re.compile(r"(?:token|bearer)\s+([^\s]{1,512})", re.IGNORECASE)


class _Headers(web.RequestHandler):
    def set_default_headers(self) -> None:
        # Every answer, the login redirects and error pages included: the query holds a code.
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A short page that says what to do (never the request, which holds the code)."""
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(exc, ScopeMissing):
            # A server's token, not a browser: say which scope it lacks, in JSON.
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": "missing_scope", "scope": exc.scope}))
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        reason = {
            403: "Your hub account may not use this service. Ask the hub administrator to "
            "grant access:services!service=chat-oauth2 (configure_hub does).",
            503: "The hub administrator has not given this service a secret for store keys "
            "(configure_hub does).",
        }.get(status_code, "Start again from the Authorize link your notebook shows.")
        self.finish(
            "<!doctype html><meta charset=utf-8><title>Authorization not forwarded</title>"
            f"<h1>Authorization not forwarded ({status_code})</h1><p>{reason}</p>"
        )


class ScopeMissing(web.HTTPError):
    """403: a user's token without this service's access scope (named in the JSON answer)."""

    def __init__(self, scope: str) -> None:
        """``scope``: the scope the token lacks."""
        super().__init__(403)
        self.scope = scope


class OAuthCallback(_Headers, HubOAuthCallbackHandler):  # type: ignore[misc]
    """The hub login's own OAuth callback, with this service's headers."""


class CallbackRouter(HubOAuthenticated, _Headers):  # type: ignore[misc]
    """Sends the provider's redirect on to the logged-in hub user's own Jupyter server."""

    def initialize(self, base_url: str) -> None:
        """``base_url``: the hub's base URL (``/`` or ``/prefix/``)."""
        self.base_url = base_url

    @web.authenticated
    def get(self, alias: str | None = None) -> None:
        """302 to ``{base_url}user/<name>[/<server>]/chat-oauth2/callback[/<alias>]?<query>``."""
        user: dict[str, Any] = self.current_user
        name = str(user["name"])
        states = self.get_query_arguments("state")
        server = ""
        if len(states) == 1 and 0 < len(states[0]) <= _MAX_STATE:
            cookie = self.get_cookie(route_cookie_name(states[0])) or ""
            if ROUTE_VALUE.fullmatch(cookie):
                server = cookie
        segments = ["user", quote(name, safe="@~")]
        if server:
            segments.append(quote(server, safe="~"))
        segments += ["chat-oauth2", "callback"]
        if alias:
            segments.append(alias)
        target = self.base_url.rstrip("/") + "/" + "/".join(segments)
        query = urlsplit(self.request.uri or "").query
        log.info("forwarding a redirect for %r to %s", name, target)
        self.set_status(302)
        self.set_header("Location", f"{target}?{query}" if query else target)
        self.finish()


async def _token_user(handler: web.RequestHandler, hub_auth: HubAuth) -> str:
    """The hub user an ``Authorization: token`` header names, with this service's access scope.

    The header only: a browser's hub cookie must never be enough. Fail closed: no scopes
    required is no access, and a service's token has no user. 403 otherwise.
    """
    match = _TOKEN.fullmatch(handler.request.headers.get("Authorization", "").strip())
    if match is None:
        raise web.HTTPError(403)
    model = await hub_auth.user_for_token(match.group(1), sync=False)
    required = hub_auth.access_scopes
    if not model or model.get("kind", "user") != "user" or not required:
        raise web.HTTPError(403)
    if not hub_auth.check_scopes(required, model):
        # A user's own token that lacks the scope: usually c.Spawner.server_token_scopes
        # replaced what configure_hub gave servers. Naming the scope tells the server so.
        raise ScopeMissing(max(sorted(required), key=len))  # the narrowest: this service
    return str(model["name"])


class StoreKey(_Headers):
    """``GET …/store-key`` with a server's own API token: that token's user's store key."""

    def initialize(self, secret: bytes | None, hub_auth: HubAuth) -> None:
        """``secret``: the hub-held secret (None: not configured); ``hub_auth``: asks the hub."""
        self.secret, self.hub_auth = secret, hub_auth

    async def get(self) -> None:
        """200 ``{"user", "key"}`` for a user token with this service's access scope, else 403."""
        name = await _token_user(self, self.hub_auth)
        if self.secret is None:
            raise web.HTTPError(503)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"user": name, "key": derive_store_key(self.secret, name)}))


class BrokerApi(_Headers):
    """Broker mode: ``POST …/broker/{exchange,token,revoke}/<alias>`` for users' servers.

    The service alone holds the declared providers' secrets and, in its own store sealed
    with a key derived from the hub secret, their refresh tokens. A server authenticates
    with its own ``JUPYTERHUB_API_TOKEN``; everything is kept under that token's hub user,
    so a user only ever reaches their own tokens, whatever ``user`` the body names.
    """

    def initialize(
        self,
        declared: DeclaredProviders | None,
        store: Callable[[], HeldTokenStore] | None,
        hub_auth: HubAuth,
        login: LoginGrants | None = None,
    ) -> None:
        """``declared``: the declared providers (None: none); ``store``: opens the service's store;
        ``login``: the hub sign-in's provider, whose tokens are users' auth_state."""
        self.declared, self.open_store, self.hub_auth = declared, store, hub_auth
        self.login = login

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    async def post(self, action: str, alias: str) -> None:
        """Exchange a code, hand out an access token (refreshing once), or revoke."""
        hub_user = await _token_user(self, self.hub_auth)
        login = self.login
        if login is not None and alias == login.config.alias:
            await self._login(login, action, hub_user)
            return
        declared, open_store = self.declared, self.open_store
        if declared is None or open_store is None:
            self._json(
                503,
                {
                    "error_type": "ConfigurationError",
                    "message": "The hub's chat-oauth2 service has no declared providers or no "
                    "key for its store (the hub secret)",
                    "hint": "The hub administrator must declare providers with "
                    "configure_hub(c, providers=...) and let it make the hub secret file.",
                },
            )
            return
        body = _user_body(self)
        # The hub user first: alice's token can never name bob's tokens.
        key = json.dumps([hub_user, body["user"]])

        def act() -> dict[str, Any]:
            # Opening a PostgreSQL store connects to the database: in the worker thread too.
            return serve(declared.grants(alias, open_store()), action, key, body)

        await _answer(self, act, _admins_error)

    async def _login(self, login: LoginGrants, action: str, hub_user: str) -> None:
        await _serve_login(self, login, action, hub_user)


async def _serve_login(handler: BrokerApi, login: LoginGrants, action: str, hub_user: str) -> None:
    """The hub sign-in's token of the token's own hub user: no one else's, whatever is asked."""
    body = _user_body(handler)

    def act() -> dict[str, Any]:
        if body["user"] != hub_user:
            raise NotAuthorizedError(
                f"The hub sign-in's token is only for the hub user {hub_user!r}",
                hint="Call it without user=, as the signed-in hub user.",
            )
        return serve(login, action, hub_user, body)

    await _answer(handler, act, error_payload)


def _user_body(handler: BrokerApi) -> dict[str, Any]:
    """The request's JSON object naming a ``user``; 400 for anything else."""
    try:
        body = json.loads(handler.request.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("user"), str):
        raise web.HTTPError(400)
    return body


async def _answer(
    handler: BrokerApi,
    work: Callable[[], dict[str, Any]],
    payload: Callable[[OAuth2Error], dict[str, Any]],
) -> None:
    """Answer ``work``'s result, run in a worker thread: 404 when not authorized, 502 when the
    provider failed (the error as ``payload`` words it), 400 for a malformed request."""
    try:
        answer = await asyncio.to_thread(work)
    except OAuth2Error as exc:
        handler._json(404 if isinstance(exc, NotAuthorizedError) else 502, payload(exc))
        return
    except ValueError:
        raise web.HTTPError(400) from None
    handler._json(200, answer)


def _admins_error(exc: OAuth2Error) -> dict[str, Any]:
    """The error for the user's server, saying when the fix is the hub administrator's."""
    return admins_error_payload(
        exc,
        f"{HUB_PROVIDERS} in jupyterhub_config.py; python -m chat_oauth2_nb.hub check diagnoses it",
    )


def _log_request(handler: web.RequestHandler) -> None:
    # tornado's access log prints the URI: the code must not be in it.
    status = handler.get_status()
    request = handler.request
    level = logging.INFO if status < 400 else logging.WARNING
    log.log(
        level,
        "%d %s %s %.1fms",
        status,
        request.method,
        scrub_uri(request.uri or ""),
        1000 * request.request_time(),
    )


def _broker_store(hub_secret: bytes | None) -> Callable[[], HeldTokenStore] | None:
    """Opens the service's own store, sealed with a key only the hub secret gives; None without.

    ``CHAT_OAUTH2_NB_BROKER_STORE`` is a SQLite file (the default, in the service's folder)
    or a ``postgresql://`` URL, for a service run as several replicas that share one store.
    """
    if hub_secret is None:
        return None
    # A name no hub user can have (NUL), so no user's store key is the service's.
    key = derive_store_key(hub_secret, "\x00chat-oauth2 broker")
    location = os.environ.get(BROKER_STORE_ENV) or DEFAULT_BROKER_STORE
    if is_postgres_url(location):
        opened: list[PostgresStore] = []
        lock = threading.Lock()

        def open_postgres() -> HeldTokenStore:
            with lock:  # connected on first use: a database still starting is no crash
                if not opened:
                    opened.append(PostgresStore(location, key=key))
                return opened[0]

        return open_postgres
    path = Path(location.removeprefix("sqlite://")).resolve()
    return lambda: open_store(path, key=key)


def load_declared() -> DeclaredProviders | None:
    """The declared providers configure_hub() gave this service, their secrets resolved now.

    ``CHAT_OAUTH2_NB_BROKER_PROVIDERS`` (JSON, from configure_hub) or the file
    ``CHAT_OAUTH2_NB_BROKER_PROVIDERS_FILE`` names (a service you run yourself); each secret
    is a reference (``{"env": …}``, ``{"file": …}``) read here, in this process's memory only.
    """
    inline = os.environ.get(BROKER_PROVIDERS_ENV, "")
    file = os.environ.get(BROKER_PROVIDERS_FILE_ENV, "")
    if not inline and not file:
        return None
    text = inline or Path(file).read_text()
    declared = resolve_declarations(
        json.loads(text), os.environ, where=HUB_PROVIDERS, holder="JupyterHub"
    )
    return DeclaredProviders(declared, where=HUB_PROVIDERS) if declared else None


def load_login(declared: DeclaredProviders | None) -> LoginGrants | None:
    """The hub sign-in's provider configure_hub(c, login_provider=...) declared, or None."""
    alias = os.environ.get(BROKER_LOGIN_ENV, "")
    if not alias or declared is None:
        return None
    return LoginGrants(
        declared.config_for(alias),
        api_url=os.environ["JUPYTERHUB_API_URL"],
        api_token=os.environ["JUPYTERHUB_API_TOKEN"],
        login_url=os.environ.get(BROKER_LOGIN_URL_ENV, "") or "the hub's login page",
        connections=declared.connections,
    )


def make_app(
    prefix: str,
    base_url: str = "/",
    cookie_secret: bytes | None = None,
    hub_secret: bytes | None = None,
    broker: DeclaredProviders | None = None,
    login: LoginGrants | None = None,
) -> web.Application:
    """The tornado application serving under the service's ``prefix`` (``/services/chat-oauth2/``)."""
    prefix = "/" + prefix.strip("/")
    hub_auth = HubAuth()
    key_args = {"secret": hub_secret, "hub_auth": hub_auth}
    broker_args = {
        "declared": broker,
        "store": _broker_store(hub_secret),
        "hub_auth": hub_auth,
        "login": login,
    }
    return web.Application(
        [
            (rf"{prefix}/{HUB_KEY_PATH}", StoreKey, key_args),
            (
                rf"{prefix}/{HUB_BROKER_PATH}/(exchange|token|revoke|proof)/({_ALIAS})",
                BrokerApi,
                broker_args,
            ),
            (rf"{prefix}/callback/({_ALIAS})", CallbackRouter, {"base_url": base_url}),
            (rf"{prefix}/callback", CallbackRouter, {"base_url": base_url}),
            (rf"{prefix}/oauth_callback", OAuthCallback),
        ],
        # Replicas that share a secret (CHAT_OAUTH2_NB_HUB_COOKIE_SECRET) share logins; with
        # their own, a browser just logs in through the hub once more.
        cookie_secret=cookie_secret or secrets.token_bytes(32),
        log_function=_log_request,
    )


def main() -> None:
    """Run the router where JupyterHub says (``JUPYTERHUB_SERVICE_URL``)."""
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(name)s] %(message)s")
    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    secret = os.environ.get("CHAT_OAUTH2_NB_HUB_COOKIE_SECRET")
    declared = load_declared()
    app = make_app(
        os.environ["JUPYTERHUB_SERVICE_PREFIX"],
        os.environ.get("JUPYTERHUB_BASE_URL") or "/",
        bytes.fromhex(secret) if secret else None,
        load_hub_secret(),
        declared,
        load_login(declared),
    )
    server = HTTPServer(app, xheaders=True)
    # The port first: a port someone else holds stops the service before it opens its socket.
    server.listen(url.port or 80, url.hostname or "127.0.0.1")
    log.info("chat-oauth2 router listening on %s", url.geturl())
    socket_path = os.environ.get(HUB_SOCKET_ENV, "")
    if socket_path:
        # Users' servers send their API tokens here only (store.hubpeer checks our uid).
        listen_unix(server, Path(socket_path))
        log.info("chat-oauth2 router listening on %s for users' servers", socket_path)
    IOLoop.current().start()

"""The jupyter-server extension: serves the callback and tells kernels its URL."""

from __future__ import annotations

import json
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Dict, Float, Int, Unicode, default

from ..declarations import (
    HUB_PROVIDERS,
    SERVER_PROVIDERS,
    resolve_declarations,
    secret_variables,
)
from ..errors import ConfigurationError
from ..lifecycle.declared import DeclaredProviders
from ..lifecycle.probe import RedirectProbe
from ..lifecycle.remote import Holder
from ..routes import (
    CALLBACK_PATH,
    HUB_BROKER_ENV,
    HUB_CALLBACK_ENV,
    HUB_LOGIN_ENV,
    HUB_PROVIDERS_ENV,
    SERVER_API_ENV,
    SERVER_API_PATH,
    SERVER_API_TOKEN_ENV,
    SERVER_CALLBACK_ENV,
    SERVER_START_ENV,
    START_PATH,
)
from ..store import Store, open_store
from ..store.hubpeer import hub_client
from .api import api_handlers
from .changes import ChangeFeed
from .handlers import CallbackHandler, GrantsHandler, ProvidersHandler, StartHandler

__all__ = ["ChatOAuth2App"]

_INTERNAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}  # noqa: S104


class ChatOAuth2App(ExtensionApp):
    """Receives OAuth2 redirects at ``{base_url}chat-oauth2/callback/<alias>``."""

    name = "chat_oauth2_nb"
    load_other_extensions = True

    public_url = Unicode(
        "",
        help=(
            "The browser-facing URL of this Jupyter server, base_url included "
            "(e.g. https://hub.example.org/user/ada/), when it differs from the URL the server "
            "knows (behind a proxy or JupyterHub). The redirect URI is this plus "
            "'chat-oauth2/callback/<alias>'."
        ),
    ).tag(config=True)

    hub_callback_url = Unicode(
        help=(
            "The hub-wide redirect URI base of the chat-oauth2 router service "
            "(https://hub.example.org/services/chat-oauth2/callback). configure_hub() sets it "
            "for every spawned server through $CHAT_OAUTH2_NB_HUB_CALLBACK_URL; when set, "
            "kernels use it (plus '/<alias>') and this server also accepts flows issued for it."
        ),
    ).tag(config=True)

    @default("hub_callback_url")
    def _hub_callback_url_default(self) -> str:
        return os.environ.get(HUB_CALLBACK_ENV, "").rstrip("/")

    providers = Dict(
        help=(
            "Providers declared for every notebook of this server: alias -> the seed's config "
            "dict, or {'preset': 'google', ...} with the preset's parameters. Credentials: "
            "'clientId'/'clientSecret' in the dict, else CHAT_OAUTH2_<ALIAS>_CLIENT_ID and "
            "_CLIENT_SECRET in this server's environment (removed from it at start, so kernels "
            "never inherit them). Kernels get the public part: create_oauth2_client('<alias>')."
        ),
    ).tag(config=True)

    @default("providers")
    def _providers_default(self) -> dict[str, Any]:
        # On a hub, configure_hub(c, providers=...) hands every server the public part.
        text = os.environ.get(HUB_PROVIDERS_ENV, "")
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise ConfigurationError(
                HUB_PROVIDERS_ENV,
                "is not a JSON object",
                "Ask the hub administrator: configure_hub(c, providers=...) sets it.",
            )
        return value

    broker_url = Unicode(
        help=(
            "Broker mode (JupyterHub): the URL of the hub service that holds the declared "
            "providers' client secrets and refresh tokens, and exchanges, refreshes and "
            "revokes for this server with its JUPYTERHUB_API_TOKEN. configure_hub(c, "
            "providers=...) sets it through $CHAT_OAUTH2_NB_HUB_BROKER_URL."
        ),
    ).tag(config=True)

    @default("broker_url")
    def _broker_url_default(self) -> str:
        return os.environ.get(HUB_BROKER_ENV, "")

    token_timeout = Float(
        10.0, help="Seconds to wait for the provider's token endpoint when exchanging a code."
    ).tag(config=True)

    check_redirect_uri = Bool(
        True,
        help=(
            "When a browser opens a start link, first ask the provider's authorization page "
            "whether it accepts the flow's redirect URI (no cookies, a throwaway state; an "
            "accepted one is not asked again for 10 minutes). A refusal ends the flow at once "
            "with the URI to register, instead of the provider's error page and a notebook "
            "waiting in silence."
        ),
    ).tag(config=True)

    changes_timeout = Float(
        25.0,
        help="Seconds a long-poll of api/changes waits for the store to change before it "
        "answers with the same version (stay under the proxies' idle timeouts).",
    ).tag(config=True)

    workers = Int(
        8,
        help=(
            "Threads that talk to the store and the providers for this extension's handlers "
            "(callbacks, and kernels asking for tokens); more requests wait their turn."
        ),
    ).tag(config=True)

    def _hub_holder(self) -> Holder | None:
        """Broker mode: the hub's service holds the declared providers' secrets."""
        if not self.broker_url:
            return None
        api_token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        return Holder(
            self.broker_url,
            headers={"Authorization": f"token {api_token}"},
            name="The hub's chat-oauth2 service",
            place="the hub",
            hint="Ask the hub administrator to check the chat-oauth2 service "
            "(python -m chat_oauth2_nb.hub check).",
            # The API token goes to the authenticated service only (its socket and uid, TLS).
            connect=hub_client,
        )

    def initialize_settings(self) -> None:
        """Give handlers the store, the declared providers and a worker pool; export the URLs."""

        def get_store() -> Store:
            # Opened per request, so a JUPYTER_DATA_DIR set after start-up is honoured.
            return open_store()

        # Read once, then gone from this process's environment: kernels inherit it.
        declared = resolve_declarations(self.providers, os.environ)
        for name in secret_variables(self.providers):
            os.environ.pop(name, None)
        holder = self._hub_holder()
        self._declared = DeclaredProviders(
            declared,
            timeout=self.token_timeout,
            holder=holder,
            login=os.environ.get(HUB_LOGIN_ENV) or None,
            # Broker mode: the hub's administrator declared them, in jupyterhub_config.py.
            where=f"{HUB_PROVIDERS} in jupyterhub_config.py"
            if holder is not None
            else f"{SERVER_PROVIDERS} in jupyter_server_config.py",
        )
        self._api_token = secrets.token_urlsafe(32)
        if declared:
            self.log.info("chat_oauth2_nb: declared providers: %s", ", ".join(sorted(declared)))
        # Provider and store I/O blocks: a pool of its own, so slow providers never take
        # the default executor's threads from the rest of the server, nor grow unbounded.
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, self.workers), thread_name_prefix="chat-oauth2"
        )
        self._probe = (
            RedirectProbe(timeout=min(self.token_timeout, 5.0)) if self.check_redirect_uri else None
        )
        self._feed = ChangeFeed()
        self.settings.update(
            chat_oauth2_nb_redirect_probe=self._probe,
            chat_oauth2_nb_declared=self._declared,
            chat_oauth2_nb_feed=self._feed,
            chat_oauth2_nb_changes_timeout=self.changes_timeout,
            chat_oauth2_nb_token_timeout=self.token_timeout,
            chat_oauth2_nb_executor=self._executor,
            chat_oauth2_nb_api_token=self._api_token,
            chat_oauth2_nb_store=get_store,
            chat_oauth2_nb_public_url=self._public_base(),
            chat_oauth2_nb_hub_callback_url=self.hub_callback_url.rstrip("/"),
            # Which of its user's servers this is (JupyterHub's named servers).
            chat_oauth2_nb_server_name=os.environ.get("JUPYTERHUB_SERVER_NAME", ""),
        )
        assert self.serverapp is not None
        self._export_callback_url()
        # With port retries the port is final only once the server binds: export again then.
        self.serverapp.io_loop.add_callback(self._export_callback_url)

    def _public_base(self) -> str:
        """The browser-facing URL of this server, base_url included, as far as it is known."""
        assert self.serverapp is not None
        if self.public_url:
            return self.public_url
        hub = self.hub_callback_url
        if hub:
            # On a hub the browser reaches this server through the hub's proxy, on the hub's
            # public origin, under this server's prefix.
            parts = urlsplit(hub)
            return urlunsplit((parts.scheme, parts.netloc, self.serverapp.base_url, "", ""))
        custom = getattr(self.serverapp, "custom_display_url", "") or ""
        return str(custom or self.serverapp.connection_url)

    def _export_callback_url(self) -> None:
        assert self.serverapp is not None
        base = self._public_base()
        url = self.hub_callback_url.rstrip("/") or url_path_join(base, CALLBACK_PATH)
        start = url_path_join(base, START_PATH)
        # Kernels started by this server inherit its environment.
        if (
            os.environ.get(SERVER_CALLBACK_ENV) == url
            and os.environ.get(SERVER_START_ENV) == start
            and os.environ.get(SERVER_API_TOKEN_ENV) == self._api_token
        ):
            return
        os.environ[SERVER_CALLBACK_ENV] = url
        os.environ[SERVER_START_ENV] = start
        # The server's own address (not the browser's): kernels run beside it.
        os.environ[SERVER_API_ENV] = url_path_join(
            str(self.serverapp.connection_url), SERVER_API_PATH
        )
        os.environ[SERVER_API_TOKEN_ENV] = self._api_token
        self.log.info("chat_oauth2_nb: OAuth2 redirect URI is %s/<alias>", url)
        host = (urlsplit(url).hostname or "").lower()
        behind = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
        if behind and host in _INTERNAL_HOSTS and not self.hub_callback_url:
            # The silent failure of issue 8: a browser behind the hub can't reach this.
            self.log.warning(
                "chat_oauth2_nb: this server runs behind JupyterHub but advertises the internal "
                "redirect URI %s, which the browser cannot reach. Ask the hub administrator to "
                "add `configure_hub(c)` from chat_oauth2_nb.hub to jupyterhub_config.py, or set "
                "c.ChatOAuth2App.public_url to the address the browser uses for this server.",
                url,
            )

    def initialize_handlers(self) -> None:
        """Route the start link, the per-alias callbacks and the plain callback."""
        self.handlers.extend(
            [
                (rf"/{START_PATH}/([A-Za-z0-9_-]{{1,128}})", StartHandler),
                (rf"/{CALLBACK_PATH}/([A-Za-z0-9][A-Za-z0-9_.-]{{0,63}})", CallbackHandler),
                (rf"/{CALLBACK_PATH}", CallbackHandler),
                (rf"/{SERVER_API_PATH}/providers", ProvidersHandler),
                (
                    rf"/{SERVER_API_PATH}/(token|revoke|proof)/([A-Za-z0-9][A-Za-z0-9_.-]{{0,63}})",
                    GrantsHandler,
                ),
                *api_handlers(f"/{SERVER_API_PATH}"),
            ]
        )

    async def stop_extension(self) -> None:
        """Stop the worker pool, close the HTTP client and stop advertising the callback URL."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._feed.close()
        self._declared.close()
        if self._probe is not None:
            self._probe.close()
        for name in (SERVER_CALLBACK_ENV, SERVER_START_ENV, SERVER_API_ENV, SERVER_API_TOKEN_ENV):
            os.environ.pop(name, None)

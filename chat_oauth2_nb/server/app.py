"""The jupyter-server extension: serves the callback and tells kernels its URL."""

from __future__ import annotations

import os
from typing import Any

import httpx
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Float, Unicode

from ..routes import CALLBACK_PATH, SERVER_CALLBACK_ENV, START_PATH
from ..store import Store, open_store
from .handlers import CallbackHandler, StartHandler

__all__ = ["ChatOAuth2App"]


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

    token_timeout = Float(
        10.0, help="Seconds to wait for the provider's token endpoint when exchanging a code."
    ).tag(config=True)

    def initialize_settings(self) -> None:
        """Give handlers the store and an HTTP client; export the callback URL to kernels."""
        http: dict[str, httpx.AsyncClient] = {}

        def get_http() -> httpx.AsyncClient:
            if "client" not in http:
                http["client"] = httpx.AsyncClient(timeout=self.token_timeout)
            return http["client"]

        def get_store() -> Store:
            # Opened per request, so a JUPYTER_DATA_DIR set after start-up is honoured.
            return open_store()

        self._http = http
        self.settings.update(
            chat_oauth2_nb_http=get_http,
            chat_oauth2_nb_store=get_store,
            chat_oauth2_nb_public_url=self.public_url,
        )
        assert self.serverapp is not None
        self._export_callback_url()
        # With port retries the port is final only once the server binds: export again then.
        self.serverapp.io_loop.add_callback(self._export_callback_url)

    def _export_callback_url(self) -> None:
        assert self.serverapp is not None
        base = self.public_url or self.serverapp.connection_url
        url = url_path_join(base, CALLBACK_PATH)
        # Kernels started by this server inherit its environment.
        if os.environ.get(SERVER_CALLBACK_ENV) == url:
            return
        os.environ[SERVER_CALLBACK_ENV] = url
        self.log.info("chat_oauth2_nb: OAuth2 redirect URI is %s", url)

    def initialize_handlers(self) -> None:
        """Route the start link, the per-alias callbacks and the plain callback."""
        self.handlers.extend(
            [
                (rf"/{START_PATH}/([A-Za-z0-9_-]{{1,128}})", StartHandler),
                (rf"/{CALLBACK_PATH}/([A-Za-z0-9][A-Za-z0-9_.-]{{0,63}})", CallbackHandler),
                (rf"/{CALLBACK_PATH}", CallbackHandler),
            ]
        )

    async def stop_extension(self) -> None:
        """Close the HTTP client and stop advertising the callback URL."""
        client: Any = self._http.pop("client", None)
        if client is not None:
            await client.aclose()
        os.environ.pop(SERVER_CALLBACK_ENV, None)

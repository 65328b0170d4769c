"""The callback route: ``GET {base_url}chat-oauth2/callback``, behind the Jupyter login."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from .callback import complete_authorization
from .pages import render_outcome

__all__ = ["AUTH_RESOURCE", "CallbackHandler"]

AUTH_RESOURCE = "chat_oauth2_nb"


class CallbackHandler(ExtensionHandlerMixin, JupyterHandler):
    """Receives the provider's redirect, finishes the flow and answers a small page."""

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Exchange the code for the flow named by ``state`` and say what happened."""
        params: Any = self.request.query_arguments
        decoded = {
            key: [value.decode("utf-8", "replace") for value in values]
            for key, values in params.items()
        }
        outcome = await complete_authorization(
            self.settings["chat_oauth2_nb_store"](), decoded, self.settings["chat_oauth2_nb_http"]()
        )
        self.set_status(outcome.status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")
        self.finish(render_outcome(outcome))

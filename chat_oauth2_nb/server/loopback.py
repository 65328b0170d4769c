"""A loopback redirect server on 127.0.0.1 (RFC 8252 §7.3) for kernels with no Jupyter server.

It runs the same callback logic as the Jupyter extension, in a daemon thread of the
process that started it (plain python, VS Code, a kernel whose server lacks the extension).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from ..store import Store
from .callback import complete_authorization
from .pages import render_outcome

__all__ = ["LoopbackServer"]

log = logging.getLogger("chat_oauth2_nb.server")
PATH = "/chat-oauth2/callback"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != PATH:
            self._answer(404, "<!doctype html><title>Not found</title><p>Not found.</p>")
            return
        params = parse_qs(parts.query, keep_blank_values=True)
        outcome = asyncio.run(self._complete(params))
        self._answer(outcome.status, render_outcome(outcome))

    async def _complete(self, params: dict[str, list[str]]) -> Any:
        async with httpx.AsyncClient(timeout=self.server.transport_timeout) as http:
            return await complete_authorization(self.server.store, params, http)

    def _answer(self, status: int, page: str) -> None:
        body = page.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The default logs the request line, whose query holds the code: log the path only.
        log.debug("loopback callback answered %s", args[1] if len(args) > 1 else "")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, store: Store, transport_timeout: float) -> None:
        self.store = store
        self.transport_timeout = transport_timeout
        super().__init__(("127.0.0.1", port), _Handler)


class LoopbackServer:
    """Serves ``http://127.0.0.1:PORT/chat-oauth2/callback`` until stopped."""

    def __init__(self, store: Store, *, port: int = 0, transport_timeout: float = 10.0) -> None:
        self._server = _Server(port, store, transport_timeout)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        """The redirect URI to register at the provider."""
        return f"http://127.0.0.1:{self.port}{PATH}"

    def start(self) -> None:
        """Start serving in a daemon thread."""
        if self._thread is None:
            # A short poll interval: stop() (client.close()) waits up to one interval.
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="chat-oauth2-loopback",
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

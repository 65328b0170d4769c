"""The stdlib HTTP server under the demo provider: parse, hand over, write back.

A ``ThreadingHTTPServer`` in a daemon thread needs no event loop, so the provider also
runs inside a Jupyter kernel, whose asyncio loop it must not touch.
"""

from __future__ import annotations

import logging
import re
import socket
import socketserver
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from ._authserver import DemoResponse, RawRequest

__all__ = ["DemoHTTPServer"]

log = logging.getLogger("chat_oauth2_nb.demo")

MAX_BODY = 1 << 20
# Query strings carry codes and states; strip them from anything that reaches the log.
_QUERY = re.compile(r"\?\S*")

App = Callable[[RawRequest], DemoResponse | None]


class DemoHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that passes every request to ``app``."""

    daemon_threads = True
    # 32 clients connecting at once must not overflow the listen backlog.
    request_queue_size = 128

    def __init__(
        self,
        host: str,
        port: int,
        app: App,
        stopping: Callable[[float], bool] | None = None,
        date_offset: Callable[[], float] | None = None,
    ) -> None:
        self.app = app
        # Seconds added to the Date header: a provider whose clock is off, for the doctor.
        self.date_offset: Callable[[], float] = date_offset or (lambda: 0.0)
        # Waits up to the given seconds; True once the provider is stopping.
        self.stopping: Callable[[float], bool] = stopping or (lambda _: False)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup, which can stall offline."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: DemoHTTPServer
    # One request per connection: after stop() no pooled keep-alive connection can
    # reach a handler thread that outlived the server.
    protocol_version = "HTTP/1.0"
    timeout = 30

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        # GitHub revokes with DELETE (the "github" quirk profile).
        self._serve()

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length_header = self.headers.get("Content-Length") or "0"
        try:
            length = int(length_header)
        except ValueError:
            self.send_error(400, "Bad Content-Length")
            return
        if length < 0 or length > MAX_BODY:
            self.send_error(413, "Request body too large")
            return
        body = self.rfile.read(length) if length else b""
        raw = RawRequest(
            method=self.command,
            path=parts.path or "/",
            query=parts.query,
            headers=self.headers,  # case-insensitive, as Authlib expects
            body=body,
        )
        try:
            response = self.server.app(raw)
        except Exception:
            log.exception("demo provider failed on %s %s", self.command, raw.path)
            response = DemoResponse(
                500,
                b'{"error": "server_error", "error_description": "The demo provider failed."}',
                [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            )
        if response is None:  # the provider is stopping: drop the connection unanswered
            self.close_connection = True
            return
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if response.trickle > 0:
                self._trickle(response.body, response.trickle)
            else:
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout test, usually): nothing left to tell it.
            log.debug("client went away before the answer to %s", raw.path)

    def _trickle(self, body: bytes, interval: float) -> None:
        for i in range(len(body)):
            self.wfile.write(body[i : i + 1])
            self.wfile.flush()
            if self.server.stopping(interval):
                return

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header, shifted by the server's ``date_offset``."""
        now = time.time() if timestamp is None else timestamp
        return super().date_time_string(now + self.server.date_offset())

    def version_string(self) -> str:
        """The Server header."""
        return "chat-oauth2-demo"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log method, path (never the query) and status at DEBUG."""
        path = urlsplit(getattr(self, "path", "")).path
        log.debug("%s %s -> %s", getattr(self, "command", "-"), path, code)

    def log_message(self, format: str, *args: Any) -> None:
        """Route http.server's own messages to our logger, query strings removed."""
        log.debug("%s", _QUERY.sub("?…", format % args))

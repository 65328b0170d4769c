"""A loopback redirect server on 127.0.0.1 (RFC 8252 §7.3) for kernels with no Jupyter server.

It runs the same callback logic as the Jupyter extension, in a daemon thread of the
process that started it (plain python, VS Code, a kernel whose server lacks the extension).

One listener per (store, requested port) per process: re-running a set-up cell reuses it,
so the redirect URI stays the same. It listens only while a pending flow of it exists,
and comes back on the same port when a new flow starts. Idle sockets time out and at most
``MAX_HANDLERS`` requests are served at once; the rest get 503.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from ..lifecycle.callback import (
    SECURITY_HEADERS,
    Arrival,
    CallbackOutcome,
    binding_cookie,
    complete_with_registered,
    open_start_link,
    scrub_uri,
)
from ..lifecycle.pages import render_outcome
from ..store import Store

__all__ = ["LoopbackServer", "listening_sockets"]

log = logging.getLogger("chat_oauth2_nb.server")
PREFIX = "/chat-oauth2/"
PATH = "/chat-oauth2/callback"
START = "/chat-oauth2/start/"
#: Concurrent requests served; more wait for nobody and get 503 at once.
MAX_HANDLERS = 16
#: Seconds an idle connection may keep a handler thread.
IDLE_TIMEOUT = 10.0
# How often the listener asks the store whether any of its flows is still pending.
_IDLE_CHECK = 1.0
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_CSP = "default-src 'none'; frame-ancestors 'none'"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # type: ignore[misc]  # read by setup() below
        super().setup()

    def do_GET(self) -> None:
        # The request line holds the code: whatever logs self.path from here on sees it scrubbed.
        raw, self.path = self.path, scrub_uri(self.path)
        host = (self.headers.get("Host") or "").lower()
        if host not in {f"{name}:{self.server.port}" for name in _LOOPBACK_HOSTS}:
            # DNS rebinding: a page from evil.example resolved to 127.0.0.1 sends its own Host.
            self._answer(421, _page("Misdirected request", "This listener serves 127.0.0.1 only."))
            return
        parts = urlsplit(raw)
        if parts.path.startswith(START):
            self._start(parts.path[len(START) :])
            return
        alias = parts.path[len(PATH) + 1 :] if parts.path.startswith(PATH + "/") else None
        if parts.path != PATH and (alias is None or not alias or "/" in alias):
            self._answer(404, _page("Not found", "Not found."))
            return
        params = parse_qs(parts.query, keep_blank_values=True)
        port = self.server.port
        arrival = Arrival(
            kind="loopback",
            path_alias=alias,
            cookies=self._cookies(),
            user=None,
            accepts=lambda uri: _same_listener(uri, port, parts.path),
        )
        outcome = complete_with_registered(
            self.server.store, params, arrival, self.server.transport_timeout
        )
        if outcome.ok:
            # Anyone on this machine can load this page: it does not name the local user.
            outcome = dataclasses.replace(
                outcome,
                user=None,
                message=f"{outcome.alias} is authorized. You can close this tab and go back "
                "to your notebook.",
            )
        self._answer(outcome.status, render_outcome(outcome))

    def _start(self, start_id: str) -> None:
        port = self.server.port
        result = open_start_link(
            self.server.store,
            start_id,
            owner=None,
            accepts=lambda flow: _same_listener(flow.redirect_uri, port, None),
        )
        if isinstance(result, str):
            self._answer(400, _page("Authorization failed", result))
            return
        location, name, value = result
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Set-Cookie", binding_cookie(name, value, PREFIX, secure=False))
        self._common_headers()
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _cookies(self) -> dict[str, str]:
        jar: dict[str, str] = {}
        for header in self.headers.get_all("Cookie") or []:
            for part in header.split(";"):
                name, _, value = part.strip().partition("=")
                if name:
                    jar.setdefault(name, value)
        return jar

    def _common_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Content-Security-Policy", _CSP)

    def _answer(self, status: int, page: str) -> None:
        body = page.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The default logs the request line, whose query holds the code: log the status only.
        log.debug("loopback callback answered %s", args[1] if len(args) > 1 else "")

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("loopback request failed: %s", scrub_uri(format % args))


def _page(title: str, message: str) -> str:

    return render_outcome(CallbackOutcome(status=400, title=title, message=message))


def _same_listener(uri: str, port: int, path: str | None) -> bool:
    parts = urlsplit(uri)
    if parts.scheme != "http" or parts.port != port:
        return False
    if f"[{parts.hostname}]" not in _LOOPBACK_HOSTS and parts.hostname not in _LOOPBACK_HOSTS:
        return False
    return path is None or parts.path == path


_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n"
    b"Cache-Control: no-store\r\nConnection: close\r\n\r\nBusy: reload in a moment"
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Accept a burst at once (the excess gets 503) instead of leaving it in SYN retries that
    # trickle in for seconds and keep the handler slots busy.
    request_queue_size = 256

    def __init__(
        self, port: int, store: Store, transport_timeout: float, idle_timeout: float
    ) -> None:
        self.store = store
        self.transport_timeout = transport_timeout
        self.idle_timeout = idle_timeout
        self.slots = threading.BoundedSemaphore(MAX_HANDLERS)
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        # A thread per connection, but never more than MAX_HANDLERS: idle or slow clients
        # must not exhaust the kernel's threads.
        if not self.slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class LoopbackServer:
    """Serves ``http://127.0.0.1:PORT/chat-oauth2/callback/<alias>`` while flows of it are pending."""

    _shared: ClassVar[dict[tuple[str, int], LoopbackServer]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        store: Store,
        *,
        port: int = 0,
        transport_timeout: float = 10.0,
        idle_timeout: float | None = None,
    ) -> None:
        self._store = store
        self.transport_timeout = transport_timeout
        self.idle_timeout = IDLE_TIMEOUT if idle_timeout is None else idle_timeout
        self._server: _Server | None = _Server(port, store, transport_timeout, self.idle_timeout)
        self._port = self._server.port
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._users = 0

    @classmethod
    def shared(
        cls, store: Store, *, port: int = 0, transport_timeout: float = 10.0
    ) -> LoopbackServer:
        """The process's listener for ``store`` and ``port`` (created on first use); hold it with acquire()."""
        key = (str(store.path), port)
        with cls._shared_lock:
            server = cls._shared.get(key)
            if server is None:
                server = cls._shared[key] = cls(
                    store, port=port, transport_timeout=transport_timeout
                )
            server._users += 1
            return server

    def release(self) -> None:
        """One client no longer uses this listener; the last one stops it."""
        with LoopbackServer._shared_lock:
            self._users -= 1
            if self._users > 0:
                return
            for key, value in list(LoopbackServer._shared.items()):
                if value is self:
                    del LoopbackServer._shared[key]
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on (kept across restarts)."""
        return self._port

    @property
    def redirect_uri(self) -> str:
        """The plain redirect URI (for an explicit ``redirect_uri=``); see :meth:`redirect_uri_for`."""
        return f"http://127.0.0.1:{self._port}{PATH}"

    def redirect_uri_for(self, alias: str) -> str:
        """The per-alias redirect URI to register at the provider."""
        return f"{self.redirect_uri}/{alias}"

    def start_url(self, start_id: str) -> str:
        """The start link that binds the browser, then sends it to the provider."""
        return f"http://127.0.0.1:{self._port}{START}{start_id}"

    def serves(self, uri: str) -> bool:
        """True when a redirect to ``uri`` arrives at this listener."""
        return _same_listener(uri, self._port, None)

    @property
    def running(self) -> bool:
        """True while it listens."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Listen (again) in a daemon thread, on the same port when it is free."""
        with self._lock:
            if self.running:
                return
            if self._server is None:
                try:
                    self._server = _Server(
                        self._port, self._store, self.transport_timeout, self.idle_timeout
                    )
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise
                    self._server = _Server(
                        0, self._store, self.transport_timeout, self.idle_timeout
                    )
                    log.warning(
                        "loopback port %s is taken now: the redirect URI changes to port %s",
                        self._port,
                        self._server.port,
                    )
                    self._port = self._server.port
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._serve, args=(self._server,), name="chat-oauth2-loopback", daemon=True
            )
            self._thread.start()

    def _serve(self, server: _Server) -> None:
        server.timeout = 0.05
        prefix = f"http://127.0.0.1:{self._port}/"
        next_check = time.monotonic() + _IDLE_CHECK
        try:
            while not self._stopping.is_set():
                server.handle_request()
                if time.monotonic() < next_check:
                    continue
                next_check = time.monotonic() + _IDLE_CHECK
                with self._lock:
                    try:
                        idle = not self._store.has_pending_flow(prefix)
                    except Exception:  # a locked store: keep listening, ask again later
                        idle = False
                    if idle:
                        # Nothing left to receive: free the port until a new flow starts.
                        self._close(server)
                        self._thread = None
                        return
        finally:
            self._store.close()
        with self._lock:
            self._close(server)

    def _close(self, server: _Server) -> None:
        if self._server is server:
            server.server_close()
            self._server = None

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._lock:
            self._thread = None
            if self._server is not None:
                self._server.server_close()
                self._server = None


def listening_sockets(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:``port`` (for tests and diagnostics)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False

"""A loopback redirect server on 127.0.0.1 (RFC 8252 §7.3) for kernels with no Jupyter server.

It runs the same callback logic as the Jupyter extension, in a daemon thread of the
process that started it (plain python, VS Code, a kernel whose server lacks the extension).

One listener per (store, requested port) per process: re-running a set-up cell reuses it,
so the redirect URI stays the same. It holds its port from the first ``setup()`` until the
last client using it is closed, answering every request (an error page while no flow is
pending): a port it let go between two flows could be taken by another local user, whose
listener would then receive the next start link and code. A request's line and headers
must arrive within ``HEAD_DEADLINE`` seconds in total and are read without a thread; only
complete requests take one of ``MAX_HANDLERS`` handler threads (the rest get 503).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import logging
import selectors
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigurationError, StateError
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
from ..lifecycle.probe import RedirectProbe
from ..store import Store

__all__ = ["LoopbackServer", "listening_sockets"]

log = logging.getLogger("chat_oauth2_nb.server")
PREFIX = "/chat-oauth2/"
PATH = "/chat-oauth2/callback"
START = "/chat-oauth2/start/"
#: Complete requests served at once; more get 503 at once.
MAX_HANDLERS = 16
#: Seconds a handler may wait for the client to take its answer.
IDLE_TIMEOUT = 10.0
#: Seconds for a request's whole head (request line and headers), however it trickles in.
HEAD_DEADLINE = 5.0
#: Connections still sending their head; past this the oldest one is dropped.
MAX_HEADS = 128
#: Bytes of a request head (tornado's limit too); a longer one is refused.
MAX_HEAD = 65536
# How often the serving loop drops heads past their deadline.
_TICK = 0.25
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_CSP = "default-src 'none'; frame-ancestors 'none'"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # type: ignore[misc]  # read by setup() below
        super().setup()
        # The serving loop read the whole head already (within its deadline): parse that.
        self.rfile.close()
        self.rfile = io.BytesIO(self.server.take_head(self.request))

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
            cookies=self._cookies(),
            refusal=self.server.probe.refusal,
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


def _canned(status: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    ).encode() + body


_BUSY = _canned("503 Service Unavailable", "Busy: reload in a moment")
_SLOW = _canned("408 Request Timeout", "The request took too long to arrive")
_LARGE = _canned("431 Request Header Fields Too Large", "The request is too large")


@dataclasses.dataclass
class _Head:
    """A connection still sending its request head."""

    address: Any
    deadline: float
    data: bytearray = dataclasses.field(default_factory=bytearray)


def _complete(head: bytearray) -> bool:
    return b"\r\n\r\n" in head or b"\n\n" in head


class _Server(HTTPServer):
    # Accept a burst at once instead of leaving it in SYN retries that trickle in for seconds.
    request_queue_size = 256

    def __init__(
        self, port: int, store: Store, transport_timeout: float, idle_timeout: float
    ) -> None:
        self.store = store
        self.transport_timeout = transport_timeout
        self.idle_timeout = idle_timeout
        # A start link asks the provider about its redirect URI first (as the server's does).
        self.probe = RedirectProbe(timeout=min(transport_timeout, 5.0))
        self.slots = threading.BoundedSemaphore(MAX_HANDLERS)
        # Insertion order is deadline order: the first entry is the oldest head.
        self._heads: dict[socket.socket, _Head] = {}
        self._ready: dict[socket.socket, bytes] = {}
        self._selector = selectors.DefaultSelector()
        super().__init__(("127.0.0.1", port), _Handler)
        self.socket.setblocking(False)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def run(self, stopping: threading.Event) -> None:
        """Accept connections and read their heads until ``stopping`` is set."""
        self._selector.register(self.socket, selectors.EVENT_READ)
        try:
            while not stopping.is_set():
                for key, _ in self._selector.select(_TICK):
                    if key.fileobj is self.socket:
                        self._accept()
                    else:
                        self._read_head(key.fileobj)  # type: ignore[arg-type]
                self._drop_late()
        finally:
            for sock in list(self._heads):
                self._drop(sock)
            self._selector.close()

    def _accept(self) -> None:
        for _ in range(64):  # a burst at once, without starving the heads already open
            try:
                sock, address = self.socket.accept()
            except OSError:  # nothing more to accept (or it went away already)
                return
            sock.setblocking(False)
            if len(self._heads) >= MAX_HEADS:
                self._drop(next(iter(self._heads)))
            self._heads[sock] = _Head(address, time.monotonic() + HEAD_DEADLINE)
            self._selector.register(sock, selectors.EVENT_READ)

    def _read_head(self, sock: socket.socket) -> None:
        head = self._heads[sock]
        try:
            chunk = sock.recv(MAX_HEAD)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(sock)
            return
        head.data += chunk
        if len(head.data) > MAX_HEAD:
            self._drop(sock, _LARGE)
        elif _complete(head.data):
            self._selector.unregister(sock)
            del self._heads[sock]
            self._dispatch(sock, head)

    def _drop_late(self) -> None:
        # One deadline for the whole head, not per read: a client trickling a byte at a
        # time holds nothing longer than HEAD_DEADLINE, and never a thread.
        now = time.monotonic()
        for sock, head in list(self._heads.items()):
            if head.deadline > now:
                break
            self._drop(sock, _SLOW)

    def _drop(self, sock: socket.socket, answer: bytes = b"") -> None:
        self._heads.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        with contextlib.suppress(OSError):
            if answer:
                sock.send(answer)  # small, into an empty buffer; what does not fit is dropped
        sock.close()

    def _dispatch(self, sock: socket.socket, head: _Head) -> None:
        # A thread per complete request, never more than MAX_HANDLERS at once.
        if not self.slots.acquire(blocking=False):
            self._drop(sock, _BUSY)
            return
        sock.setblocking(True)
        self._ready[sock] = bytes(head.data)
        worker = threading.Thread(
            target=self._handle, args=(sock, head.address), name="chat-oauth2-request", daemon=True
        )
        try:
            worker.start()
        except BaseException:
            self._ready.pop(sock, None)
            self.slots.release()
            sock.close()
            raise

    def take_head(self, sock: socket.socket) -> bytes:
        """The head read for ``sock`` (for its handler, once)."""
        return self._ready.pop(sock, b"")

    def _handle(self, sock: socket.socket, address: Any) -> None:
        try:
            self.finish_request(sock, address)
        except Exception:
            self.handle_error(sock, address)
        finally:
            self._ready.pop(sock, None)
            self.shutdown_request(sock)
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log one line: the default prints a traceback into the notebook's stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            # The browser went away before its answer (a closed tab, a reload): nothing to do.
            log.debug("a loopback client went away: %s", type(exc).__name__)
        else:
            # Only the type: a message may quote the request, whose query holds the code.
            log.warning("a loopback request failed with %s", type(exc).__name__)

    def server_close(self) -> None:
        """Close the listening socket and every connection still sending its head."""
        super().server_close()
        for sock in list(self._heads):
            self._drop(sock)
        self.probe.close()


class LoopbackServer:
    """Serves ``http://127.0.0.1:PORT/chat-oauth2/callback/<alias>`` while clients use it.

    It holds its port from creation to :meth:`stop`: a link or redirect URI is only ever
    issued on a port this process holds at that moment.
    """

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
        self._server: _Server | None = _bind(port, store, transport_timeout, self.idle_timeout)
        self._port = self._server.port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._users = 0
        # Serving from the start: a request that arrives before any flow is answered at
        # once (an error page), not left in the kernel's backlog.
        self._thread: threading.Thread | None = threading.Thread(
            target=self._serve, args=(self._server,), name="chat-oauth2-loopback", daemon=True
        )
        self._thread.start()

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
        """The port it holds."""
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
        """True when a redirect to ``uri`` arrives at this listener (while it holds its port)."""
        return _same_listener(uri, self._port, None)

    def holds(self, uri: str) -> bool:
        """True when ``uri`` is this listener's and it holds the port now."""
        return self.running and self.serves(uri)

    @classmethod
    def held_by_this_process(cls, uri: str) -> bool:
        """True when one of this process's listeners holds ``uri``'s port now (any client's)."""
        with cls._shared_lock:
            listeners = list(cls._shared.values())
        return any(listener.holds(uri) for listener in listeners)

    @property
    def running(self) -> bool:
        """True while it holds its port and serves."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Check it still serves (it serves from creation to :meth:`stop`); StateError if not."""
        if not self.running:
            raise StateError(
                f"The loopback listener on port {self._port} was closed",
                hint="Run client.setup() again and get a new link: the redirect URI is on the "
                "port the new listener holds.",
            )

    def _serve(self, server: _Server) -> None:
        try:
            server.run(self._stopping)
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


def _bind(port: int, store: Store, transport_timeout: float, idle_timeout: float) -> _Server:
    """A server bound and listening on 127.0.0.1:``port``; a taken fixed port is a typed error."""
    try:
        return _Server(port, store, transport_timeout, idle_timeout)
    except OSError as exc:
        if not port or exc.errno not in (errno.EADDRINUSE, errno.EACCES):
            raise
        raise ConfigurationError(
            "loopback_port",
            f"is {port}, which this process cannot listen on: "
            + ("another program holds it" if exc.errno == errno.EADDRINUSE else "not allowed"),
            "Find what holds it (`ss -ltnp`) and stop it, or pick another free port and "
            "register its redirect URI at the provider; loopback_port=0 takes any free port, "
            "for providers that accept any port on 127.0.0.1 (RFC 8252 §7.3).",
        ) from None


def listening_sockets(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:``port`` (for tests and diagnostics)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False

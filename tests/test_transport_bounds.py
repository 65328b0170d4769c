"""The one transport against hostile providers: a total deadline, and a cap on every byte.

Each provider here is a real server on 127.0.0.1 started by the test: a raw socket server
that trickles the status line's headers one byte at a time, and ``http.server`` answering a
compression bomb. ``send`` (the kernel's) and ``asend`` (the Jupyter server's) face both.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from chat_oauth2_nb.oauth import MAX_ANSWER_BYTES, HttpRequest, ProviderAnswer
from chat_oauth2_nb.oauth.transport import asend, send

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def token_request(url: str) -> HttpRequest:
    return HttpRequest("POST", url, dict(FORM), "grant_type=refresh_token&refresh_token=r")


# -- a provider that trickles its headers --------------------------------------------------------


class Trickler:
    """Raw HTTP on 127.0.0.1: ``HTTP/1.1 200 OK``, then one header byte every ``pause`` seconds.

    ``normal_first`` answers the first request properly (keep-alive) and trickles from the
    second on, whichever connection it comes on. The trickle lasts at most ``last`` seconds.
    """

    def __init__(self, *, pause: float = 0.2, last: float = 30.0, normal_first: bool = False):
        self.pause, self.last = pause, last
        self.requests = 0
        self.headers_seen: list[bytes] = []
        self._normal_first = normal_first
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/token"
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read_request(self, conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        self.headers_seen.append(head)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = conn.recv(4096)
            if not chunk:
                return False
            body += chunk
        return True

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(self.last + 5)
        with contextlib.suppress(OSError), conn:
            while self._read_request(conn):
                self.requests += 1
                if self._normal_first and self.requests == 1:
                    body = b'{"access_token": "a", "token_type": "Bearer"}'
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                    continue
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                end = time.monotonic() + self.last
                while time.monotonic() < end and not self._stop.is_set():
                    conn.sendall(b"X")  # one byte of a header name that never ends
                    self._stop.wait(self.pause)
                return

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._accepting.join(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)


@pytest.fixture
def trickler() -> Iterator[Callable[..., Trickler]]:
    started: list[Trickler] = []

    def start(**kwargs: Any) -> Trickler:
        server = Trickler(**kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def timed_send(url: str, deadline: float) -> tuple[ProviderAnswer, float]:
    with httpx.Client(timeout=2, trust_env=False) as http:
        began = time.monotonic()
        answer = send(http, token_request(url), deadline=deadline)
        return answer, time.monotonic() - began


def test_a_provider_trickling_its_headers_hits_the_total_deadline(
    trickler: Callable[..., Trickler],
) -> None:
    server = trickler()
    answer, took = timed_send(server.url, deadline=1)
    # The trickle would last 30 s, and no single read ever waits the 2 s read timeout.
    assert took < 5, f"send() took {took:.1f} s with a 1 s deadline ({answer.failure})"
    assert answer.failure in ("deadline", "timeout") and answer.status is None


def test_a_trickle_on_a_second_request_of_one_client_hits_the_deadline_too(
    trickler: Callable[..., Trickler],
) -> None:
    """A provider that answers once, then trickles: the deadline holds on every request."""
    server = trickler(normal_first=True)
    with httpx.Client(timeout=2, trust_env=False) as http:
        first = send(http, token_request(server.url), deadline=1)
        assert first.status == 200 and first.failure is None
        began = time.monotonic()
        second = send(http, token_request(server.url), deadline=1)
        took = time.monotonic() - began
    assert took < 5, f"the second send() took {took:.1f} s with a 1 s deadline"
    assert second.failure in ("deadline", "timeout")


def test_async_send_trickled_headers_hit_the_deadline(
    trickler: Callable[..., Trickler],
) -> None:
    server = trickler()

    async def call() -> tuple[ProviderAnswer, float]:
        async with httpx.AsyncClient(timeout=2, trust_env=False) as http:
            began = time.monotonic()
            answer = await asend(http, token_request(server.url), deadline=1)
            return answer, time.monotonic() - began

    answer, took = asyncio.run(call())
    assert answer.failure in ("deadline", "timeout") and took < 5


# -- a provider answering a compression bomb ---------------------------------------------------

BOMB_SIZE = 50_000_000  # bytes of zeros, once decoded
BOMBS = {
    "gzip": gzip.compress(b"\0" * BOMB_SIZE, compresslevel=9),
    "deflate": zlib.compress(b"\0" * BOMB_SIZE, 9),  # zlib-wrapped, as RFC 9110 says
}


class Encoded:
    """``http.server`` on 127.0.0.1 answering every POST with ``body`` as ``encoding``.

    With ``length=False`` the answer has no Content-Length: it ends when the server closes.
    """

    def __init__(self, body: bytes, encoding: str, length: bool = True) -> None:
        self.accept_encodings: list[str] = []
        seen = self.accept_encodings

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                seen.append(self.headers.get("Accept-Encoding", ""))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Encoding", encoding)
                if length:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def encoded() -> Iterator[Callable[..., Encoded]]:
    started: list[Encoded] = []

    def start(body: bytes, encoding: str, length: bool = True) -> Encoded:
        server = Encoded(body, encoding, length)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def peak_growth(call: Callable[[], ProviderAnswer]) -> tuple[ProviderAnswer, int]:
    """Run ``call``; return its answer and the most memory Python held above the start."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        answer = call()
        return answer, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("encoding", sorted(BOMBS))
def test_a_compression_bomb_is_refused_without_inflating_it(
    encoded: Callable[..., Encoded], encoding: str
) -> None:
    bomb = BOMBS[encoding]
    assert len(bomb) < MAX_ANSWER_BYTES  # small on the wire: only the decoded size is huge
    server = encoded(bomb, encoding)
    answer, growth = peak_growth(lambda: timed_send(server.url, deadline=30)[0])
    assert answer.failure == "too_large" and answer.content == b""
    assert growth < 20 << 20, f"decoding the bomb held {growth / 2**20:.0f} MiB"


@pytest.mark.parametrize("encoding", sorted(BOMBS))
def test_async_send_refuses_a_compression_bomb_without_inflating_it(
    encoded: Callable[..., Encoded], encoding: str
) -> None:
    server = encoded(BOMBS[encoding], encoding)

    async def call() -> ProviderAnswer:
        async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
            return await asend(http, token_request(server.url), deadline=30)

    answer, growth = peak_growth(lambda: asyncio.run(call()))
    assert answer.failure == "too_large"
    assert growth < 20 << 20, f"decoding the bomb held {growth / 2**20:.0f} MiB"


TOKEN = b'{"access_token": "abc", "token_type": "Bearer", "expires_in": 3600}'


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(TOKEN)),
        ("x-gzip", gzip.compress(TOKEN)),
        ("deflate", zlib.compress(TOKEN)),
        ("deflate", zlib.compress(TOKEN, wbits=-zlib.MAX_WBITS)),  # raw deflate, as IIS sends
        ("identity", TOKEN),
    ],
)
def test_encoded_answers_of_real_providers_still_decode(
    encoded: Callable[..., Encoded], encoding: str, body: bytes
) -> None:
    server = encoded(body, encoding)
    for answer in (
        timed_send(server.url, deadline=10)[0],
        asyncio.run(_asend(server.url)),
    ):
        assert answer.failure is None and answer.content == TOKEN
    # Only what the transport decodes itself, under the cap, is offered.
    assert server.accept_encodings == ["gzip, deflate", "gzip, deflate"]


async def _asend(url: str) -> ProviderAnswer:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        return await asend(http, token_request(url), deadline=10)


def test_an_encoding_the_transport_cannot_bound_is_refused(
    encoded: Callable[..., Encoded],
) -> None:
    server = encoded(b"\x0b\x02\x80" + TOKEN + b"\x03", "br")
    answer = timed_send(server.url, deadline=10)[0]
    assert answer.failure == "DecodingError" and answer.content == b""


def test_bytes_past_the_cap_on_the_wire_are_refused_even_when_they_decode_to_little(
    encoded: Callable[..., Encoded],
) -> None:
    # A whole gzip answer, then junk the decoder never turns into output: only counting the
    # bytes on the wire stops it, since no Content-Length announces them.
    junk = gzip.compress(TOKEN) + b"\0" * (4 * MAX_ANSWER_BYTES)
    server = encoded(junk, "gzip", length=False)
    answer = timed_send(server.url, deadline=10)[0]
    assert answer.failure == "too_large"
    assert asyncio.run(_asend(server.url)).failure == "too_large"

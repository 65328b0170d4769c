"""The doctor's requests go through the one bounded transport (issue 17, findings 6 and 9).

A provider that trickles its headers, or answers with a compression bomb, holds a token
request for no longer than its deadline and costs no more memory than its cap: the doctor
talks to the same provider, so it is held to the same bounds.
"""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator

import httpx
import pytest

from chat_oauth2_nb.doctor.http import MAX_PAGE_BYTES, fetch
from chat_oauth2_nb.oauth import HttpRequest


@pytest.fixture
def trickler() -> Iterator[str]:
    """A server that sends a status line, then one header byte every 0.2 s (for 30 s at most)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                end = time.monotonic() + 30
                while not stop.is_set() and time.monotonic() < end:
                    try:
                        conn.sendall(b"X")
                    except OSError:
                        break
                    time.sleep(0.2)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/authorize"
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_a_provider_trickling_its_headers_holds_the_doctor_only_until_its_deadline(
    trickler: str,
) -> None:
    started = time.monotonic()
    with httpx.Client(timeout=5, follow_redirects=False, trust_env=False) as client:
        answer, why = fetch(client, HttpRequest("GET", trickler, {}, ""), deadline=1.0)
    took = time.monotonic() - started
    assert answer.status is None and answer.failure == "unreachable"
    assert why == "it did not answer in time"
    assert took < 10, f"the doctor waited {took:.1f} s for a 1 s deadline"


class _Bomb(http.server.BaseHTTPRequestHandler):
    body = gzip.compress(b"<html>" + b"0" * 50_000_000)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_compression_bomb_is_cut_at_the_page_cap_without_inflating_it() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Bomb)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/authorize"
    try:
        with httpx.Client(timeout=10, follow_redirects=False, trust_env=False) as client:
            tracemalloc.start()
            answer, why = fetch(client, HttpRequest("GET", url, {}, ""), deadline=10)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    finally:
        server.shutdown()
        server.server_close()
    # The page's start is kept (the doctor reads pages as far as its cap), no more.
    assert answer.status == 200 and why == ""
    assert 0 < len(answer.content) <= MAX_PAGE_BYTES
    assert peak < 20 * 2**20, f"reading the bomb took {peak / 2**20:.0f} MiB"

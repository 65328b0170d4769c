"""Per-request cost of ``client.auth()`` against bare httpx and Authlib's httpx client.

2,000 authorized GETs each, to one small keep-alive HTTP server on 127.0.0.1 (its own
process, so it does not share our GIL), which answers 200 only to the right bearer token.
The three run interleaved in rounds of 100, order rotating, so noise hits all alike; the
reported figure is the median over rounds of the mean time per request. Target: <= 1.05.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx
from _common import header, median, summary

from chat_oauth2_nb import create_oauth2_client
from chat_oauth2_nb.demo import start_demo_provider
from chat_oauth2_nb.store import Store

ROUNDS = 20
PER_ROUND = 100

# The API: answers 200 "ok" to the expected bearer token (read from stdin), else 401.
_API_SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

expected = "Bearer " + sys.stdin.readline().strip()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True

    def do_GET(self):
        ok = self.headers.get("Authorization") == expected
        body = b"ok" if ok else b"no"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def start_api(token: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _API_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(token + "\n")
    proc.stdin.flush()
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/api"


def main() -> None:
    header("client.auth() vs bare httpx vs Authlib OAuth2Client (2,000 GETs each, keep-alive)")
    provider = start_demo_provider()
    tmp = Path(tempfile.mkdtemp())
    client = create_oauth2_client(
        provider.config(alias="demo"),
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        mode="loopback",
        store=Store(tmp / "store.sqlite3"),
    )
    provider.approve(client.get_user_authorization_url("ada"))
    data = client.wait_for_authorization("ada", timeout=30)
    assert data.expires_at is not None
    api, url = start_api(data.token)
    with warnings.catch_warnings():
        # Authlib's httpx integration warns about itself; silenced here only.
        warnings.simplefilter("ignore", DeprecationWarning)
        from authlib.integrations.httpx_client import OAuth2Client as AuthlibClient

        authlib = AuthlibClient(
            client_id=provider.client_id,
            token={
                "access_token": data.token,
                "token_type": "Bearer",
                "expires_at": int(data.expires_at.timestamp()),
            },
            trust_env=False,
        )
    ours = httpx.Client(auth=client.auth("ada"), trust_env=False)
    bare = httpx.Client(headers={"Authorization": f"Bearer {data.token}"}, trust_env=False)
    contenders: dict[str, Callable[[], httpx.Response]] = {
        "bare httpx, static Authorization header": lambda: bare.get(url),
        "chat_oauth2_nb client.auth()": lambda: ours.get(url),
        "Authlib httpx OAuth2Client": lambda: authlib.get(url),
    }
    try:
        for call in contenders.values():  # connect and warm up
            for _ in range(20):
                assert call().status_code == 200
        per_request: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        for round_ in range(ROUNDS):
            order = names[round_ % 3 :] + names[: round_ % 3]
            for name in order:
                call = contenders[name]
                t0 = time.perf_counter()
                for _ in range(PER_ROUND):
                    response = call()
                    if response.status_code != 200:
                        raise SystemExit(f"{name}: HTTP {response.status_code}")
                per_request[name].append((time.perf_counter() - t0) / PER_ROUND)
    finally:
        ours.close()
        bare.close()
        authlib.close()
        api.terminate()
        api.wait()
        if api.stdin:
            api.stdin.close()
        if api.stdout:
            api.stdout.close()
        client.close()
        provider.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    base = median(per_request[names[0]])
    for name in names:
        m = median(per_request[name])
        print(f"   {name:<42} {m * 1e6:8.1f} us/request   ratio {m / base:5.3f}")
    ours_ratio = median(per_request[names[1]]) / base
    authlib_ratio = median(per_request[names[2]]) / base
    verdict = "met" if ours_ratio <= 1.05 else "MISSED"
    print(f"   target client.auth() <= 1.05 x bare: {verdict}")
    summary(
        f"auth: client.auth() {ours_ratio:.3f}x bare httpx ({base * 1e6:.0f} us/request), "
        f"Authlib OAuth2Client {authlib_ratio:.3f}x; {ROUNDS * PER_ROUND} requests each; "
        f"target <= 1.05 {verdict}"
    )


if __name__ == "__main__":
    main()

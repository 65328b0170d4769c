"""Fuzz the callback route of a real Jupyter server (a subprocess) with the extension.

Any query string, any encoding (percent-encoded raw bytes, invalid UTF-8, malformed
escapes), huge values, repeated parameters, forged states that look real, and the real
states of pending flows with junk codes, all sent with the Jupyter token: never a 500,
never a stored token, and the store stays the size it was.

``bench/fuzz.py`` reuses this module's server, flows and strategy for a longer run.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import secrets
import socket
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, quote_from_bytes, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat_oauth2_nb import create_oauth2_client
from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from chat_oauth2_nb.store import Store

BASE_URL = "/fuzz/"
CALLBACK = "chat-oauth2/callback"
# The request line and headers must fit tornado's 64 KiB limit (httpx refuses longer queries).
MAX_QUERY = 60_000
PENDING_FLOWS = 24


# Jupyter logs every 5xx answer at ERROR: the exchange's 502 for a junk code is expected.
_EXPECTED_502 = re.compile(r"^\[E [^\]]+\] 502 GET /fuzz/chat-oauth2/callback\?")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class JupyterServer:
    """``jupyter server`` in a subprocess, its folders under ``root``, on 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{BASE_URL}"
        self.callback_url = self.url + CALLBACK
        self.log_path = root / "server.log"
        self.env = {
            **os.environ,
            "JUPYTER_DATA_DIR": str(root / "data"),
            "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
            "JUPYTER_CONFIG_DIR": str(root / "config"),
        }
        self.env.pop("CHAT_OAUTH2_NB_CALLBACK_URL", None)
        self.store_path = root / "data" / "chat_oauth2_nb" / "store.sqlite3"
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        # The Jupyter login, and (once flows are started) the browser's binding cookies.
        self.headers: dict[str, str] = {"Authorization": f"token {self.token}"}

    def start(self, timeout: float = 90.0) -> None:
        for name in ("data", "runtime", "config"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "jupyter",
            "server",
            f"--ServerApp.token={self.token}",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.base_url={BASE_URL}",
            "--ServerApp.open_browser=False",
            f"--ServerApp.root_dir={self.root}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # containers: jupyter refuses root without it
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.root
        )
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=5) as http:
            while True:
                if self._proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"jupyter server exited:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(self.url + "api").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"jupyter server did not answer:\n{self.log_tail()}")
                time.sleep(0.1)

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def errors_logged(self) -> list[str]:
        """Lines the server started itself with a traceback or at ERROR/CRITICAL level.

        Only line starts count: fuzzed queries appear in the log too (even the word
        Traceback, which Hypothesis borrows from this very file), but never at a line start.
        """
        return [
            line
            for line in self.log_text().splitlines()
            if line.startswith(("Traceback", "[E ", "[C ")) and not _EXPECTED_502.match(line)
        ]

    def store_files_size(self) -> int:
        """Bytes on disk of the store: the database file plus its WAL."""
        wal = self.store_path.with_name(self.store_path.name + "-wal")
        return sum(p.stat().st_size for p in (self.store_path, wal) if p.exists())


def create_pending_flows(
    server: JupyterServer, provider: DemoProvider, store: Store, count: int
) -> list[str]:
    """Start ``count`` real authorizations whose redirect URI is the server's callback."""
    client = create_oauth2_client(
        provider.config(alias="demo"),
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        redirect_uri=server.callback_url,
        store=store,
    )
    try:
        assert client.setup() == server.callback_url
        links = [client.get_user_authorization_url(f"user{i}") for i in range(count)]
    finally:
        client.close()
    # The person's browser opens each start link, which binds the flow to its cookie: from
    # then on the fuzzer is that browser, so real states with junk codes reach the exchange.
    with httpx.Client(trust_env=False, timeout=30, headers=server.headers) as browser:
        for link in links:
            assert browser.get(link).is_redirect
        server.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    return [parse_qs(urlsplit(link.provider_url).query)["state"][0] for link in links]


def send(http: httpx.Client, server: JupyterServer, query: bytes) -> httpx.Response:
    """GET the callback with this exact (already encoded) query string."""
    raw_path = f"{BASE_URL}{CALLBACK}".encode() + (b"?" + query if query else b"")
    url = httpx.URL(f"http://127.0.0.1:{server.port}", raw_path=raw_path)
    assert url.raw_path == raw_path  # exactly these bytes go on the wire
    return http.send(http.build_request("GET", url, headers=server.headers))


# -- the strategy ----------------------------------------------------------------------------

_STATE_ALPHABET = string.ascii_letters + string.digits
# What may stand unencoded in a query and reaches the server as is (httpx escapes the rest
# of visible ASCII itself, which would change the length we generated).
_RAW_SAFE = (string.ascii_letters + string.digits + "-._~!$&'()*+,;=:/?[]@%").encode()
_NAMES = [
    "state",
    "code",
    "error",
    "error_description",
    "error_uri",
    "iss",
    "scope",
    "session_state",
    "State",
    "STATE",
    "state[]",
    "state ",
    " state",
    "code_verifier",
    "",
]


def _encode(raw: bytes, how: str) -> bytes:
    if how == "percent-all":
        return quote_from_bytes(raw, safe="").encode()
    if how == "plus":
        return quote_from_bytes(raw, safe=" ").replace(" ", "+").encode()
    # "raw": visible ASCII as is (so '&', '=', '%', ';' break the structure), the rest escaped
    return b"".join(bytes([b]) if b in _RAW_SAFE else f"%{b:02X}".encode() for b in raw)


def _mutate(state: str, how: int, pos: int) -> str:
    pos %= max(len(state), 1)
    if how == 0:
        return state[:pos] + ("A" if state[pos] != "A" else "B") + state[pos + 1 :]
    if how == 1:
        return state[:-1]
    if how == 2:
        return state + "x"
    if how == 3:
        return state.swapcase()
    return " " + state


def callback_queries(real_states: list[str]) -> st.SearchStrategy[bytes]:
    """Query strings for the callback: junk of every kind, plus real states with junk codes."""
    forged = st.text(_STATE_ALPHABET, min_size=43, max_size=43)
    near_real = st.builds(
        _mutate, st.sampled_from(real_states), st.integers(0, 4), st.integers(0, 100)
    )
    real = st.sampled_from(real_states)
    huge = st.builds(
        lambda unit, n: unit * n,
        st.sampled_from([b"a", b"%", b"\xff", b"&", b"=", b"%zz", b"\xc3", b"<script>", b"\x00"]),
        st.integers(1000, 12_000),
    )
    names = st.one_of(
        st.sampled_from(_NAMES).map(str.encode),
        st.binary(max_size=16),
        st.text(max_size=16).map(str.encode),
    )
    values = st.one_of(
        st.binary(max_size=64),
        st.text(max_size=64).map(str.encode),
        forged.map(str.encode),
        near_real.map(str.encode),
        real.map(str.encode),
        huge,
        st.sampled_from(
            [
                b"",
                b"%",
                b"%%",
                b"%0",
                b"%zz",
                b"%FF",
                b"%C3%28",
                b"%ED%A0%80",
                b"+",
                b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80",
                b"\x00",
            ]
        ),
    )
    how = st.sampled_from(["percent-all", "plus", "raw"])
    pair = st.builds(lambda n, v, h: _encode(n, h) + b"=" + _encode(v, h), names, values, how)
    bare = st.builds(_encode, names, how)  # a name without '='
    junk_pairs = st.lists(st.one_of(pair, pair, pair, bare), max_size=8).map(b"&".join)
    # A real (maybe already used) state with a junk code: the exchange is tried and fails.
    junk_code = st.builds(
        lambda s, code, extra: b"&".join(
            [b"state=" + s.encode(), b"code=" + _encode(code, "percent-all"), *extra]
        ),
        real,
        st.binary(min_size=1, max_size=80),
        st.lists(pair, max_size=2),
    )
    # The same real state twice, or next to a forged one: never a provider's callback.
    repeated = st.builds(
        lambda s, other, code: (
            b"state=" + s.encode() + b"&state=" + other.encode() + b"&code=" + code.encode()
        ),
        real,
        st.one_of(real, forged),
        st.text(_STATE_ALPHABET, min_size=1, max_size=20),
    )
    raw_tail = st.binary(max_size=40).map(lambda b: _encode(b, "raw"))
    query = st.one_of(
        junk_pairs,
        junk_pairs,
        junk_code,
        repeated,
        st.builds(lambda a, b: a + b, junk_pairs, raw_tail),
        raw_tail,
    )
    return query.map(lambda q: q[:MAX_QUERY])


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provider_for_fuzz() -> Iterator[DemoProvider]:
    provider = start_demo_provider()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    server = JupyterServer(tmp_path_factory.mktemp("fuzz-jupyter"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fuzz_store(jupyter: JupyterServer) -> Store:
    return Store(jupyter.store_path)


@pytest.fixture(scope="module")
def real_states(
    jupyter: JupyterServer, provider_for_fuzz: DemoProvider, fuzz_store: Store
) -> list[str]:
    return create_pending_flows(jupyter, provider_for_fuzz, fuzz_store, PENDING_FLOWS)


@pytest.fixture(scope="module")
def http(jupyter: JupyterServer) -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=30) as client:
        yield client


# -- tests ---------------------------------------------------------------------------------


def test_the_callback_route_is_served(
    jupyter: JupyterServer, http: httpx.Client, real_states: list[str]
) -> None:
    """The fuzzer talks to the extension (not a 404) and is logged in (not a redirect)."""
    response = send(http, jupyter, b"state=" + b"x" * 43 + b"&code=abc")
    assert response.status_code == 400
    assert "state is unknown" in response.text.replace("&#x27;", "'")
    with httpx.Client(trust_env=False, timeout=30) as stranger:  # no token, no cookie
        anonymous = stranger.get(jupyter.callback_url + "?state=abc&code=abc")
    assert anonymous.status_code in (302, 403)


@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # show a failure, not this
def test_fuzz_callback_never_500_never_stores(
    jupyter: JupyterServer,
    http: httpx.Client,
    fuzz_store: Store,
    real_states: list[str],
) -> None:
    flows_before = fuzz_store.count_flows()
    assert flows_before == PENDING_FLOWS
    db_size_before = jupyter.store_path.stat().st_size
    statuses: collections.Counter[int] = collections.Counter()
    real = [s.encode() for s in real_states]

    @settings(
        max_examples=2000,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(query=callback_queries(real_states))
    def fuzz(query: bytes) -> None:
        response = send(http, jupyter, query)
        statuses[response.status_code] += 1
        assert response.status_code != 500
        # 400: refused; 502: a real pending state whose junk code the provider refused.
        assert response.status_code in (400, 502), response.status_code
        if response.status_code == 502:
            assert any(state in query for state in real)
        assert fuzz_store.list_tokens() == []
        assert fuzz_store.count_flows() == flows_before

    fuzz()
    print("statuses:", dict(statuses))
    assert sum(statuses.values()) >= 2000
    # Some real states met junk codes and were used up by them.
    used = [fuzz_store.get_flow(s) for s in real_states]
    assert sum(f is not None and f.status != "pending" for f in used) >= 1
    assert statuses[502] >= 1, statuses
    # Bounded: refusals write nothing; the file grows by at most the used flows' outcomes.
    assert jupyter.store_path.stat().st_size <= db_size_before + 64 * 1024
    assert jupyter.store_files_size() <= 8 * 1024 * 1024
    assert jupyter.errors_logged() == []


def test_oversized_request_is_refused_without_500(
    jupyter: JupyterServer, http: httpx.Client, fuzz_store: Store
) -> None:
    """Beyond tornado's 64 KiB header limit the server drops the request; it stays up."""
    with socket.create_connection(("127.0.0.1", jupyter.port), timeout=30) as sock:
        sock.sendall(
            f"GET {BASE_URL}{CALLBACK}?state=".encode()
            + b"x" * 200_000
            + b" HTTP/1.1\r\n"
            + f"Host: 127.0.0.1:{jupyter.port}\r\nAuthorization: token {jupyter.token}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    assert answer == b"" or answer.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), answer[:100]
    assert send(http, jupyter, b"state=abc").status_code == 400
    assert fuzz_store.list_tokens() == []

"""Fuzz the callback route of a real Jupyter server (a subprocess) with the extension.

Any query string, any encoding (percent-encoded raw bytes, invalid UTF-8, malformed
escapes), huge values, repeated parameters, forged states that look real, and the real
states of pending flows with junk codes, all sent with the Jupyter token: never a 500,
never a stored token, and the store stays the size it was.

``bench/fuzz.py`` reuses this module's flows and strategy (and tests/support/server.py) for a
longer run.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import string
from collections.abc import Iterator
from urllib.parse import parse_qs, quote_from_bytes, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.server import JupyterServer

from chat_oauth2_nb import create_oauth2_client
from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from chat_oauth2_nb.store import Store

BASE_URL = "/fuzz/"
CALLBACK = "chat-oauth2/callback"
# The request line and headers must fit tornado's 64 KiB limit (httpx refuses longer queries).
MAX_QUERY = 60_000
PENDING_FLOWS = 24


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
    with JupyterServer(tmp_path_factory.mktemp("fuzz-jupyter"), base_url=BASE_URL) as server:
        yield server


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

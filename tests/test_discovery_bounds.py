"""Discovery, the JWKS and redirect URIs against a hostile provider (issue 17, findings 13a, 16).

A small HTTP server on 127.0.0.1 plays the provider: it serves metadata or keys of 5 MB, or
trickles them one byte at a time, or names an issuer that differs by a trailing '/'. Every
fetch must end with a typed error within a generous bound, holding little memory. Redirect
URIs on plain http to another machine are refused with what to register instead.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt

import chat_oauth2_nb.config as config_module
from chat_oauth2_nb.config import ProviderConfig, discover_config
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.demo._authserver import signing_key
from chat_oauth2_nb.errors import ConfigurationError, IdTokenError
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth.oidc import verify_for_config

FIVE_MB = 5 * 1024 * 1024
# Far more than the 1 s deadline the tests give, far less than a trickle's 40 s.
BOUND = 8.0
# The most memory a refused fetch may hold: the cap is 64 KiB, the answer 5 MB.
MEMORY = 2 * 1024 * 1024


class Hostile(http.server.ThreadingHTTPServer):
    """A provider on 127.0.0.1 that answers every GET with one prepared body."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.trickle = False
        self.body = b""
        self.stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def serve(self, mode: str, document: dict[str, Any]) -> None:
        """Answer with ``document``: "plain", "huge" (padded to 5 MB) or "trickle" (slowly).

        The body is built here, before a test measures memory, so the server's own copy is
        not counted as the client's.
        """
        body = json.dumps(document).encode()
        if mode == "huge":
            # Valid JSON, 5 MB of it: a client that reads it all parses it and uses it.
            body = body[:-1] + b', "pad": "' + b" " * (FIVE_MB - len(body)) + b'"}'
        elif mode == "trickle":
            body = b" " * 200 + body  # JSON allows leading white space
        self.body, self.trickle = body, mode == "trickle"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Hostile

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if not self.server.trickle:
                self.wfile.write(body)
                return
            # Headers at once, then one byte every 0.2 s: no single read ever times out.
            for index in range(len(body)):
                if self.server.stop.is_set():
                    return
                self.wfile.write(body[index : index + 1])
                self.wfile.flush()
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass


def metadata_of(server: Hostile) -> dict[str, Any]:
    return {
        "issuer": server.url,
        "authorization_endpoint": f"{server.url}/authorize",
        "token_endpoint": f"{server.url}/token",
        "jwks_uri": f"{server.url}/jwks.json",
        "response_types_supported": ["code"],
    }


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.stop.set()
    server.shutdown()
    thread.join()
    server.server_close()


def bounded(call: Callable[[], Any]) -> tuple[BaseException | None, float, int]:
    """Run ``call``; what it raised, how long it took, the most memory Python held meanwhile."""
    # What a first call loads once (Authlib's model, httpx's TLS context with its CA bundle,
    # some 4 MB) is loaded before measuring: that memory is not the answer's.
    import authlib.oauth2.rfc8414  # noqa: F401

    httpx.Client().close()
    tracemalloc.start()
    started = time.monotonic()
    raised: BaseException | None = None
    try:
        call()
    except Exception as exc:  # the test decides which errors are right
        raised = exc
    elapsed = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return raised, elapsed, peak


# -- finding 16: metadata and keys are read under the cap and the deadline ------------------


def test_five_megabytes_of_metadata_are_refused_unread(hostile: Hostile) -> None:
    hostile.serve("huge", metadata_of(hostile))
    raised, elapsed, peak = bounded(lambda: discover_config(hostile.url, alias="x", timeout=5))
    assert isinstance(raised, ConfigurationError), raised
    assert "more than 65536 bytes" in str(raised)
    assert elapsed < BOUND and peak < MEMORY, (elapsed, peak)


def test_trickled_metadata_ends_at_the_deadline(hostile: Hostile) -> None:
    hostile.serve("trickle", metadata_of(hostile))
    raised, elapsed, _ = bounded(lambda: discover_config(hostile.url, alias="x", timeout=1))
    assert isinstance(raised, ConfigurationError), raised
    assert "within the 1 s allowed" in str(raised)
    assert elapsed < BOUND, elapsed


def _config_with_keys_at(hostile: Hostile) -> ProviderConfig:
    return ProviderConfig(
        alias="x",
        auth_uri=f"{hostile.url}/authorize",
        access_token_uri=f"{hostile.url}/token",
        refresh_token_uri="",
        issuer=hostile.url,
        jwks_uri=f"{hostile.url}/jwks.json",
        client_id="cid",
    )


@pytest.mark.parametrize("mode", ["huge", "trickle"])
def test_a_huge_or_trickled_key_set_fails_the_id_token_in_time(hostile: Hostile, mode: str) -> None:
    hostile.serve(mode, {"keys": [signing_key().as_dict(private=False)]})
    now = int(time.time())
    claims = {"iss": hostile.url, "aud": "cid", "sub": "ada", "iat": now, "exp": now + 60}
    token = jwt.encode({"alg": "RS256", "kid": str(signing_key().kid)}, claims, signing_key())
    config = _config_with_keys_at(hostile)
    raised, elapsed, peak = bounded(lambda: verify_for_config(config, token, None, timeout=1))
    assert isinstance(raised, IdTokenError), raised
    assert "signing keys could not be read" in str(raised)
    assert elapsed < BOUND and peak < MEMORY, (elapsed, peak)


# -- finding 13a: the metadata's issuer is the configured one, exactly ----------------------


def test_metadata_for_the_issuer_with_a_slash_is_another_issuers(hostile: Hostile) -> None:
    hostile.serve("plain", {**metadata_of(hostile), "issuer": hostile.url + "/"})
    with pytest.raises(ConfigurationError, match="not the metadata's issuer"):
        discover_config(hostile.url, alias="x", timeout=5)
    # The issuer as the provider writes it, trailing '/' included (Auth0's do), is kept so.
    found = discover_config(hostile.url + "/", alias="x", timeout=5)
    assert found["issuer"] == hostile.url + "/"
    assert ProviderConfig.from_mapping(found, client_id="c").issuer == hostile.url + "/"


def test_the_doctor_fails_metadata_whose_issuer_differs_by_a_slash(
    provider: DemoProvider, make_client: Callable[..., OAuth2Client]
) -> None:
    provider.metadata_overrides["issuer"] = provider.issuer + "/"
    report = make_client().diagnose()
    assert report["metadata"].verdict == "fail", report["metadata"]
    assert f"issuer='{provider.issuer}/'" in report["metadata"].action
    with pytest.raises(ConfigurationError, match="not the metadata's issuer"):
        discover_config(provider.issuer, alias="demo")


# -- finding 16: plain http redirect URIs only to this machine ------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "http://jupyter.example.org/chat-oauth2/callback/demo",
        "http://192.168.1.20:8888/chat-oauth2/callback/demo",
        "http://10.0.0.5/cb",
    ],
)
def test_a_plain_http_redirect_uri_to_another_machine_is_refused(uri: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        config_module.check_redirect_uri(uri)
    assert caught.value.field == "redirect_uri"
    message = str(caught.value)
    assert "unencrypted" in message
    assert uri.replace("http://", "https://", 1) in message  # what to register instead
    assert "127.0.0.1" in message
    # A test provider may be reached that way on purpose.
    assert config_module.check_redirect_uri(uri, allow_insecure_http=True) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:8765/chat-oauth2/callback/demo",
        "http://[::1]:8765/cb",
        "http://localhost:8888/chat-oauth2/callback/demo",
        "https://jupyter.example.org/chat-oauth2/callback/demo",
    ],
)
def test_loopback_and_https_redirect_uris_are_accepted(uri: str) -> None:
    assert config_module.check_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    "uri", ["", "/chat-oauth2/callback", "ftp://h/cb", "https://h/cb#frag", "javascript:x", None]
)
def test_malformed_redirect_uris_are_refused(uri: object) -> None:
    with pytest.raises(ConfigurationError):
        config_module.check_redirect_uri(uri)


def test_the_client_refuses_a_plain_http_redirect_uri_to_another_machine(
    make_client: Callable[..., OAuth2Client],
) -> None:
    """create_oauth2_client(redirect_uri=...) goes through the same check, before any flow."""
    remote = "http://jupyter.example.org/chat-oauth2/callback/demo"
    with pytest.raises(ConfigurationError, match="unencrypted"):
        make_client(mode="jupyter", redirect_uri=remote)
    loopback = "http://127.0.0.1:8765/chat-oauth2/callback/demo"
    assert make_client(mode="jupyter", redirect_uri=loopback).setup() == loopback
    assert make_client(mode="jupyter", redirect_uri=remote, allow_insecure_http=True)

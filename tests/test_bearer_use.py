"""Where a bearer token may go: the origin it was signed for, over TLS, and only as Bearer.

Each attack runs against real parts: the demo provider issues the tokens, and the APIs are
``http.server`` instances on 127.0.0.1 that record everything that reaches them. Only the
plain-http-to-another-host case needs a stand-in (tests must not reach other hosts): an
``httpx.MockTransport`` or a ``requests`` transport adapter that records what would leave.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests
from azure.core import PipelineClient
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.policies import BearerTokenCredentialPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from google.auth.transport.requests import AuthorizedSession
from support.scan import assert_no_secret

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.errors import ConfigurationError, NotAuthorizedError
from chat_oauth2_nb.kernel import auth as kernel_auth
from chat_oauth2_nb.kernel.adapters import AzureCredential, google_credentials, requests_auth
from chat_oauth2_nb.kernel.auth import OAuth2Auth
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth import AuthData

Make = Callable[..., OAuth2Client]
JSON = "application/json"


# -- loopback APIs that record what reaches them ---------------------------------------------


class Api:
    """An HTTP server on 127.0.0.1 answering every request with ``answer(path)``; records all."""

    def __init__(self, answer: Callable[[str], tuple[int, dict[str, str]]]) -> None:
        self.seen: list[str] = []  # request line and headers of every request, as received
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                api.seen.append(self.requestline + "\n" + str(self.headers))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status, headers = answer(self.path)
                body = json.dumps({"status": status}).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Type": JSON}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def text(self) -> str:
        return "\n\n".join(self.seen)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def apis() -> Iterator[Callable[..., Api]]:
    started: list[Api] = []

    def start(answer: Callable[[str], tuple[int, dict[str, str]]]) -> Api:
        api = Api(answer)
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()


def stored(client: OAuth2Client, user: str = "ada") -> AuthData:
    data = client.get_access_token_for_user(user)
    assert data is not None
    return data


def secrets_of(client: OAuth2Client, *more: AuthData) -> list[str]:
    tokens = [stored(client), *more]
    return [t.token for t in tokens] + [t.refresh_token or "" for t in tokens]


# -- finding 2: a 401 after a cross-origin redirect ---------------------------------------------


@pytest.fixture
def redirect_to_b(apis: Callable[..., Api]) -> tuple[Api, Api]:
    """API A answers 302 to B, another origin (another port); B answers 401 to everything."""
    b = apis(lambda path: (401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}))
    a = apis(lambda path: (302, {"Location": f"{b.url}/landing"}))
    return a, b


def test_requests_auth_never_hands_a_token_to_a_cross_origin_redirect_target(
    authorized: Make, provider: DemoProvider, redirect_to_b: tuple[Api, Api]
) -> None:
    a, b = redirect_to_b
    client = authorized()
    first = stored(client)
    with requests.Session() as session:
        session.auth = client.requests_auth("ada")
        answer = session.get(f"{a.url}/api/me", timeout=10)
    assert answer.status_code == 401 and len(a.seen) == 1 and b.seen
    assert "Bearer" in a.seen[0]  # A, the origin it was signed for, got the token
    assert_no_secret(b.text, secrets_of(client, first), "what the redirect target received")
    # B's 401 says nothing about the token (B never saw one): no refresh, no retry.
    assert provider.token_requests["refresh_token"] == 0
    assert len(b.seen) == 1 and stored(client).token == first.token


def test_httpx_auth_never_hands_a_token_to_a_cross_origin_redirect_target(
    authorized: Make, provider: DemoProvider, redirect_to_b: tuple[Api, Api]
) -> None:
    a, b = redirect_to_b
    client = authorized()
    first = stored(client)
    with httpx.Client(follow_redirects=True, timeout=10, trust_env=False) as http:
        answer = http.get(f"{a.url}/api/me", auth=client.auth("ada"))
    assert answer.status_code == 401 and b.seen
    assert_no_secret(b.text, secrets_of(client, first), "what the redirect target received")
    assert provider.token_requests["refresh_token"] == 0 and len(a.seen) == 1


def test_google_credentials_never_hand_a_token_to_a_cross_origin_redirect_target(
    authorized: Make, provider: DemoProvider, redirect_to_b: tuple[Api, Api]
) -> None:
    a, b = redirect_to_b
    client = authorized()
    first = stored(client)
    with AuthorizedSession(client.google_credentials("ada")) as session:
        answer = session.get(f"{a.url}/api/me", timeout=10)
    assert answer.status_code == 401 and b.seen
    # google-auth refreshes after B's 401 and sends the request to A again: requests strips
    # the header on the way to B every time.
    assert_no_secret(b.text, secrets_of(client, first), "what the redirect target received")


def test_a_401_at_the_signed_origin_is_still_retried_once(
    authorized: Make, provider: DemoProvider, apis: Callable[..., Api]
) -> None:
    """The narrowing above keeps the retry the auths exist for: a 401 from the API itself."""
    client = authorized()
    first = stored(client)
    answers = iter([401, 200, 401, 200])
    api = apis(lambda path: (next(answers), {}))
    with requests.Session() as session:
        refused_then_ok = session.get(f"{api.url}/me", auth=client.requests_auth("ada"), timeout=10)
    with httpx.Client(timeout=10, trust_env=False) as http:
        refused_then_ok_too = http.get(f"{api.url}/me", auth=client.auth("ada"))
    assert refused_then_ok.status_code == refused_then_ok_too.status_code == 200
    assert provider.token_requests["refresh_token"] == 2
    assert first.token in api.seen[0] and stored(client).token in api.seen[3]


# -- finding 14: only Bearer tokens are sent as Bearer --------------------------------------


def authorized_with_token_type(
    make_client: Make, provider: DemoProvider, token_type: str, user: str = "ada"
) -> OAuth2Client:
    """A client whose token endpoint answered the code exchange with this ``token_type``."""
    client = make_client()
    url = client.get_user_authorization_url(user)
    answer = {
        "access_token": f"{token_type}-token-0123456789/+=abcdefghij",
        "token_type": token_type,
        "expires_in": 3600,
        "refresh_token": "rt-0123456789/+=abcdefghij",
    }
    provider.inject_fault("token", status=200, body=json.dumps(answer), content_type=JSON)
    assert provider.approve(url).status_code == 200
    client.wait_for_authorization(user, timeout=60)
    assert stored(client, user).token_type == token_type
    return client


def call_with(adapter: str, client: OAuth2Client, url: str) -> None:
    """One API call through ``adapter`` to ``url``."""
    if adapter == "httpx":
        with httpx.Client(timeout=10, trust_env=False) as http:
            http.get(url, auth=client.auth("ada"))
    elif adapter == "requests":
        requests.get(url, auth=client.requests_auth("ada"), timeout=10)
    elif adapter == "google-auth":
        with AuthorizedSession(client.google_credentials("ada")) as session:
            session.get(url, timeout=10)
    else:
        # The scopes the grant carries: its own token serves (no token for another resource).
        scopes = stored(client).scopes or ("openid",)
        policy = BearerTokenCredentialPolicy(client.azure_credential("ada"), *scopes)
        with PipelineClient(url, policies=[policy]) as pipeline:
            pipeline.send_request(HttpRequest("GET", url), enforce_https=False)


ADAPTERS = ["httpx", "requests", "google-auth", "azure-core"]


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("token_type", ["mac", "DPoP", "N_A"])
def test_a_token_that_is_not_bearer_is_never_sent_as_bearer(
    make_client: Make,
    provider: DemoProvider,
    apis: Callable[..., Api],
    adapter: str,
    token_type: str,
) -> None:
    client = authorized_with_token_type(make_client, provider, token_type)
    api = apis(lambda path: (200, {}))
    with pytest.raises(NotAuthorizedError) as info:
        call_with(adapter, client, f"{api.url}/me")
    assert api.seen == []  # nothing was sent at all
    message = str(info.value)
    assert repr(token_type) in message and "not a Bearer token" in message
    assert "issue Bearer tokens" in message  # what to do
    assert_no_secret(message, secrets_of(client), "the error")


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_bearer_in_any_case_is_sent(
    make_client: Make, provider: DemoProvider, apis: Callable[..., Api], adapter: str
) -> None:
    # GitHub answers token_type "bearer"; RFC 6749 §5.1 says the value is case-insensitive.
    client = authorized_with_token_type(make_client, provider, "bearer")
    api = apis(lambda path: (200, {}))
    call_with(adapter, client, f"{api.url}/me")
    assert len(api.seen) == 1 and f"Bearer {stored(client).token}" in api.seen[0]


class FixedSource:
    """A TokenSource that always holds one token (for a shape no provider answer yields)."""

    alias = "fixed"
    leeway = 30.0

    def __init__(self, data: AuthData) -> None:
        self.data = data

    def get_access_token_for_user(self, user: str) -> AuthData | None:
        return self.data

    def refresh_after_rejection(self, user: str, used: AuthData) -> AuthData | None:
        return None

    def refused_after_refresh(self, user: str, used: AuthData) -> None:
        pass


def test_a_token_without_a_type_is_sent_as_bearer(apis: Callable[..., Api]) -> None:
    # Many providers omit token_type; a token stored without one keeps working as Bearer.
    source = FixedSource(AuthData(token="untyped-token-0123456789", token_type=""))
    api = apis(lambda path: (200, {}))
    with httpx.Client(timeout=10, trust_env=False) as http:
        assert http.get(api.url, auth=OAuth2Auth(source, "ada")).status_code == 200
    assert requests.get(api.url, auth=requests_auth(source, "ada"), timeout=10).ok
    assert AzureCredential(source, "ada").get_token("x").token == source.data.token
    assert google_credentials(source, "ada").token == source.data.token
    assert all("Bearer untyped-token-0123456789" in seen for seen in api.seen)


def test_a_refresh_that_brings_another_token_type_is_not_sent(
    authorized: Make, provider: DemoProvider, apis: Callable[..., Api]
) -> None:
    """The check holds for the token a 401 retry would send too, not only the first one."""
    client = authorized()
    answers = iter([401, 200])
    api = apis(lambda path: (next(answers), {}))
    mac = {"access_token": "mac-0123456789abcdefghij", "token_type": "mac", "expires_in": 60}
    provider.inject_fault("token", status=200, body=json.dumps(mac), content_type=JSON)
    with requests.Session() as session, pytest.raises(NotAuthorizedError, match="'mac'"):
        session.get(f"{api.url}/me", auth=client.requests_auth("ada"), timeout=10)
    assert len(api.seen) == 1 and "mac-0123456789" not in api.text


# -- finding 14: a bearer token only over TLS (or to this machine) ---------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/me",
        "https://10.0.0.1/me",
        "http://127.0.0.1:8080/me",
        "http://127.6.5.4/me",
        "http://localhost/me",
        "http://LOCALHOST.:9/me",
        "http://[::1]:9/me",
        "http://[::ffff:127.0.0.1]/me",
    ],
)
def test_tls_or_loopback_urls_may_carry_a_token(url: str) -> None:
    kernel_auth.require_tls(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com/me",
        "HTTP://API.EXAMPLE.COM:8080/me?key=k",
        "http://10.0.0.1/me",
        "http://0.0.0.0/me",
        "http://[::2]/me",
        "http://127.0.0.1.nip.io/me",
        "http://localhost.example.com/me",
    ],
)
def test_plain_http_to_another_host_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="RFC 6750") as info:
        kernel_auth.require_tls(url)
    assert "https://" in str(info.value) and "key=k" not in str(info.value)


class Recorder(requests.adapters.BaseAdapter):
    """A requests transport adapter that records what would leave and answers 200 itself."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = JSON
        response.raw = io.BytesIO(b"{}")
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def send_through(adapter: str, client: OAuth2Client, url: str, sent: list[str]) -> None:
    """Call ``url`` through ``adapter`` with a transport that records the headers it gets."""
    if adapter == "httpx":

        def record(request: httpx.Request) -> httpx.Response:
            sent.append(str(dict(request.headers)))
            return httpx.Response(200, json={})

        with httpx.Client(transport=httpx.MockTransport(record)) as http:
            http.get(url, auth=client.auth("ada"))
        return
    recorder = Recorder()
    try:
        if adapter == "requests":
            with requests.Session() as session:
                session.mount("http://", recorder)
                session.mount("https://", recorder)
                session.get(url, auth=client.requests_auth("ada"))
        elif adapter == "google-auth":
            with AuthorizedSession(client.google_credentials("ada")) as session:
                session.mount("http://", recorder)
                session.mount("https://", recorder)
                session.get(url)
        else:
            session = requests.Session()
            session.mount("http://", recorder)
            session.mount("https://", recorder)
            # The scopes the grant carries: its own token serves.
            scopes = stored(client).scopes or ("openid",)
            policy = BearerTokenCredentialPolicy(client.azure_credential("ada"), *scopes)
            transport = RequestsTransport(session=session, session_owner=False)
            with PipelineClient(url, policies=[policy], transport=transport) as pipeline:
                pipeline.send_request(HttpRequest("GET", url)).read()
    finally:
        sent.extend(str(dict(r.headers)) for r in recorder.sent)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_no_adapter_puts_a_token_on_plain_http_to_another_host(
    authorized: Make, provider: DemoProvider, adapter: str
) -> None:
    client = authorized()
    token = stored(client).token
    # Refused by us (httpx, requests, google-auth), or by azure-core's own https rule: the
    # azure credential is asked for a token without the URL, so it cannot tell.
    refused: type[Exception] = (
        ServiceRequestError if adapter == "azure-core" else ConfigurationError
    )
    sent: list[str] = []
    with pytest.raises(refused):
        send_through(adapter, client, "http://api.example.test/me", sent)
    assert sent == []
    # The same call over https carries the token: the rule is about TLS, not the host.
    send_through(adapter, client, "https://api.example.test/me", sent)
    assert len(sent) == 1 and token in sent[0]

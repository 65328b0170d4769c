"""Attacks on the redirect: login-CSRF, mix-up, wrong endpoint, read-only users, logged codes.

Each test performs the attack against the real parts (a Jupyter server with the extension,
the loopback listener, the demo provider) and checks what a user would: nothing stored,
the flow still usable by the person who started it, no code sent to any token endpoint.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from jupyter_server.auth.authorizer import Authorizer
from support.jupyter import Browser, jupyter_client
from support.scan import assert_no_secret
from support.wait import poll

from chat_oauth2_nb import BrowserBindingError, IssuerMismatchError, create_oauth2_client
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.lifecycle.callback import scrub_uri
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.store import Store, open_store

Fetch = Callable[..., Awaitable[Any]]
Make = Callable[..., OAuth2Client]


def redirect_query(response: httpx.Response) -> dict[str, str]:
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


# -- login-CSRF (finding 3) -----------------------------------------------------------------


async def test_login_csrf_at_jupyter_is_refused_and_victim_can_finish(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider
) -> None:
    client = await jupyter_client(provider)
    link = client.get_user_authorization_url("ada")
    # The attacker approves the victim's provider URL as himself and sends the victim's
    # (logged-in) browser to the callback: a top-level GET without the binding cookie.
    attacker = provider.approve(link.provider_url, follow_redirect=False, username="mallory")
    victim = Browser(jp_fetch, provider)
    answer = await victim.callback(redirect_query(attacker), raise_error=False)
    assert answer.code == 400 and b"start again" in answer.body.lower()
    assert open_store().get_token("demo", "ada") is None
    assert provider.token_requests["authorization_code"] == 0
    # Not consumed: the person who started it still finishes in their own browser.
    params = await victim.params(link)
    assert (await victim.callback(params)).code == 200
    data = await client.await_for_authorization("ada", timeout=5)
    assert provider.introspect(data.token)["username"] != "mallory"


async def test_another_jupyter_user_cannot_complete_the_flow(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider
) -> None:
    client = await jupyter_client(provider)
    link = client.get_user_authorization_url("ada")
    browser = Browser(jp_fetch, provider)
    params = await browser.params(link)
    # The same flow, recorded as opened by another Jupyter user (a guest on a shared server).
    store = open_store()
    with store._transaction() as db:
        db.execute("UPDATE flows SET owner = 'guest' WHERE start_id = ?", (link.start_id,))
    answer = await browser.callback(params, raise_error=False)
    assert answer.code == 403
    assert store.get_token("demo", "ada") is None
    assert store.flow_by_start_id(link.start_id).status == "pending"  # type: ignore[union-attr]


def test_loopback_callback_without_the_cookie_is_refused(
    make_client: Make, provider: DemoProvider
) -> None:
    client = make_client()
    link = client.get_user_authorization_url("ada")
    params = redirect_query(provider.approve(link.provider_url, follow_redirect=False))
    answer = httpx.get(client.redirect_uri or "", params=params)
    assert answer.status_code == 400 and "this browser did not start" in answer.text.lower()
    assert client.store.get_token("demo", "ada") is None
    with pytest.raises(BrowserBindingError):
        raise BrowserBindingError("typed")  # the class is public API
    # The real browser (start link, cookie) still finishes the same flow.
    assert provider.approve(link).status_code == 200
    assert client.wait_for_authorization("ada", timeout=5).token


def test_state_and_challenge_stay_out_of_the_link(make_client: Make) -> None:
    client = make_client()
    link = client.get_user_authorization_url("ada")
    state = parse_qs(urlsplit(link.provider_url).query)["state"][0]
    challenge = parse_qs(urlsplit(link.provider_url).query)["code_challenge"][0]
    assert_no_secret(str(link), [state, challenge], "the link the person sees")


# -- wrong endpoint, Host, headers (finding 4) ---------------------------------------------


async def test_jupyter_flow_redirect_at_a_loopback_listener_is_refused(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider
) -> None:
    store = open_store()
    server_client = await jupyter_client(provider, store=store)
    loop_client = create_oauth2_client(
        provider.config(alias="demo"),
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        mode="loopback",
        store=store,
    )
    try:
        loop_client.get_user_authorization_url("bob")  # the loopback listens
        link = server_client.get_user_authorization_url("ada")
        browser = Browser(jp_fetch, provider)
        params = await browser.params(link)
        jar = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
        answer = httpx.get(loop_client.redirect_uri or "", params=params, headers={"Cookie": jar})
        assert answer.status_code == 400 and "not started for" in answer.text
        assert store.get_token("demo", "ada") is None
        assert provider.token_requests["authorization_code"] == 0
        assert (await browser.callback(params)).code == 200  # still usable where it belongs
    finally:
        loop_client.close()


def test_loopback_refuses_a_foreign_host_and_sends_strict_headers(make_client: Make) -> None:
    client = make_client()
    link = client.get_user_authorization_url("ada")
    port = urlsplit(link).port
    rebinding = httpx.get(link, headers={"Host": f"evil.example:{port}"})
    assert rebinding.status_code == 421
    start = httpx.get(link, follow_redirects=False)
    assert start.status_code == 302
    for answer in (rebinding, start):
        assert answer.headers["Content-Security-Policy"] == (
            "default-src 'none'; frame-ancestors 'none'"
        )
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
    cookie = start.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/chat-oauth2/" in cookie


def test_loopback_success_page_does_not_name_the_local_user(
    make_client: Make, provider: DemoProvider
) -> None:
    import getpass

    client = make_client()
    me = getpass.getuser()
    page = provider.approve(client.get_user_authorization_url(None)).text
    assert "Authorized" in page and me not in page


# -- mix-up (finding 5) ----------------------------------------------------------------------


def test_redirect_for_one_alias_never_completes_anothers_flow(
    make_client: Make, provider: DemoProvider
) -> None:
    honest = make_client(alias="honest")
    other = make_client(alias="other")
    honest.setup(), other.setup()
    assert honest.redirect_uri != other.redirect_uri  # per-alias paths
    link = honest.get_user_authorization_url("ada")
    other.get_user_authorization_url("ada")
    # The honest provider's redirect (with honest's state) delivered at other's path,
    # from the browser that holds honest's binding cookie.
    with httpx.Client() as browser:
        start = browser.get(link, follow_redirects=False)
        redirect = provider.approve(start.headers["location"], follow_redirect=False)
        answer = browser.get(other.redirect_uri or "", params=redirect_query(redirect))
    assert answer.status_code == 400
    assert honest.store.get_token("honest", "ada") is None
    assert honest.store.get_token("other", "ada") is None
    assert provider.token_requests["authorization_code"] == 0


def test_foreign_iss_is_refused_before_any_code_is_sent(
    make_client: Make, provider: DemoProvider
) -> None:
    config = provider.config(alias="demo")
    config["issuer"] = provider.issuer
    client = make_client(config=config)
    provider.wrong_iss = "https://attacker.example"
    page = provider.approve(client.get_user_authorization_url("ada"))
    assert page.status_code == 400 and "issuer" in page.text
    with pytest.raises(IssuerMismatchError):
        client.wait_for_authorization("ada", timeout=5)
    assert provider.token_requests["authorization_code"] == 0
    assert client.store.get_token("demo", "ada") is None
    # The honest iss passes.
    provider.wrong_iss, provider.send_iss = None, True
    assert provider.approve(client.get_user_authorization_url("ada")).status_code == 200


@pytest.mark.parametrize("spelling", ["{}/", "{}//", "{} ", "HTTP{}"])
def test_an_iss_that_differs_only_in_spelling_is_refused(
    make_client: Make, provider: DemoProvider, spelling: str
) -> None:
    """RFC 9207 §2.4: iss is compared as a simple string, nothing stripped or folded."""
    config = provider.config(alias="demo")
    config["issuer"] = provider.issuer
    client = make_client(config=config)
    # "HTTP{}" upper-cases the scheme: the same URL to a browser, another issuer to RFC 9207.
    issuer = provider.issuer
    provider.wrong_iss = spelling.format(issuer[4:] if spelling.startswith("HTTP") else issuer)
    page = provider.approve(client.get_user_authorization_url("ada"))
    assert page.status_code == 400 and "issuer" in page.text
    with pytest.raises(IssuerMismatchError):
        client.wait_for_authorization("ada", timeout=30)
    assert provider.token_requests["authorization_code"] == 0


def test_missing_iss_is_refused_when_the_provider_advertises_it(
    make_client: Make, provider: DemoProvider
) -> None:
    config = provider.config(alias="demo")
    config["issuer"] = provider.issuer
    config["authorizationResponseIssParameterSupported"] = True
    client = make_client(config=config)
    page = provider.approve(client.get_user_authorization_url("ada"))  # sends no iss
    assert page.status_code == 400
    with pytest.raises(IssuerMismatchError, match="no iss"):
        client.wait_for_authorization("ada", timeout=5)
    assert provider.token_requests["authorization_code"] == 0


def test_demo_metadata_advertises_iss(provider: DemoProvider) -> None:
    provider.send_iss = True
    meta = httpx.get(provider.metadata_url).json()
    assert meta["authorization_response_iss_parameter_supported"] is True


# -- read-only users (finding 8) -------------------------------------------------------------


class ReadOnly(Authorizer):  # type: ignore[misc]
    """Allows reading only: a viewer of a shared server."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return action == "read"


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"chat_oauth2_nb": True}}}


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {
                "jpserver_extensions": {"chat_oauth2_nb": True},
                "authorizer_class": ReadOnly,
            }
        }
    ],
)
async def test_read_only_user_cannot_store_a_token(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider, jp_server_config: Any
) -> None:
    client = await jupyter_client(provider)
    link = client.get_user_authorization_url("ada")
    start_id = urlsplit(link).path.rsplit("/", 1)[1]
    start = await jp_fetch("chat-oauth2", "start", start_id, raise_error=False)
    assert start.code == 403
    params = redirect_query(provider.approve(link.provider_url, follow_redirect=False))
    answer = await jp_fetch("chat-oauth2", "callback", "demo", params=params, raise_error=False)
    assert answer.code == 403
    assert open_store().get_token("demo", "ada") is None
    assert provider.token_requests["authorization_code"] == 0


# -- the logged URI (finding 7) --------------------------------------------------------------


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # httpx/httpcore here are the test's own browser, not the server.
        if not record.name.startswith(("httpx", "httpcore")):
            self.lines.append(self.format(record))


async def test_code_never_reaches_the_server_log(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider
) -> None:
    capture = Capture()
    # The access log goes to the extension's own (non-propagating) traitlets logger.
    names = ("ChatOAuth2App", "ServerApp", "tornado")
    loggers = [jp_serverapp.log, *map(logging.getLogger, names), logging.getLogger()]
    olds = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(capture)
        lg.setLevel(logging.DEBUG)
    try:
        client = await jupyter_client(provider)
        browser = Browser(jp_fetch, provider)
        failing = await browser.params(client.get_user_authorization_url("ada"))
        provider.inject_fault("token", status=500, body="{}")
        assert (await browser.callback(failing, raise_error=False)).code == 502
        unbound = redirect_query(
            provider.approve(
                client.get_user_authorization_url("ada").provider_url, follow_redirect=False
            )
        )
        assert (await Browser(jp_fetch, provider).callback(unbound, raise_error=False)).code == 400
        ok = await browser.params(client.get_user_authorization_url("ada"))
        assert (await browser.callback(ok)).code == 200
    finally:
        for lg, old in zip(loggers, olds, strict=True):
            lg.removeHandler(capture)
            lg.setLevel(old)
    text = "\n".join(capture.lines)
    assert "chat-oauth2/callback" in text  # the access log did log these requests
    codes = [failing["code"], unbound["code"], ok["code"]]
    assert_no_secret(text, codes, "the Jupyter server's log")


def test_scrub_uri_keeps_names() -> None:
    assert scrub_uri("/cb?code=4%2F0A&state=x&iss=y&keep=1") == (
        "/cb?code=[scrubbed]&state=[scrubbed]&iss=[scrubbed]&keep=1"
    )


# -- loopback hygiene (finding 11) -----------------------------------------------------------


def _loopback_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("chat-oauth2-loopback"))


def test_five_setups_leave_one_listener(provider: DemoProvider, store: Store) -> None:
    clients = []
    try:
        for _ in range(5):  # re-running a set-up cell
            client = create_oauth2_client(
                provider.config(alias="demo"),
                client_id=provider.client_id,
                client_secret=provider.client_secret,
                mode="loopback",
                store=store,
            )
            client.setup()
            client.get_user_authorization_url("ada")
            clients.append(client)
        assert len({c.redirect_uri for c in clients}) == 1  # stable redirect URI
        assert _loopback_threads() == 1
    finally:
        for client in clients:
            client.close()
    assert _loopback_threads() == 0


def test_listener_keeps_its_port_between_flows_and_answers_while_idle(
    make_client: Make, provider: DemoProvider
) -> None:
    client = make_client(flow_ttl=0.5)
    link = client.get_user_authorization_url("ada")
    port = urlsplit(link).port
    time.sleep(2.5)  # the flow expired: the listener still holds the port (test_loopback_attacks)
    assert _loopback_threads() == 1
    idle = httpx.get(f"http://127.0.0.1:{port}/chat-oauth2/callback/demo?state=x", timeout=5)
    assert idle.status_code == 400  # answered at once, not left in the backlog
    client.flow_ttl = 60
    again = client.get_user_authorization_url("ada")
    assert urlsplit(again).port == port
    assert provider.approve(again).status_code == 200
    client.close()
    assert _loopback_threads() == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port or 0), timeout=0.5).close()


def test_idle_connections_do_not_exhaust_threads(
    make_client: Make, provider: DemoProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chat_oauth2_nb.kernel import loopback

    monkeypatch.setattr(loopback, "IDLE_TIMEOUT", 1.0)
    client = make_client()
    link = client.get_user_authorization_url("ada")
    port = urlsplit(link).port or 0
    before = threading.active_count()
    idle = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /chat-oauth2/callback/demo?state=")  # never finished
            idle.append(sock)
        time.sleep(0.5)
        assert threading.active_count() - before <= loopback.MAX_HANDLERS + 2
        # The idle ones time out and free their threads.
        assert poll(lambda: threading.active_count() - before <= 1, 8, 0.1)

        assert provider.approve(link).status_code == 200
    finally:
        for sock in idle:
            sock.close()

"""A real JupyterHub: one redirect URI for every user, routed by the chat-oauth2 service.

configurable-http-proxy, DummyAuthenticator, SimpleLocalProcessSpawner, users alice and bob,
on 127.0.0.1 under a non-root base_url; ``configure_hub(c)`` is the only chat-oauth2 line in
the hub's config. Each person is played by an httpx browser through the proxy; each user's
notebook is a real kernel in that user's server. Skipped without configurable-http-proxy
unless CHAT_OAUTH2_NB_REQUIRE_HUB=1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from support.hub import HubBrowser, Kernel, RealHub, require_hub
from support.scan import assert_no_secret

from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from chat_oauth2_nb.errors import StoreError
from chat_oauth2_nb.store import Store

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealHub]:
    require_hub()
    running = RealHub(tmp_path_factory.mktemp("hub"), base_url="/jh/")
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def hub_provider(hub: RealHub) -> Iterator[DemoProvider]:
    p = start_demo_provider(port=0, token_lifetime=3600)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def registered(hub: RealHub, hub_provider: DemoProvider) -> tuple[str, str | None]:
    # ONE redirect URI at the provider, for every user of the hub.
    return hub_provider.register_client(redirect_uris=[f"{hub.callback_base}/demo"])


@pytest.fixture(scope="module")
def kernels(
    hub: RealHub, hub_provider: DemoProvider, registered: tuple[str, str | None]
) -> dict[str, Kernel]:
    client_id, secret = registered
    made = {}
    for user in ("alice", "bob"):
        kernel = Kernel(hub, hub.spawn(user))
        kernel.run(_setup_code(hub_provider, client_id, secret))
        made[user] = kernel
    return made


def _setup_code(provider: DemoProvider, client_id: str, secret: str | None) -> str:
    return (
        "from chat_oauth2_nb import create_oauth2_client\n"
        f"client = create_oauth2_client({provider.config(alias='demo')!r}, "
        f"client_id={client_id!r}, client_secret={secret!r})\n"
        "print(client.setup())\n"
    )


def _link(kernel: Kernel) -> str:
    return kernel.run("print(client.get_user_authorization_url())").strip()


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


_WAIT = (
    "import hashlib\n"
    "data = client.wait_for_authorization(timeout=60)\n"
    "print(hashlib.sha256(data.token.encode()).hexdigest()[:16])\n"
)


def test_alice_and_bob_authorize_with_the_same_redirect_uri(
    hub: RealHub, hub_provider: DemoProvider, kernels: dict[str, Kernel]
) -> None:
    uris = {user: k.run("print(client.redirect_uri)").strip() for user, k in kernels.items()}
    assert uris == {"alice": f"{hub.callback_base}/demo", "bob": f"{hub.callback_base}/demo"}
    codes: list[str] = []
    for user, kernel in kernels.items():
        link = _link(kernel)
        # The start link is on the user's own server, through the proxy.
        assert link.startswith(f"{hub.url}user/{user}/chat-oauth2/start/"), link
        browser = HubBrowser(hub, user)
        browser.login()
        redirect = browser.approve(hub_provider, browser.open_start_link(link, hub_provider))
        assert redirect.startswith(f"{hub.callback_base}/demo?")
        codes.append(parse_qs(urlsplit(redirect).query)["code"][0])
        page = browser.follow(redirect)
        assert page.status_code == 200, page.text[:800]
        assert "Authorized" in page.text
        # The router's hop, and the user's server at the end.
        assert page.url.path == f"{hub.base_url}user/{user}/chat-oauth2/callback/demo"
        assert page.headers["cache-control"] == "no-store"
        # The kernel's wait returns with the token that is in this user's store.
        fingerprint = kernel.run(_WAIT).strip()
        record = hub.store(user).get_token("demo", user)
        assert record is not None and _fingerprint(record.data.token) == fingerprint
        assert hub_provider.introspect(record.data.token)["username"] == user
        browser.close()
    alice = hub.store("alice").get_token("demo", "alice")
    assert alice is not None and hub.store("bob").get_token("demo", "alice") is None
    # The hub's log holds the proxy's, the router's and both servers' logs.
    assert_no_secret(hub.log(full=True), [alice.data.token, *codes], "the hub's log")


def _files_under(folder: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_the_store_key_comes_from_the_hub_and_never_touches_the_disk(
    hub: RealHub, hub_provider: DemoProvider, kernels: dict[str, Kernel]
) -> None:
    kernel = kernels["alice"]
    # The kernel opened its store with the key the router gave it, and the panel says so.
    assert kernel.run("print(client.store.encrypted, client.store.key_source)").split() == [
        "True",
        "hub",
    ]
    shown = kernel.run(
        "import time\n"
        "panel = client.panel()\n"
        "for _ in range(50):\n"
        "    if 'Token store' in panel._provider.value: break\n"
        "    time.sleep(0.1)\n"
        "print(panel._provider.value)\n"
    )
    assert "Token store: encrypted (hub key)" in shown
    browser = HubBrowser(hub, "alice")
    browser.login()
    redirect = browser.approve(hub_provider, browser.open_start_link(_link(kernel), hub_provider))
    assert browser.follow(redirect).status_code == 200
    kernel.run(_WAIT)
    browser.close()
    record = hub.store("alice").get_token("demo", "alice")
    assert record is not None
    secrets = [s for s in (record.data.token, record.data.refresh_token) if s]
    # The raw database, WAL and shared memory hold no token: the server sealed it too.
    folder = hub.store_path("alice").parent
    assert_no_secret(_files_under(folder).decode("latin-1"), secrets, "alice's store files")
    # Without the hub's key the store cannot be read at all.
    with pytest.raises(StoreError, match="no store key"):
        Store(hub.store_path("alice")).get_token("demo", "alice")
    # The key, in any encoding, is nowhere in alice's home (no cache file, no config).
    key = hub.store_key("alice")
    raw_home = _files_under(hub.home("alice"))
    assert_no_secret(raw_home.decode("latin-1"), [key], "alice's home")
    import base64

    assert base64.urlsafe_b64decode(key) not in raw_home
    assert hub.secret_file.read_text().strip() not in raw_home.decode("latin-1")


_FETCH = (
    "import httpx, json, os\n"
    "url = os.environ['CHAT_OAUTH2_NB_HUB_KEY_URL']\n"
    "auth = {{'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']}}\n"
    "answers = [httpx.get(u, headers=auth) for u in {urls}]\n"
    "print(json.dumps([[a.status_code, a.text] for a in answers]))\n"
)


def test_bob_cannot_get_alices_store_key(hub: RealHub, kernels: dict[str, Kernel]) -> None:
    alice_key, bob_key = hub.store_key("alice"), hub.store_key("bob")
    assert alice_key != bob_key
    # Bob's server asks with its own token, naming alice every way a request could.
    public = f"{hub.url}services/chat-oauth2/store-key"
    urls = [
        "url",
        "url + '?user=alice'",
        "url + '?name=alice&user=alice'",
        f"{public + '?user=alice'!r}",
        "url + '/alice'",
        "url.replace('store-key', 'store-key/../store-key') + '?user=alice'",
    ]
    answers = json.loads(kernels["bob"].run(_FETCH.format(urls="[" + ", ".join(urls) + "]")))
    for status, text in answers:
        assert alice_key not in text
        if status == 200:
            assert json.loads(text) == {"user": "bob", "key": bob_key}
    assert answers[0][0] == 200 and answers[3][0] == 200
    assert answers[4][0] == 404

    # No token, a made-up token, the test's service token (no user), a hub-logged-in
    # browser's cookies (alice): all refused.
    with httpx.Client(trust_env=False, timeout=30) as http:
        assert http.get(public).status_code == 403
        assert http.get(public, headers={"Authorization": "token nope"}).status_code == 403
        service = http.get(public, headers={"Authorization": f"token {hub.admin_token}"})
        assert service.status_code == 403
    alice = HubBrowser(hub, "alice")
    alice.login()
    alice.follow(f"{hub.callback_base}/demo?code=c&state=warm-up")  # logs in at the router
    assert any(c.path and "services" in c.path for c in alice.http.cookies.jar)
    cookie_only = alice.http.get(public, follow_redirects=False)
    assert cookie_only.status_code == 403, cookie_only.text[:300]
    assert alice_key not in cookie_only.text
    alice.close()


def test_router_answers_carry_no_store_and_no_referrer(hub: RealHub) -> None:
    browser = HubBrowser(hub, "alice")
    browser.login()
    hops = []
    url = f"{hub.callback_base}/demo?code=c&state=s"
    with httpx.Client(cookies=browser.http.cookies, trust_env=False, timeout=30) as http:
        for _ in range(8):
            answer = http.get(url)
            if url.startswith(f"{hub.url}services/chat-oauth2/"):
                hops.append(answer)
            if not answer.is_redirect:
                break
            url = str(answer.next_request.url) if answer.next_request else ""
    assert hops, "no answer from the router"
    for answer in hops:
        assert answer.headers["cache-control"] == "no-store", answer.url
        assert answer.headers["referrer-policy"] == "no-referrer", answer.url
    browser.close()


def test_bobs_browser_with_alices_callback_is_refused_and_alice_completes(
    hub: RealHub, hub_provider: DemoProvider, kernels: dict[str, Kernel]
) -> None:
    alice, bob = HubBrowser(hub, "alice"), HubBrowser(hub, "bob")
    alice.login()
    bob.login()
    link = _link(kernels["alice"])
    redirect = alice.approve(hub_provider, alice.open_start_link(link, hub_provider))
    state = parse_qs(urlsplit(redirect).query)["state"][0]
    before = hub.store("alice").get_token("demo", "alice")

    # Bob's browser, logged in as bob, opens alice's redirect: the router sends it to bob's
    # own server only, which knows no such flow.
    stolen = bob.follow(redirect)
    assert stolen.status_code == 400, stolen.text[:500]
    assert stolen.url.path.startswith(f"{hub.base_url}user/bob/")
    assert hub.store("alice").get_token("demo", "alice") == before
    flow = hub.store("alice").get_flow(state)
    assert flow is not None and flow.status == "pending"

    # Alice still finishes, and her kernel's wait returns.
    assert alice.follow(redirect).status_code == 200
    fingerprint = kernels["alice"].run(_WAIT).strip()
    record = hub.store("alice").get_token("demo", "alice")
    assert record is not None and _fingerprint(record.data.token) == fingerprint
    alice.close()
    bob.close()


def test_guest_on_a_shared_server_gets_403_and_the_owner_completes(
    hub: RealHub, hub_provider: DemoProvider, kernels: dict[str, Kernel]
) -> None:
    # alice shares her server with bob (JupyterHub sharing): bob may open it.
    shared = hub.api("POST", "shares/alice/", json={"user": "bob"})
    assert shared.status_code in (200, 201), shared.text
    alice, bob = HubBrowser(hub, "alice"), HubBrowser(hub, "bob")
    alice.login()
    bob.login()
    redirect = alice.approve(
        hub_provider, alice.open_start_link(_link(kernels["alice"]), hub_provider)
    )
    state = parse_qs(urlsplit(redirect).query)["state"][0]
    query = urlsplit(redirect).query
    # The guest goes straight to alice's server's callback, past the router.
    direct = f"{hub.url}user/alice/chat-oauth2/callback/demo?{query}"
    refused = bob.get_consenting(direct)
    assert refused.url.path == f"{hub.base_url}user/alice/chat-oauth2/callback/demo"
    assert refused.status_code == 403, refused.text[:500]
    assert "Another Jupyter user" in refused.text
    flow = hub.store("alice").get_flow(state)
    assert flow is not None and flow.status == "pending"
    assert alice.follow(redirect).status_code == 200
    kernels["alice"].run(_WAIT)
    alice.close()
    bob.close()


def test_a_guest_on_a_shared_server_can_neither_start_nor_act_for_the_owner(
    hub: RealHub, hub_provider: DemoProvider, kernels: dict[str, Kernel]
) -> None:
    shared = hub.api("POST", "shares/alice/", json={"user": "bob"})
    assert shared.status_code in (200, 201), shared.text
    alice, bob = HubBrowser(hub, "alice"), HubBrowser(hub, "bob")
    alice.login()
    bob.login()
    try:
        assert bob.get_consenting(f"{hub.url}user/alice/lab").status_code == 200
        api = f"{hub.url}user/alice/chat-oauth2/api"
        xsrf = next(
            c.value for c in bob.http.cookies.jar if c.name == "_xsrf" and "alice" in c.path
        )
        assert bob.http.get(f"{api}/state").json()["user"] == "alice"  # reading is allowed
        for action in ("authorize", "refresh", "revoke"):
            refused = bob.http.post(f"{api}/{action}/demo", headers={"X-XSRFToken": xsrf or ""})
            assert refused.status_code == 403, (action, refused.text[:300])
            assert refused.json()["error"]["type"] == "ActionUnavailableError"
        # Alice's notebook's link, opened by bob before her: refused and not spent.
        link = _link(kernels["alice"])
        opened = bob.http.get(link, follow_redirects=False)
        assert opened.status_code == 403, opened.text[:300]
        redirect = alice.approve(hub_provider, alice.open_start_link(link, hub_provider))
        assert alice.follow(redirect).status_code == 200
        kernels["alice"].run(_WAIT)
    finally:
        alice.close()
        bob.close()


def test_a_route_to_another_server_never_leaves_the_users_prefix(
    hub: RealHub, kernels: dict[str, Kernel]
) -> None:
    from chat_oauth2_nb.lifecycle.callback import route_cookie_name

    bob = HubBrowser(hub, "bob")
    bob.login()
    bob.follow(f"{hub.callback_base}/demo?code=c&state=warm-up")  # logs bob in at the router
    state = "attacker-state"
    # Attempted open redirect: the route cookie names another host, another user, a path.
    for route in ("//evil.example/", "../alice", "..", "evil.example/x", "%2F%2Fevil", "a b"):
        bob.http.cookies.set(route_cookie_name(state), route, path=f"{hub.base_url}services/")
        answer = bob.http.get(
            f"{hub.callback_base}/demo?code=c&state={state}", follow_redirects=False
        )
        assert answer.status_code == 302, answer.text[:300]
        location = answer.headers["location"]
        assert location.startswith(f"{hub.base_url}user/bob/chat-oauth2/callback/demo?"), location
    bob.close()


def test_named_server_is_reached_through_the_router(
    hub: RealHub, hub_provider: DemoProvider, registered: tuple[str, str | None]
) -> None:
    client_id, secret = registered
    kernel = Kernel(hub, hub.spawn("alice", "lab2"))
    assert kernel.run(_setup_code(hub_provider, client_id, secret)).strip() == (
        f"{hub.callback_base}/demo"
    )
    link = _link(kernel)
    assert link.startswith(f"{hub.url}user/alice/lab2/chat-oauth2/start/"), link
    browser = HubBrowser(hub, "alice")
    browser.login()
    redirect = browser.approve(hub_provider, browser.open_start_link(link, hub_provider))
    page = browser.follow(redirect)
    assert page.status_code == 200, page.text[:500]
    assert page.url.path == f"{hub.base_url}user/alice/lab2/chat-oauth2/callback/demo"
    assert len(kernel.run(_WAIT).strip()) == 16
    browser.close()


def test_service_down_shows_a_clear_page_not_a_hang(tmp_path: Path) -> None:
    require_hub()
    down = RealHub(tmp_path / "down", service="down")
    down.start()
    try:
        browser = HubBrowser(down, "alice")
        browser.login()
        page = browser.http.get(f"{down.callback_base}/demo?code=c&state=s", timeout=20)
        assert page.status_code in (502, 503), page.status_code
        assert "chat-oauth2" in page.text or "Service Unavailable" in page.text, page.text[:500]
        browser.close()
    finally:
        down.stop()

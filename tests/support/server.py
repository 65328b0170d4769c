"""A real Jupyter server in a subprocess, on 127.0.0.1, with every folder it uses in a temp dir.

The browser tests run ``jupyter lab`` (kernels started by the server write the token store
into the isolated data folder); the callback fuzzer and its benchmarks run ``jupyter server``
under a base URL. Both get the same folders, environment and start/stop handling from here.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from chat_oauth2_nb.store import Store

__all__ = ["JupyterServer", "free_port"]

# Variables of the outer environment that would change where redirects go or who is logged in.
_DROPPED_ENV = (
    "CHAT_OAUTH2_NB_CALLBACK_URL",
    "JUPYTERHUB_USER",
    "JUPYTER_TOKEN",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
)
# Every folder Jupyter, IPython and the kernels read or write, under the server's temp dir.
_FOLDERS = {
    "HOME": "home",
    "JUPYTER_DATA_DIR": "data",
    "JUPYTER_RUNTIME_DIR": "runtime",
    "JUPYTER_CONFIG_DIR": "config",
    "IPYTHONDIR": "ipython",
    "XDG_CACHE_HOME": "cache",
    "XDG_CONFIG_HOME": "xdg-config",
    "XDG_DATA_HOME": "xdg-data",
}
# Jupyter logs every 5xx answer at ERROR: the exchange's 502 for a junk code is expected.
_EXPECTED_502 = re.compile(r"^\[E [^\]]+\] 502 GET \S*chat-oauth2/callback\S*\?")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class JupyterServer:
    """``jupyter server`` (or ``lab``) in a subprocess, its folders under ``root``, on 127.0.0.1."""

    def __init__(
        self,
        root: Path,
        *,
        app: str = "server",
        base_url: str = "/",
        args: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.app = app
        self.args = list(args)
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.base_path = base_url
        self.base_url = f"http://127.0.0.1:{self.port}{base_url}"  # ends with '/'
        self.callback_url = self.base_url + "chat-oauth2/callback"
        self.root_dir = root / "root"  # what the server serves: notebooks go here
        self.log_path = root / "jupyter.log"
        self.env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        for name, folder in _FOLDERS.items():
            (root / folder).mkdir(parents=True, exist_ok=True)
            self.env[name] = str(root / folder)
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.env.update(env or {})
        self.data_dir = Path(self.env["JUPYTER_DATA_DIR"])
        self.config_dir = Path(self.env["JUPYTER_CONFIG_DIR"])
        self.store_path = self.data_dir / "chat_oauth2_nb" / "store.sqlite3"
        # The Jupyter login, and (once flows are started) a browser's binding cookies.
        self.headers: dict[str, str] = {"Authorization": f"token {self.token}"}
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> JupyterServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def url(self, path: str = "") -> str:
        """The full URL of ``path`` below the server's base URL."""
        return self.base_url + path

    def login_url(self, path: str, *, reset: bool = False) -> str:
        """A page URL a browser opens logged in (the token in the query, as Jupyter prints it)."""
        # JupyterLab's ?reset opens the document in an empty workspace, so that no notebook of
        # an earlier test is restored next to it.
        return f"{self.base_url}{path}?{'reset&' if reset else ''}token={self.token}"

    def start(self, timeout: float = 120.0) -> None:
        """Start the server and return once its REST API answers; raise with its log if not."""
        command = [
            sys.executable,
            "-m",
            "jupyter",
            self.app,
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.base_url={self.base_path}",
            f"--ServerApp.root_dir={self.root_dir}",
            *self.args,
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # containers and CI often run as root
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.root_dir
        )
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=5) as http:
            while True:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    self.stop()
                    raise RuntimeError(f"jupyter {self.app} exited with {code}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(self.url("api")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"jupyter {self.app} did not answer:\n{self.log_tail()}")
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server (it shuts its kernels down on SIGTERM); kill it if it hangs."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        """Everything the server wrote so far."""
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the server's log, for a failure message."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def errors_logged(self) -> list[str]:
        """Lines the server started itself with a traceback or at ERROR/CRITICAL level.

        Only line starts count: fuzzed queries appear in the log too (even the word
        Traceback), but never at a line start. A 502 of the callback (a junk code that the
        provider refused) is expected.
        """
        return [
            line
            for line in self.log_text().splitlines()
            if line.startswith(("Traceback", "[E ", "[C ")) and not _EXPECTED_502.match(line)
        ]

    def store(self) -> Store:
        """The token store the server and its kernels share (in the isolated data folder)."""
        return Store(self.store_path)

    def store_files_size(self) -> int:
        """Bytes on disk of the store: the database file plus its WAL."""
        wal = self.store_path.with_name(self.store_path.name + "-wal")
        return sum(p.stat().st_size for p in (self.store_path, wal) if p.exists())

    def kernel_idle(self, notebook: str) -> bool:
        """Whether the notebook's session has a kernel that is idle (asked over the REST API)."""
        with httpx.Client(trust_env=False, timeout=5) as http:
            sessions = http.get(self.url("api/sessions"), headers=self.headers).json()
        return any(
            s.get("path") == notebook and (s.get("kernel") or {}).get("execution_state") == "idle"
            for s in sessions
        )

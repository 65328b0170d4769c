"""Another local user who squats where the hub's chat-oauth2 service should be listening.

``Squatter`` runs a tiny HTTP server as uid 65534 (``nobody``; only root can start it), on a
127.0.0.1 port or a Unix socket. It writes every request it receives, raw, to its log and
answers every one with what a store-key endpoint sends, holding an all-zero key: whoever
trusted it would seal their store with a key the squatter knows.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

__all__ = ["NOBODY", "ZERO_KEY", "Squatter", "require_root"]

NOBODY = 65534
ZERO_KEY = base64.urlsafe_b64encode(bytes(32)).decode()
# The system's Python: the test's own interpreter may sit under /root, which nobody can read.
_PYTHON = "/usr/bin/python3"

_SCRIPT = r"""
import json, socket, sys, threading
where, name = sys.argv[1], sys.argv[2]
if where == "tcp":
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(name)))
else:
    import os
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(name)
    os.chmod(name, 0o666)
server.listen(64)
body = json.dumps({"user": sys.argv[3], "key": sys.argv[4]}).encode()
lock = threading.Lock()
def note(text):
    with lock:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
def serve(conn):
    conn.settimeout(5)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
        if not data:
            note("CONNECTED, NOTHING SENT")  # a client that checked who listens, and left
            return
        note("REQUEST " + (head + b"\r\n\r\n" + rest).decode("latin-1"))
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
    except OSError:
        pass
    finally:
        conn.close()
note("READY")
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


def require_root() -> None:
    """Skip unless root: only root can run a process as another OS user."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root to run a process as another OS user")
    if not Path(_PYTHON).exists():
        pytest.skip(f"needs {_PYTHON} for the other user's process")


class Squatter:
    """uid 65534 listening at 127.0.0.1:``port`` or the Unix socket ``path``; logs requests."""

    def __init__(self, log: Path, *, port: int | None = None, path: Path | None = None) -> None:
        assert (port is None) != (path is None)
        self.log = log
        self.where = ("tcp", str(port)) if port is not None else ("unix", str(path))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, user: str = "alice", key: str = ZERO_KEY) -> Squatter:
        """Start listening as the other user; return once it listens."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [_PYTHON, "-c", _SCRIPT, *self.where, user, key],
                stdout=out,
                stderr=subprocess.STDOUT,
                user=NOBODY,
                group=NOBODY,
                extra_groups=[],
                cwd="/",
                env={"PATH": "/usr/bin:/bin"},
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while "READY" not in self.text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the squatter did not start:\n{self.text()}")
            time.sleep(0.05)
        return self

    def text(self) -> str:
        """Everything the squatter received so far (and its start-up lines)."""
        return self.log.read_text("latin-1") if self.log.exists() else ""

    def requests(self) -> list[str]:
        """The raw requests it received."""
        return [part for part in self.text().split("REQUEST ")[1:]]

    def stop(self) -> None:
        """Stop it by its PID."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)

    def __enter__(self) -> Squatter:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

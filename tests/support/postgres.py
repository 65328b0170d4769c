"""A real PostgreSQL server for a test: initdb into a fresh folder, 127.0.0.1 only, pg_ctl.

PostgreSQL refuses to run as root: as root (CI), the cluster belongs to the ``postgres``
system user (Debian's package makes it) and every server command runs through ``runuser``.
Password authentication (scram) even on 127.0.0.1, so the URL carries a password like a
real deployment's. Skipped without the binaries unless CHAT_OAUTH2_NB_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "postgres_server", "require_postgres"]


def _bindir() -> Path | None:
    # Debian keeps the server binaries out of PATH, one folder per major version.
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(found) / "initdb").exists() and (Path(found) / "pg_ctl").exists():
            return Path(found)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent
    return None


def require_postgres() -> Path:
    """The folder of initdb and pg_ctl; skip without them unless CHAT_OAUTH2_NB_REQUIRE_POSTGRES=1."""
    found = _bindir()
    driver = True
    try:
        import psycopg  # noqa: F401
    except ImportError:
        driver = False
    missing = [what for what, ok in (("postgresql", found), ("psycopg", driver)) if not ok]
    if missing and os.environ.get("CHAT_OAUTH2_NB_REQUIRE_POSTGRES") != "1":
        pytest.skip(f"needs {', '.join(missing)} (apt-get install postgresql; pip install psycopg)")
    assert not missing, f"CHAT_OAUTH2_NB_REQUIRE_POSTGRES=1 but {missing} is not installed"
    assert found is not None
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running cluster: ``url`` names its database ``chat_oauth2`` as user ``chat_oauth2``."""

    url: str
    password: str
    folder: Path
    bindir: Path
    port: int

    def new_database(self) -> str:
        """A fresh empty database on this server: its URL (each test its own store)."""
        import psycopg

        name = f"chat_oauth2_{secrets.token_hex(6)}"
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + "/" + name


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL on a free 127.0.0.1 port; stop it and delete it after."""
    bindir = require_postgres()
    as_root = os.geteuid() == 0
    run_as: list[str] = ["runuser", "-u", "postgres", "--"] if as_root else []
    # Not under pytest's tmp_path: that is 0700 root's, where the postgres user cannot enter.
    folder = Path(tempfile.mkdtemp(prefix="chat-oauth2-pg-"))
    if as_root:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
    data = folder / "data"
    password = secrets.token_urlsafe(18)
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n")
    if as_root:
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    pwfile.chmod(0o600)
    port = _free_port()

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*run_as, *args], capture_output=True, text=True, check=check, timeout=120
        )

    started = False
    try:
        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "chat_oauth2",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
            "-E",
            "UTF8",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off "
            "-c max_connections=40 -c shared_buffers=16MB"
        )
        started = True
        result = run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(folder / "log"),
            "-w",
            "-t",
            "60",
            "start",
            check=False,
        )
        if result.returncode != 0:
            log = (folder / "log").read_text() if (folder / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {result.stdout}{result.stderr}\n{log}")
        import psycopg

        admin = f"postgresql://chat_oauth2:{password}@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute("CREATE DATABASE chat_oauth2")
        url = f"postgresql://chat_oauth2:{password}@127.0.0.1:{port}/chat_oauth2"
        yield PostgresServer(url, password, folder, bindir, port)
    finally:
        if started:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(folder, ignore_errors=True)

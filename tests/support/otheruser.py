"""Another local user for attack tests: a throwaway account that runs the attacker's code.

The tests run as root; ``other_user`` creates a system account with no home and no shell,
runs stdlib-only attacker scripts as that uid (``setuid`` in the child) with the system
Python (the test's own interpreter may sit in a folder other users cannot enter), and ends
those processes (by their id) and deletes the account afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import pytest

__all__ = ["OtherUser", "other_user"]

_PYTHON = "/usr/bin/python3"


@dataclasses.dataclass
class OtherUser:
    """A local account that is not the test's: runs code as that uid."""

    name: str
    uid: int
    gid: int
    started: list[subprocess.Popen[str]] = dataclasses.field(default_factory=list)

    def start(self, code: str, *args: object) -> subprocess.Popen[str]:
        """Run ``code`` (Python, stdlib only) as this user; its stdout is a pipe of lines."""
        process = subprocess.Popen(
            [_PYTHON, "-u", "-c", code, *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            # Set in the child by subprocess itself (safe with the test's threads running).
            user=self.uid,
            group=self.gid,
            extra_groups=[],
        )
        self.started.append(process)
        return process

    @staticmethod
    def wait_for_line(process: subprocess.Popen[str], wanted: str) -> list[str]:
        """Read the process's lines until one starts with ``wanted`` (or it ends); return them."""
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith(wanted):
                break
        return lines

    @staticmethod
    def finish(process: subprocess.Popen[str], timeout: float = 60) -> list[str]:
        """Wait for the process to end; return every line it printed."""
        out, _ = process.communicate(timeout=timeout)
        return out.splitlines()


@pytest.fixture
def other_user() -> Iterator[OtherUser]:
    """A throwaway local user (needs root, useradd and runuser)."""
    if os.geteuid() != 0 or not all(map(shutil.which, ("useradd", "userdel"))):
        pytest.skip("needs root with useradd to create another local user")
    if not os.access(_PYTHON, os.X_OK):
        pytest.skip(f"needs {_PYTHON} for the other user's code")
    name = f"c2nb{secrets.token_hex(4)}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    entry = pwd.getpwnam(name)
    user = OtherUser(name, entry.pw_uid, entry.pw_gid)
    try:
        yield user
    finally:
        for process in user.started:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=30)
        subprocess.run(["userdel", name], capture_output=True, check=False)

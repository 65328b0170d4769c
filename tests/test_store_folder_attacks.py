"""The store's folder under attack by another local user who may rename entries on its way.

Issue 17, finding 8. SQLite opens the store by path (and its -wal and -shm files later), so
a user who may rename entries in any folder on that path can swap the store folder for a
link to a folder of theirs between the kit's checks and SQLite's open. Here that user is
real: each test creates a victim, an attacker and a group they share (as root), runs the
victim's store and the attacker's swap in processes that have dropped to those users, and
pauses the victim right at SQLite's open so that the swap lands exactly in the window.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import grp
import json
import os
import pwd
import secrets
import select
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.scan import find_secrets, nasty_secret

from chat_oauth2_nb.errors import StoreError
from chat_oauth2_nb.oauth import AuthData
from chat_oauth2_nb.store import STORE_KEY_ENV, Store

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("useradd") is None,
    reason="creates OS users and groups: needs root and useradd",
)


@dataclasses.dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


@dataclasses.dataclass(frozen=True)
class People:
    victim: Account
    attacker: Account
    #: The group both belong to (a lab's project group).
    group: int
    #: A fresh folder everybody may enter (the users cannot enter pytest's tmp_path).
    base: Path


def _admin(*command: str) -> None:
    # Other test runs on this machine add users too: /etc/passwd may be locked a moment.
    for _ in range(50):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return
        if "lock" not in done.stderr:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
        time.sleep(0.2)
    raise RuntimeError(f"{' '.join(command)}: /etc/passwd stayed locked")


def _account(name: str) -> Account:
    entry = pwd.getpwnam(name)
    return Account(name, entry.pw_uid, entry.pw_gid)


@pytest.fixture
def people() -> Iterator[People]:
    tag = secrets.token_hex(3)
    group, victim, attacker = f"c2g{tag}", f"c2v{tag}", f"c2a{tag}"
    made: list[list[str]] = []
    base = Path(tempfile.mkdtemp(prefix="c2-folders-", dir="/tmp"))
    try:
        _admin("groupadd", group)
        made.append(["groupdel", group])
        for name in (victim, attacker):
            # -U: a private group of their own, as Debian and Fedora give every user.
            _admin("useradd", "-M", "-U", "-G", group, "-s", "/usr/sbin/nologin", name)
            made.append(["userdel", name])
        base.chmod(0o755)
        yield People(_account(victim), _account(attacker), grp.getgrnam(group).gr_gid, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        for command in reversed(made):
            with contextlib.suppress(RuntimeError):
                _admin(*command)


# -- processes as another user ------------------------------------------------------------


class Child:
    """A forked process running ``work`` as ``account``; it talks to the test in lines.

    Forked, not started: the users cannot read the interpreter's home (/root is 0700), so
    the child runs only code already imported here (grp and pwd included).
    """

    def __init__(self, account: Account, groups: list[int], work: Callable[[Child], Any]):
        self._up_r, self._up_w = os.pipe()
        self._down_r, self._down_w = os.pipe()
        with warnings.catch_warnings():
            # Python >= 3.12 warns about fork() in a process with threads; the child only
            # runs code already imported and never returns into pytest.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.pid = os.fork()
        if self.pid == 0:
            self._run(account, groups, work)
        os.close(self._up_w)
        os.close(self._down_r)
        self._buffer = b""

    def _run(self, account: Account, groups: list[int], work: Callable[[Child], Any]) -> None:
        try:
            os.close(self._up_r)
            os.close(self._down_w)
            os.setgroups(groups)
            os.setgid(account.gid)
            os.setuid(account.uid)
            os.environ.pop(STORE_KEY_ENV, None)
            try:
                answer = {"ok": work(self)}
            except Exception as exc:
                answer = {"error": type(exc).__name__, "message": str(exc)}
            self.say("result " + json.dumps(answer))
        finally:
            os._exit(0)

    # child side
    def say(self, line: str) -> None:
        os.write(self._up_w, (line + "\n").encode())

    def wait(self) -> None:
        with os.fdopen(os.dup(self._down_r), "rb") as down:
            down.readline()

    # test side
    def hear(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0, "the child process said nothing in time"
            ready, _, _ = select.select([self._up_r], [], [], left)
            if ready:
                chunk = os.read(self._up_r, 65536)
                assert chunk, "the child process ended without an answer"
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def go(self) -> None:
        os.write(self._down_w, b"go\n")

    def result(self, line: str | None = None) -> dict[str, Any]:
        line = line or self.hear()
        while not line.startswith("result "):
            line = self.hear()
        os.waitpid(self.pid, 0)
        os.close(self._up_r)
        os.close(self._down_w)
        answer: dict[str, Any] = json.loads(line.removeprefix("result "))
        return answer


def as_user(account: Account, groups: list[int], work: Callable[[], Any]) -> dict[str, Any]:
    """Run ``work`` in a process as ``account``; its return value or its error."""
    return Child(account, groups, lambda _child: work()).result()


def token() -> AuthData:
    return AuthData(
        token=nasty_secret("ya29."),
        refresh_token=nasty_secret("1//0g"),
        expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
    )


def keep_a_token(path: Path | None, data: AuthData, child: Child | None = None) -> str:
    """The victim's kernel: open the store, keep a token, close; pause at SQLite's open."""
    if child is not None:
        real_connect = sqlite3.connect
        opened = 0

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            # Only the first open: the one right after the checks of a new Store.
            nonlocal opened
            opened += 1
            first = opened == 1
            if first:
                child.say("opening")
                child.wait()
            db = real_connect(*args, **kwargs)
            if first:
                child.say("opened")
                child.wait()
            return db

        sqlite3.connect = connect  # in this forked process only
    store = Store(path)
    store.put_token("demo", "victim", data)
    kept = store.get_token("demo", "victim")
    store.close_all()
    assert kept is not None and kept.data.token == data.token
    mode = stat.S_IMODE(os.stat(store.path).st_mode)
    return f"{store.path} {mode:o}"


def files_of(folder: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("latin-1") for p in sorted(folder.iterdir()) if p.is_file()
    )


# -- the attack -----------------------------------------------------------------------------


def _group_project(people: People) -> Path:
    """A lab's project folder: the victim's, writable by the group the attacker is in."""
    project = people.base / "project"
    project.mkdir()
    os.chown(project, people.victim.uid, people.group)
    project.chmod(0o2770)
    return project


def _sticky_of_attacker(people: People) -> Path:
    """A shared drop folder with the sticky bit, owned by the attacker (not root)."""
    drop = people.base / "drop"
    drop.mkdir()
    os.chown(drop, people.attacker.uid, people.attacker.gid)
    drop.chmod(0o1777)
    return drop


@pytest.mark.parametrize(
    ("place", "refusal"),
    [
        (_group_project, "chmod g-w"),
        (_sticky_of_attacker, "the sticky bit does not stop the owner"),
    ],
    ids=["group-writable-parent", "sticky-parent-of-another-user"],
)
def test_a_folder_swapped_between_the_checks_and_the_open_gets_nothing(
    people: People, place: Callable[[People], Path], refusal: str
) -> None:
    parent = place(people)
    folder = parent / "chat_oauth2_nb"
    # The attacker's loot: a store file the victim's process can write, in a folder of theirs.
    loot = people.base / "loot"
    loot.mkdir()
    (loot / "store.sqlite3").write_bytes(b"")
    os.chown(loot, people.attacker.uid, people.attacker.gid)
    loot.chmod(0o777)
    os.chown(loot / "store.sqlite3", people.attacker.uid, people.attacker.gid)
    (loot / "store.sqlite3").chmod(0o666)
    moved = parent / "chat_oauth2_nb.moved"

    def swap_in() -> None:
        folder.rename(moved)
        folder.symlink_to(loot)

    def swap_back() -> None:
        folder.unlink()
        moved.rename(folder)

    data = token()
    groups = [people.group]
    victim = Child(
        people.victim, groups, lambda child: keep_a_token(folder / "store.sqlite3", data, child)
    )
    swaps = []
    line = victim.hear()
    while not line.startswith("result "):
        swap = {"opening": swap_in, "opened": swap_back}[line]
        swaps.append(line)
        assert as_user(people.attacker, groups, swap) == {"ok": None}
        victim.go()
        line = victim.hear()
    outcome = victim.result(line)

    secrets_ = [data.token, data.refresh_token]
    assert not find_secrets(files_of(loot), secrets_), (
        f"the attacker's file holds the victim's token (swaps: {swaps}; victim: {outcome})"
    )
    assert outcome.get("error") == StoreError.__name__, outcome
    message = outcome["message"]
    assert str(parent) in message and refusal in message, message
    assert swaps == [], "the check must come before SQLite's open"
    assert (loot / "store.sqlite3").read_bytes() == b""
    assert sorted(p.name for p in loot.iterdir()) == ["store.sqlite3"]


# -- what is refused without any race, and what honest set-ups keep working -------------------


def test_a_group_writable_folder_higher_up_is_refused_too(people: People) -> None:
    project = _group_project(people)
    mine = project / "victim"  # the victim's own folder inside the shared project
    mine.mkdir()
    os.chown(mine, people.victim.uid, people.victim.gid)
    mine.chmod(0o755)
    # The group can rename "victim" itself away: checking the parent alone is not enough.
    outcome = as_user(
        people.victim, [people.group], lambda: keep_a_token(mine / "s" / "x.db", token())
    )
    assert outcome.get("error") == StoreError.__name__, outcome
    assert f"the folder {project} on its way is writable by the group" in outcome["message"]
    assert people.attacker.name in outcome["message"]
    assert f"chmod g-w {project}" in outcome["message"]

    # Reached through a link from a folder of the victim's: where the link points is checked.
    home = people.base / "home"
    home.mkdir()
    os.chown(home, people.victim.uid, people.victim.gid)
    (home / "data").symlink_to(mine)
    outcome = as_user(
        people.victim, [people.group], lambda: keep_a_token(home / "data" / "s" / "x.db", token())
    )
    assert outcome.get("error") == StoreError.__name__, outcome
    assert f"chmod g-w {project}" in outcome["message"]

    # What the message says to do works.
    project.chmod(0o2750)
    outcome = as_user(
        people.victim, [people.group], lambda: keep_a_token(mine / "s" / "x.db", token())
    )
    assert "ok" in outcome, outcome


def test_honest_places_still_work(people: People) -> None:
    # The default: jupyter_data_dir() under the person's home.
    home = people.base / "home"
    home.mkdir(mode=0o700)
    os.chown(home, people.victim.uid, people.victim.gid)

    def default_place() -> str:
        os.environ["HOME"] = str(home)
        for name in ("JUPYTER_DATA_DIR", "XDG_DATA_HOME", "JUPYTER_PLATFORM_DIRS"):
            os.environ.pop(name, None)
        return keep_a_token(None, token())

    outcome = as_user(people.victim, [people.group], default_place)
    assert outcome == {"ok": f"{home}/.local/share/jupyter/chat_oauth2_nb/store.sqlite3 600"}
    assert stat.S_IMODE(os.stat(home / ".local/share/jupyter/chat_oauth2_nb").st_mode) == 0o700

    # Group-writable by the person's own private group (umask 002, or a container's one user).
    own = people.base / "own-group"
    own.mkdir()
    os.chown(own, people.victim.uid, people.victim.gid)
    own.chmod(0o775)
    outcome = as_user(
        people.victim, [people.group], lambda: keep_a_token(own / "s" / "x.db", token())
    )
    assert "ok" in outcome, outcome

    # A sticky folder of root's, like /tmp.
    public = people.base / "public"
    public.mkdir()
    public.chmod(0o1777)
    outcome = as_user(
        people.victim, [people.group], lambda: keep_a_token(public / "s" / "x.db", token())
    )
    assert "ok" in outcome, outcome


def test_a_store_put_straight_into_a_sticky_shared_folder_is_refused_and_the_folder_untouched(
    tmp_path: Path,
) -> None:
    # Found in the wild: store=/tmp/tokens.db, opened as root (who owns /tmp), made /tmp 0700
    # for every program on the machine. A sticky folder is a shared place: refuse it, as is.
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # noqa: S103 - playing /tmp
    with pytest.raises(StoreError) as caught:
        Store(shared / "tokens.db")
    assert "sticky" in str(caught.value) and "folder of its own" in (caught.value.hint or "")
    assert stat.S_IMODE(os.lstat(shared).st_mode) == 0o1777
    assert not (shared / "tokens.db").exists()
    # A folder of its own inside the shared one works, as the advice says.
    Store(shared / "mine" / "tokens.db").put_token("demo", "ada", AuthData(token="t"))

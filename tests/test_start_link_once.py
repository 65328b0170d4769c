"""A start link binds the first browser that opens it, and is never put on a command line.

The attack: ``webbrowser.open(link)`` shows the link to every local user (``/proc/*/cmdline``);
whoever opens it later used to take the flow's binding over, so the victim's notebook ended
up holding the attacker's grant. Both start endpoints (the loopback listener and the Jupyter
server's) are attacked, and the opener is checked against another local user reading
command lines.
"""

from __future__ import annotations

import stat
import webbrowser
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from support import otheruser
from support.jupyter import Browser, jupyter_client
from support.otheruser import OtherUser

from chat_oauth2_nb import open_in_browser
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.lifecycle.callback import binding_cookie_name
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.store import open_store

Make = Callable[..., OAuth2Client]
Fetch = Callable[..., Awaitable[Any]]
other_user = otheruser.other_user  # the fixture: a throwaway local user


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_a_loopback_start_link_opened_again_elsewhere_is_refused_and_not_rebound(
    make_client: Make, provider: DemoProvider
) -> None:
    client = make_client()
    link = client.get_user_authorization_url("ada")
    with httpx.Client() as victim, httpx.Client() as attacker:
        first = victim.get(link, follow_redirects=False)
        assert first.status_code == 302
        bound = client.store.flow_by_start_id(link.start_id)
        assert bound is not None and bound.binding is not None
        # The attacker read the link off the browser's command line and opens it later.
        second = attacker.get(link, follow_redirects=False)
        assert second.status_code == 400 and "location" not in second.headers
        assert "already opened" in second.text and "new link" in second.text
        assert not attacker.cookies  # no binding cookie for the attacker's browser
        after = client.store.flow_by_start_id(link.start_id)
        assert after is not None and after.binding == bound.binding
        # The victim's browser may open its own link again, and finishes the flow.
        assert victim.get(link, follow_redirects=False).status_code == 302
        redirect = provider.approve(first.headers["location"], follow_redirect=False)
        answer = victim.get(redirect.headers["location"])
    assert answer.status_code == 200
    data = client.wait_for_authorization("ada", timeout=60)
    assert provider.introspect(data.token)["active"]


async def test_a_jupyter_start_link_opened_again_elsewhere_is_refused_and_not_rebound(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider
) -> None:
    client = await jupyter_client(provider)
    link = client.get_user_authorization_url("ada")
    victim = Browser(jp_fetch, provider)
    location = await victim.open(link)
    store = open_store()
    bound = store.flow_by_start_id(link.start_id)
    assert bound is not None and bound.binding is not None
    # The same Jupyter user (its login cookie) in another browser (no binding cookie): the
    # attacker who read the link, on a server where he is logged in as the victim too.
    login = {k: v for k, v in victim.cookies.items() if not k.startswith("chat_oauth2_")}
    assert login, victim.cookies
    second = await jp_fetch(
        "chat-oauth2",
        "start",
        link.start_id,
        follow_redirects=False,
        raise_error=False,
        headers={"Cookie": "; ".join(f"{k}={v}" for k, v in login.items())},
    )
    page = second.body.decode()
    assert second.code == 400 and "already opened" in page and "new link" in page
    assert not second.headers.get_list("Set-Cookie")
    after = store.flow_by_start_id(link.start_id)
    assert after is not None and after.binding == bound.binding
    redirect = provider.approve(location, follow_redirect=False)
    assert (await victim.callback(_query(redirect.headers["location"]))).code == 200
    assert (await client.await_for_authorization("ada", timeout=60)).token
    assert binding_cookie_name(bound.state) in victim.cookies


# Scans every process's command line for start links while the browser runs: what any
# local user can do.
READ_CMDLINES = r"""
import os, sys, time
until = time.monotonic() + float(sys.argv[1])
print("watching", flush=True)
seen = set()
while time.monotonic() < until:
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():  # this script names the path too
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        for arg in args:
            if b"/chat-oauth2/start/" in arg and arg not in seen:
                seen.add(arg)
                print("found", arg.decode(), flush=True)
    time.sleep(0.01)
print("done", flush=True)
"""


@pytest.fixture
def recording_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``BROWSER`` is a script that records its arguments and stays up 3 s, like a browser."""
    args = tmp_path / "argv.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" >> {args}\nsleep 3\n")
    script.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(script))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setattr(webbrowser, "_tryorder", None)  # read BROWSER again
    monkeypatch.setattr(webbrowser, "_browsers", {})
    return args


def test_the_opener_never_puts_the_start_link_on_a_command_line(
    make_client: Make, other_user: OtherUser, recording_browser: Path
) -> None:
    client = make_client()
    naive = client.get_user_authorization_url("ada")
    # The attack's premise: webbrowser.open(link) shows the link to another local user.
    watcher = other_user.start(READ_CMDLINES, 6)
    other_user.wait_for_line(watcher, "watching")
    assert webbrowser.open(naive)
    assert f"found {naive}" in other_user.finish(watcher)
    recording_browser.unlink()

    link = client.get_user_authorization_url("ada")
    watcher = other_user.start(READ_CMDLINES, 6)
    other_user.wait_for_line(watcher, "watching")
    assert link.open()
    lines = other_user.finish(watcher)
    assert not [line for line in lines if line.startswith("found")], lines
    argv = recording_browser.read_text().split()
    assert len(argv) == 1 and argv[0].startswith("file:///"), argv
    assert link.start_id not in argv[0]
    assert "/chat-oauth2/start/" not in argv[0]
    page = Path(urlsplit(argv[0]).path)
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    assert stat.S_IMODE(page.parent.stat().st_mode) == 0o700
    assert page.stat().st_uid == page.parent.stat().st_uid == client_uid()
    assert str(link) in page.read_text()  # the page sends the browser on to the link


def client_uid() -> int:
    import os

    return os.geteuid()


def test_open_in_browser_is_public_and_takes_any_link(recording_browser: Path) -> None:
    assert open_in_browser("http://127.0.0.1:1/chat-oauth2/start/abc")
    argv = recording_browser.read_text().split()
    assert len(argv) == 1 and "abc" not in argv[0]

"""The store key a hub-spawned server fetches (chat_oauth2_nb.store.keys), against a local HTTP
server standing in for the router on its Unix socket: once per process, never on disk, a clear
error when refused, only a well-formed key for this user, and never a fresh store in place of
one the key does not open. The real router and hub are in tests/test_hub.py; squatters in
tests/test_hub_peer.py."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socketserver
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest

from chat_oauth2_nb.errors import StoreError
from chat_oauth2_nb.oauth import AuthData
from chat_oauth2_nb.store import Store, new_store_key
from chat_oauth2_nb.store import keys as hubkey

KEY = new_store_key()


class _Router(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []
    status = 200
    answer: ClassVar[dict[str, Any]] = {}

    def address_string(self) -> str:
        return "unix"  # a Unix socket's peer has no (host, port)

    def do_GET(self) -> None:
        _Router.seen.append(self.headers.get("Authorization", ""))
        body = json.dumps(_Router.answer).encode()
        self.send_response(_Router.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def router(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    # As configure_hub() sets it up: the service on its Unix socket in a folder of its own.
    folder = tmp_path / "service"
    folder.mkdir(mode=0o755)
    server = _UnixServer(str(folder / "router.sock"), _Router)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:10101/services/chat-oauth2/store-key"  # nobody listens there
    _Router.seen, _Router.status, _Router.answer = [], 200, {"user": "alice", "key": KEY}
    monkeypatch.setattr(hubkey, "_keys", {})
    monkeypatch.delenv("CHAT_OAUTH2_NB_STORE_KEY", raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("CHAT_OAUTH2_NB_HUB_CALLBACK_URL", "https://hub.example/services/x/callback")
    monkeypatch.setenv("CHAT_OAUTH2_NB_HUB_KEY_URL", url)
    monkeypatch.setenv("CHAT_OAUTH2_NB_HUB_SOCKET", str(folder / "router.sock"))
    monkeypatch.setenv("CHAT_OAUTH2_NB_HUB_UID", str(os.geteuid()))
    yield url
    server.shutdown()
    server.server_close()


def test_a_hub_spawned_server_fetches_its_key_once(router: str, tmp_path: Path) -> None:
    # Over the service's socket, its listener's uid checked: the 127.0.0.1 URL is not used.
    first = Store(tmp_path / "a" / "store.sqlite3")
    second = Store(tmp_path / "b" / "store.sqlite3")
    assert first.encrypted and first.key_source == "hub" and second.key_source == "hub"
    assert _Router.seen == ["token server-token"]  # one fetch, with the server's own token
    assert KEY not in "".join(p.read_text("latin-1") for p in tmp_path.rglob("*") if p.is_file())


def test_an_explicit_key_wins_over_the_hub(router: str, tmp_path: Path) -> None:
    store = Store(tmp_path / "store.sqlite3", key=new_store_key())
    assert store.key_source == "argument" and _Router.seen == []


def test_a_refused_key_is_a_clear_error_not_a_plain_store(router: str, tmp_path: Path) -> None:
    _Router.status = 403
    with pytest.raises(StoreError, match="HTTP 403") as caught:
        Store(tmp_path / "store.sqlite3")
    assert "configure_hub" in str(caught.value) and "server-token" not in str(caught.value)
    assert not (tmp_path / "store.sqlite3").exists()


def test_the_key_url_defaults_to_the_callbacks_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAT_OAUTH2_NB_HUB_KEY_URL", raising=False)
    monkeypatch.setenv(
        "CHAT_OAUTH2_NB_HUB_CALLBACK_URL", "https://h.example/jh/services/c/callback"
    )
    assert hubkey.hub_key_url() == "https://h.example/jh/services/c/store-key"
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    assert hubkey.fetch_hub_store_key() is None  # not in a hub-spawned server


def _rows(path: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [
            *db.execute("SELECT * FROM meta ORDER BY name"),
            *db.execute("SELECT * FROM tokens ORDER BY alias, user"),
        ]


@pytest.mark.parametrize(
    "answer",
    [
        {"user": "alice", "key": base64.urlsafe_b64encode(bytes(32)).decode()},  # all zeros
        {"user": "alice", "key": base64.urlsafe_b64encode(b"\x07" * 32).decode()},
        {"user": "bob", "key": KEY},  # another user's key
        {"user": "alice", "key": KEY.rstrip("=")},  # not the service's encoding
        {"user": "alice", "key": KEY, "also": 1},
        {"user": "alice", "key": base64.urlsafe_b64encode(os.urandom(31)).decode()},
        {"key": KEY},
        ["alice", KEY],
    ],
)
def test_an_answer_that_is_not_a_well_formed_key_for_this_user_is_refused(
    router: str, tmp_path: Path, answer: Any
) -> None:
    _Router.answer = answer
    with pytest.raises(StoreError, match="no well-formed store key"):
        Store(tmp_path / "store.sqlite3")
    assert not (tmp_path / "store.sqlite3").exists()


def test_a_key_that_does_not_open_the_store_is_an_error_not_a_fresh_store(
    router: str, tmp_path: Path
) -> None:
    path = tmp_path / "data" / "store.sqlite3"
    sealed_with = new_store_key()
    old = Store(path, key=sealed_with)
    old.put_token("demo", "alice", AuthData(token="old-access", refresh_token="old-refresh"))
    old.close_all()
    before = _rows(path)
    with pytest.raises(StoreError) as caught:
        Store(path)  # the hub's key (KEY) is not the one the store was sealed with
    message = str(caught.value)
    assert "hub's chat-oauth2 service gave a store key that does not open" in message
    assert "hub secret" in message and "move" in message
    assert KEY not in message and sealed_with not in message
    # The store is as it was, and its tokens open with their own key.
    assert _rows(path) == before and len(before) > 1
    kept = Store(path, key=sealed_with).get_token("demo", "alice")
    assert kept is not None and kept.data.refresh_token == "old-refresh"

"""The store key a hub-spawned server fetches (chat_oauth2_nb.store.keys), against a local HTTP
server standing in for the router: once per process, never on disk, a clear error when refused.
The real router and hub are in tests/test_hub.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from chat_oauth2_nb.errors import StoreError
from chat_oauth2_nb.store import Store, new_store_key
from chat_oauth2_nb.store import keys as hubkey

KEY = new_store_key()


class _Router(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []
    status = 200

    def do_GET(self) -> None:
        _Router.seen.append(self.headers.get("Authorization", ""))
        body = json.dumps({"user": "alice", "key": KEY}).encode()
        self.send_response(_Router.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def router(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Router)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/services/chat-oauth2/store-key"
    _Router.seen, _Router.status = [], 200
    monkeypatch.setattr(hubkey, "_keys", {})
    monkeypatch.delenv("CHAT_OAUTH2_NB_STORE_KEY", raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    monkeypatch.setenv("CHAT_OAUTH2_NB_HUB_CALLBACK_URL", "https://hub.example/services/x/callback")
    monkeypatch.setenv("CHAT_OAUTH2_NB_HUB_KEY_URL", url)
    yield url
    server.shutdown()
    server.server_close()


def test_a_hub_spawned_server_fetches_its_key_once(router: str, tmp_path: Path) -> None:
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

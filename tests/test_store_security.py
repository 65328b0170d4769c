"""The store under attack: redirected paths, other users, leaked connections, tokens handed to
the wrong provider, secrets copied around, and what an encrypted store keeps from the disk."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.jupyter import Browser, jupyter_client
from support.scan import assert_no_secret, find_secrets, nasty_secret

from chat_oauth2_nb.config import ProviderConfig, provider_identity
from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from chat_oauth2_nb.errors import ConfigurationError, ProviderMismatchError, StoreError
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth import AuthData, utcnow
from chat_oauth2_nb.store import STORE_KEY_ENV, PendingFlow, Store, new_store_key

Make = Callable[..., OAuth2Client]


def in_thread(call: Callable[[], Any]) -> Any:
    """Run ``call`` in a new thread (a new per-thread connection); return or raise its result."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def token(value: str = "access") -> AuthData:
    return AuthData(token=nasty_secret(value), refresh_token=nasty_secret("1"), expires_at=utcnow())


# --- finding 10: the store's location cannot be redirected ----------------------------


def test_store_file_swapped_for_a_link_is_refused_by_a_new_thread(tmp_path: Path) -> None:
    store = Store(tmp_path / "mine" / "store.sqlite3")
    store.put_token("demo", "ada", token())
    # Another user's directory with a store-like file the attacker wants our writes in.
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    shutil.copy(store.path, theirs / "loot.sqlite3")
    before = listing(theirs)
    store.path.rename(tmp_path / "mine" / "moved.sqlite3")
    store.path.symlink_to(theirs / "loot.sqlite3")

    with pytest.raises(StoreError, match="no longer the file opened") as info:
        in_thread(lambda: store.put_token("demo", "bob", token()))
    assert "restart" in str(info.value)
    assert listing(theirs) == before  # nothing written, no -wal or -shm created there


def test_store_folder_swapped_for_a_link_is_refused_by_a_new_thread(tmp_path: Path) -> None:
    store = Store(tmp_path / "mine" / "store.sqlite3")
    store.put_token("demo", "ada", token())
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    shutil.copy(store.path, theirs / "store.sqlite3")
    before = listing(theirs)
    (tmp_path / "mine").rename(tmp_path / "mine-moved")
    (tmp_path / "mine").symlink_to(theirs)

    with pytest.raises(StoreError, match="no longer the file opened"):
        in_thread(lambda: store.put_token("demo", "bob", token()))
    assert listing(theirs) == before


def test_a_linked_store_folder_or_file_is_refused_at_open(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(StoreError, match="store folder is a symbolic link"):
        Store(tmp_path / "link" / "store.sqlite3")

    # The link's target keeps its mode: chmod never follows a link.
    target = tmp_path / "elsewhere.sqlite3"
    target.write_bytes(b"")
    target.chmod(0o644)
    (real / "store.sqlite3").symlink_to(target)
    with pytest.raises(StoreError, match="store file is a symbolic link"):
        Store(real / "store.sqlite3")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.read_bytes() == b""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_a_store_folder_owned_by_another_uid_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "planted"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    with pytest.raises(StoreError, match="belongs to uid 65534"):
        Store(folder / "store.sqlite3")
    assert list(folder.iterdir()) == []


def test_a_world_writable_parent_needs_the_sticky_bit(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could rename our folder away and put theirs in its place
    with pytest.raises(StoreError, match="writable by every user without the sticky bit"):
        Store(shared / "chat_oauth2_nb" / "store.sqlite3")
    shared.chmod(0o777 | stat.S_ISVTX)  # like /tmp: only the owner may rename
    assert Store(shared / "chat_oauth2_nb" / "store.sqlite3").list_tokens() == []


def test_folder_and_file_modes_are_tightened(tmp_path: Path) -> None:
    folder = tmp_path / "loose"
    folder.mkdir(mode=0o755)
    (folder / "store.sqlite3").write_bytes(b"")
    (folder / "store.sqlite3").chmod(0o644)
    Store(folder / "store.sqlite3")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "store.sqlite3").stat().st_mode) == 0o600


# --- issue 8 item 5: connections closed deterministically -----------------------------


@contextlib.contextmanager
def no_resource_warnings() -> Iterator[list[str]]:
    """Collect ResourceWarnings, including those raised in finalizers (unraisable)."""
    caught: list[str] = []
    old_hook = sys.unraisablehook

    def hook(info: Any) -> None:
        caught.append(repr(info.exc_value))

    sys.unraisablehook = hook
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("error", ResourceWarning)
            yield caught
            gc.collect()
        caught.extend(str(w.message) for w in recorded if w.category is ResourceWarning)
    finally:
        sys.unraisablehook = old_hook
    assert not caught, caught


def test_thread_connections_close_when_their_threads_end(tmp_path: Path) -> None:
    with no_resource_warnings():
        store = Store(tmp_path / "s" / "store.sqlite3")
        baseline = store.open_connections
        threads = [
            threading.Thread(target=store.put_token, args=("demo", f"u{i}", token()))
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.open_connections == baseline
        assert len(store.list_tokens()) == 8
        store.close_all()
        assert store.open_connections == 0
        # A thread that uses the store again after close_all() gets a fresh connection.
        assert len(store.list_tokens()) == 8
        store.close_all()


def test_loopback_flow_leaves_no_connection_to_the_collector(
    authorized: Callable[..., OAuth2Client], store: Store
) -> None:
    with no_resource_warnings():
        client = authorized("ada")
        assert client.get_access_token_for_user("ada") is not None
        client.refresh_user_access_token("ada")
        client.close()
        store.close_all()
        assert store.open_connections == 0


# --- finding 9: a token belongs to a provider -------------------------------------------


@pytest.fixture
def other_provider() -> Iterator[DemoProvider]:
    p = start_demo_provider(port=0, token_lifetime=3600)
    yield p
    p.stop()


def test_a_token_is_never_sent_to_another_provider_under_the_same_alias(
    authorized: Callable[..., OAuth2Client],
    make_client: Make,
    provider: DemoProvider,
    other_provider: DemoProvider,
    secret_log: Any,
) -> None:
    a = authorized("ada", alias="work")
    mine = a.get_access_token_for_user("ada")
    assert mine is not None and mine.refresh_token
    b = make_client(
        "work",
        config=other_provider.config(alias="work"),
        client_id=other_provider.client_id,
        client_secret=other_provider.client_secret,
    )
    # The demo's config names its issuer: that is who the token belongs to.
    a_issuer = provider.issuer

    attempts: list[Callable[[], Any]] = [
        lambda: b.get_access_token_for_user("ada"),
        lambda: b.refresh_user_access_token("ada"),
        lambda: b.revoke_user_access_token("ada"),
        lambda: httpx.get(other_provider.api_url, auth=b.auth("ada")),
    ]
    for attempt in attempts:
        with pytest.raises(ProviderMismatchError) as info:
            attempt()
        message = str(info.value)
        assert a_issuer in message and "belongs to another provider" in message
        assert "another alias" in message and "Authorize again" in message
        secrets = [mine.token, mine.refresh_token, provider.client_secret]
        assert_no_secret(message, secrets, "the mismatch error", [provider.client_id])

    assert sum(other_provider.token_requests.values()) == 0
    assert b.http_log == []  # nothing sent at all
    # A's grant is untouched: still active, still refreshable by its own client.
    assert provider.introspect(mine.token)["active"] is True
    assert a.refresh_user_access_token("ada").token != mine.token
    assert_no_secret(secret_log.text, [mine.token, mine.refresh_token], "the log")

    # What the message says to do works: authorizing with B replaces A's token.
    url = b.get_user_authorization_url("ada")
    assert other_provider.approve(url).status_code == 200
    fresh = b.wait_for_authorization("ada", timeout=10)
    assert b.get_access_token_for_user("ada") == fresh
    with pytest.raises(ProviderMismatchError):
        a.get_access_token_for_user("ada")


def test_the_panel_shows_a_mismatch_as_an_error_with_a_link(
    authorized: Callable[..., OAuth2Client], make_client: Make, other_provider: DemoProvider
) -> None:
    authorized("ada", alias="work")
    b = make_client(
        "work",
        config=other_provider.config(alias="work"),
        client_id=other_provider.client_id,
        client_secret=other_provider.client_secret,
    )
    panel = b.panel("ada")
    try:
        error = next(
            w for w in _walk(panel) if "chat-oauth2-error" in getattr(w, "_dom_classes", ())
        )
        assert "belongs to another provider" in error.value
        link = next(w for w in _walk(panel) if "chat-oauth2-link" in getattr(w, "_dom_classes", ()))
        assert "chat-oauth2/start/" in link.value  # authorizing again is one click away
        assert sum(other_provider.token_requests.values()) == 0
    finally:
        panel.close()


def _walk(widget: Any) -> Iterator[Any]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def test_provider_identity() -> None:
    base = {"alias": "x", "authUri": "https://a.example/auth", "client_id": "cid"}
    by_endpoint = ProviderConfig.from_mapping(
        {**base, "accessTokenUri": "https://a.example/token"}, client_auth_method="none"
    )
    assert provider_identity(by_endpoint) == "https://a.example/token (client_id cid)"
    by_issuer = ProviderConfig.from_mapping(
        {**base, "accessTokenUri": "https://a.example/token", "issuer": "https://a.example/"},
        client_auth_method="none",
    )
    assert provider_identity(by_issuer) == "https://a.example"


# --- finding 12: the client secret is stored once ---------------------------------------


def test_the_client_secret_is_stored_once(make_client: Make, store: Store) -> None:
    secret = nasty_secret("GOCSPX-")
    client = make_client(client_secret=secret)
    for _ in range(3):
        client.get_user_authorization_url("ada")
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        flows = [json.loads(row[0]) for row in db.execute("SELECT provider FROM flows")]
        secrets = [row[0] for row in db.execute("SELECT client_secret FROM providers")]
    assert len(flows) == 3 and all("client_secret" not in f for f in flows)
    assert secrets == [secret]
    # The exchange still gets it: looked up in providers when the flow is consumed.
    state = store.latest_flow("demo", "ada").state  # type: ignore[union-attr]
    consumed = store.consume_flow(state)
    assert consumed.provider is not None and consumed.provider.client_secret == secret


OLD_SCHEMA = """
CREATE TABLE providers (alias TEXT PRIMARY KEY, config TEXT NOT NULL, client_secret TEXT,
    updated_at REAL NOT NULL);
CREATE TABLE flows (state TEXT PRIMARY KEY, alias TEXT NOT NULL, user TEXT NOT NULL,
    code_verifier TEXT NOT NULL, redirect_uri TEXT NOT NULL, scopes TEXT NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
    error TEXT, finished_at REAL, exchange TEXT, provider TEXT);
CREATE TABLE tokens (alias TEXT NOT NULL, user TEXT NOT NULL, data TEXT NOT NULL,
    version INTEGER NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (alias, user));
CREATE TABLE leases (alias TEXT NOT NULL, user TEXT NOT NULL, owner TEXT NOT NULL,
    expires_at REAL NOT NULL, PRIMARY KEY (alias, user));
"""


def old_store(tmp_path: Path, config: ProviderConfig, data: AuthData) -> Path:
    """A store as the previous version wrote it: secret in providers and in every flow."""
    path = tmp_path / "old" / "store.sqlite3"
    path.parent.mkdir(mode=0o700)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(OLD_SCHEMA)
        db.execute(
            "INSERT INTO providers VALUES (?, ?, ?, 1.0)",
            (config.alias, json.dumps(config.to_mapping()), config.client_secret),
        )
        db.execute(
            "INSERT INTO flows (state, alias, user, code_verifier, redirect_uri, scopes, "
            "created_at, expires_at, provider) VALUES ('st', ?, 'ada', 'verifier-old', "
            "'http://127.0.0.1:1/cb', '[]', 1.0, 9e12, ?)",
            (config.alias, json.dumps(config.to_mapping(include_secret=True))),
        )
        db.execute(
            "INSERT INTO tokens VALUES (?, 'ada', ?, 1, 1.0)", (config.alias, data.to_json())
        )
        db.commit()
    path.chmod(0o600)
    return path


def test_a_store_written_by_the_previous_version_opens_and_is_migrated(
    tmp_path: Path, provider: DemoProvider
) -> None:
    config = ProviderConfig.from_mapping(
        provider.config(alias="work"),
        client_id=provider.client_id,
        client_secret=provider.client_secret,
    )
    data = token()
    store = Store(old_store(tmp_path, config, data))
    record = store.get_token("work", "ada")
    assert record is not None and record.data == data
    assert record.provider == provider_identity(config)  # the alias's provider back then
    assert store.get_provider("work") == config
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        (snapshot,) = db.execute("SELECT provider FROM flows").fetchone()
    assert "client_secret" not in json.loads(snapshot)  # the copy in the flow is gone
    flow = store.consume_flow("st")
    assert flow.provider is not None and flow.provider.client_secret == provider.client_secret
    # Opening it again (another process, a newer kernel) changes nothing.
    again = Store(store.path)
    assert again.get_token("work", "ada") == record


# --- encryption at rest -----------------------------------------------------------------


def raw_files(store: Store) -> str:
    """Every byte SQLite keeps on disk for the store (database, WAL, shared memory)."""
    parts = [p.read_bytes() for p in store.path.parent.iterdir() if p.is_file()]
    return b"\n".join(parts).decode("latin-1")


def run_flow(make_client: Make, provider: DemoProvider, store: Store) -> tuple[list[str], str]:
    secret, cid = provider.client_secret, provider.client_id
    client = make_client(store=store)
    url = client.get_user_authorization_url("ada")
    state = store.latest_flow("demo", "ada").state  # type: ignore[union-attr]
    verifier = store.get_flow(state).code_verifier  # type: ignore[union-attr]
    assert provider.approve(url).status_code == 200
    first = client.wait_for_authorization("ada", timeout=10)
    second = client.refresh_user_access_token("ada")
    values = [first.token, first.refresh_token, second.token, second.refresh_token]
    return [*values, verifier, secret], cid  # type: ignore[list-item]


def test_an_encrypted_store_keeps_no_secret_on_disk(
    make_client: Make, provider: DemoProvider, tmp_path: Path
) -> None:
    sealed = Store(tmp_path / "sealed" / "store.sqlite3", key=new_store_key())
    assert sealed.encrypted
    secrets, cid = run_flow(make_client, provider, sealed)
    assert_no_secret(raw_files(sealed), secrets, "the encrypted store's files", [cid])
    # The same flow without a key leaves them readable: the scan above can see them.
    plain = Store(tmp_path / "plain" / "store.sqlite3", key=None)
    assert not plain.encrypted
    secrets, cid = run_flow(make_client, provider, plain)
    assert find_secrets(raw_files(plain), secrets, [cid])


def test_a_missing_or_wrong_key_is_a_typed_error(tmp_path: Path) -> None:
    key = new_store_key()
    path = tmp_path / "s" / "store.sqlite3"
    Store(path, key=key).put_token("demo", "ada", token())
    for other in (None, new_store_key()):
        with pytest.raises(StoreError) as info:
            Store(path, key=other)
        message = str(info.value)
        assert STORE_KEY_ENV in message
        assert "Jupyter server's and the kernel's environment" in message
        assert key not in message and (other is None or other not in message)
    assert Store(path, key=key).get_token("demo", "ada") is not None


def test_a_process_without_the_key_never_writes_in_clear_into_a_sealed_store(
    tmp_path: Path,
) -> None:
    # The Jupyter server opened the store before any key was used; then a kernel with a
    # key sealed it. The server must not add a token in clear next to the sealed rows.
    path = tmp_path / "s" / "store.sqlite3"
    server = Store(path, key=None)
    Store(path, key=new_store_key())
    data = token()
    with pytest.raises(StoreError, match=STORE_KEY_ENV):
        server.put_token("demo", "ada", data)
    server.close_all()
    assert not find_secrets(raw_files(server), [data.token, data.refresh_token])


def test_the_key_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STORE_KEY_ENV, new_store_key())
    store = Store(tmp_path / "s" / "store.sqlite3")
    assert store.encrypted
    store.put_token("demo", "ada", token())
    monkeypatch.delenv(STORE_KEY_ENV)
    with pytest.raises(StoreError, match="no store key is set"):
        Store(store.path)


def test_a_malformed_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    bad = "not-a-key-" + nasty_secret()
    with pytest.raises(ConfigurationError, match="new_store_key") as info:
        Store(tmp_path / "s" / "store.sqlite3", key=bad)
    assert_no_secret(str(info.value), [bad], "the key error")


def test_a_ciphertext_moved_to_another_row_is_rejected(tmp_path: Path) -> None:
    store = Store(tmp_path / "s" / "store.sqlite3", key=new_store_key())
    store.put_token("demo", "ada", token("ada"))
    store.put_token("demo", "bob", token("bob"))
    # Someone with write access to the file gives bob's token to ada (or a verifier away).
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        bobs = db.execute("SELECT data FROM tokens WHERE user = 'bob'").fetchone()[0]
        db.execute("UPDATE tokens SET data = ? WHERE user = 'ada'", (bobs,))
        db.commit()
    with pytest.raises(StoreError, match="failed its integrity check"):
        store.get_token("demo", "ada")
    assert store.get_token("demo", "bob") is not None

    now = 1.0e12
    for state in ("one", "two"):
        store.add_flow(
            PendingFlow(state, "demo", "ada", f"verifier-{state}", "http://x", (), now, now)
        )
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        two = db.execute("SELECT code_verifier FROM flows WHERE state = 'two'").fetchone()[0]
        db.execute("UPDATE flows SET code_verifier = ? WHERE state = 'one'", (two,))
        db.commit()
    with pytest.raises(StoreError, match="failed its integrity check"):
        store.get_flow("one")


def test_an_existing_plain_store_is_sealed_when_a_key_arrives(tmp_path: Path) -> None:
    path = tmp_path / "s" / "store.sqlite3"
    data = token()
    Store(path, key=None).put_token("demo", "ada", data)
    sealed = Store(path, key=new_store_key())
    assert sealed.get_token("demo", "ada").data == data  # type: ignore[union-attr]
    sealed.close_all()
    assert_no_secret(raw_files(sealed), [data.token, data.refresh_token], "the sealed store")


def test_keyring_is_optional(tmp_path: Path) -> None:
    # Without the keyring package (or a backend), no key is no error: the store is plain.
    try:
        import keyring  # noqa: F401
    except ImportError:
        assert not Store(tmp_path / "s" / "store.sqlite3").encrypted
    else:
        pytest.skip("keyring is installed: the key may come from it")


def test_importing_the_package_does_not_load_cryptography() -> None:
    code = (
        "import sys, chat_oauth2_nb, chat_oauth2_nb.notebook.client, chat_oauth2_nb.store;"
        "assert 'cryptography.hazmat.primitives.ciphers.aead' not in sys.modules"
    )
    env = {k: v for k, v in os.environ.items() if k != STORE_KEY_ENV}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.fixture
def key_in_environment(monkeypatch: pytest.MonkeyPatch) -> str:
    """The key where the Jupyter server starts (its kernels inherit the environment)."""
    key = new_store_key()
    monkeypatch.setenv(STORE_KEY_ENV, key)
    return key


async def test_full_flow_through_jupyter_with_the_key_in_the_environment(
    key_in_environment: str, jp_fetch: Any, jp_serverapp: Any, provider: DemoProvider
) -> None:
    from chat_oauth2_nb.store import default_store_path, open_store

    client = await jupyter_client(provider)
    url = client.get_user_authorization_url("ada")
    verifier = client.store.latest_flow("demo", "ada").code_verifier  # type: ignore[union-attr]
    browser = Browser(jp_fetch, provider)
    params = await browser.params(url)
    response = await browser.callback(params)
    assert response.code == 200
    data = await client.await_for_authorization("ada", timeout=5)
    assert provider.introspect(data.token)["active"] is True
    assert open_store().encrypted and client.store.encrypted
    client.store.close_all()
    secrets = [data.token, data.refresh_token, verifier, provider.client_secret, params["code"]]
    assert_no_secret(raw_files(client.store), secrets, "the store's files", [provider.client_id])

    # Another process (a kernel) reads it with the key, and is told what to do without it.
    path = str(default_store_path())
    read = f"from chat_oauth2_nb.store import Store; print(Store({path!r}).get_token('demo', 'ada').version)"
    env = dict(os.environ)
    done = subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
    del env[STORE_KEY_ENV]
    done = subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and STORE_KEY_ENV in done.stderr
    assert_no_secret(done.stderr, [*secrets, key_in_environment], "the error")
    client.close()

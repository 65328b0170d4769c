"""The hub service's store in a real PostgreSQL: replicas of the service share one store.

Two replicas (two processes, each its own grants and connections) refresh the same expired
token at once: the provider sees one refresh request, both hand out the same new token, and
the grant stays active (a rotated refresh token used twice would revoke it). The database
never holds a token or the client secret in clear. Skipped without PostgreSQL unless
CHAT_OAUTH2_NB_REQUIRE_POSTGRES=1 (.ci/run sets it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from support.postgres import PostgresServer, postgres_server
from support.scan import assert_no_secret, nasty_secret

from chat_oauth2_nb.declarations import resolve_declarations
from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from chat_oauth2_nb.errors import ConfigurationError, StoreError
from chat_oauth2_nb.lifecycle.declared import DeclaredProviders
from chat_oauth2_nb.lifecycle.grants import AuthorizationCode
from chat_oauth2_nb.oauth import authorization_url, new_code_verifier, new_state
from chat_oauth2_nb.store import new_store_key

pytestmark = pytest.mark.timeout(120)

REDIRECT = "http://127.0.0.1:9/callback/demo"  # never requested: the code is read off the 302

# One replica of the hub's chat-oauth2 service: its own grants and PostgreSQL connections.
# It says "ready" once connected, refreshes when told "go", and prints what it handed out.
REPLICA = """
import hashlib, json, sys
from chat_oauth2_nb.declarations import resolve_declarations
from chat_oauth2_nb.store.postgres import PostgresStore
from chat_oauth2_nb.lifecycle.declared import DeclaredProviders

job = json.loads(sys.stdin.readline())
broker = DeclaredProviders(resolve_declarations(job["declared"], {}))
store = PostgresStore(job["url"], key=job["key"])
store.get_token("demo", job["user"])
print("ready", flush=True)
assert sys.stdin.readline().strip() == "go"
record = broker.grants("demo", store).token(job["user"], leeway=30.0)
digest = hashlib.sha256(record.data.token.encode()).hexdigest()
print(json.dumps({"token": digest, "version": record.version}), flush=True)
"""


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture
def url(pg: PostgresServer) -> str:
    return pg.new_database()


@pytest.fixture
def provider() -> Iterator[DemoProvider]:
    p = start_demo_provider(port=0, token_lifetime=3600)
    yield p
    p.stop()


@pytest.fixture
def declared(provider: DemoProvider) -> dict[str, Any]:
    client_id, secret = provider.register_client(
        client_secret=nasty_secret("GOCSPX-"), redirect_uris=[REDIRECT], scopes=None
    )
    return {
        "demo": {**provider.config(alias="demo"), "clientId": client_id, "clientSecret": secret}
    }


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _authorize(provider: DemoProvider, broker: DeclaredProviders, store: Any, user: str) -> Any:
    """The code flow as the service runs it: the person approves, the broker exchanges."""
    config = broker.config_for("demo")
    verifier = new_code_verifier()
    url = authorization_url(
        config,
        redirect_uri=REDIRECT,
        scopes=config.default_scopes,
        state=new_state(),
        code_verifier=verifier,
    )
    answer = provider.approve(url, follow_redirect=False)
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    code_grant = AuthorizationCode(code, REDIRECT, verifier, config.default_scopes)
    record = broker.grants("demo", store).exchange(user, code_grant)
    return record


def _dump(pg: PostgresServer, url: str) -> str:
    """Every row of the database, as pg_dump writes it (what a backup holds)."""
    result = subprocess.run(
        [str(pg.bindir / "pg_dump"), "--data-only", "--no-owner", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def test_two_replicas_refresh_an_expired_token_with_one_request(
    pg: PostgresServer, url: str, provider: DemoProvider, declared: dict[str, Any]
) -> None:
    from chat_oauth2_nb.store.postgres import PostgresStore

    key = new_store_key()
    user = json.dumps(["alice", "alice"])  # how the service keys a hub user's tokens
    broker = DeclaredProviders(resolve_declarations(declared, {}))
    store = PostgresStore(url, key=key)
    first = _authorize(provider, broker, store, user)
    identity = first.provider
    first_refresh = store.get_held_refresh_token("demo", user, identity)
    assert first_refresh and first.data.refresh_token is None
    # The access token expired an hour ago (the stored copy says so; the provider agrees
    # soon enough): every replica that is asked for it must refresh.
    expired = dataclasses.replace(
        first.data,
        expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1),
        refresh_token=first_refresh,
    )
    stale = store.put_held_token("demo", user, expired, provider=identity)
    assert stale is not None
    grants = provider.grants_active()
    provider.token_delay = 0.5  # the first refresh is still in flight when the other asks

    job = json.dumps({"declared": declared, "url": url, "key": key, "user": user})
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(2)
    ]
    try:
        for replica in replicas:
            assert replica.stdin is not None and replica.stdout is not None
            replica.stdin.write(job + "\n")
            replica.stdin.flush()
        for replica in replicas:
            assert replica.stdout is not None
            line = replica.stdout.readline()
            assert line.strip() == "ready", replica.communicate(timeout=30)[1]
        for replica in replicas:
            assert replica.stdin is not None
            replica.stdin.write("go\n")
            replica.stdin.flush()
        outputs = [replica.communicate(timeout=60) for replica in replicas]
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.kill()
                replica.wait()
    for replica, (_out, err) in zip(replicas, outputs, strict=True):
        assert replica.returncode == 0, err
    handed = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]

    assert provider.token_requests["refresh_token"] == 1
    now = store.get_token("demo", user)
    assert now is not None and now.version == stale.version + 1
    assert now.data.token != first.data.token
    assert handed == [{"token": _sha(now.data.token), "version": now.version}] * 2
    # The rotated refresh token was used once: the grant and the new token stay good.
    assert provider.introspect(now.data.token)["active"] is True
    assert provider.grants_active() == grants
    new_refresh = store.get_held_refresh_token("demo", user, identity)
    assert new_refresh and new_refresh != first_refresh

    # What a backup of the database holds: sealed rows, not one token or the secret.
    dump = _dump(pg, url)
    assert "chat_oauth2_held_refresh_tokens" in dump and "aesgcm1:" in dump
    client_id, secret = declared["demo"]["clientId"], declared["demo"]["clientSecret"]
    tokens = [first.data.token, now.data.token, first_refresh, new_refresh, secret]
    assert_no_secret(dump, tokens, "pg_dump of the service's store", client_ids=[client_id])
    store.close_all()


def test_a_replica_with_another_key_is_refused_with_what_to_do(
    pg: PostgresServer, url: str
) -> None:
    from chat_oauth2_nb.store.postgres import PostgresStore

    PostgresStore(url, key=new_store_key()).close_all()  # the key the store was sealed with
    with pytest.raises(StoreError) as raised:
        PostgresStore(url, key=new_store_key())
    message = str(raised.value)
    assert "sealed with another key" in message and "same hub secret file" in message
    assert_no_secret(message + repr(raised.value), [pg.password], "the error")


def test_the_lease_keeps_a_second_replica_out_until_released_or_expired(url: str) -> None:
    from chat_oauth2_nb.store.postgres import PostgresStore

    key = new_store_key()
    one, two = PostgresStore(url, key=key), PostgresStore(url, key=key)
    try:
        assert one.acquire_lease("lease", "bob", "replica-1", 30.0)
        assert not two.acquire_lease("lease", "bob", "replica-2", 30.0)
        assert one.acquire_lease("lease", "bob", "replica-1", 30.0)  # renewing its own
        one.release_lease("lease", "bob", "replica-2")  # not its lease: nothing happens
        assert not two.acquire_lease("lease", "bob", "replica-2", 30.0)
        one.release_lease("lease", "bob", "replica-1")
        assert two.acquire_lease("lease", "bob", "replica-2", 0.0)  # expires at once
        assert one.acquire_lease("lease", "bob", "replica-1", 30.0)  # a dead replica's lease
    finally:
        one.close_all()
        two.close_all()


def test_configure_hub_hands_the_service_its_store_url(pg: PostgresServer) -> None:
    from traitlets.config import Config

    from chat_oauth2_nb.hub.config import configure_hub

    def hub(tmp: str, **kwargs: Any) -> dict[str, Any]:
        c = Config()
        configure_hub(
            c,
            public_url="https://hub.example",
            secret_file=os.path.join(tmp, "secret"),
            providers_file=os.path.join(tmp, "providers.json"),
            providers={"demo": {"preset": "github", "clientId": "id", "clientSecret": "s3cret!"}},
            **kwargs,
        )
        return dict(c.JupyterHub.services[0]["environment"])

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        environment = hub(tmp, store_url=pg.url)
        assert environment["CHAT_OAUTH2_NB_BROKER_STORE"] == pg.url
        assert hub(tmp)["CHAT_OAUTH2_NB_BROKER_STORE"].endswith(".sqlite3")
        with pytest.raises(ConfigurationError) as raised:
            hub(tmp, store_url=f"mysql://hub:{pg.password}@127.0.0.1/hub")
    assert "postgresql://" in str(raised.value)
    assert_no_secret(str(raised.value), [pg.password], "the error")


def test_the_service_opens_the_store_its_url_names(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chat_oauth2_nb.hub.router import BROKER_STORE_ENV, _broker_store
    from chat_oauth2_nb.store.postgres import PostgresStore

    monkeypatch.setenv(BROKER_STORE_ENV, url)
    opener = _broker_store(b"\x01" * 32)
    assert opener is not None
    store = opener()
    assert isinstance(store, PostgresStore) and opener() is store  # one per process
    assert "***" in repr(store) and url.split(":")[2].split("@")[0] not in repr(store)
    store.close_all()

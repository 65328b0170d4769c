"""Resource indicators (RFC 8707) and per-scope tokens, end to end against the demo provider.

A real azure-core pipeline (``BearerTokenCredentialPolicy``, sync and async) calls two tiny
resource servers on 127.0.0.1, each of which accepts only tokens issued for it (it asks the
provider, as a resource server does by introspection). One sign-in gives a token per
resource; a claims challenge gets a new token; an older store keeps its tokens.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from azure.core import AsyncPipelineClient, PipelineClient
from azure.core.pipeline.policies import (
    AsyncBearerTokenCredentialPolicy,
    BearerTokenCredentialPolicy,
)
from azure.core.rest import HttpRequest
from support.scan import assert_no_secret

from chat_oauth2_nb import OAuth2Client
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.oauth import AuthData
from chat_oauth2_nb.store import Store

Make = Callable[..., OAuth2Client]
GRAPH = "https://graph.example"
STORAGE = "https://storage.example"
GRAPH_SCOPE = f"{GRAPH}/.default"
STORAGE_SCOPE = f"{STORAGE}/.default"
CLAIMS = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}'


class ResourceServer:
    """An API on 127.0.0.1 that accepts only active tokens whose audience is ``audience``.

    With ``challenge`` set, the first token it accepts is answered once with a claims
    challenge (Entra's continuous access evaluation) and refused from then on.
    """

    def __init__(self, provider: DemoProvider, audience: str) -> None:
        self.provider = provider
        self.audience = audience
        self.challenge = False
        self.challenged: set[str] = set()
        self.seen: list[str] = []
        self.accepted: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers = server.answer(self.headers.get("Authorization") or "")
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, authorization: str) -> tuple[int, list[tuple[str, str]]]:
        token = authorization.removeprefix("Bearer ")
        self.seen.append(token)
        claims = self.provider.introspect(token)
        refused = [("WWW-Authenticate", 'Bearer error="invalid_token"')]
        if not claims.get("active") or self.audience not in claims.get("aud", []):
            return 401, refused
        if token in self.challenged:
            return 401, refused
        if self.challenge:
            self.challenge = False
            self.challenged.add(token)
            encoded = base64.urlsafe_b64encode(CLAIMS.encode()).decode().rstrip("=")
            challenge = f'Bearer realm="", error="insufficient_claims", claims="{encoded}"'
            return 401, [("WWW-Authenticate", challenge)]
        self.accepted.append(token)
        return 200, []

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers(provider: DemoProvider) -> Iterator[dict[str, ResourceServer]]:
    made = {GRAPH: ResourceServer(provider, GRAPH), STORAGE: ResourceServer(provider, STORAGE)}
    yield made
    for server in made.values():
        server.stop()


@pytest.fixture
def signed_in(authorized: Make, provider: DemoProvider) -> OAuth2Client:
    """One sign-in that consents to both resources; its own token is for Graph (RFC 8707)."""
    config = {**provider.config(alias="demo"), "defaultScopes": [GRAPH_SCOPE, STORAGE_SCOPE]}
    return authorized(config=config, resource=GRAPH)


def get(scope: str, client: OAuth2Client, url: str) -> int:
    policy = BearerTokenCredentialPolicy(client.azure_credential("ada"), scope)
    pipeline: PipelineClient[Any, Any] = PipelineClient(url, policies=[policy])
    with pipeline:
        answer = pipeline.send_request(HttpRequest("GET", url), enforce_https=False)
    return int(answer.status_code)


def resource_rows(store: Store) -> dict[str, int]:
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT resource, version FROM resource_tokens").fetchall()
    db.close()
    return dict(rows)


def test_the_authorization_and_token_requests_name_the_resource(
    signed_in: OAuth2Client, provider: DemoProvider, store: Store
) -> None:
    url = str(signed_in.get_user_authorization_url("bob"))
    if not url.startswith(provider.issuer):  # a start link: it redirects to the provider
        url = httpx.get(url, follow_redirects=False).headers["Location"]
    assert parse_qs(urlsplit(url).query)["resource"] == [GRAPH]
    exchange = [e for e in signed_in.http_log if "authorization_code" in e.request_body][-1]
    assert "resource=https%3A%2F%2Fgraph.example" in exchange.request_body
    token = signed_in.get_access_token_for_user("ada")
    assert token is not None and token.resource == GRAPH
    assert provider.introspect(token.token)["aud"] == [GRAPH]
    assert token.scopes == (GRAPH_SCOPE,)  # one resource per access token


def test_azure_core_gets_a_token_per_scope_from_one_sign_in(
    signed_in: OAuth2Client,
    provider: DemoProvider,
    store: Store,
    servers: dict[str, ResourceServer],
) -> None:
    own = signed_in.get_access_token_for_user("ada")
    assert own is not None
    assert get(GRAPH_SCOPE, signed_in, servers[GRAPH].url) == 200
    assert servers[GRAPH].accepted == [own.token]  # the grant's own token serves Graph
    assert provider.token_requests["refresh_token"] == 0
    assert get(STORAGE_SCOPE, signed_in, servers[STORAGE].url) == 200
    storage = servers[STORAGE].accepted[0]
    assert storage != own.token and provider.introspect(storage)["aud"] == [STORAGE]
    assert provider.token_requests["refresh_token"] == 1
    # Kept apart, per resource: asked again, no new request; the grant's token is unchanged.
    assert get(STORAGE_SCOPE, signed_in, servers[STORAGE].url) == 200
    assert provider.token_requests["refresh_token"] == 1
    assert resource_rows(store) == {STORAGE: 1}
    kept = store.get_resource_token("demo", "ada", STORAGE)
    assert kept is not None and kept.data.token == storage and kept.data.refresh_token is None
    after = signed_in.get_access_token_for_user("ada")
    assert after is not None and after.token == own.token
    # The Graph token is no good at Storage, nor the other way round.
    assert get_with_token(servers[STORAGE].url, own.token) == 401
    assert get_with_token(servers[GRAPH].url, storage) == 401
    # The refresh token rotated with the Storage refresh, and the grant kept the new one.
    grant = store.get_token("demo", "ada")
    assert grant is not None and grant.data.refresh_token != own.refresh_token
    fresh = signed_in.refresh_user_access_token("ada")
    assert fresh.resource == GRAPH


def get_with_token(url: str, token: str) -> int:
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_claims_challenge_gets_a_new_token(
    signed_in: OAuth2Client, provider: DemoProvider, servers: dict[str, ResourceServer]
) -> None:
    storage = servers[STORAGE]
    assert get(STORAGE_SCOPE, signed_in, storage.url) == 200
    first = storage.accepted[-1]
    storage.challenge = True
    provider_calls = provider.token_requests["refresh_token"]
    # A new pipeline: the policy asks the credential, gets the kept token, is challenged.
    assert get(STORAGE_SCOPE, signed_in, storage.url) == 200
    assert storage.challenged == {first}
    assert storage.accepted[-1] != first
    assert provider.token_requests["refresh_token"] == provider_calls + 1
    refresh = [e for e in signed_in.http_log if "refresh_token" in e.request_body][-1]
    assert "claims=" in refresh.request_body  # the challenge's claims went to the provider
    kept = signed_in.get_access_token_for_resource("ada", resource=STORAGE)
    assert kept is not None and kept.token == storage.accepted[-1]


def test_the_async_credential_in_an_async_pipeline(
    signed_in: OAuth2Client, servers: dict[str, ResourceServer]
) -> None:
    async def call(scope: str, url: str) -> int:
        async with signed_in.azure_async_credential("ada") as credential:
            policy = AsyncBearerTokenCredentialPolicy(credential, scope)
            pipeline: AsyncPipelineClient[Any, Any] = AsyncPipelineClient(url, policies=[policy])
            async with pipeline:
                answer = await pipeline.send_request(HttpRequest("GET", url), enforce_https=False)
                return int(answer.status_code)

    assert asyncio.run(call(STORAGE_SCOPE, servers[STORAGE].url)) == 200
    assert asyncio.run(call(GRAPH_SCOPE, servers[GRAPH].url)) == 200
    servers[STORAGE].challenge = True
    assert asyncio.run(call(STORAGE_SCOPE, servers[STORAGE].url)) == 200
    assert len(set(servers[STORAGE].accepted)) == 2


def test_a_new_sign_in_drops_the_tokens_of_the_grant_it_replaces(
    signed_in: OAuth2Client, provider: DemoProvider, store: Store
) -> None:
    assert signed_in.get_access_token_for_resource("ada", scopes=[STORAGE_SCOPE]) is not None
    assert resource_rows(store) == {STORAGE: 1}
    url = signed_in.get_user_authorization_url("ada")
    assert provider.approve(url).status_code == 200
    signed_in.wait_for_authorization("ada", timeout=60)
    assert resource_rows(store) == {}
    assert signed_in.revoke_user_access_token("ada") is True


def test_an_older_store_keeps_its_tokens(tmp_path: Path) -> None:
    """A store written before resource_tokens existed opens with its tokens, and gets the table."""
    path = tmp_path / "old" / "store.sqlite3"
    Store(path)  # made by this version, then turned into the version-2 schema it replaces
    data = AuthData(token="old-token-0123456789", refresh_token="old-refresh-0123456789")
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE resource_tokens")
        db.execute(
            "INSERT INTO tokens (alias, user, data, version, updated_at, provider) "
            "VALUES ('demo', 'ada', ?, 3, 1.0, NULL)",
            (data.to_json(),),
        )
        db.execute("PRAGMA user_version = 2")
    db.close()
    reopened = Store(path)
    record = reopened.get_token("demo", "ada")
    assert record is not None and record.data.token == data.token and record.version == 3
    assert record.data.refresh_token == data.refresh_token and record.data.resource == ""
    reopened.put_resource_token("demo", "ada", STORAGE, AuthData(token="storage-0123456789"))
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    db.close()
    kept = reopened.get_resource_token("demo", "ada", STORAGE)
    assert kept is not None and kept.data.token == "storage-0123456789"


def test_a_sealed_resource_token_cannot_be_moved_to_another_resource(tmp_path: Path) -> None:
    from chat_oauth2_nb.errors import StoreError
    from chat_oauth2_nb.store import new_store_key

    store = Store(tmp_path / "sealed" / "store.sqlite3", key=new_store_key())
    store.put_resource_token("demo", "ada", STORAGE, AuthData(token="storage-0123456789"))
    with sqlite3.connect(store.path) as db:
        raw = db.execute("SELECT data FROM resource_tokens").fetchone()[0]
        assert "storage-0123456789" not in raw
        db.execute("UPDATE resource_tokens SET resource = ?", (GRAPH,))
    db.close()
    with pytest.raises(StoreError):
        store.get_resource_token("demo", "ada", GRAPH)


def test_no_token_of_any_resource_in_logs_or_reprs(
    signed_in: OAuth2Client,
    provider: DemoProvider,
    store: Store,
    servers: dict[str, ResourceServer],
    secret_log: Any,
) -> None:
    assert get(STORAGE_SCOPE, signed_in, servers[STORAGE].url) == 200
    credential = signed_in.azure_credential("ada")
    memory = provider._store
    with memory.lock:
        secrets = list(memory.tokens)
    text = secret_log.text + repr(list(signed_in.http_log)) + repr(credential)
    text += repr(store.get_resource_token("demo", "ada", STORAGE))
    assert len(secrets) >= 4
    assert_no_secret(text, secrets, "logs and reprs")
    assert json.dumps(resource_rows(store))  # the rows exist (and hold no secret in the key)


def test_an_older_postgres_store_keeps_its_tokens() -> None:
    """The hub's PostgreSQL store: an older schema gains resource tokens, its tokens stay."""
    import psycopg
    from support.postgres import postgres_server

    from chat_oauth2_nb.store import new_store_key
    from chat_oauth2_nb.store.postgres import PostgresStore

    key = new_store_key()
    with postgres_server() as server:
        url = server.new_database()
        old = PostgresStore(url, key=key)
        data = AuthData(token="old-token-0123456789", refresh_token="old-refresh-0123456789")
        written = old.put_token("demo", "ada", data, provider="https://op.example")
        assert written is not None
        old.close_all()
        with psycopg.connect(url, autocommit=True) as db:  # the schema before this change
            db.execute("DROP TABLE chat_oauth2_resource_tokens")
        store = PostgresStore(url, key=key)
        try:
            record = store.get_token("demo", "ada")
            assert record is not None and record.data.token == data.token
            assert record.version == written.version and record.data.refresh_token
            kept = AuthData(token="storage-0123456789")
            store.put_resource_token("demo", "ada", STORAGE, kept, provider="https://op.example")
            again = store.get_resource_token("demo", "ada", STORAGE)
            assert again is not None and again.data.token == kept.token
            assert again.data.resource == STORAGE and again.data.refresh_token is None
            # Moved to another resource's row, the sealed token no longer opens.
            with psycopg.connect(url, autocommit=True) as db:
                db.execute("UPDATE chat_oauth2_resource_tokens SET resource = %s", (GRAPH,))
            from chat_oauth2_nb.errors import StoreError

            with pytest.raises(StoreError):
                store.get_resource_token("demo", "ada", GRAPH)
            # Deleting the grant deletes its tokens for other resources too.
            assert store.delete_token("demo", "ada") is True
            with psycopg.connect(url, autocommit=True) as db:
                left = db.execute("SELECT count(*) FROM chat_oauth2_resource_tokens").fetchone()
            assert left is not None and left[0] == 0
        finally:
            store.close_all()

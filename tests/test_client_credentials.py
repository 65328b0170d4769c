"""The client credentials grant (RFC 6749 §4.4): a token with no person and no redirect.

Against the demo provider and oidc-provider: cached until it expires, renewed by one
process for all (the store's lease), the same typed errors as the other grants.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.oidc import DEFAULT_SECRET, OidcProvider, client, start_oidc_provider
from support.wait import wait_until

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.errors import ConfigurationError, TokenRefreshError
from chat_oauth2_nb.notebook.client import (
    CLIENT_CREDENTIALS_USER,
    OAuth2Client,
    create_oauth2_client,
)
from chat_oauth2_nb.store import Store

API = "https://api.example/"


@pytest.fixture
def op(tmp_path: Path) -> Iterator[OidcProvider]:
    """oidc-provider with a client allowed only the client credentials grant, short tokens."""
    machine = client("machine", grant_types=["client_credentials"], redirect_uris=[])
    provider = start_oidc_provider(
        tmp_path / "op",
        {
            "clients": [machine],
            "ttl": {"ClientCredentials": 4},
            "resources": {API: {"scope": "api:read", "ttl": 4}},
        },
    )
    yield provider
    provider.stop()


def _machine(op: OidcProvider, store: Store, **kwargs: Any) -> OAuth2Client:
    config = op.client_config("machine", scopes=())
    kwargs.setdefault("client_secret", DEFAULT_SECRET)
    return create_oauth2_client(
        config,
        client_id="machine",
        grant="client_credentials",
        store=store,
        allow_insecure_http=True,
        **kwargs,
    )


def test_demo_provider_token_with_no_person(
    provider: DemoProvider, store: Store, secret_log: Any
) -> None:
    client = create_oauth2_client(
        {**provider.config(alias="batch"), "grant": "client_credentials"},
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        store=store,
    )
    try:
        data = client.get_access_token_for_user()
        assert data is not None and data.refresh_token is None
        assert data.token_type.lower() == "bearer" and data.expires_in() is not None
        # Cached: the same token, no second request.
        assert client.get_access_token_for_user() == data
        assert client.get_access_token_for_user("anyone") == data
        asked = [e for e in client.http_log if "grant_type=client_credentials" in e.request_body]
        assert len(asked) == 1 and provider.client_secret not in repr(asked)
        # The API sees the client itself as the subject.
        me = httpx.get(provider.api_url, auth=client.auth())
        assert me.status_code == 200 and me.json()["user"] == provider.client_id
        assert store.get_token("batch", CLIENT_CREDENTIALS_USER) is not None
        assert provider.introspect(data.token)["active"] is True
        # No person authorizes this client: a link makes no sense and says what to call.
        with pytest.raises(ConfigurationError, match="client_credentials"):
            client.get_user_authorization_url()
        assert client.revoke_user_access_token() is True
        assert provider.introspect(data.token)["active"] is False
        assert data.token not in secret_log.text
    finally:
        client.close()


def test_demo_provider_renews_when_expired(provider: DemoProvider, store: Store) -> None:
    provider.set_token_lifetime(4)
    client = create_oauth2_client(
        provider.config(alias="batch"),
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        grant="client_credentials",
        store=store,
    )
    try:
        first = client.get_access_token_for_user()
        assert first is not None
        renewed: list[Any] = []

        def new_token() -> bool:
            data = client.get_access_token_for_user()
            renewed.append(data)
            return data is not None and data.token != first.token

        wait_until(new_token, "a renewed client credentials token", timeout=60, interval=0.2)
        assert renewed[-1].expires_in() > 0
        assert httpx.get(provider.api_url, auth=client.auth()).status_code == 200
    finally:
        client.close()


def test_a_public_client_cannot_use_it(provider: DemoProvider) -> None:
    with pytest.raises(ConfigurationError, match="needs a client that authenticates"):
        create_oauth2_client(
            provider.config(),
            client_id="x",
            client_auth_method="none",
            grant="client_credentials",
        )
    with pytest.raises(ConfigurationError, match="grant"):
        create_oauth2_client(provider.config(), client_id="x", client_secret="y", grant="implicit")


def test_oidc_provider_wrong_secret_is_a_typed_error(op: OidcProvider, store: Store) -> None:
    machine = _machine(op, store, client_secret="not-the-secret-0123456789abcdef0123")
    try:
        with pytest.raises(TokenRefreshError) as caught:
            machine.get_access_token_for_user()
        assert caught.value.error == "invalid_client" and caught.value.status_code in (400, 401)
        assert "client credentials" in caught.value.message
        assert "not-the-secret" not in str(caught.value)
        assert store.get_token("machine", CLIENT_CREDENTIALS_USER) is None
    finally:
        machine.close()


def test_oidc_provider_auth_and_renewal(op: OidcProvider, store: Store) -> None:
    machine = _machine(op, store)
    try:
        data = machine.get_access_token_for_user()
        assert data is not None and data.refresh_token is None
        assert op.counters()["tokens"] == {"client_credentials:200": 1}
        assert machine.get_access_token_for_user() == data
        assert op.counters()["tokens"] == {"client_credentials:200": 1}
        # RFC 7662: the provider says the token is the client's, active.
        info = machine.introspect_user_token()
        assert info["active"] is True and info["client_id"] == "machine"

        def renewed() -> bool:
            fresh = machine.get_access_token_for_user()
            return fresh is not None and fresh.token != data.token

        wait_until(renewed, "a renewed token", timeout=60, interval=0.2)
        assert op.counters()["tokens"] == {"client_credentials:200": 2}
        assert op.counters()["logins"] == 0 and op.counters()["consent_pages"] == 0
    finally:
        machine.close()


_WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from chat_oauth2_nb.config import discover_config
    from chat_oauth2_nb.notebook.client import create_oauth2_client
    from chat_oauth2_nb.store import Store

    issuer, store_path, go = sys.argv[1:4]
    client = create_oauth2_client(
        discover_config(issuer, alias="machine"),
        client_id="machine",
        client_secret=os.environ["OP_SECRET"],
        grant="client_credentials",
        store=Store(Path(store_path)),
        allow_insecure_http=True,
    )
    while not Path(go).exists():
        time.sleep(0.01)
    print(client.get_access_token_for_user().expires_in() > 0)
    client.close()
    """
)


def test_oidc_provider_one_request_for_many_processes(
    op: OidcProvider, store: Store, tmp_path: Path
) -> None:
    """Four processes want the token at once: the provider is asked once, each time it expires."""
    go = tmp_path / "go"
    env = {**os.environ, "OP_SECRET": DEFAULT_SECRET}

    def run_four() -> None:
        go.unlink(missing_ok=True)
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", _WORKER, op.issuer, str(store.path), str(go)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(4)
        ]
        go.touch()
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            assert out.strip() == "True"

    run_four()
    assert op.counters()["tokens"] == {"client_credentials:200": 1}
    first = store.get_token("machine", CLIENT_CREDENTIALS_USER)
    assert first is not None

    def expired() -> bool:
        return first.data.is_expired(30)

    wait_until(expired, "the token to go stale", timeout=60, interval=0.2)
    run_four()
    assert op.counters()["tokens"] == {"client_credentials:200": 2}

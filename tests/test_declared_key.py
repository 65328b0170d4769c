"""A provider declared on the Jupyter server with a private key instead of a secret.

The server reads the key file its environment names, then drops the variable: kernels get
tokens through the server (client credentials here: a scheduled notebook on a shared
server), and neither the key nor its path reaches them.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey
from support.oidc import OidcProvider, client, start_oidc_provider
from support.scan import assert_no_secret

from chat_oauth2_nb import create_oauth2_client, providers
from chat_oauth2_nb.config import discover_config
from chat_oauth2_nb.lifecycle.remote import RemoteGrants

KEY_ENV = "CHAT_OAUTH2_NIGHTLY_CLIENT_KEY_FILE"


@pytest.fixture
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ECKey]:
    made = ECKey.generate_key("P-256")
    path = tmp_path_factory.mktemp("keys") / "nightly.pem"
    path.write_bytes(made.as_pem(private=True))
    path.chmod(0o600)
    return path, made


@pytest.fixture
def op(key: tuple[Path, ECKey], tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    public = {**key[1].as_dict(private=False), "kid": key[1].thumbprint(), "alg": "ES256"}
    machine = client(
        "nightly-client",
        auth_method="private_key_jwt",
        jwks={"keys": [public]},
        grant_types=["client_credentials"],
        redirect_uris=[],
    )
    provider = start_oidc_provider(tmp_path_factory.mktemp("op"), {"clients": [machine]})
    yield provider
    provider.stop()


@pytest.fixture
def jp_server_config(
    op: OidcProvider, key: tuple[Path, ECKey], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    monkeypatch.setenv(KEY_ENV, str(key[0]))
    declaration = {
        **discover_config(op.issuer, alias="nightly"),
        "clientId": "nightly-client",
        "grant": "client_credentials",
    }
    return {
        "ServerApp": {"jpserver_extensions": {"chat_oauth2_nb": True}},
        "ChatOAuth2App": {"providers": {"nightly": declaration}},
    }


async def test_kernels_get_the_clients_token_without_its_key(
    jp_serverapp: Any, http_server_client: Any, op: OidcProvider, key: tuple[Path, ECKey]
) -> None:
    listed = await asyncio.to_thread(providers)
    assert listed["nightly"]["client_id"] == "nightly-client"
    client = await asyncio.to_thread(create_oauth2_client, "nightly")
    try:
        assert isinstance(client.grants, RemoteGrants)
        assert client.config.grant == "client_credentials"
        assert client.config.client_secret is None and client.config.client_key_source is None
        data = await client.aget_access_token_for_user()
        assert data is not None and data.refresh_token is None
        assert op.counters()["tokens"] == {"client_credentials:200": 1}
        # Fresh: read from the kernel's store, no request to the server or the provider.
        assert await client.aget_access_token_for_user() == data
        assert op.counters()["tokens"] == {"client_credentials:200": 1}
        pem = key[0].read_text()
        body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
        seen = "\n".join(
            [repr(client), repr(client.config), json.dumps(listed), repr(data)]
            + [json.dumps(exchange.__dict__, default=str) for exchange in client.http_log]
        )
        assert_no_secret(seen, [pem, body], "the kernel side")
        # The server took the variable out of its environment: kernels never inherit it.
        assert KEY_ENV not in os.environ
    finally:
        client.close()

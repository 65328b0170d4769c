"""The client against an independent OpenID provider (oidc-provider, node), end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from support.oidc import DEFAULT_SECRET, OidcProvider, client, start_oidc_provider

from chat_oauth2_nb.notebook.client import OAuth2Client, create_oauth2_client
from chat_oauth2_nb.store import Store


@pytest.fixture
def remembering(tmp_path: Path) -> Iterator[OidcProvider]:
    """oidc-provider that shows a native client's consent page only for what is new."""
    provider = start_oidc_provider(
        tmp_path / "op", {"clients": [client()], "native_consent": "remembered"}
    )
    yield provider
    provider.stop()


@pytest.fixture
def op_client(remembering: OidcProvider, store: Store) -> Iterator[OAuth2Client]:
    made = create_oauth2_client(
        remembering.client_config("op", scopes=("openid", "profile")),
        client_id="op-client",
        client_secret=DEFAULT_SECRET,
        mode="loopback",
        store=store,
        allow_insecure_http=True,
    )
    yield made
    made.close()


def _introspect(provider: OidcProvider, token: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{provider.issuer}/token/introspection",
        data={"token": token},
        auth=("op-client", DEFAULT_SECRET),
        trust_env=False,
    )
    answer.raise_for_status()
    return dict(answer.json())


def test_code_pkce_refresh_revoke(remembering: OidcProvider, op_client: OAuth2Client) -> None:
    """Authorize through the loopback, sign in and consent at oidc-provider, refresh, revoke."""
    oidc_provider = remembering
    link = op_client.get_user_authorization_url("ada")
    assert urlsplit(link).hostname == "127.0.0.1"
    page = oidc_provider.approve(link, "ada")
    assert page.status_code == 200, page.text[:500]
    data = op_client.wait_for_authorization("ada", timeout=60)
    assert data.token and data.refresh_token and data.token_type.lower() == "bearer"
    assert data.claims is not None and data.claims["sub"] == "ada"
    assert data.claims["iss"] == oidc_provider.issuer
    assert _introspect(oidc_provider, data.token)["active"] is True
    counted = oidc_provider.counters()
    assert counted["logins"] == 1 and counted["consents"] == 1
    assert counted["tokens"] == {"authorization_code:200": 1}

    refreshed = op_client.refresh_user_access_token("ada")
    assert refreshed.token != data.token and refreshed.refresh_token != data.refresh_token
    assert _introspect(oidc_provider, data.refresh_token or "")["active"] is False  # rotated

    # Ada signs in again in the same browser for the same scopes: no login, no consent page.
    again = op_client.get_user_authorization_url("ada")
    assert oidc_provider.approve(again, "ada").status_code == 200
    op_client.wait_for_authorization("ada", timeout=60)
    counted = oidc_provider.counters()
    assert counted["logins"] == 1 and counted["consent_pages"] == 1
    assert counted["tokens"]["authorization_code:200"] == 2

    assert op_client.revoke_user_access_token("ada") is True
    assert _introspect(oidc_provider, refreshed.token)["active"] is False
    assert _introspect(oidc_provider, refreshed.refresh_token or "")["active"] is False
    assert op_client.get_access_token_for_user("ada") is None

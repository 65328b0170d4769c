"""Presets: every URL pinned (a changed endpoint is a deliberate, reviewed change)."""

from __future__ import annotations

from typing import Any

import pytest

from chat_oauth2_nb import ConfigurationError, create_oauth2_client
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.presets import PRESETS, config
from chat_oauth2_nb.store import Store

MS = "https://login.microsoftonline.com"

PINNED: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "google": (
        {},
        {
            "authUri": "https://accounts.google.com/o/oauth2/v2/auth",
            "accessTokenUri": "https://oauth2.googleapis.com/token",
            "refreshTokenUri": "https://oauth2.googleapis.com/token",
            "revokeTokenUri": "https://oauth2.googleapis.com/revoke",
            "revokeStyle": "google",
            "deviceAuthorizationUri": "https://oauth2.googleapis.com/device/code",
            "issuer": "https://accounts.google.com",
            "acceptedIssuers": ["accounts.google.com"],
            "jwksUri": "https://www.googleapis.com/oauth2/v3/certs",
            "defaultScopes": ["openid", "email"],
            "authUriParams": {"access_type": "offline", "prompt": "consent"},
            "clientAuthMethod": "client_secret_post",
            "revokeUrlForPeople": "https://myaccount.google.com/connections",
        },
    ),
    "github": (
        {},
        {
            "authUri": "https://github.com/login/oauth/authorize",
            "accessTokenUri": "https://github.com/login/oauth/access_token",
            "refreshTokenUri": "https://github.com/login/oauth/access_token",
            "revokeTokenUri": "https://api.github.com/applications/{client_id}/token",
            "revokeStyle": "github",
            "deviceAuthorizationUri": "https://github.com/login/device/code",
            "defaultScopes": ["read:user"],
            "clientAuthMethod": "client_secret_post",
            "revokeUrlForPeople": "https://github.com/settings/applications",
        },
    ),
    "microsoft": (
        {},
        {
            "authUri": f"{MS}/organizations/oauth2/v2.0/authorize",
            "accessTokenUri": f"{MS}/organizations/oauth2/v2.0/token",
            "refreshTokenUri": f"{MS}/organizations/oauth2/v2.0/token",
            "deviceAuthorizationUri": f"{MS}/organizations/oauth2/v2.0/devicecode",
            "jwksUri": f"{MS}/organizations/discovery/v2.0/keys",
            "defaultScopes": ["offline_access", "User.Read"],
            "clientAuthMethod": "client_secret_post",
            "revokeUrlForPeople": "https://myapplications.microsoft.com/",
        },
    ),
    "microsoft-tenant": (
        {"tenant": "contoso.onmicrosoft.com"},
        {
            "authUri": f"{MS}/contoso.onmicrosoft.com/oauth2/v2.0/authorize",
            "accessTokenUri": f"{MS}/contoso.onmicrosoft.com/oauth2/v2.0/token",
            "refreshTokenUri": f"{MS}/contoso.onmicrosoft.com/oauth2/v2.0/token",
            "deviceAuthorizationUri": f"{MS}/contoso.onmicrosoft.com/oauth2/v2.0/devicecode",
            "jwksUri": f"{MS}/contoso.onmicrosoft.com/discovery/v2.0/keys",
            "issuer": f"{MS}/contoso.onmicrosoft.com/v2.0",
            "defaultScopes": ["offline_access", "User.Read"],
            "clientAuthMethod": "client_secret_post",
            "revokeUrlForPeople": "https://myapplications.microsoft.com/",
        },
    ),
    "gitlab": (
        {},
        {
            "authUri": "https://gitlab.com/oauth/authorize",
            "accessTokenUri": "https://gitlab.com/oauth/token",
            "refreshTokenUri": "https://gitlab.com/oauth/token",
            "revokeTokenUri": "https://gitlab.com/oauth/revoke",
            "deviceAuthorizationUri": "https://gitlab.com/oauth/authorize_device",
            "issuer": "https://gitlab.com",
            "jwksUri": "https://gitlab.com/oauth/discovery/keys",
            "defaultScopes": ["read_user"],
            "clientAuthMethod": "client_secret_post",
            "revokeUrlForPeople": "https://gitlab.com/-/user_settings/applications",
        },
    ),
    "keycloak": (
        {"base_url": "https://sso.example.org/", "realm": "lab"},
        {
            "authUri": "https://sso.example.org/realms/lab/protocol/openid-connect/auth",
            "accessTokenUri": "https://sso.example.org/realms/lab/protocol/openid-connect/token",
            "refreshTokenUri": "https://sso.example.org/realms/lab/protocol/openid-connect/token",
            "revokeTokenUri": "https://sso.example.org/realms/lab/protocol/openid-connect/revoke",
            "deviceAuthorizationUri": (
                "https://sso.example.org/realms/lab/protocol/openid-connect/auth/device"
            ),
            "issuer": "https://sso.example.org/realms/lab",
            "jwksUri": "https://sso.example.org/realms/lab/protocol/openid-connect/certs",
            "defaultScopes": ["openid"],
            "clientAuthMethod": "client_secret_basic",
        },
    ),
    "rocketchat": (
        {"server_url": "https://chat.example.org"},
        {
            "authUri": "https://chat.example.org/oauth/authorize",
            "accessTokenUri": "https://chat.example.org/oauth/token",
            "refreshTokenUri": "https://chat.example.org/oauth/token",
            "defaultScopes": [],
            "clientAuthMethod": "client_secret_post",
        },
    ),
}


@pytest.mark.parametrize("case", sorted(PINNED))
def test_every_preset_url_is_pinned(case: str) -> None:
    params, expected = PINNED[case]
    name = case.split("-")[0]
    assert config(name, **params) == {"alias": name, **expected}


def test_every_preset_is_pinned_or_discovered() -> None:
    assert {case.split("-")[0] for case in PINNED} | {"oidc"} == set(PRESETS)


def test_create_client_from_a_preset_name(store: Store) -> None:
    client = create_oauth2_client(
        "microsoft", client_id="app", client_secret="s3cret-value", tenant="contoso", store=store
    )
    assert client.alias == "microsoft"
    assert client.config.issuer == f"{MS}/contoso/v2.0"
    assert client.config.revoke_token_uri is None
    assert client.config.client_auth_method == "client_secret_post"
    other = create_oauth2_client(
        "gitlab", alias="work-gitlab", base_url="https://git.example.org", client_id="a",
        client_secret="b", store=store,
    )  # fmt: skip
    assert other.alias == "work-gitlab"
    assert other.config.auth_uri == "https://git.example.org/oauth/authorize"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: config("facebook"), "config"),
        (lambda: config("google", tenant="x"), "tenant"),
        (lambda: config("keycloak", base_url="https://sso.example.org"), "realm"),
        (lambda: config("keycloak", base_url="https://sso.example.org", realm="a/b"), "realm"),
        (lambda: config("rocketchat"), "server_url"),
        (lambda: config("gitlab", base_url="gitlab.example.org"), "base_url"),
        (lambda: create_oauth2_client({"alias": "x"}, tenant="t"), "tenant"),
    ],
)
def test_bad_preset_use_says_what_to_do(call: Any, field: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        call()
    assert caught.value.field == field
    assert caught.value.hint


def test_oidc_preset_discovers_the_issuer(provider: DemoProvider) -> None:
    data = config("oidc", issuer=provider.issuer, alias="lab")
    assert data["alias"] == "lab"
    assert data["issuer"] == provider.issuer
    assert data["accessTokenUri"] == f"{provider.issuer}/token"
    assert data["jwksUri"] == f"{provider.issuer}/jwks.json"
    assert data["defaultScopes"] == ["openid"]

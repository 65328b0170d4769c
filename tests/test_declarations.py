"""Declarations as an administrator writes them: seed dicts or presets, credentials from the env."""

from __future__ import annotations

import pytest

from chat_oauth2_nb.declarations import public_part, resolve_declarations, secret_variables
from chat_oauth2_nb.errors import ConfigurationError


def test_a_preset_declaration_takes_its_credentials_from_the_environment() -> None:
    env = {"CHAT_OAUTH2_GOOGLE_CLIENT_ID": "id-1", "CHAT_OAUTH2_GOOGLE_CLIENT_SECRET": "s3cr3t"}
    declared = resolve_declarations({"google": {"preset": "google"}}, env)
    config = declared["google"]
    assert config.alias == "google" and config.client_id == "id-1"
    assert config.client_secret == "s3cr3t"
    assert "s3cr3t" not in repr(public_part(config))
    assert secret_variables(declared) == [
        "CHAT_OAUTH2_GOOGLE_CLIENT_SECRET",
        "CHAT_OAUTH2_GOOGLE_CLIENT_KEY",
        "CHAT_OAUTH2_GOOGLE_CLIENT_KEY_FILE",
    ]


def test_preset_parameters_and_overrides_in_one_declaration() -> None:
    declared = resolve_declarations(
        {
            "work": {
                "preset": "microsoft",
                "tenant": "contoso.onmicrosoft.com",
                "clientId": "id-2",
                "clientSecret": "x",
                "defaultScopes": ["openid", "offline_access"],
            }
        },
        {},
    )
    config = declared["work"]
    assert "contoso.onmicrosoft.com" in config.auth_uri
    assert config.default_scopes == ("openid", "offline_access")


@pytest.mark.parametrize(
    ("declared", "words"),
    [
        ({"google": {"preset": "google"}}, "CHAT_OAUTH2_GOOGLE_CLIENT_ID"),
        ({"google": {"preset": "google", "clientId": "i"}}, "CHAT_OAUTH2_GOOGLE_CLIENT_SECRET"),
        ({"../x": {"preset": "google"}}, "letters, digits"),
        ({"a": {"preset": "google", "alias": "b"}}, "Leave 'alias' out"),
        ({"a": "google"}, "Give a dict"),
    ],
)
def test_a_bad_declaration_says_what_to_change(declared: dict, words: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigurationError) as info:
        resolve_declarations(declared, {})
    assert words in str(info.value)

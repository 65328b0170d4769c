"""A ProviderConfig is valid by construction: every way of building one checks its fields."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from chat_oauth2_nb.config import ProviderConfig
from chat_oauth2_nb.errors import ConfigurationError
from chat_oauth2_nb.store import Store

FIELDS: dict[str, Any] = {
    "alias": "g",
    "auth_uri": " https://a.example/auth ",
    "access_token_uri": "https://a.example/token",
    "refresh_token_uri": "",
    "client_id": "cid",
    "client_secret": "GOCSPX-not-a-real-secret",
}


def test_building_one_checks_and_normalises_the_fields() -> None:
    config = ProviderConfig(
        **{**FIELDS, "issuer": "https://a.example/", "default_scopes": "openid email"}
    )
    assert config.auth_uri == "https://a.example/auth"
    assert config.refresh_token_uri == config.access_token_uri
    # Issuers are compared as strings (RFC 8414 §3.3, RFC 9207 §2.4): kept exactly as given.
    assert config.issuer == "https://a.example/"
    assert config.default_scopes == ("openid", "email")
    public = ProviderConfig(**{**FIELDS, "client_auth_method": "none"})
    assert public.client_secret is None  # a public client keeps no secret


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"alias": "two words"}, "alias", "malformed"),
        ({"access_token_uri": "token"}, "accessTokenUri", "absolute"),
        ({"revoke_style": "rfc9999"}, "revokeStyle", "rfc9999"),
        ({"auth_uri_params": {"state": "x"}}, "authUriParams", "sets itself"),
        ({"client_id": ""}, "client_id", "missing"),
        ({"client_auth_method": "client_secret_jwt"}, "client_auth_method", "client_secret_jwt"),
    ],
)
def test_building_and_replacing_raise_what_from_mapping_raises(
    change: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ConfigurationError, match=words) as built:
        ProviderConfig(**{**FIELDS, **change})
    assert built.value.field == field
    good = ProviderConfig(**FIELDS)
    with pytest.raises(ConfigurationError, match=words) as replaced:
        dataclasses.replace(good, **change)
    assert str(replaced.value) == str(built.value)


def test_the_http_rule_travels_with_the_config_but_is_not_part_of_it() -> None:
    insecure = {**FIELDS, "auth_uri": "http://test-provider.example/auth"}
    with pytest.raises(ConfigurationError, match="plain http"):
        ProviderConfig(**insecure)
    config = ProviderConfig(**insecure, allow_insecure_http=True)
    assert "allow_insecure_http" not in config.to_mapping()
    assert config == dataclasses.replace(config, allow_insecure_http=True)
    assert config.checked(allow_insecure_http=True) is config  # checked once, trusted after
    with pytest.raises(ConfigurationError, match="plain http"):
        config.checked(allow_insecure_http=False)


def test_a_config_travels_without_its_secret_until_a_client_needs_it() -> None:
    travelling = ProviderConfig(**{**FIELDS, "client_secret": None})
    with pytest.raises(ConfigurationError, match="client_secret") as asked:
        travelling.checked(allow_insecure_http=False)
    with pytest.raises(ConfigurationError) as factory:
        ProviderConfig.from_mapping(travelling, environ={})
    assert str(asked.value) == str(factory.value)
    assert "GOCSPX" not in repr(ProviderConfig(**FIELDS))


def test_from_mapping_keeps_a_configs_callback() -> None:
    def callback(data: Any, user: Any) -> None:
        """Nothing to do."""

    config = ProviderConfig(**FIELDS, authorization_callback=callback)
    assert ProviderConfig.from_mapping(config).authorization_callback is callback


def test_the_store_reads_back_a_provider_registered_under_a_lenient_rule(store: Store) -> None:
    config = ProviderConfig(
        **{**FIELDS, "auth_uri": "http://test-provider.example/auth"}, allow_insecure_http=True
    )
    store.put_provider(config)
    assert store.get_provider("g") == config

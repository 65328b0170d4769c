"""configure_hub(c) on the Config object jupyterhub_config.py gets: what the hub will see."""

from __future__ import annotations

import pytest
from traitlets.config import Config

from chat_oauth2_nb import ConfigurationError
from chat_oauth2_nb.hub import configure_hub

ENV = "CHAT_OAUTH2_NB_HUB_CALLBACK_URL"
ACCESS = "access:services!service=chat-oauth2"


def test_public_url_and_base_url_give_the_hub_wide_uri() -> None:
    c = Config()
    c.JupyterHub.base_url = "/jh/"
    c.JupyterHub.public_url = "https://hub.example.org/jh/"
    base = configure_hub(c)
    assert base == "https://hub.example.org/jh/services/chat-oauth2/callback"
    assert c.Spawner.environment[ENV] == base
    (service,) = c.JupyterHub.services
    assert service["name"] == "chat-oauth2" and service["oauth_no_confirm"] is True
    assert service["command"][1:] == ["-m", "chat_oauth2_nb.hub"]
    assert {"name": "user", "scopes": ["self", ACCESS]} in c.JupyterHub.load_roles


def test_a_hub_behind_its_own_reverse_proxy() -> None:
    c = Config()
    c.JupyterHub.bind_url = "http://127.0.0.1:8000/jh/"
    c.JupyterHub.base_url = "/jh/"
    base = configure_hub(c, public_url="https://lab.example.org")
    assert base == "https://lab.example.org/jh/services/chat-oauth2/callback"


def test_existing_settings_are_kept() -> None:
    c = Config()
    c.JupyterHub.public_url = "https://hub.example.org/"
    c.Spawner.environment = {"KEEP": "1"}
    c.JupyterHub.services = [{"name": "other", "url": "http://127.0.0.1:9"}]
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "read:users"]}]
    configure_hub(c)
    configure_hub(c)  # twice: still one service, one scope
    assert c.Spawner.environment["KEEP"] == "1"
    assert [s["name"] for s in c.JupyterHub.services] == ["other", "chat-oauth2"]
    (user,) = c.JupyterHub.load_roles
    assert user["scopes"] == ["self", "read:users", ACCESS]


def test_an_unknown_public_address_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="public_url"):
        configure_hub(Config())  # binds all interfaces: no name a browser could use
    with pytest.raises(ConfigurationError, match="service_url"):
        configure_hub(Config(), public_url="https://hub.example.org/", managed=False)

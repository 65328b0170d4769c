"""configure_hub(c) on the Config object jupyterhub_config.py gets: what the hub will see."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from traitlets.config import Config

from chat_oauth2_nb import ConfigurationError
from chat_oauth2_nb.hub import configure_hub

ENV = "CHAT_OAUTH2_NB_HUB_CALLBACK_URL"
ACCESS = "access:services!service=chat-oauth2"


@pytest.fixture(autouse=True)
def _in_a_hub_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # configure_hub makes the hub secret in the hub's working directory.
    monkeypatch.chdir(tmp_path)


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
    user, server = c.JupyterHub.load_roles
    assert user["scopes"] == ["self", "read:users", ACCESS]
    assert server == {
        "name": "server",
        "scopes": ["users:activity!user", "access:servers!server", ACCESS],
    }


def test_servers_can_fetch_their_store_key_from_the_service(tmp_path: Path) -> None:
    c = Config()
    c.JupyterHub.base_url = "/jh/"
    c.JupyterHub.public_url = "https://hub.example.org/jh/"
    c.JupyterHub.load_roles = [{"name": "server", "scopes": ["access:servers!server"]}]
    configure_hub(c, port=10200)
    assert c.Spawner.environment["CHAT_OAUTH2_NB_HUB_KEY_URL"] == (
        "http://127.0.0.1:10200/jh/services/chat-oauth2/store-key"
    )
    server = next(r for r in c.JupyterHub.load_roles if r["name"] == "server")
    assert server["scopes"] == ["access:servers!server", ACCESS]
    # The hub-held secret: made once, 0600, and handed to the managed service by path.
    (service,) = c.JupyterHub.services
    secret = Path(service["environment"]["CHAT_OAUTH2_NB_HUB_SECRET_FILE"])
    assert secret == tmp_path / "chat_oauth2_nb_hub_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    first = secret.read_text()
    assert len(bytes.fromhex(first.strip())) == 32
    configure_hub(c, port=10200)  # the hub restarts: same secret, same keys
    assert secret.read_text() == first


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "shared_secret"
    secret.write_text(os.urandom(32).hex())
    secret.chmod(0o644)
    c = Config()
    c.JupyterHub.public_url = "https://hub.example.org/"
    with pytest.raises(ConfigurationError, match="chmod 600"):
        configure_hub(c, secret_file=secret)


def test_an_unknown_public_address_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="public_url"):
        configure_hub(Config())  # binds all interfaces: no name a browser could use
    with pytest.raises(ConfigurationError, match="service_url"):
        configure_hub(Config(), public_url="https://hub.example.org/", managed=False)

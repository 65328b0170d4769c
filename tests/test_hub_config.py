"""configure_hub(c) on the Config object jupyterhub_config.py gets: what the hub will see."""

from __future__ import annotations

import json
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
    # The hub runs in its directory; configure_hub keeps the hub secret in its user's config.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "hub-user-config"))


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
    # Away from the hub's directory (its database, the service's store, their backups).
    assert secret == tmp_path / "hub-user-config" / "chat_oauth2_nb" / "hub_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
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


def _declaration(secret: object) -> dict[str, object]:
    return {
        "authUri": "https://id.example.org/authorize",
        "accessTokenUri": "https://id.example.org/token",
        "refreshTokenUri": "https://id.example.org/token",
        "clientId": "the-client",
        "clientSecret": secret,
    }


def _files_text(folder: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("latin-1") for p in sorted(folder.rglob("*")) if p.is_file()
    )


def test_client_secrets_are_referenced_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounted = tmp_path / "run-secrets" / "kc"  # a Kubernetes Secret mount, a SOPS output
    mounted.parent.mkdir()
    mounted.write_text("file-Secret-123\n")
    monkeypatch.setenv("KC_SECRET", "env-Secret-456")
    (tmp_path / "hub").mkdir()
    monkeypatch.chdir(tmp_path / "hub")
    c = Config()
    c.JupyterHub.public_url = "https://hub.example.org/"
    configure_hub(
        c,
        providers={
            "kc": _declaration({"file": str(mounted)}),
            "env": _declaration({"env": "KC_SECRET"}),
            "inline": _declaration("inline-Secret-789"),
        },
    )
    configure_hub(c, providers={"kc": _declaration({"file": str(mounted)})})  # a restart
    # Nothing the hub wrote holds a secret: not the hub's directory, not its user's config.
    written = _files_text(tmp_path / "hub") + _files_text(tmp_path / "hub-user-config")
    for secret in ("file-Secret-123", "env-Secret-456", "inline-Secret-789"):
        assert secret not in written
    assert not (tmp_path / "hub" / "chat_oauth2_nb_providers.json").exists()
    assert "Secret" not in json.dumps(c.Spawner.environment)
    (service,) = c.JupyterHub.services
    entries = json.loads(service["environment"]["CHAT_OAUTH2_NB_BROKER_PROVIDERS"])
    assert entries["kc"]["client_secret"] == {"file": str(mounted)}


def test_the_service_resolves_each_reference_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chat_oauth2_nb.hub.router import load_declared

    mounted = tmp_path / "kc-secret"
    mounted.write_text("file-Secret-123\n")
    monkeypatch.setenv("KC_SECRET", "env-Secret-456")
    c = Config()
    c.JupyterHub.public_url = "https://hub.example.org/"
    configure_hub(
        c,
        providers={
            "kc": _declaration({"file": str(mounted)}),
            "env": _declaration({"env": "KC_SECRET"}),
            "inline": _declaration("inline-Secret-789"),
        },
    )
    (service,) = c.JupyterHub.services
    monkeypatch.delenv("KC_SECRET")
    for name, value in service["environment"].items():  # what the hub starts it with
        monkeypatch.setenv(name, value)
    mounted.write_text("rotated-Secret-000\n")  # read where it is kept, when it is used
    declared = load_declared()
    assert declared is not None
    assert declared.config_for("kc").client_secret == "rotated-Secret-000"
    assert declared.config_for("env").client_secret == "env-Secret-456"
    assert declared.config_for("inline").client_secret == "inline-Secret-789"


def test_a_missing_reference_names_what_to_set(tmp_path: Path) -> None:
    c = Config()
    c.JupyterHub.public_url = "https://hub.example.org/"
    with pytest.raises(ConfigurationError, match="NOT_SET_ANYWHERE") as raised:
        configure_hub(c, providers={"kc": _declaration({"env": "NOT_SET_ANYWHERE"})})
    assert "Set NOT_SET_ANYWHERE" in str(raised.value)
    with pytest.raises(ConfigurationError, match="cannot be read"):
        configure_hub(c, providers={"kc": _declaration({"file": str(tmp_path / "nope")})})


def test_an_earlier_setup_moves_without_losing_a_key_or_a_token(tmp_path: Path) -> None:
    # What an earlier version left in the hub's directory: the secret beside the store it
    # seals, and the providers with their client secret in plain text.
    legacy = tmp_path / "chat_oauth2_nb_hub_secret"
    legacy.write_text(os.urandom(32).hex() + "\n")
    legacy.chmod(0o600)
    before = legacy.read_text()
    old = tmp_path / "chat_oauth2_nb_providers.json"
    old.write_text(json.dumps({"kc": {"client_secret": "old-Secret-321"}}))
    c = Config()
    c.JupyterHub.public_url = "https://hub.example.org/"
    configure_hub(c, providers={"kc": _declaration("inline-Secret-789")})
    (service,) = c.JupyterHub.services
    moved = Path(service["environment"]["CHAT_OAUTH2_NB_HUB_SECRET_FILE"])
    assert moved.read_text() == before  # the same secret: every user's store key unchanged
    assert not legacy.exists() and not old.exists()
    # The service's store stays where it was, with the refresh tokens it holds.
    store = service["environment"]["CHAT_OAUTH2_NB_BROKER_STORE"]
    assert store == str(tmp_path / "chat_oauth2_nb_broker.sqlite3")
    configure_hub(c, providers={"kc": _declaration("inline-Secret-789")})  # the next start
    assert moved.read_text() == before


def test_server_token_scopes_set_before_gain_the_service() -> None:
    c = Config()
    c.JupyterHub.public_url = "https://hub.example.org/"
    c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server"]
    configure_hub(c)
    assert c.Spawner.server_token_scopes == [
        "users:activity!user",
        "access:servers!server",
        ACCESS,
    ]


def _oauth_hub(**settings: object) -> Config:
    c = Config()
    c.JupyterHub.public_url = "https://hub.example.org/"
    c.JupyterHub.authenticator_class = "generic-oauth"
    c.GenericOAuthenticator.client_id = "hub"
    c.GenericOAuthenticator.client_secret = "hub-Secret-555"
    c.GenericOAuthenticator.authorize_url = "https://id.example.org/authorize"
    c.GenericOAuthenticator.token_url = "https://id.example.org/token"
    c.GenericOAuthenticator.scope = ["openid", "offline_access"]
    c.Authenticator.enable_auth_state = True
    for name, value in settings.items():
        section, _, key = name.partition("__")
        setattr(getattr(c, section), key, value)
    return c


def test_the_hub_sign_in_as_a_provider(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", os.urandom(32).hex())
    c = _oauth_hub()
    configure_hub(c, login_provider="login")
    (service,) = c.JupyterHub.services
    environment = service["environment"]
    entries = json.loads(environment["CHAT_OAUTH2_NB_BROKER_PROVIDERS"])
    assert entries["login"]["client_id"] == "hub"
    assert entries["login"]["default_scopes"] == ["openid", "offline_access"]
    assert environment["CHAT_OAUTH2_NB_BROKER_LOGIN_ALIAS"] == "login"
    assert environment["CHAT_OAUTH2_NB_HUB_LOGIN_URL"] == "https://hub.example.org/hub/login"
    assert c.Spawner.environment["CHAT_OAUTH2_NB_HUB_LOGIN_ALIAS"] == "login"
    assert "hub-Secret-555" not in json.dumps(c.Spawner.environment)
    assert "hub-Secret-555" not in _files_text(tmp_path)
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "chat-oauth2-login")
    assert role == {
        "name": "chat-oauth2-login",
        "scopes": ["admin:auth_state", "admin:users"],
        "services": ["chat-oauth2"],
    }
    assert c.GenericOAuthenticator.modify_auth_state_hook is not None
    assert c.GenericOAuthenticator.refresh_user_hook is not None


@pytest.mark.parametrize(
    ("settings", "crypt_key", "words"),
    [
        ({"JupyterHub__authenticator_class": "dummy"}, True, "OAuthenticator"),
        ({"Authenticator__enable_auth_state": False}, True, "enable_auth_state = True"),
        ({}, False, "JUPYTERHUB_CRYPT_KEY"),
        ({"GenericOAuthenticator__token_url": ""}, True, "c.GenericOAuthenticator.token_url"),
    ],
)
def test_the_hub_sign_in_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, object], crypt_key: bool, words: str
) -> None:
    if crypt_key:
        monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", os.urandom(32).hex())
    else:
        monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
    with pytest.raises(ConfigurationError, match=words.replace(".", r"\.")):
        configure_hub(_oauth_hub(**settings), login_provider="login")


def test_stamp_expiry_keeps_the_first_expiry() -> None:
    from chat_oauth2_nb.hub.login import EXPIRES_KEY, stamp_expiry

    answer = {"access_token": "a", "expires_in": 60}
    state = stamp_expiry(None, {"token_response": answer})
    first = state[EXPIRES_KEY]
    # The hub's refresh_user rebuilds the auth_state from the same answer later.
    again = stamp_expiry(None, {"token_response": answer})
    assert again[EXPIRES_KEY] == first


def test_the_hubs_own_refresh_leaves_a_valid_auth_state_alone() -> None:
    import time

    from chat_oauth2_nb.hub.login import EXPIRES_KEY, keep_written_back

    valid = {"access_token": "a", EXPIRES_KEY: time.time() + 60}
    expired = {"access_token": "a", EXPIRES_KEY: time.time() - 1}
    assert keep_written_back(None, None, valid) is True  # no rebuild, no save
    assert keep_written_back(None, None, expired) is None  # OAuthenticator's own refresh
    assert keep_written_back(None, None, {"access_token": "a"}) is None


def test_a_private_key_jwt_client_keeps_its_key_where_the_admin_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from joserfc.jwk import ECKey

    from chat_oauth2_nb.hub.router import load_declared

    pem = ECKey.generate_key("P-256").as_pem(private=True).decode()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    path = tmp_path / "keys" / "by-path.pem"
    path.parent.mkdir()
    path.write_text(pem)
    path.chmod(0o600)
    monkeypatch.setenv("CHAT_OAUTH2_BY_ENV_CLIENT_KEY", pem)
    (tmp_path / "hub").mkdir()
    monkeypatch.chdir(tmp_path / "hub")
    c = Config()
    c.JupyterHub.public_url = "https://hub.example.org/"
    endpoints = {k: v for k, v in _declaration(None).items() if k != "clientSecret"}
    configure_hub(
        c,
        providers={
            "by-path": {**endpoints, "clientKey": str(path)},
            "by-env": {**endpoints, "clientAuthMethod": "private_key_jwt"},
        },
    )
    (service,) = c.JupyterHub.services
    # The key is in no file the hub wrote, nor in the declarations the service is given.
    written = (
        _files_text(tmp_path / "hub") + service["environment"]["CHAT_OAUTH2_NB_BROKER_PROVIDERS"]
    )
    assert body[:40] not in written and body[-40:] not in written
    monkeypatch.delenv("CHAT_OAUTH2_BY_ENV_CLIENT_KEY")
    for name, value in service["environment"].items():  # what the hub starts it with
        monkeypatch.setenv(name, value)
    declared = load_declared()
    assert declared is not None
    for alias in ("by-path", "by-env"):
        config = declared.config_for(alias)
        assert config.client_auth_method == "private_key_jwt"
        assert config.client_secret == pem

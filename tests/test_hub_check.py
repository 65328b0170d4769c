"""``python -m chat_oauth2_nb.hub check``: the admin's diagnosis of every declared provider.

A real ``jupyterhub_config.py`` with ``configure_hub(c, providers=...)`` and the demo
provider; the command runs as an administrator runs it, in the hub's directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from support.scan import assert_no_secret, nasty_secret

from chat_oauth2_nb.demo import DemoProvider

PUBLIC = "https://hub.example.org/"
REDIRECT = f"{PUBLIC}services/chat-oauth2/callback/demo"


def _check(
    folder: Path, provider: DemoProvider, client_id: str, secret: str, after: str = ""
) -> tuple[int, str]:
    declaration = {**provider.config(alias="demo"), "clientId": client_id}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "jupyterhub_config.py").write_text(
        textwrap.dedent(
            f"""
            from chat_oauth2_nb.hub import configure_hub
            c.JupyterHub.public_url = {PUBLIC!r}
            configure_hub(c, providers={{"demo": {declaration!r}}})
            """
        )
        + after
    )
    # The secret from the hub's environment, as an administrator keeps it out of the file.
    env = {
        **os.environ,
        "CHAT_OAUTH2_DEMO_CLIENT_SECRET": secret,
        "XDG_CONFIG_HOME": str(folder / "config"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "chat_oauth2_nb.hub", "check"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_check_prints_the_redirect_uri_and_a_clean_diagnosis(
    tmp_path: Path, provider: DemoProvider
) -> None:
    client_id, secret = provider.register_client(
        client_secret=nasty_secret("GOCSPX-"), redirect_uris=[REDIRECT], scopes=None
    )
    assert secret is not None
    code, out = _check(tmp_path / "hub", provider, client_id, secret)
    assert f"Register exactly this redirect URI at the provider: {REDIRECT}" in out
    assert code == 0, out
    assert "Client credentials accepted" in out and "Redirect URI accepted" in out
    assert_no_secret(out, [secret], "the check's output", client_ids=[client_id])
    # No copy of the secret: the service is handed a reference to where the admin keeps it.
    assert not (tmp_path / "hub" / "chat_oauth2_nb_providers.json").exists()


def test_check_names_a_wrong_client_secret(tmp_path: Path, provider: DemoProvider) -> None:
    client_id, _ = provider.register_client(redirect_uris=[REDIRECT], scopes=None)
    wrong = nasty_secret("GOCSPX-")
    code, out = _check(tmp_path / "hub", provider, client_id, wrong)
    assert code == 1, out
    assert "invalid_client" in out
    assert_no_secret(out, [wrong], "the check's output", client_ids=[client_id])


def test_check_finds_server_token_scopes_that_leave_the_service_out(
    tmp_path: Path, provider: DemoProvider
) -> None:
    client_id, secret = provider.register_client(
        client_secret=nasty_secret("GOCSPX-"), redirect_uris=[REDIRECT], scopes=None
    )
    assert secret is not None
    # Another tool's setting, later in the file: it replaces the "server" role's scopes.
    after = 'c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server"]\n'
    code, out = _check(tmp_path / "hub", provider, client_id, secret, after)
    assert code == 1, out
    assert "c.Spawner.server_token_scopes" in out
    assert "access:services!service=chat-oauth2" in out

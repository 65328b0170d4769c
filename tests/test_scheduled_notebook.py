"""notebooks/05 runs unattended under nbconvert: the client credentials grant, no person.

Against the demo provider (the notebook starts it) and against oidc-provider with a private
key named by the environment (the overnight setup docs/grants.md describes). The output
says what a person checks and holds no secret, key or token.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from joserfc.jwk import ECKey
from support.oidc import client, start_oidc_provider
from support.scan import assert_no_secret
from test_notebooks import ROOT, kernel_env, store_path, store_secrets

NOTEBOOK = ROOT / "notebooks" / "05-scheduled-client-credentials.ipynb"


def _run(env: dict[str, str]) -> str:
    result = subprocess.run(
        ["jupyter", "nbconvert", "--execute", "--to", "markdown", "--stdout", str(NOTEBOOK)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.mark.timeout(300)
def test_scheduled_run_against_the_demo_provider(tmp_path: Path) -> None:
    out = _run(kernel_env(tmp_path))
    assert "client authentication: client_secret_basic" in out
    assert "cached: True" in out and "refresh token: False" in out
    assert "active: True for client demo-" in out
    secrets = store_secrets(store_path(kernel_env(tmp_path)))
    assert len(secrets) >= 1  # the token (no flow, no provider row: nobody authorized)
    assert_no_secret(out, secrets, "the scheduled run's output")


@pytest.mark.timeout(300)
def test_scheduled_run_with_a_private_key_against_oidc_provider(tmp_path: Path) -> None:
    key = ECKey.generate_key("P-256")
    path = tmp_path / "nightly.pem"
    path.write_bytes(key.as_pem(private=True))
    path.chmod(0o600)
    public = {**key.as_dict(private=False), "kid": key.thumbprint(), "alg": "ES256"}
    machine = client(
        "nightly-job",
        auth_method="private_key_jwt",
        jwks={"keys": [public]},
        grant_types=["client_credentials"],
        redirect_uris=[],
    )
    op = start_oidc_provider(tmp_path / "op", {"clients": [machine]})
    try:
        env = kernel_env(tmp_path)
        env.update(
            SCHEDULED_ISSUER=op.issuer,
            CHAT_OAUTH2_NIGHTLY_CLIENT_ID="nightly-job",
            CHAT_OAUTH2_NIGHTLY_CLIENT_KEY_FILE=str(path),
        )
        out = _run(env)
        assert "client authentication: private_key_jwt" in out
        assert "cached: True" in out and "active: True for client nightly-job" in out
        assert op.counters()["tokens"] == {"client_credentials:200": 1}
        assert op.counters()["logins"] == op.counters()["consent_pages"] == 0
        pem = path.read_text()
        body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
        secrets = store_secrets(store_path(env)) | {pem, body}
        assert_no_secret(out, secrets, "the scheduled run's output")
    finally:
        op.stop()

"""``%load_ext chat_oauth2_nb`` and ``%oauth2`` in a real ipykernel.

One kernel (isolated JUPYTER_DATA_DIR, no Jupyter server: the loopback way) runs the magic
as a person would: a preset whose credentials come from the environment, the ``oidc`` preset
discovering the demo provider (which runs in this process and approves as the person
would), the dashboard, and the mistakes a person makes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.kernel import WIDGET, Kernel, kernel_env, running_kernel
from support.scan import assert_no_secret

from chat_oauth2_nb.demo import DemoProvider

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def kernel(tmp_path: Path, provider: DemoProvider) -> Iterator[Kernel]:
    # The demo provider's credentials, as a person exports them before starting Jupyter.
    env = kernel_env(
        tmp_path,
        CHAT_OAUTH2_DEMO_CLIENT_ID=provider.client_id,
        CHAT_OAUTH2_DEMO_CLIENT_SECRET=provider.client_secret,
    )
    with running_kernel(env) as kernel:
        yield kernel


def test_the_magic_shows_a_presets_panel_and_the_dashboard(
    kernel: Kernel, provider: DemoProvider
) -> None:
    loaded = kernel.ok("%load_ext chat_oauth2_nb")
    assert loaded.text.strip() == ""

    # Without credentials in the environment: which variables to set, no traceback.
    missing = kernel.ok("%oauth2 google --mode loopback")
    assert missing.stdout.startswith("UsageError: Config field 'client_id' is missing")
    assert "CHAT_OAUTH2_GOOGLE_CLIENT_ID" in missing.stdout and not missing.shown

    google_secret = "GOCSPX-magic/secret+value=="
    kernel.ok(
        "import os\n"
        "os.environ['CHAT_OAUTH2_GOOGLE_CLIENT_ID'] = 'magic-id.apps.googleusercontent.com'\n"
        f"os.environ['CHAT_OAUTH2_GOOGLE_CLIENT_SECRET'] = {google_secret!r}"
    )
    shown = kernel.ok("%oauth2 google --mode loopback")
    assert any(WIDGET in bundle for bundle in shown.shown), shown.shown
    assert "OAuth2Panel" in shown.text
    link = kernel.ok("print(_.state.link.url, _.state.alias)").stdout.split()
    assert link[1] == "google" and link[0].startswith("http://127.0.0.1:")

    # The oidc preset discovers the demo provider; --as binds the client to a variable.
    kernel.ok(
        f"panel = %oauth2 oidc --issuer {provider.issuer} --alias demo --mode loopback --as demo"
    )
    url = kernel.ok("print(panel.state.link.url)").stdout.strip()
    assert provider.approve(url).status_code == 200
    data = kernel.ok(
        "import time\n"
        "deadline = time.monotonic() + 20\n"
        "while demo.get_access_token_for_user() is None and time.monotonic() < deadline:\n"
        "    time.sleep(0.1)\n"
        "print(sorted(demo.get_access_token_for_user().scopes), demo.alias)"
    )
    assert data.stdout.strip() == "['openid'] demo"
    # The same line again reuses the client (and its loopback listener).
    again = kernel.ok(
        f"same = %oauth2 oidc --issuer {provider.issuer} --alias demo --mode loopback\n"
        "print(same._client is demo)"
    )
    assert again.stdout.strip() == "True"

    board = kernel.ok("%oauth2 status")
    assert any(WIDGET in bundle for bundle in board.shown), board.shown
    rows = kernel.ok("print(_.rows)").stdout
    assert "demo" in rows

    # A person's mistakes get one line of IPython's UsageError (stderr), not a traceback.
    unknown = kernel.ok("%oauth2 gogle")
    assert unknown.stdout.startswith("UsageError: No preset named 'gogle'. Did you mean 'google'?")
    option = kernel.ok("%oauth2 microsoft --tennant contoso.example")
    assert option.stdout.startswith(
        "UsageError: --tennant is not an option of %oauth2 nor a parameter of the 'microsoft' "
        "preset. Did you mean '--tenant'?"
    )
    typed = kernel.ok("%oauth2 google --client-secret hunter2-typed-in")
    assert typed.stdout.startswith("UsageError: --client-secret is not an option")
    assert "CHAT_OAUTH2_GOOGLE_CLIENT_SECRET" in typed.stdout
    usage = kernel.ok("%oauth2")
    assert usage.stdout.startswith("UsageError: Usage: %oauth2 PRESET")
    assert "%oauth2 status" in usage.stdout

    token = kernel.ok("print(demo.get_access_token_for_user().token)").stdout.strip()
    everything = "\n".join([shown.text, board.text, data.text, again.text, str(shown.shown)])
    assert_no_secret(
        everything,
        [google_secret, provider.client_secret, token],
        "the magic's outputs",
        client_ids=["magic-id.apps.googleusercontent.com", provider.client_id],
    )


def test_importing_the_package_does_not_load_ipython() -> None:
    import subprocess

    code = "import sys, chat_oauth2_nb; print('IPython' in sys.modules, 'chat_oauth2_nb.notebook.magic' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False False"

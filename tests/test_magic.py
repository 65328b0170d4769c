"""``%load_ext chat_oauth2_nb`` and ``%oauth2`` in a real ipykernel.

One kernel (isolated JUPYTER_DATA_DIR, no Jupyter server: the loopback way) runs the magic
as a person would: a preset whose credentials come from the environment, the ``oidc`` preset
discovering the demo provider (which runs in this process and approves as the person
would), the dashboard, and the mistakes a person makes.
"""

from __future__ import annotations

import os
import queue
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from support.scan import assert_no_secret

from chat_oauth2_nb.demo import DemoProvider

pytestmark = pytest.mark.timeout(120)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
WIDGET = "application/vnd.jupyter.widget-view+json"


@dataclass
class Ran:
    """What one cell produced: its streams, rich outputs (mime bundles) and error, if any."""

    stdout: str = ""
    shown: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def text(self) -> str:
        plain = [str(bundle.get("text/plain", "")) for bundle in self.shown]
        return "\n".join([self.stdout, *plain, self.error or ""])


class Kernel:
    def __init__(self, manager: KernelManager, client: BlockingKernelClient) -> None:
        self.manager, self.client = manager, client

    def run(self, code: str, timeout: float = 60.0) -> Ran:
        msg_id = self.client.execute(code)
        ran = Ran()
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"the kernel did not finish within {timeout} s:\n{code}"
                ) from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                ran.stdout += content["text"]
            elif kind in ("execute_result", "display_data"):
                ran.shown.append(content["data"])
            elif kind == "error":
                ran.error = _ANSI.sub("", "\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                return ran

    def ok(self, code: str) -> Ran:
        ran = self.run(code)
        assert ran.error is None, ran.error
        return ran


@pytest.fixture
def kernel(tmp_path: Path, provider: DemoProvider) -> Iterator[Kernel]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_OAUTH2_")}
    env.pop("JUPYTERHUB_USER", None)
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "jupyter-data")
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # The demo provider's credentials, as a person exports them before starting Jupyter.
    env["CHAT_OAUTH2_DEMO_CLIENT_ID"] = provider.client_id
    env["CHAT_OAUTH2_DEMO_CLIENT_SECRET"] = provider.client_secret
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield Kernel(manager, client)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


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
    assert unknown.stdout.startswith("UsageError: No preset or declared provider named 'gogle'")
    assert "google" in unknown.stdout
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

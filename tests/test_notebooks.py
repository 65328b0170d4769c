"""The tutorial notebooks run headless, teach what they claim, and print no secret.

01 and 02 are executed cell by cell with nbclient in a fresh kernel whose JUPYTER_DATA_DIR
is a temporary folder, so the token store the kernel used can be read back afterwards.
Every secret of the run is then gathered (the store's tokens, client secret and PKCE
verifiers; from the demo provider living in the kernel, every token, code and client
secret it issued) and no output, and no widget state nbclient saved, may contain any of
them. README's first command is run exactly as written too. 03 needs real accounts: it
is checked for nbformat validity, that its code compiles, and that its preset calls
build clients with ``create_oauth2_client``; its cells tagged ``offline`` (client.diagnose()
on a deliberately broken demo config) are executed.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat import NotebookNode
from support.scan import assert_no_secret as scan

from chat_oauth2_nb.notebook.client import create_oauth2_client
from chat_oauth2_nb.oauth import mask

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
QUICKSTART = NOTEBOOKS / "01-quickstart.ipynb"
STEP_BY_STEP = NOTEBOOKS / "02-the-oauth2-flow-step-by-step.ipynb"
REAL_PROVIDERS = NOTEBOOKS / "03-real-providers.ipynb"
REMOTE_KERNELS = NOTEBOOKS / "04-remote-kernels.ipynb"
SCHEDULED = NOTEBOOKS / "05-scheduled-client-credentials.ipynb"  # run by test_scheduled_notebook
ALL_NOTEBOOKS = (QUICKSTART, STEP_BY_STEP, REAL_PROVIDERS, REMOTE_KERNELS, SCHEDULED)

# Runs in the kernel after the notebook, as an extra cell that is removed again: every
# secret the demo provider(s) of the notebook issued or hold. It reads the provider's
# in-memory storage, which only a test has any business looking at.
_KERNEL_SECRETS_PROBE = """
import json as _json
from chat_oauth2_nb.demo import DemoProvider as _DemoProvider

_secrets = set()
for _value in list(globals().values()):
    if isinstance(_value, _DemoProvider):
        with _value._store.lock:
            _secrets.update(_value._store.tokens)
            _secrets.update(_value._store.codes)
            _secrets.update(_d.device_code for _d in _value._store.devices.values())
            _secrets.update(
                _c.client_secret for _c in _value._store.clients.values() if _c.client_secret
            )
print("SECRETS=" + _json.dumps(sorted(_secrets)))
"""


def kernel_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a notebook kernel: isolated Jupyter data and no Jupyter server."""
    env = dict(os.environ)
    # No Jupyter server with the extension runs these kernels: like nbconvert in CI.
    env.pop("CHAT_OAUTH2_NB_CALLBACK_URL", None)
    env.pop("JUPYTERHUB_USER", None)
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "jupyter-data")
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    # The `jupyter` found on PATH must be this interpreter's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def store_path(env: dict[str, str]) -> Path:
    return Path(env["JUPYTER_DATA_DIR"]) / "chat_oauth2_nb" / "store.sqlite3"


def store_secrets(path: Path) -> set[str]:
    """Every secret in the store file: client secrets, PKCE verifiers, tokens (read raw)."""
    assert path.exists(), f"the kernel never opened its token store at {path}"
    found: set[str] = set()
    with sqlite3.connect(path) as db:
        found.update(row[0] for row in db.execute("SELECT client_secret FROM providers"))
        found.update(row[0] for row in db.execute("SELECT code_verifier FROM flows"))
        for (data,) in db.execute("SELECT data FROM tokens"):
            record = json.loads(data)
            found.update(record.get(key) for key in ("token", "refresh_token", "id_token"))
    db.close()
    return {value for value in found if value}


def execute(
    path: Path, env: dict[str, str], tag: str | None = None
) -> tuple[NotebookNode, set[str]]:
    """Run every cell of ``path`` (or those tagged ``tag``) in a fresh kernel.

    Returns the notebook (only the cells that ran) and the kernel's secrets.
    """
    nb = nbformat.read(path, as_version=4)
    if tag is not None:
        nb.cells = [cell for cell in nb.cells if tag in cell.metadata.get("tags", [])]
        assert nb.cells, f"{path.name} has no cell tagged {tag!r}"
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        # A busy machine may flush one print() in two stream messages: merge them per cell.
        coalesce_streams=True,
    )
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells):
            # Raises CellExecutionError (with the traceback) when a cell fails.
            client.execute_cell(cell, index)
        probe = nbformat.v4.new_code_cell(_KERNEL_SECRETS_PROBE)
        nb.cells.append(probe)
        try:
            client.execute_cell(probe, len(nb.cells) - 1)
        finally:
            nb.cells.pop()
        client.set_widgets_metadata()
    text = "".join(o.get("text", "") for o in probe.outputs if o.get("output_type") == "stream")
    found = re.search(r"^SECRETS=(.*)$", text, re.MULTILINE)
    assert found, f"the secrets probe printed nothing usable: {probe.outputs!r}"
    return nb, set(json.loads(found.group(1)))


def output_texts(cell: NotebookNode) -> list[str]:
    """The text a reader sees in a code cell's outputs (streams, text and markdown results)."""
    texts: list[str] = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            texts.append(output["text"])
        elif output.get("output_type") in ("execute_result", "display_data"):
            data = output.get("data", {})
            texts.extend(
                str(data[kind]) for kind in ("text/plain", "text/markdown") if kind in data
            )
        elif output.get("output_type") == "error":
            texts.append("\n".join(output.get("traceback", [])))
    return texts


def all_output_text(nb: NotebookNode) -> str:
    return "\n".join(text for cell in nb.cells for text in output_texts(cell))


def assert_no_secret(where: str, text: str, secrets: set[str]) -> None:
    scan(text, secrets, where)


def serialized_outputs(nb: NotebookNode) -> str:
    """Every output and the notebook metadata (widget state included) as saved to disk."""
    outputs = [cell.get("outputs", []) for cell in nb.cells]
    return json.dumps({"outputs": outputs, "metadata": nb.metadata}, ensure_ascii=False)


def last_json_object(text: str) -> dict[str, Any]:
    start = text.index("{")
    value = json.loads(text[start : text.rindex("}") + 1])
    assert isinstance(value, dict)
    return value


# -- the notebooks on disk ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_and_saved_clean(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code_cells, f"{path.name} has no code"
    for index, cell in enumerate(code_cells):
        # Saved without outputs: nothing of a past run (and no secret) ships in the repo.
        assert cell.outputs == [], f"{path.name}: code cell {index} has saved outputs"
        assert cell.execution_count is None, f"{path.name}: code cell {index} was executed"
        compile(cell.source, f"{path.name}[{index}]", "exec")
    assert "widgets" not in nb.metadata, f"{path.name} carries saved widget state"


def test_real_providers_cells_use_presets_that_build() -> None:
    """03 has one cell per provider: a preset's client, the redirect URI to paste, the panel.

    Every ``create_oauth2_client("<preset>", …)`` call of the notebook (literal arguments
    only: nothing that touches a network) is built again here, with placeholder credentials.
    """
    nb = nbformat.read(REAL_PROVIDERS, as_version=4)
    built: dict[str, Any] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "create_oauth2_client"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                continue
            name = node.args[0].value
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
            kwargs.update(client_id="registered-id", client_secret="s3cret-value")
            client = create_oauth2_client(name, mode="loopback", **kwargs)
            assert client.config.auth_uri.startswith("https://")
            assert client.config.access_token_uri.startswith("https://")
            built[name] = client
            client.close()
            if "setup()" in cell.source:
                # The provider's cell: it prints the URI to paste and shows the panel.
                assert ".panel()" in cell.source, cell.source
    assert {"google", "github", "microsoft", "gitlab"} <= set(built)
    google = built["google"].config
    assert google.auth_uri_params == {"access_type": "offline", "prompt": "consent"}
    assert "offline_access" in built["microsoft"].config.default_scopes


# -- executed notebooks ------------------------------------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["loopback", "device", "paste"])
def test_quickstart_runs_headless_and_calls_the_api(tmp_path: Path, mode: str) -> None:
    """01 in every way auto may choose where no Jupyter server runs (a laptop, Colab…)."""
    env = kernel_env(tmp_path)
    env["CHAT_OAUTH2_NB_MODE"] = mode
    nb, kernel_secrets = execute(QUICKSTART, env)

    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert len(code_cells) == 4
    # Cell 2 returns the redirect URI: the kernel's loopback listener, a loopback address
    # nobody serves (paste-back), or none at all (device code).
    redirect_uri = "".join(output_texts(code_cells[1]))
    expected = {
        "loopback": r"'http://127\.0\.0\.1:\d+/chat-oauth2/callback/demo'",
        "paste": r"'http://127\.0\.0\.1:53682/chat-oauth2/callback/demo'",
        "device": r"^''$",
    }[mode]
    assert re.search(expected, redirect_uri.strip()), redirect_uri
    # Cell 3 shows the panel as a widget.
    assert any(
        "application/vnd.jupyter.widget-view+json" in output.get("data", {})
        for output in code_cells[2].outputs
    ), code_cells[2].outputs
    # Cell 4 printed the protected API's answer: who approved, and what was granted.
    answer = last_json_object("".join(output_texts(code_cells[3])))
    assert answer["user"] == "demo-user"
    assert answer["scope"] == "profile"
    assert answer["client_id"].startswith("demo-")

    secrets = store_secrets(store_path(env)) | kernel_secrets
    with sqlite3.connect(store_path(env)) as db:
        stored = db.execute("SELECT alias, data FROM tokens").fetchall()
    db.close()
    assert [alias for alias, _ in stored] == ["demo"], "the notebook should leave one token"
    token = json.loads(stored[0][1])["token"]
    # The scan below is only meaningful if it scans for the real values.
    assert token in kernel_secrets, "the stored token was not issued by the notebook's provider"
    # client secret, code (or device code), access token, refresh token
    assert len(kernel_secrets) >= 4
    assert_no_secret("01's outputs and widget state", serialized_outputs(nb), secrets)


@pytest.mark.timeout(300)
def test_step_by_step_shows_pkce_rotation_and_revocation(tmp_path: Path) -> None:
    env = kernel_env(tmp_path)
    nb, kernel_secrets = execute(STEP_BY_STEP, env)
    text = all_output_text(nb)

    # The authorization URL's parameters, with PKCE S256 checked against the stored verifier.
    for name in ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge"):
        assert re.search(rf"^\s+{name}\s+= \S", text, re.MULTILINE), f"{name} not shown"
    assert re.search(r"code_challenge_method\s+= S256", text)
    assert "S256(verifier) == code_challenge: True" in text
    assert "PendingFlow(state=" in text
    # The redirect carried a code and our state back, shown masked; the callback worked once.
    assert re.search(r"302 redirect to http://127\.0\.0\.1:\d+/chat-oauth2/callback", text)
    assert re.search(r"^\s+code\s+= \S{1,4}…\S{1,4}$", text, re.MULTILINE)
    assert "the state is the one we sent: True" in text
    # Another browser (no binding cookie) is refused and the flow waits for the real one.
    assert "from another browser: 400 Authorization failed" in text
    assert "the flow is still: pending" in text
    assert "cookie attributes:" in text and "HttpOnly" in text and "SameSite=Lax" in text
    assert "from our browser: 200 Authorized" in text
    assert "the same redirect again: 400" in text
    assert "AuthData(token='" in text
    # Rotation: the old refresh token is inactive at the provider, the new one active.
    assert "old refresh token at the provider: {'active': False}" in text
    assert "new refresh token active: True" in text
    # Revocation at the provider and in the store.
    assert "revoked: True" in text
    assert "stored now: None" in text
    assert "access token at the provider:  {'active': False}" in text
    assert "refresh token at the provider: {'active': False}" in text
    # The HTTP log table: the callback's code exchange, one refresh, two revocations.
    table = next(
        str(output["data"]["text/markdown"])
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if "text/markdown" in output.get("data", {})
    )
    rows = [line for line in table.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 4, table
    assert "/token | 200" in rows[0] and "grant_type=authorization_code" in rows[0]
    assert "/token | 200" in rows[1] and "grant_type=refresh_token" in rows[1]
    assert all("/revoke | 200" in row for row in rows[2:])

    with sqlite3.connect(store_path(env)) as db:
        assert db.execute("SELECT COUNT(*) FROM tokens").fetchone() == (0,)
    db.close()
    secrets = store_secrets(store_path(env)) | kernel_secrets
    # Two grants' worth: client secret, code, 2 access + 2 refresh tokens; plus a verifier.
    assert len(kernel_secrets) >= 6
    # The masks of issued tokens are shown (so the scan looks where secrets would be) ...
    assert any(mask(s) in text for s in kernel_secrets if len(s) >= 16)
    # ... but never a secret itself.
    assert_no_secret("02's outputs and widget state", serialized_outputs(nb), secrets)


@pytest.mark.timeout(300)
def test_readme_first_command_prints_the_api_answer_and_no_secret(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL)
    assert block, "README.md has no bash block"
    first = block.group(1).splitlines()[0]
    # The install part is done already (this is an editable install); run the rest as written.
    command = first.split("&&")[-1].strip()
    assert command == (
        "jupyter nbconvert --execute --to markdown --stdout notebooks/01-quickstart.ipynb"
    ), command
    env = kernel_env(tmp_path)
    result = subprocess.run(
        shlex.split(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert re.search(r'"user": "demo-user"', out), out[-2000:]
    assert "client.panel()" in out  # the markdown shows the notebook's code, too
    secrets = store_secrets(store_path(env))
    assert len(secrets) >= 4  # client secret, verifier, access and refresh token
    assert_no_secret("README's first command's output", out + result.stderr, secrets)


@pytest.mark.timeout(300)
def test_real_providers_diagnose_section_names_each_mistake(tmp_path: Path) -> None:
    """03's offline cells: diagnose() on a broken demo config, then on the fixed one."""
    env = kernel_env(tmp_path)
    nb, kernel_secrets = execute(REAL_PROVIDERS, env, tag="offline")
    broken, fixed = nb.cells
    table = next(
        str(output["data"]["text/html"])
        for output in broken.outputs
        if "text/html" in output.get("data", {})
    )
    # One table, each mistake a failing row with what to change.
    assert "<table>" in table
    assert "invalid_client" in table
    assert "Register exactly http://localhost:8765/chat-oauth2/callback/demo " in table
    assert re.search(r"9[01] s ahead of this machine", table), table
    text = "".join(output_texts(fixed))
    assert re.search(r"\d+ ok", text) and " fail" not in text and "FAIL" not in text, text

    secrets = kernel_secrets | (
        store_secrets(store_path(env)) if store_path(env).exists() else set()
    )
    assert len(kernel_secrets) >= 2  # the demo clients' secrets
    assert_no_secret("03's diagnose outputs", serialized_outputs(nb), secrets)


def test_remote_kernels_device_code_and_paste_back(tmp_path: Path) -> None:
    env = kernel_env(tmp_path)
    nb, kernel_secrets = execute(REMOTE_KERNELS, env)
    text = all_output_text(nb)
    # Device code: the way, the code to type and where, the token, the API's answer.
    assert "way: device - mode='device'" in text
    code = re.search(r"enter the code (\S+)", text)
    assert code and f"user_code={code.group(1)}" in text, text
    assert "device_code" not in text
    assert re.search(r"authorized: AuthData\(token='[^']*…", text), text
    assert '"user": "demo-user"' in text
    # Paste-back: the unreachable redirect URI, success, and the replay refused.
    assert "redirect URI: http://127.0.0.1:53682/chat-oauth2/callback/demo-paste" in text
    assert "the browser ended on http://127.0.0.1:53682/chat-oauth2/callback/demo-paste?" in text
    assert "pasted again: This authorization link was already used" in text
    # auto said what it chose, and why.
    assert re.search(r"way: (jupyter|loopback|device|paste) - \S", text.split("## 3.")[-1]), text
    # Both panels were shown as widgets.
    assert (
        sum("application/vnd.jupyter.widget-view+json" in str(c.get("outputs")) for c in nb.cells)
        == 2
    )

    secrets = store_secrets(store_path(env)) | kernel_secrets
    with sqlite3.connect(store_path(env)) as db:
        aliases = sorted(alias for (alias,) in db.execute("SELECT alias FROM tokens"))
    db.close()
    assert aliases == ["demo-device", "demo-paste"]
    assert len(kernel_secrets) >= 6  # client secret, device code, paste code, tokens
    assert_no_secret("04's outputs and widget state", serialized_outputs(nb), secrets)

"""README.md is short, leads in the promised order, links only to what exists, and its
"Try it in JupyterLab" path works as written.

The path test reads the README's commands and runs the ``jupyter lab <notebook>`` line as
written (no argument added: the port, token, browser and folders come from the environment
a person's machine would have), checks that it opens the named notebook, then runs that
notebook in a kernel the server started — the kernel JupyterLab's *Run All Cells* would use,
so the redirect URI is the server's own callback — and plays the person: it follows the
*Authorize* link the panel shows, approves on the demo provider's page, lands on the
server's callback page, and sees the waiting cell print the protected API's answer.
(tests/test_browser.py clicks the same path in Chromium; tests/test_notebooks.py runs the
first command's headless path.)
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
import tomllib
from jupyter_client.blocking import BlockingKernelClient
from support.server import free_port
from support.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_LINES = 120
DEADLINE = 120.0  # seconds: kernel start-up and the first Lab load are slow on 2 shared cores


def readme() -> str:
    return README.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The README's text under ``## title``, up to the next ``## ``."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", readme(), re.M | re.S)
    assert found, f"README.md has no section {title!r}"
    return found.group(1)


def bash_lines(text: str) -> list[str]:
    """The command lines of the ```bash blocks of ``text`` (comments stripped)."""
    lines: list[str] = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S):
        for line in block.splitlines():
            command = line.split(" #", 1)[0].strip()
            if command:
                lines.append(command)
    return lines


# -- what the README says, and where it points --------------------------------------------------


def test_readme_fits_on_a_few_screens_and_leads_in_order() -> None:
    text = readme()
    assert len(text.splitlines()) <= MAX_LINES, "README.md grew: move the detail to docs/"
    order = [
        text.index("```bash"),
        text.index("![The panel"),
        text.index("## Try it in JupyterLab"),
        text.index("## A real provider"),
        text.index("## Documentation"),
    ]
    assert order == sorted(order), "README.md: commands, picture, try it, a real provider, docs"
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first_block
    setup = first_block.group(1).splitlines()
    assert len(setup) == 2 and setup[1].endswith("# test-command"), setup
    # The test command installs the docs extra, so tests/test_docs.py can build the docs.
    extras = re.search(r'-e "\.\[([a-z,]+)\]"', setup[1])
    assert extras and {"test", "browser", "dev", "docs"} <= set(extras.group(1).split(","))


def test_every_readme_link_resolves_to_a_file_or_docs_page() -> None:
    links = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", readme())
    assert len(links) >= 8, links
    conf = (ROOT / "docs" / "conf.py").read_text(encoding="utf-8")
    for link in links:
        if link.startswith(("http://", "https://")):
            assert link.startswith("https://"), f"plain http link {link}"
            continue
        path = (ROOT / link.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT), link
        assert path.is_file(), f"README links to {link}, which does not exist"
        if path.suffix == ".md" and path.parent == ROOT / "docs":
            # A page of the docs build: docs/index.md's toctree takes every top-level page.
            assert f'"{path.name}"' not in conf, f"{link} is excluded from the docs build"
            assert path.read_text(encoding="utf-8").startswith("# "), f"{link} has no title"


def test_the_real_provider_example_uses_a_preset_that_builds() -> None:
    blocks = re.findall(r"```python\n(.*?)```", section("A real provider: GitHub"), re.S)
    assert blocks, "no Python example for the real provider"
    source = "\n".join(blocks)
    assert len([line for line in source.splitlines() if line.strip()]) <= 10
    compile(source, "README.md", "exec")
    # The API call comes after the panel, in its own cell: it needs the approval first.
    assert ".panel()" in blocks[0] and "auth=client.auth()" in blocks[-1], blocks
    from chat_oauth2_nb import create_oauth2_client

    preset = re.search(r'create_oauth2_client\("(\w+)"\)', source)
    assert preset, source
    client = create_oauth2_client(
        preset.group(1), client_id="registered-id", client_secret="s3cret", mode="loopback"
    )
    try:
        assert client.config.auth_uri.startswith("https://github.com/")
    finally:
        client.close()


# -- "Try it in JupyterLab", as written ---------------------------------------------------------


class _Forms(HTMLParser):
    """The first form with id ``consent``: its action and fields (a browser's view of it)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and values.get("id") == "consent" and self.action is None:
            self.action, self._inside = values.get("action", ""), True
        elif tag == "input" and self._inside and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


def isolated_env(tmp: Path, port: int, token: str, opened: Path) -> dict[str, str]:
    """A person's environment in miniature: own folders, a port, a token, a "browser"."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHAT_OAUTH2_NB_", "JUPYTERHUB_")) and "proxy" not in k.lower()
    }
    for name in ("HOME", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR"):
        folder = tmp / name.lower()
        folder.mkdir()
        env[name] = str(folder)
    env["IPYTHONDIR"] = str(tmp / "home" / ".ipython")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["JUPYTER_PORT"] = str(port)
    env["JUPYTER_TOKEN"] = token
    # The "browser" writes down what it was asked to open.
    recorder = tmp / "browser.py"
    recorder.write_text(
        f"import sys, pathlib\npathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n"
    )
    env["BROWSER"] = f"{sys.executable} {recorder} %s"
    # What a laptop has no need to say: stay on 127.0.0.1, fetch no news; root in CI.
    config = {
        "ServerApp": {"ip": "127.0.0.1", "port_retries": 0, "allow_root": True},
        "LabApp": {
            "news_url": None,
            "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
            "extension_manager": "readonly",
        },
    }
    (tmp / "jupyter_config_dir" / "jupyter_server_config.json").write_text(json.dumps(config))
    return env


@contextlib.contextmanager
def running(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


class Kernel:
    """A kernel the Jupyter server started, driven over its connection file like a front end."""

    def __init__(self, connection_file: Path) -> None:
        self.client = BlockingKernelClient()
        self.client.load_connection_file(str(connection_file))
        # No heartbeat: jupyter_client takes a heartbeat not yet seen for a dead kernel.
        self.client.start_channels(hb=False)
        self.messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + DEADLINE
        while True:
            assert time.monotonic() < deadline, "the server's kernel never answered"
            asked = self.client.kernel_info()
            with contextlib.suppress(queue.Empty):
                reply = self.client.get_shell_msg(timeout=2)
                if reply["parent_header"].get("msg_id") == asked:
                    break

    def run(self, code: str, outputs: queue.Queue[str] | None = None) -> str:
        """Run one cell; return what it printed or displayed as text. Raises on an error."""
        texts: list[str] = []

        def hook(message: dict[str, Any]) -> None:
            self.messages.append(message)
            content = message["content"]
            kind = message["msg_type"]
            text = ""
            if kind == "stream":
                text = content["text"]
            elif kind in ("execute_result", "display_data"):
                text = str(content["data"].get("text/plain", ""))
            elif kind == "error":
                text = "\n".join(content["traceback"])
            if text:
                texts.append(text)
                if outputs is not None:
                    outputs.put(text)

        reply = self.client.execute_interactive(code, timeout=DEADLINE * 2, output_hook=hook)
        assert reply["content"]["status"] == "ok", "".join(texts)[-3000:]
        return "".join(texts)

    def widget_text(self) -> str:
        """Every widget state the kernel sent (what a front end renders), as one text."""
        return json.dumps(
            [m["content"] for m in self.messages if m["msg_type"] in ("comm_open", "comm_msg")]
        )

    def close(self) -> None:
        self.client.stop_channels()


@pytest.mark.timeout(600)
def test_try_it_in_jupyterlab_as_written(tmp_path: Path) -> None:
    commands = bash_lines(section("Try it in JupyterLab"))
    assert len(commands) == 2, commands
    install, start = commands
    # The install line's packages are what the test command's "browser" extra installs.
    packages = shlex.split(install)[shlex.split(install).index("install") + 1 :]
    browser_extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]["browser"]
    for package in packages:
        assert any(req.startswith(package) for req in browser_extra), package
    argv = shlex.split(start)
    assert argv[:2] == ["jupyter", "lab"] and len(argv) == 3, start
    notebook = argv[2]
    assert (ROOT / notebook).is_file(), f"the README names {notebook}, which does not exist"

    port, token = free_port(), "readme-try-it-token"
    opened = tmp_path / "opened.txt"
    env = isolated_env(tmp_path, port, token, opened)
    base = f"http://127.0.0.1:{port}/"
    log = tmp_path / "jupyter.log"

    def log_tail() -> str:
        return log.read_text("utf-8", "replace")[-4000:]

    with running(argv, env, log), httpx.Client(trust_env=False, timeout=30) as browser:
        # The command opens the notebook in the person's browser (through a redirect file).
        wait_until(opened.exists, "jupyter lab to open a browser", DEADLINE, 0.2, log_tail)
        target = opened.read_text()
        page = Path(target.removeprefix("file://")) if target.startswith("file://") else None
        shown = page.read_text() if page is not None else target
        # Given a file, Jupyter serves the file's folder and opens the file in it.
        served = Path(notebook).name
        assert f"lab/tree/{served}?" in shown, shown
        # Logged in as the person's browser is, by the token link the command printed.
        assert browser.get(f"{base}lab?token={token}").status_code == 200

        answer = browser.post(
            f"{base}api/sessions",
            json={"path": served, "type": "notebook", "kernel": {"name": "python3"}},
            headers={"X-XSRFToken": browser.cookies.get("_xsrf", "")},
        )
        assert answer.status_code == 201, answer.text
        kernel_id = answer.json()["kernel"]["id"]
        connection = Path(env["JUPYTER_RUNTIME_DIR"]) / f"kernel-{kernel_id}.json"
        wait_until(connection.exists, "the kernel's connection file", DEADLINE, 0.2, log_tail)
        kernel = Kernel(connection)
        try:
            run_as_the_person(kernel, browser, base, ROOT / notebook, log_tail)
        finally:
            kernel.close()


def run_as_the_person(
    kernel: Kernel, browser: httpx.Client, base: str, notebook: Path, log_tail: Any
) -> None:
    """Run All Cells; click Authorize when the last cell waits; approve; read the answer."""
    cells = [c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    assert len(cells) == 4, "the quickstart's steps changed: update the README and this test"
    kernel.run(cells[0])
    redirect_uri = kernel.run(cells[1])
    # The server told its kernel its own callback: JupyterLab's way, not a loopback listener.
    assert f"'{base}chat-oauth2/callback/demo'" in redirect_uri, redirect_uri
    kernel.run(cells[2])
    link = re.search(rf"{re.escape(base)}chat-oauth2/start/[A-Za-z0-9_-]+", kernel.widget_text())
    assert link, "the panel shows no Authorize link to the server's start page"

    # The last cell runs here (a kernel client belongs to one thread); the person acts
    # in another thread once the cell says it waits.
    outputs: queue.Queue[str] = queue.Queue()
    person: dict[str, Any] = {}

    def act() -> None:
        try:
            person["callback_page"] = authorize_and_approve(browser, base, link.group(0), outputs)
        except BaseException as exc:  # reported below, by the test's thread
            person["error"] = exc

    clicker = threading.Thread(target=act, daemon=True)
    clicker.start()
    try:
        printed = kernel.run(cells[3], outputs)
    finally:
        clicker.join(timeout=DEADLINE)
    assert "error" not in person, f"{person.get('error')!r}\n{log_tail()}"
    back = person["callback_page"]
    assert str(back.url).startswith(f"{base}chat-oauth2/callback/demo?"), back.url
    assert back.status_code == 200 and 'id="outcome"' in back.text, back.text[-2000:]
    assert "Authorized" in back.text
    # The waiting cell went on and printed the protected API's answer.
    assert "Click Authorize in the panel above" in printed
    api_answer = json.loads(printed[printed.index("{") : printed.rindex("}") + 1])
    assert api_answer["user"] == "demo-user", printed
    assert api_answer["scope"] == "profile", printed


def authorize_and_approve(
    browser: httpx.Client, base: str, link: str, outputs: queue.Queue[str]
) -> httpx.Response:
    """What the person does once the last cell waits: Authorize, then Approve."""
    seen = ""
    deadline = time.monotonic() + DEADLINE
    while "Click Authorize in the panel above" not in seen:
        assert time.monotonic() < deadline, f"the last cell did not wait for the person: {seen}"
        with contextlib.suppress(queue.Empty):
            seen += outputs.get(timeout=1)
    # Authorize: the start page binds the flow to this browser and sends it to the provider.
    consent = browser.get(link, follow_redirects=True)
    assert consent.status_code == 200, consent.text[-2000:]
    form = _Forms()
    form.feed(consent.text)
    assert form.action is not None, "no consent form on the provider's page"
    # Approve: the provider sends the browser back to the Jupyter server's callback.
    return browser.post(
        httpx.URL(str(consent.url)).join(form.action),
        data={**form.fields, "decision": "approve"},
        follow_redirects=True,
    )

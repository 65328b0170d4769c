"""Two real kernels, one store, one alias and user: each panel tells the truth about the other.

Issue 8, bug 1: which flow a panel started used to live in one process's memory, so a second
kernel on the same store showed "Waiting for the browser" while the user was authorized, and
took the first panel's standby link for a flow started by code. Here two ipykernel processes
share a store (``JUPYTER_DATA_DIR``) and the callback of one real Jupyter server (a
subprocess, with the extension), as two notebooks open in one JupyterLab do; the demo provider
runs in this process and approves as the person would. (Two kernels in loopback mode cannot
share a callback: the second one cannot listen on the first one's port.)
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from support.browser import Browser
from support.server import JupyterServer

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.routes import SERVER_CALLBACK_ENV

# Two kernels and a Jupyter server on a loaded 2-core machine: bounds, not speed checks.
pytestmark = pytest.mark.timeout(300)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Kernel start-up is the slow part on a loaded 2-core machine: a bound, not a speed check.
STARTUP = 60.0
# How long a cell may wait for a panel to follow the store (the cell's own bound is longer).
PATIENCE = 60.0


class Kernel:
    """One ipykernel process: run a cell, get what it printed (a failed cell fails the test)."""

    def __init__(self, manager: KernelManager, client: BlockingKernelClient) -> None:
        self.manager, self.client = manager, client

    def run(self, code: str, timeout: float = PATIENCE + 30) -> str:
        """Execute ``code``; return its stdout."""
        msg_id = self.client.execute(code, store_history=False)
        out: list[str] = []
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
            if kind == "stream" and content["name"] == "stdout":
                out.append(content["text"])
            elif kind == "error":
                # Without IPython's colours, so that the failure reads plainly.
                raise AssertionError(_ANSI.sub("", "\n".join(content["traceback"])))
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out)

    def value(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the kernel."""
        return json.loads(self.run(f"import json; print(json.dumps({expression}))").strip())


def start_kernel(env: dict[str, str]) -> Kernel:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=STARTUP)
    except RuntimeError:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
        raise
    return Kernel(manager, client)


@pytest.fixture
def jupyter(tmp_path: Path) -> Iterator[JupyterServer]:
    with JupyterServer(tmp_path / "jupyter") as server:
        yield server


@pytest.fixture
def kernels(jupyter: JupyterServer, provider: DemoProvider) -> Iterator[tuple[Kernel, Kernel]]:
    # The server's environment (its data folder, so its store) and what it tells its kernels.
    env = dict(jupyter.env)
    env[SERVER_CALLBACK_ENV] = jupyter.callback_url
    env["CHAT_OAUTH2_DEMO_CLIENT_ID"] = provider.client_id
    env["CHAT_OAUTH2_DEMO_CLIENT_SECRET"] = provider.client_secret
    started: list[Kernel] = []
    try:
        started.append(start_kernel(env))
        started.append(start_kernel(env))
        yield started[0], started[1]
    finally:
        for kernel in started:
            kernel.client.stop_channels()
            kernel.manager.shutdown_kernel(now=True)


def setup_cell(config: dict[str, Any], **kwargs: Any) -> str:
    """Create the client the way a notebook does (credentials from the environment)."""
    args = "".join(f", {name}={value!r}" for name, value in kwargs.items())
    return (
        "from chat_oauth2_nb import create_oauth2_client\n"
        f"client = create_oauth2_client({config!r}{args})\n"
        "client.setup()\n"
    )


_WAIT_FOR_STATUS = f"""
import time
def wait_for_status(panel, wanted, timeout={PATIENCE}):
    deadline = time.monotonic() + timeout
    while panel.status != wanted and time.monotonic() < deadline:
        time.sleep(0.02)
    return panel.status
"""


def link_of(panel: str) -> str:
    """The expression for a panel's offered link, as plain JSON values."""
    return (
        f"None if {panel}.state.link is None else "
        f"{{'url': {panel}.state.link.url, 'start_id': {panel}.state.link.start_id, "
        f"'started_by_panel': {panel}.state.link.started_by_panel}}"
    )


def test_two_kernels_agree_on_panel_links_and_status(
    kernels: tuple[Kernel, Kernel], provider: DemoProvider, jupyter: JupyterServer
) -> None:
    one, two = kernels
    config = provider.config(alias="demo")
    one.run(setup_cell(config, mode="jupyter") + _WAIT_FOR_STATUS)
    two.run(setup_cell(config, mode="jupyter") + _WAIT_FOR_STATUS)
    assert one.value("client.way") == two.value("client.way") == "jupyter"
    callback = one.value("client.redirect_uri")
    assert callback == f"{jupyter.callback_url}/demo" == two.value("client.redirect_uri")

    # Kernel 1's panel offers a standby link; kernel 2's panel, opened next, sees it in the
    # store and knows a panel started it (not code, whose flows wait_for_authorization ends).
    one.run("panel = client.panel(user='ada')")
    first = one.value(link_of("panel"))
    assert first is not None and first["started_by_panel"] is True
    two.run("panel = client.panel(user='ada')")
    seen = two.value(link_of("panel"))
    assert seen is not None and seen["started_by_panel"] is True, seen
    assert two.value("panel.status") == "not_authorized"

    # The reverse: code in kernel 2 waiting for 'ada' must not adopt kernel 1's panel flow.
    outcome = two.run(
        "from chat_oauth2_nb import NotAuthorizedError\n"
        "try:\n"
        "    client.wait_for_authorization('ada', timeout=1)\n"
        "    print('returned')\n"
        "except NotAuthorizedError:\n"
        "    print('not authorized')\n"
    )
    assert outcome.strip() == "not authorized"

    # The person clicks kernel 1's link and approves; the server's callback stores the token.
    browser = Browser(headers=jupyter.headers)
    location, _ = browser.callback_location(provider, first["url"])
    page = browser.get(location)
    assert page.status_code == 200, page.text
    assert one.value("wait_for_status(panel, 'authorized')") == "authorized"
    # Kernel 2's panel follows the store: authorized, not "Waiting for the browser".
    assert two.value("wait_for_status(panel, 'authorized')") == "authorized"
    after = two.value(link_of("panel"))
    assert after is None or after["started_by_panel"] is True, after
    record = jupyter.store().get_token("demo", "ada")
    assert record is not None
    # Compared by digest: a token must not show up in a failure message.
    digest = hashlib.sha256(record.data.token.encode()).hexdigest()
    assert (
        two.value(
            "__import__('hashlib').sha256(client.get_access_token_for_user('ada').token.encode())"
            ".hexdigest()"
        )
        == digest
    )

"""A real ipykernel driven as a notebook front end drives it: one cell at a time, its outputs read."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

__all__ = ["WIDGET", "Kernel", "Ran", "kernel_env", "running_kernel"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: The mime type of a widget's view.
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


def kernel_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment without chat_oauth2_nb's variables, folders under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_OAUTH2_")}
    env.pop("JUPYTERHUB_USER", None)
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "jupyter-data")
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


@contextlib.contextmanager
def running_kernel(env: Mapping[str, str]) -> Iterator[Kernel]:
    """A python3 kernel started with ``env``, shut down at the end."""
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=dict(env))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield Kernel(manager, client)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)

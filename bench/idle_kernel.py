"""Ten idle panels in a real kernel, probed from outside: main's code against this tree's.

Black-box: real IPython kernels started by jupyter_client, their CPU read from
``/proc/<pid>/stat`` (utime + stime of every thread) over one shared window of WINDOW
seconds, so a noisy moment on the machine hits every contender alike. Four kernels, side by
side, each with a loopback client of the demo provider (which runs here, outside them) and
ten users authorized through it:

- ``main, client only`` / ``main, 10 panels``: the code of ``main`` (a ``git archive`` copy
  in a temporary folder, put first on the kernel's PYTHONPATH);
- ``this tree, client only`` / ``this tree, 10 panels``: the code of this checkout.

What the panels cost is the difference to the same tree's kernel without them (the client's
loopback listener and the kernel's own threads are in both). Target (issue 18, item 5):
ten idle panels cost <= 0.1 % of a core between them.

    python bench/idle_kernel.py [--seconds 90] [--before REF] [--after PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import ROOT, header, summary
from jupyter_client.manager import KernelManager

from chat_oauth2_nb.demo import DemoProvider, start_demo_provider

PANELS = 10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TARGET = 0.001  # of a core, for the ten panels together


@dataclass
class Contender:
    """One kernel: which code it runs, whether it shows panels."""

    name: str
    tree: Path
    panels: bool
    manager: KernelManager | None = None
    client: Any = None
    pid: int = 0


def archive(ref: str, into: Path) -> Path:
    """A copy of ``ref``'s tree (``git archive``), to run the code as it was there."""
    tar = into / "tree.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(tar), ref], check=True
    )
    tree = into / ref.replace("/", "_")
    with tarfile.open(tar) as archive_file:
        archive_file.extractall(tree, filter="data")
    return tree


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command's closing parenthesis: state is field 3, utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run(kernel: Any, code: str, timeout: float = 120.0) -> dict[str, Any]:
    """Execute ``code``; raise with the kernel's traceback if it failed."""
    errors: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "error":
            errors.append("\n".join(msg["content"]["traceback"]))

    reply = kernel.execute_interactive(code, timeout=timeout, output_hook=hook)
    if reply["content"]["status"] != "ok" or errors:
        raise RuntimeError(f"kernel error:\n{''.join(errors) or reply['content']}")
    return dict(reply["content"])


def evaluate(kernel: Any, expression: str) -> str:
    """The repr of ``expression`` in the kernel."""
    reply = kernel.execute_interactive(
        "", user_expressions={"value": expression}, timeout=60, output_hook=lambda _m: None
    )
    value = reply["content"]["user_expressions"]["value"]
    if value["status"] != "ok":
        raise RuntimeError(f"{expression}: {value}")
    return str(value["data"]["text/plain"])


def start(contender: Contender, provider: DemoProvider, store_dir: Path) -> None:
    """Start the kernel, authorize the ten users through the demo provider, open panels."""
    env = {**os.environ, "PYTHONPATH": str(contender.tree)}
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env, cwd=str(store_dir))
    kernel = manager.client()
    kernel.start_channels()
    kernel.wait_for_ready(timeout=120)
    contender.manager, contender.client = manager, kernel
    contender.pid = manager.provisioner.pid  # type: ignore[union-attr]
    where = evaluate(kernel, "__import__('chat_oauth2_nb').__file__")
    assert str(contender.tree) in where, (contender.name, where)
    config = provider.config(alias="demo")
    run(
        kernel,
        "from chat_oauth2_nb import create_oauth2_client\n"
        "from chat_oauth2_nb.store import Store\n"
        f"store = Store({str(store_dir / 'store.sqlite3')!r})\n"
        f"client = create_oauth2_client({config!r}, client_id={provider.client_id!r}, "
        f"client_secret={provider.client_secret!r}, mode='loopback', store=store)\n"
        "client.setup()\n"
        f"users = [f'user{{i}}' for i in range({PANELS})]\n",
    )
    for i in range(PANELS):
        url = evaluate(kernel, f"client.get_user_authorization_url('user{i}')").strip("'")
        page = provider.approve(url)
        assert page.status_code == 200, page.text
        run(kernel, f"client.wait_for_authorization('user{i}', timeout=60)")
    if contender.panels:
        run(
            kernel,
            "from IPython.display import display\n"
            "panels = [client.panel(u) for u in users]\n"
            "for p in panels:\n"
            "    display(p)\n"
            "assert all(p.status == 'authorized' for p in panels), [p.status for p in panels]\n",
        )


def stop(contender: Contender) -> None:
    if contender.client is not None:
        contender.client.stop_channels()
    if contender.manager is not None:
        contender.manager.shutdown_kernel(now=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--before", default="main", help="git ref of the 'before' code")
    parser.add_argument("--after", default=str(ROOT), help="folder of the 'after' code")
    args = parser.parse_args()
    header(f"{PANELS} idle panels in a real kernel, /proc CPU over {args.seconds:g} s")
    tmp = Path(tempfile.mkdtemp())
    provider = start_demo_provider(port=0, token_lifetime=3600)
    before = archive(args.before, tmp)
    after = Path(args.after).resolve()
    contenders = [
        Contender(f"{args.before}, client only", before, False),
        Contender(f"{args.before}, {PANELS} panels", before, True),
        Contender("this tree, client only", after, False),
        Contender(f"this tree, {PANELS} panels", after, True),
    ]
    used: dict[str, float] = {}
    try:
        for index, contender in enumerate(contenders):
            folder = tmp / f"kernel{index}"
            folder.mkdir()
            start(contender, provider, folder)
        time.sleep(10.0)  # start-up work (imports, first renders, first watcher look) settles
        t0 = time.perf_counter()
        first = {c.name: cpu_seconds(c.pid) for c in contenders}
        time.sleep(args.seconds)
        elapsed = time.perf_counter() - t0
        used = {c.name: (cpu_seconds(c.pid) - first[c.name]) / elapsed for c in contenders}
    finally:
        for contender in contenders:
            stop(contender)
        provider.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    for name, share in used.items():
        print(f"   {name:<34} {share * 100:7.3f} % of a core")
    panels_before = max(used[contenders[1].name] - used[contenders[0].name], 0.0)
    panels_after = max(used[contenders[3].name] - used[contenders[2].name], 0.0)
    ratio = panels_before / panels_after if panels_after else float("inf")
    verdict = "met" if panels_after <= TARGET else "MISSED"
    print(
        f"   10 panels cost: {args.before} {panels_before * 100:.3f} %, this tree "
        f"{panels_after * 100:.3f} % of a core ({ratio:.1f}x less); "
        f"target <= {TARGET * 100:.1f} %: {verdict}"
    )
    summary(
        f"idle kernel: 10 panels {args.before} {panels_before * 100:.3f} % vs this tree "
        f"{panels_after * 100:.3f} % of a core (kernels: "
        + ", ".join(f"{n} {v * 100:.3f} %" for n, v in used.items())
        + f"), target <= 0.1 % {verdict}"
    )


if __name__ == "__main__":
    main()

"""The labextension is installed and enabled by ``pip install`` alone (no ``jupyter labextension``
step): ``jupyter labextension list`` of this environment shows it, owned by this package.

The README's test command installs the package first (``pip install -e ".[test,browser,dev]"``),
whose build hook (hatch-jupyter-builder) builds the extension with Node from PyPI and puts it
into ``share/jupyter/labextensions/chat-oauth2-nb`` of the environment.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_jupyter_labextension_list_shows_it_enabled(tmp_path: Path) -> None:
    # Only the environment's folders: no user-level extension may stand in for the install.
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env["HOME"] = str(tmp_path)
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "config")
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "data")
    listing = subprocess.run(
        [sys.executable, "-m", "jupyterlab.labextensions", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    version = json.loads((ROOT / "package.json").read_text())["version"]
    line = re.search(rf"^\s*chat-oauth2-nb v{re.escape(version)} .*$", text, re.M)
    assert line, f"chat-oauth2-nb is not installed here; `pip install -e .` installs it:\n{text}"
    assert "enabled" in line.group(0) and "OK" in line.group(0), line.group(0)
    assert "(python, chat_oauth2_nb)" in line.group(0), line.group(0)

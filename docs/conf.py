"""Sphinx configuration of the chat_oauth2_nb documentation (MyST pages, notebooks, API)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The package documented is the one next to these pages (a worktree or a fresh clone),
# whatever else is installed.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

import chat_oauth2_nb  # noqa: E402

HERE = Path(__file__).resolve().parent


def _copy_notebooks() -> None:
    """Render ../notebooks as docs/notebooks/ (a build-time copy, git-ignored).

    A symlink would not do: Sphinx resolves it, and the notebooks' links to each other then
    point outside the documentation. Only changed files are written, each by a rename, so
    two builds at once never see half a notebook.
    """
    target = HERE / "notebooks"
    target.mkdir(exist_ok=True)
    for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
        copy = target / source.name
        if copy.exists() and copy.read_bytes() == source.read_bytes():
            continue
        partial = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
        shutil.copyfile(source, partial)
        os.replace(partial, copy)
    for stale in target.glob("*.ipynb"):
        if not (ROOT / "notebooks" / stale.name).exists():
            stale.unlink()


_copy_notebooks()

project = "chat_oauth2_nb"
author = "chat_oauth2_nb contributors"
copyright = "chat_oauth2_nb contributors"
release = version = chat_oauth2_nb.__version__

extensions = [
    # myst_nb brings myst_parser: Markdown pages and the notebooks, one parser.
    "myst_nb",
    "sphinx.ext.autodoc",
    # The docstrings are Google style (Args:, Returns:, Raises:).
    "sphinx.ext.napoleon",
    # {errors-table} and {other-public-names}: docs/_ext/chat_oauth2_docs.py
    "chat_oauth2_docs",
]

exclude_patterns = ["_build", "**/.ipynb_checkpoints", "README.md"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

# The notebooks are rendered as saved (without outputs): executing them needs a kernel and
# a person (or the demo provider's automation), which tests/test_notebooks.py runs instead.
nb_execution_mode = "off"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
# The notebooks put a small "####" aside under their title on purpose.
suppress_warnings = ["myst.header"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}
napoleon_numpy_docstring = False

html_theme = "pydata_sphinx_theme"
html_title = "chat_oauth2_nb"
html_theme_options = {
    # Nothing is fetched at build time or by the reader's browser from elsewhere.
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
# The pages are few and flat: the top bar lists them, so no empty left column.
html_sidebars: dict[str, list[str]] = {"**": []}
html_static_path: list[str] = []

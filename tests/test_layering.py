"""The package's layers, read from every import statement (function-level ones included).

docs/ARCHITECTURE.md draws the house: a folder is a process or a layer, and a module may
import only its own folder and the folders below it. The rules below are that picture as
data, folder by folder, with no list of exceptions. The source is read rather than
``sys.modules``, so an import hidden in a function that no test happens to call counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "chat_oauth2_nb"
ROOT = "chat_oauth2_nb"

# Each layer and the layers it may import (its own included). "core" is the modules at
# the package's top plus oauth/ (the sans-I/O protocol and its one transport).
MAY_IMPORT: dict[str, set[str]] = {
    "core": {"core"},
    "store": {"store", "core"},
    "lifecycle": {"lifecycle", "store", "core"},
    "kernel": {"kernel", "lifecycle", "store", "core"},
    "server": {"server", "doctor", "lifecycle", "store", "core"},
    "hub": {"hub", "lifecycle", "store", "core"},
    "widgets": {"widgets", "kernel", "lifecycle", "store", "core"},
    "doctor": {"doctor", "lifecycle", "store", "core"},
    "notebook": {"notebook", "widgets", "doctor", "kernel", "lifecycle", "store", "core"},
    "demo": {"demo"},
}
# Frameworks of one process only: the core and the kernel's parts never load them.
FRAMEWORKS = {
    "tornado": {"server", "hub"},
    "jupyter_server": {"server"},
    "jupyterhub": {"hub"},
    "traitlets": {"server", "hub", "widgets", "doctor"},  # doctor: reads a hub config file
    "ipywidgets": {"widgets"},
    "IPython": {"notebook"},
}
FOLDERS = {"oauth": "core", **{name: name for name in MAY_IMPORT if name != "core"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it, as absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            # `from . import widgets` imports the submodule itself.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def all_modules() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def is_entry_point(name: str) -> bool:
    """The package itself (its lazy exports) and ``python -m`` entry points sit above all."""
    return name == ROOT or name.endswith(".__main__")


def layer_of(name: str) -> str | None:
    """The layer of a module of this package (None for the package itself and foreign names)."""
    parts = name.split(".")
    if parts[0] != ROOT or len(parts) == 1:
        return None
    return FOLDERS.get(parts[1], "core")


def own_modules(imported: set[str], known: set[str]) -> set[str]:
    """The package modules among ``imported`` (a name may be a module or a name in one)."""
    found = set()
    for name in imported:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != ROOT:
            found.add(name)
    return found


MODULES = all_modules()


def test_the_reader_sees_function_level_imports() -> None:
    client = MODULES["chat_oauth2_nb.notebook.client"]
    assert "chat_oauth2_nb.widgets" in client  # inside panel()


def test_every_folder_has_a_layer() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(FOLDERS), f"no layer for {sorted(folders - set(FOLDERS))}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not is_entry_point(n)))
def test_a_module_imports_only_its_layer_and_those_below(name: str) -> None:
    layer = layer_of(name)
    assert layer is not None
    bad = sorted(
        target
        for target in own_modules(MODULES[name], set(MODULES))
        if layer_of(target) not in MAY_IMPORT[layer]
    )
    assert not bad, f"{name} ({layer}) imports {bad}; see docs/ARCHITECTURE.md"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not is_entry_point(n)))
def test_a_framework_loads_only_in_its_process(name: str) -> None:
    layer = layer_of(name)
    bad = sorted(
        target
        for target in MODULES[name]
        if target.split(".")[0] in FRAMEWORKS and layer not in FRAMEWORKS[target.split(".")[0]]
    )
    assert not bad, f"{name} ({layer}) imports {bad}"


def test_the_import_graph_has_no_circle() -> None:
    """No two modules reach each other, counting imports inside functions."""
    known = set(MODULES)
    graph = {name: own_modules(imported, known) - {name} for name, imported in MODULES.items()}
    # A package's __init__ re-exporting its own submodules is not a circle of meaning;
    # `from . import x` inside the package reads as an edge to the package, so drop those.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            circle = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                circle.append(top)
                if top == node:
                    break
            if len(circle) > 1:
                circles.append(sorted(circle))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


def test_notebook_client_imports_the_adapters_only_inside_its_methods() -> None:
    """The optional libraries load when an adapter is asked for, never with the client."""
    tree = ast.parse((PACKAGE / "notebook" / "client.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` is for type checkers only
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            assert not any(n.split(".")[0] in ("requests", "google", "azure") for n in names)
            assert "adapters" not in (getattr(node, "module", None) or "")

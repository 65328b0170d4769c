"""The package's layers, read from every import statement (function-level ones included).

The kernel and the Jupyter server are different processes that share only the store, so
the core (config, protocol, store, flows, client, auth…) must never pull in the server's
tornado handlers or the widgets, and the server must never load the client. DESIGN.md
draws the arrows; this test reads the source rather than ``sys.modules``, so an import
hidden in a function that no test happens to call is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "chat_oauth2_nb"

CORE = {
    "chat_oauth2_nb.oauth.oidc",
    "chat_oauth2_nb.config",
    "chat_oauth2_nb.kernel.environment",
    "chat_oauth2_nb.errors",
    "chat_oauth2_nb.oauth",
    "chat_oauth2_nb.routes",
    "chat_oauth2_nb.oauth.transport",
    "chat_oauth2_nb.store.hubkey",
    "chat_oauth2_nb.store",
    "chat_oauth2_nb.kernel.flows",
    "chat_oauth2_nb.notebook.client",
    "chat_oauth2_nb.kernel.auth",
    "chat_oauth2_nb.kernel.adapters",
    "chat_oauth2_nb.doctor",
}
# The documented hops from the core into other layers, each inside one function.
ALLOWED = {
    ("chat_oauth2_nb.notebook.client", "chat_oauth2_nb.kernel.auth"),  # client.auth()
    # client.requests_auth(), .google_credentials(), .azure_credential()
    ("chat_oauth2_nb.notebook.client", "chat_oauth2_nb.kernel.adapters"),
    ("chat_oauth2_nb.notebook.client", "chat_oauth2_nb.widgets"),  # client.panel()
    ("chat_oauth2_nb.notebook.client", "chat_oauth2_nb.kernel.loopback"),  # the loopback listener
    ("chat_oauth2_nb.notebook.client", "chat_oauth2_nb.doctor"),  # client.diagnose()
}
# Lower layers never import higher ones (config, protocol -> store -> flows -> client -> auth).
ORDER = [
    "chat_oauth2_nb.errors",
    "chat_oauth2_nb.kernel.environment",
    "chat_oauth2_nb.routes",
    "chat_oauth2_nb.config",
    "chat_oauth2_nb.oauth",
    "chat_oauth2_nb.oauth.transport",
    "chat_oauth2_nb.store.hubkey",
    "chat_oauth2_nb.store",
    "chat_oauth2_nb.kernel.flows",
    "chat_oauth2_nb.notebook.client",
]
FOREIGN_UI = ("tornado", "jupyter_server", "ipywidgets", "traitlets", "jupyterhub")


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


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_reader_sees_function_level_imports() -> None:
    client = all_modules()["chat_oauth2_nb.notebook.client"]
    assert "chat_oauth2_nb.widgets" in client  # inside panel()
    assert "chat_oauth2_nb.kernel.loopback" in client  # inside _start_loopback()


@pytest.mark.parametrize("core", sorted(CORE))
def test_core_never_imports_server_widgets_or_their_frameworks(core: str) -> None:
    imported = all_modules()[core]
    bad = sorted(
        name
        for name in imported
        if (
            any(
                under(name, layer)
                for layer in (
                    "chat_oauth2_nb.server",
                    "chat_oauth2_nb.widgets",
                    "chat_oauth2_nb.hub",
                    "chat_oauth2_nb.demo",
                )
            )
            or name.split(".")[0] in FOREIGN_UI
        )
        and not any(core == src and under(name, dst) for src, dst in ALLOWED)
    )
    assert not bad, f"{core} imports {bad}"


def test_lower_layers_never_import_higher_ones() -> None:
    modules = all_modules()
    for i, lower in enumerate(ORDER):
        higher = [
            *ORDER[i + 1 :],
            "chat_oauth2_nb.kernel.auth",
            "chat_oauth2_nb.kernel.adapters",
            "chat_oauth2_nb.widgets",
        ]
        bad = sorted(
            n
            for n in modules[lower]
            if any(under(n, h) for h in higher)
            and not any(lower == src and under(n, dst) for src, dst in ALLOWED)
        )
        assert not bad, f"{lower} imports {bad}"


def test_auth_depends_on_a_token_source_not_the_client() -> None:
    assert not any(
        under(n, "chat_oauth2_nb.notebook.client")
        for n in all_modules()["chat_oauth2_nb.kernel.auth"]
    )


def test_adapters_depend_on_a_token_source_not_the_client() -> None:
    imported = all_modules()["chat_oauth2_nb.kernel.adapters"]
    assert not any(under(n, "chat_oauth2_nb.notebook.client") for n in imported)


def test_client_imports_the_adapters_only_inside_its_methods() -> None:
    """The optional libraries load when an adapter is asked for, never with the client."""
    tree = ast.parse((PACKAGE / "client.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "adapters":
            raise AssertionError("client.py imports .adapters at module level")
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` is for type checkers only
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            assert not any(n.split(".")[0] in ("requests", "google", "azure") for n in names)


def test_server_and_hub_never_import_the_client_side() -> None:
    for name, imported in all_modules().items():
        if not (under(name, "chat_oauth2_nb.server") or under(name, "chat_oauth2_nb.hub")):
            continue
        bad = sorted(
            n
            for n in imported
            if any(
                under(n, layer)
                for layer in (
                    "chat_oauth2_nb.notebook.client",
                    "chat_oauth2_nb.kernel.auth",
                    "chat_oauth2_nb.kernel.flows",
                    "chat_oauth2_nb.widgets",
                )
            )
        )
        assert not bad, f"{name} imports {bad}"

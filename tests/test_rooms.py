"""Rooms a person can hold in mind: no class much over 450 lines, no function over 80, none
more complex than 20 (docs/ARCHITECTURE.md says why). The demo provider is a test fixture
shipped for users and is held to the function limits only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "chat_oauth2_nb"
MAX_CLASS = 470
MAX_FUNCTION = 80
MAX_COMPLEXITY = 20

SOURCES = sorted(PACKAGE.rglob("*.py"))


def span(node: ast.AST) -> int:
    assert isinstance(node, ast.stmt)
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    assert node.end_lineno is not None
    return node.end_lineno - first + 1


def complexity(node: ast.AST) -> int:
    """McCabe's number the way ruff's C901 counts it, near enough: one plus each branch."""
    count = 1
    for child in ast.walk(node):
        if child is not node and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(child, ast.If | ast.For | ast.AsyncFor | ast.While | ast.IfExp):
            count += 1
        elif isinstance(child, ast.ExceptHandler | ast.With | ast.AsyncWith | ast.Assert):
            count += isinstance(child, ast.ExceptHandler)
        elif isinstance(child, ast.BoolOp):
            count += len(child.values) - 1
        elif isinstance(child, ast.comprehension):
            count += 1 + len(child.ifs)
        elif isinstance(child, ast.match_case):
            count += 1
    return count


def rooms(path: Path) -> list[tuple[str, ast.AST]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            found.append((node.name, node))
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_rooms_stay_small(path: Path) -> None:
    too_big = []
    for name, node in rooms(path):
        lines = span(node)
        if isinstance(node, ast.ClassDef):
            if lines > MAX_CLASS and "demo" not in path.parts:
                too_big.append(f"class {name}: {lines} lines")
        elif lines > MAX_FUNCTION:
            too_big.append(f"{name}(): {lines} lines")
        elif complexity(node) > MAX_COMPLEXITY:
            too_big.append(f"{name}(): complexity {complexity(node)}")
    assert not too_big, "; ".join(too_big)

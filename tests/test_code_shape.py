"""House rules that keep the code small: no function over 50 lines in the library and the callbacks."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(p for folder in ("hl_lightning", "callbacks") for p in (ROOT / folder).rglob("*.py"))


def long_functions(path: Path, limit: int = 50) -> list[str]:
    """``name (lines)`` of every function or method of ``path`` longer than ``limit`` lines (docstring included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > limit
    ]


def test_the_checker_sees_a_long_function(tmp_path):
    source = tmp_path / "long.py"
    source.write_text("def f():\n" + "    x = 1\n" * 50 + "\n\ndef g():\n    return 1\n")
    assert long_functions(source) == ["f (51 lines)"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_over_50_lines(path):
    assert long_functions(path) == []

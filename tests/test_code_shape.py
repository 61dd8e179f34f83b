"""Functions short enough to read at once: none in the two packages is over 60 lines
(docstring included), the bound issue 15 set when the longest ran 100-220 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 60


def _long_functions(package: Path) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_LINES:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
                                 f"({length} lines)")
    return found


def test_no_function_is_longer_than_a_screen() -> None:
    long = [f for pkg in ("deepnoise_engine", "deepnoise_app")
            for f in _long_functions(ROOT / pkg)]
    assert not long, "split these functions:\n" + "\n".join(long)


def test_the_check_finds_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"def long():\n{body}\n", encoding="utf-8")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert _long_functions(tmp_path) == [f"m.py:1 long ({MAX_LINES + 1} lines)"]
    finally:
        ROOT = saved

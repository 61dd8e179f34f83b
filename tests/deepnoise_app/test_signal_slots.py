"""No signal is connected to a callable whose optional parameters a signal argument fills.

``button.clicked.connect(self.open_train_dialog)`` passed ``clicked``'s ``checked`` (False)
into ``open_train_dialog(exec_=True)``: the dialog was built and never shown. This scan
reads every module of ``deepnoise_app`` and flags ``.connect(f)`` where ``f`` (a method of
the same class, a function of the module) has a positional parameter with a default.
Such options are keyword-only (``def f(self, *, exec_=True)``) or the slot is a lambda.
"""

from __future__ import annotations

import ast
from pathlib import Path

import deepnoise_app

PACKAGE = Path(deepnoise_app.__file__).parent


def _optional_positionals(node: ast.FunctionDef) -> list[str]:
    """Names of the positional parameters with a default (``self`` aside)."""
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    return [a.arg for a in positional[len(positional) - len(args.defaults):]]


def _defs(tree: ast.Module) -> dict[tuple[str | None, str], ast.FunctionDef]:
    """(class name or None, function name) -> definition, for one module."""
    found: dict[tuple[str | None, str], ast.FunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[(None, node.name)] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    found[(node.name, item.name)] = item
    return found


def _slot_name(arg: ast.expr) -> tuple[bool, str] | None:
    """(is a method of self, name) for ``self.f`` / ``f`` slots; None for anything else."""
    if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) \
            and arg.value.id == "self":
        return True, arg.attr
    if isinstance(arg, ast.Name):
        return False, arg.id
    return None


def risky_connections(source: str, filename: str = "<module>") -> list[str]:
    """``file:line slot(params)`` for each connection a signal argument could misfill."""
    tree = ast.parse(source, filename)
    defs = _defs(tree)
    problems: list[str] = []
    for cls in [None, *(n for n in tree.body if isinstance(n, ast.ClassDef))]:
        scope = tree if cls is None else cls
        for node in ast.walk(scope):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "connect" and node.args):
                continue
            slot = _slot_name(node.args[0])
            if slot is None:
                continue
            is_method, name = slot
            owner = cls.name if (is_method and cls is not None) else None
            if is_method:
                targets = [defs[(owner, name)]] if (owner, name) in defs else []
            else:  # a module function or a function defined inside the method
                targets = [n for n in ast.walk(tree)
                           if isinstance(n, ast.FunctionDef) and n.name == name]
            for target in targets:
                optional = _optional_positionals(target)
                if not optional:
                    continue
                problems.append(f"{filename}:{node.lineno} {name}({', '.join(optional)})")
    return sorted(set(problems))


def test_no_signal_fills_an_optional_parameter() -> None:
    problems: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        problems += risky_connections(path.read_text(encoding="utf-8"),
                                      str(path.relative_to(PACKAGE.parent)))
    assert problems == [], "signals connected to callables with optional positional " \
                           "parameters (make them keyword-only or use a lambda):\n" + \
                           "\n".join(problems)


def test_the_scan_finds_the_pattern() -> None:
    source = '''
class Dock:
    def __init__(self):
        self.button.clicked.connect(self.open_dialog)
        self.other.clicked.connect(self.safe)
        self.third.clicked.connect(lambda: self.open_dialog())
    def open_dialog(self, exec_=True):
        pass
    def safe(self, *, exec_=True):
        pass
'''
    assert risky_connections(source, "dock.py") == ["dock.py:4 open_dialog(exec_)"]

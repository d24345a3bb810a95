"""Where the package's source names another library's private attributes (for the adapters' lint tests).

An attribute read or write (``x._state``), a string naming one
(``getattr(x, "_state")``, ``vars(x)["_state"]``), or an attribute of a class
read through the class (``optim.Optimizer.state``): each found with its
file and line, so that a test can say where a module reaches past an adapter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import multiopt_lab

PACKAGE = Path(multiopt_lab.__file__).parent


def _class_name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def private_reads(source: str, names: frozenset, classes: dict[str, frozenset] | None = None
                  ) -> list[tuple[int, str]]:
    """``(line, what)`` for every use of ``names`` in ``source``, and of ``classes[cls]`` on ``cls``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            if node.attr in names:
                found.append((node.lineno, f".{node.attr}"))
            owner = _class_name(node.value)
            if classes and node.attr in classes.get(owner, ()):
                found.append((node.lineno, f"{owner}.{node.attr}"))
        elif isinstance(node, ast.Constant) and node.value in names:
            found.append((node.lineno, repr(node.value)))
    return found


def reads_outside(adapter: str, names: frozenset, classes: dict[str, frozenset] | None = None
                  ) -> list[str]:
    """``file:line what`` for every use of ``names`` in the package outside ``adapter`` (a path in it)."""
    found = []
    for file in sorted(PACKAGE.rglob("*.py")):
        relative = file.relative_to(PACKAGE).as_posix()
        if relative == adapter:
            continue
        for line, what in private_reads(file.read_text(encoding="utf-8"), names, classes):
            found.append(f"multiopt_lab/{relative}:{line} uses {what}")
    return found

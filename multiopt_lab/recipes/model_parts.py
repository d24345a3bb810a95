"""What the recipes read off a model: its repeated blocks, and rule texts that name its parts.

The blocks are the longest run of modules a model keeps in a list
(``model.layers``: Llama's ``TransformerBlock`` s, TinyGPT's ``Block`` s),
the one holding the most values. A recipe's rules name them by class
(``within("TransformerBlock")``) when that class appears nowhere else, and
by path (``glob("model.layers.*")``) otherwise.

Example:
    >>> from multiopt_lab.examples import TinyGPT
    >>> blocks = find_blocks(TinyGPT(16, dims=8, layers=2, heads=2))
    >>> blocks.path, blocks.count, blocks.scope
    ('layers', 2, 'within("Block")')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.nn as nn
from mlx.utils import tree_flatten

from multiopt_lab.partition.assignment import assign
from multiopt_lab.partition.modules import family
from multiopt_lab.rules.text import quote_pattern

__all__ = ["Blocks", "find_blocks", "modules_of", "kinds_text", "any_of", "require_groups",
           "is_layer_kind"]


@dataclass(frozen=True)
class Blocks:
    """A model's repeated blocks.

    Attributes:
        path (str): Path of the list that holds them (``"model.layers"``).
        count (int): How many there are.
        classes (tuple[str, ...]): Their class names.
        scope (str): A rule that matches every parameter inside them.

    Example:
        >>> Blocks("layers", 2, ("Block",), 'within("Block")').block(1)
        'glob("layers.1.*")'
    """

    path: str
    count: int
    classes: tuple[str, ...]
    scope: str

    def block(self, index: int) -> str:
        """A rule matching the parameters of block ``index``."""
        return f"glob({quote_pattern(f'{self.path}.{index}.*')})"

    def contains(self, path: str) -> bool:
        """Whether a parameter path lies inside the blocks."""
        return path.startswith(self.path + ".")


def modules_of(model: nn.Module) -> list[tuple[str, Any]]:
    """Every module of ``model`` with its path, and the lists of modules, depth first.

    Returns ``(path, module)`` for modules and ``(path, [modules])`` for lists.

    Example:
        >>> [p for p, _ in modules_of(nn.Sequential(nn.Linear(2, 2)))]
        ['', 'layers', 'layers.0']
    """
    found: list[tuple[str, Any]] = [("", model)]
    _collect(model, "", found)
    return found


def _collect(node: Any, prefix: str, found: list) -> None:
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        path = f"{prefix}{key}"
        if isinstance(value, nn.Module):
            found.append((path, value))
            _collect(value, path + ".", found)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, nn.Module) for v in value):
            found.append((path, list(value)))
            _collect(value, path + ".", found)
        elif isinstance(value, dict) and any(isinstance(v, nn.Module) for v in value.values()):
            _collect(value, path + ".", found)


def _size(module: nn.Module) -> int:
    return sum(v.size for _, v in tree_flatten(module.parameters()))


def find_blocks(model: nn.Module) -> Blocks | None:
    """The model's repeated blocks, or None when it keeps no list of modules.

    Example:
        >>> from multiopt_lab.examples import SmallCNN
        >>> find_blocks(SmallCNN()) is None
        True
    """
    parts = modules_of(model)
    lists = [(path, members) for path, members in parts if isinstance(members, list)]
    if not lists:
        return None
    path, members = max(lists, key=lambda item: sum(_size(m) for m in item[1]))
    classes = tuple(dict.fromkeys(type(m).__name__ for m in members))
    elsewhere = [p for p, m in parts if isinstance(m, nn.Module) and type(m).__name__ in classes
                 and p.rpartition(".")[0] != path]
    if elsewhere:  # the class is used outside the list too: name the list by its path
        scope = f"glob({quote_pattern(path + '.*')})"
    else:
        scope = any_of([f"within({quote_pattern(c)})" for c in classes])
    return Blocks(path, len(members), classes, scope)


def any_of(conditions: list[str]) -> str:
    """``a``, or ``(a or b)`` for several: ready to sit inside an ``and``.

    Example:
        >>> any_of(['within("A")', 'within("B")'])
        '(within("A") or within("B"))'
    """
    return conditions[0] if len(conditions) == 1 else "(" + " or ".join(conditions) + ")"


def kinds_text(kinds) -> str:
    """``module == "Linear"``, or ``module in ("Linear", "LoRALinear")`` for several.

    Example:
        >>> kinds_text(["Linear"]), kinds_text(["Linear", "LoRALinear"])
        ('module == "Linear"', 'module in ("Linear", "LoRALinear")')
    """
    kinds = list(dict.fromkeys(kinds))
    if len(kinds) == 1:
        return f"module == {quote_pattern(kinds[0])}"
    return "module in (" + ", ".join(quote_pattern(k) for k in kinds) + ")"


def is_layer_kind(kind: str | None, of: str) -> bool:
    """A trainable layer of family ``of`` (``"Linear"``, ``"Embedding"``), not a quantized one.

    Quantized layers store packed integers, frozen; they are never a recipe's target.

    Example:
        >>> is_layer_kind("LoRALinear", "Linear"), is_layer_kind("QuantizedLinear", "Linear")
        (True, False)
    """
    return kind is not None and family(kind) == of and not kind.startswith("Quantized")


def require_groups(recipe: str, model: nn.Module, table, rules, labels, why: dict[str, str]) -> None:
    """Refuse a split that would leave a group empty, saying why and what to do instead.

    Args:
        recipe (str): The recipe's name, for the message.
        model (nn.Module): The model, for the message.
        table (ParameterTable): Its trainable parameters.
        rules (list[str]): The recipe's rules.
        labels (list[str]): Its groups.
        why (dict[str, str]): Label -> what to do when that group would be empty.

    Raises:
        ValueError: A group would hold no parameter.

    Example:
        >>> from multiopt_lab.partition.table import ParameterTable
        >>> require_groups("demo", nn.Linear(2, 2), ParameterTable.from_tree(nn.Linear(2, 2)),
        ...                ["ndim == 2"], ["w", "b"], {})
    """
    assignment = assign(table, rules, labels)
    for label in labels:
        if not assignment.paths_of(label):
            raise ValueError(f"{recipe}(): the group {label!r} would be empty for this "
                             f"{type(model).__name__} ({len(table)} trainable parameters); "
                             + why.get(label, "this recipe does not fit the model"))

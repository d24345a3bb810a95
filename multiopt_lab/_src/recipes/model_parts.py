"""What the recipes read off a model: its repeated blocks, and rule texts that name its parts.

The blocks are the longest run of modules a model keeps in a list
(``model.layers``: Llama's ``TransformerBlock`` s, TinyGPT's ``Block`` s),
the one holding the most values. A recipe's rules name them by class
(``within("TransformerBlock")``) when that class appears nowhere else, and
by path (``glob("model.layers.*")``) otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.nn as nn
from mlx.utils import tree_flatten

from multiopt_lab._src.partition.assignment import assign
from multiopt_lab._src.partition.labels import RESERVED_LABELS, label_text_problem
from multiopt_lab._src.partition.modules import family
from multiopt_lab._src.rules.text import quote_pattern

__all__ = ["Blocks", "find_blocks", "hidden_blocks", "modules_of", "kinds_text", "any_of",
           "require_groups", "is_layer_kind", "glob_literal", "glob_under", "within_text",
           "level_labels"]


@dataclass(frozen=True)
class Blocks:
    """A model's repeated blocks.

    Attributes:
        path (str): Path of the list that holds them (``"model.layers"``).
        count (int): How many entries the list has.
        classes (tuple[str, ...]): The blocks' class names.
        scope (str): A rule that matches every parameter inside them.
        indices (tuple[int, ...] | None): The positions in the list that hold
            blocks; None: all of them.
    """

    path: str
    count: int
    classes: tuple[str, ...]
    scope: str
    indices: tuple[int, ...] | None = None

    def block(self, index: int) -> str:
        """A rule matching the parameters of block ``index``."""
        return glob_under(f"{self.path}.{index}")

    def contains(self, path: str) -> bool:
        """Whether a parameter path lies inside the blocks."""
        prefix = self.path + "."
        if not path.startswith(prefix):
            return False
        if self.indices is None:
            return True
        position = path[len(prefix):].partition(".")[0]
        return position.isdecimal() and int(position) in self.indices


def glob_literal(text: str) -> str:
    """``text`` as a glob pattern that matches exactly it: ``*``, ``?`` and ``[`` bracketed.
    """
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def glob_under(prefix: str) -> str:
    """A rule matching every parameter under the module at ``prefix``.
    """
    return f"glob({quote_pattern(glob_literal(prefix) + '.*')})"


def within_text(class_name: str) -> str:
    """A rule matching every parameter inside a module of class ``class_name``:
    ``within("Block")``, or ``"My-Block" in modules`` for a name that is not an identifier
    (a class made with ``type()`` may have any name; ``within`` takes identifiers only).
    """
    if class_name.isidentifier():
        return f"within({quote_pattern(class_name)})"
    return f"{quote_pattern(class_name)} in modules"


def modules_of(model: nn.Module) -> list[tuple[str, Any]]:
    """Every module of ``model`` with its path, and the lists of modules, depth first.

    Returns ``(path, module)`` for modules and ``(path, [modules])`` for lists.
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
    return sum(v.size for _, v in tree_flatten(module.parameters()))  # type: ignore[str-unpack, union-attr]  # tree_flatten gives a list here (mlx types it list | dict)


def find_blocks(model: nn.Module) -> Blocks | None:
    """The model's list of modules holding the most values, or None when it keeps no list.

    Every entry of the list counts (an ``nn.Sequential``'s ``Linear`` and
    ``ReLU`` layers too): what :func:`~multiopt_lab.recipes.layerwise_lr_decay`
    splits by. See :func:`hidden_blocks` for the repeated blocks alone.
    """
    parts = modules_of(model)
    lists = [(path, members) for path, members in parts if isinstance(members, list)]
    if not lists:
        return None
    path, members = max(lists, key=lambda item: sum(_size(m) for m in item[1]))
    return _blocks(parts, path, members, None)


def hidden_blocks(model: nn.Module) -> Blocks | None:
    """The model's repeated blocks: entries of a list that are blocks of layers, not single
    layers; None when no list holds any.

    An ``nn.Sequential`` MLP's ``Linear`` layers are single layers (the last
    is the output head), a transformer's ``TransformerBlock`` s are blocks.
    An entry is a block when it holds parameters and its class is not a
    layer family (``Linear``, ``Embedding``, norms, convolutions, and their
    LoRA or quantized forms). In a list that mixes both (blocks, then a head
    ``Linear``), only the blocks count.
    """
    parts = modules_of(model)
    found = []
    for path, members in parts:
        if isinstance(members, list):
            indices = tuple(i for i, m in enumerate(members) if _is_block(m))
            if indices:
                found.append((sum(_size(members[i]) for i in indices), path, members, indices))
    if not found:
        return None
    _, path, members, indices = max(found, key=lambda item: item[0])
    return _blocks(parts, path, members, None if len(indices) == len(members) else indices)


#: Families of single layers (see ``partition.modules.family``): never a block.
_LAYER_FAMILIES = frozenset({"Linear", "Embedding", "Norm", "Conv1d", "Conv2d", "Conv3d"})


def _is_block(module: nn.Module) -> bool:
    return family(type(module).__name__) not in _LAYER_FAMILIES and _size(module) > 0


def _blocks(parts: list, path: str, members: list, indices: tuple[int, ...] | None) -> Blocks:
    chosen = members if indices is None else [members[i] for i in indices]
    classes = tuple(dict.fromkeys(type(m).__name__ for m in chosen))
    others = set() if indices is None else {type(m).__name__ for i, m in enumerate(members)
                                            if i not in indices}
    elsewhere = [p for p, m in parts if isinstance(m, nn.Module) and type(m).__name__ in classes
                 and p.rpartition(".")[0] != path]
    if elsewhere or others & set(classes):
        # The class is used outside the blocks too: name them by their paths.
        if indices is None:
            scope = glob_under(path)
        else:
            scope = any_of([glob_under(f"{path}.{i}") for i in indices])
    else:
        scope = any_of([within_text(c) for c in classes])
    return Blocks(path, len(members), classes, scope, indices)


def level_labels(names: list[str]) -> list[str]:
    """Group labels made from names (a model's child names): one line of printable text,
    none reserved (``"total"``, ``"-"``), all distinct.

    A character a label may not hold is written as its escape (``\\n``,
    ``\\x1b``); a reserved name gets ``_group``; a repeat gets ``_2``, ``_3``...,
    never one of the names given.
    """
    def clean(name: str) -> str:
        text = "".join(c if label_text_problem(c) is None else _escape(c) for c in name)
        text = text or "unnamed"
        return f"{text}_group" if text in RESERVED_LABELS else text

    bases = [clean(n) for n in names]
    avoid = set(bases)
    taken: set[str] = set()
    labels = []
    for base in bases:
        label, n = base, 1
        while label in taken or (n > 1 and label in avoid):
            n += 1
            label = f"{base}_{n}"
        taken.add(label)
        labels.append(label)
    return labels


def _escape(char: str) -> str:
    """A character as Python writes it escaped in a string (``\\n``, ``\\x1b``, ``\\u2028``)."""
    return repr(char)[1:-1] if char not in "'\"" else char


def any_of(conditions: list[str]) -> str:
    """``a``, or ``(a or b)`` for several: ready to sit inside an ``and``.
    """
    return conditions[0] if len(conditions) == 1 else "(" + " or ".join(conditions) + ")"


def kinds_text(kinds) -> str:
    """``module == "Linear"``, or ``module in ("Linear", "LoRALinear")`` for several.
    """
    kinds = list(dict.fromkeys(kinds))
    if len(kinds) == 1:
        return f"module == {quote_pattern(kinds[0])}"
    return "module in (" + ", ".join(quote_pattern(k) for k in kinds) + ")"


def is_layer_kind(kind: str | None, of: str) -> bool:
    """A trainable layer of family ``of`` (``"Linear"``, ``"Embedding"``), not a quantized one.

    Quantized layers store packed integers, frozen; they are never a recipe's target.
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
    """
    assignment = assign(table, rules, labels)
    for label in labels:
        if not assignment.paths_of(label):
            raise ValueError(f"{recipe}(): the group {label!r} would be empty for this "
                             f"{type(model).__name__} ({len(table)} trainable parameters); "
                             + why.get(label, "this recipe does not fit the model"))

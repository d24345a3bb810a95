"""A whole MultiOptimizer in a rule file: groups, labels, rules, each group's optimizer and schedule.

:func:`save_optimizer` writes the rule file format of
:mod:`multiopt_lab._src.io.rulefile` with a ``[group.optimizer]`` table per
group; :func:`load_optimizer` builds the same ``MultiOptimizer`` back, whose
updates equal the original's to the last bit. The file is data: class names
are looked up among MLX's optimizers and the registered ones
(:func:`~multiopt_lab.register_optimizer`), schedules among
MLX's schedule functions; nothing is imported or evaluated.

Not in the file: the optimizer's state (``save_state`` writes it) and the
options of a run (``metrics_every``, ``compile``, ``skip_nonfinite``: pass
them to :func:`load_optimizer`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlx.nn as nn
import mlx.optimizers as optim

from multiopt_lab._src.arguments import checked, is_path
from multiopt_lab._src.io.atomic import write_text_atomically
from multiopt_lab._src.io.rulefile import file_kind, read_rule_file, rule_file_text
from multiopt_lab._src.io.rulefile_data import RuleFileError, groups_to_data
from multiopt_lab._src.optimizer_file.as_data import optimizer_from_data, optimizer_to_data
from multiopt_lab._src.optimizer.multi_optimizer import MultiOptimizer

__all__ = ["optimizer_file_data", "optimizer_file_text", "save_optimizer", "load_optimizer"]


def _check_multi(optimizer: Any, caller: str) -> None:
    if isinstance(optimizer, MultiOptimizer):
        return
    if isinstance(optimizer, optim.MultiOptimizer):
        raise TypeError(f"{caller} saves a multiopt_lab MultiOptimizer; got mlx.optimizers."
                        "MultiOptimizer, whose filters are Python functions a file cannot hold. "
                        "Build it with multiopt_lab.MultiOptimizer(optimizers, rules, labels=...) "
                        "and rule expressions such as 'ndim == 2'")
    if isinstance(optimizer, optim.Optimizer):
        raise TypeError(f"{caller} saves a multiopt_lab MultiOptimizer; got one "
                        f"{type(optimizer).__name__}. Wrap it: MultiOptimizer([optimizer])")
    raise TypeError(f"{caller} expects a multiopt_lab MultiOptimizer, got "
                    f"{type(optimizer).__name__}")


def optimizer_file_data(optimizer: MultiOptimizer) -> dict:
    """The data of the rule file that holds ``optimizer`` (labels, rules, optimizers).

    Raises:
        RuleFileError: A group whose rule is a Python callable, or whose
            optimizer cannot be described (the message names the group and the fix).
    """
    _check_multi(optimizer, "save_optimizer")
    labels, filters = list(optimizer.labels), list(optimizer.filters)
    data = groups_to_data(labels, filters)  # a callable rule fails here, naming its group
    tables = []
    for label, group_optimizer in zip(labels, optimizer.optimizers):
        try:
            tables.append(optimizer_to_data(group_optimizer))
        except ValueError as err:
            raise RuleFileError(f"cannot save group {label!r}: {err}") from None
    for group, table in zip(data["group"], tables):
        group["optimizer"] = table
    return data


def optimizer_file_text(optimizer: MultiOptimizer, kind: str = "toml") -> str:
    """The text :func:`save_optimizer` writes (``kind``: ``"toml"`` or ``"json"``).

    The rule editor's "Copy as TOML" puts this text on the clipboard.
    """
    return rule_file_text(optimizer_file_data(optimizer), kind)


@checked(path=is_path)
def save_optimizer(path: str | os.PathLike, optimizer: MultiOptimizer) -> None:
    """Write a ``MultiOptimizer`` to a rule file: labels, rules and each group's optimizer.

    The extension picks the format (``.toml`` or ``.json``). Each group's
    optimizer is written as its class's name and every argument of its
    ``__init__``, read back from the optimizer; a learning rate on one of
    MLX's schedules (``optim.cosine_decay``, ``optim.join_schedules``, ...)
    as that schedule's name and arguments. The file is replaced atomically:
    a failure leaves the old one intact. :func:`load_optimizer` reads it.

    Args:
        path (str | os.PathLike): ``.toml`` or ``.json`` file to write.
        optimizer (MultiOptimizer): A ``multiopt_lab`` MultiOptimizer whose
            rules are expressions (not Python callables).

    Raises:
        RuleFileError: A rule that is a Python callable, an optimizer class
            that is neither MLX's nor registered, a schedule of your own, or
            an argument that is not plain data (the message names the group
            and how to fix it).
        TypeError: ``optimizer`` is not a ``multiopt_lab`` MultiOptimizer.

    Example:
        >>> import os, tempfile
        >>> import mlx.optimizers as optim
        >>> import multiopt_lab as mol
        >>> schedule = optim.cosine_decay(1e-3, 1000)
        >>> optimizer = mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(schedule)], ["ndim == 2"])
        >>> path = os.path.join(tempfile.mkdtemp(), "rules.toml")
        >>> mol.save_optimizer(path, optimizer)
        >>> [line for line in open(path) if line.startswith("learning_rate")]
        ['learning_rate = 0.02\\n', 'learning_rate = { schedule = "cosine_decay", init = 0.001, decay_steps = 1000, end = 0.0 }\\n']
    """
    path = Path(path)
    kind = file_kind(path)
    write_text_atomically(path, optimizer_file_text(optimizer, kind))


@checked(path=is_path)
def load_optimizer(path: str | os.PathLike, model: Any, **options: Any) -> MultiOptimizer:
    """Build the ``MultiOptimizer`` a rule file describes, for ``model``.

    Every group of the file must have an optimizer (:func:`save_optimizer`
    writes one per group); :func:`~multiopt_lab.load_rules` reads
    the rules alone. The optimizer is initialised for ``model``'s trainable
    parameters (``optimizer.init(model)``), so a rule that fails on this
    model fails here, and rules reading ``module`` see the model's layers.

    Args:
        path (str | os.PathLike): A ``.toml`` or ``.json`` rule file.
        model (nn.Module | dict): The model (or parameter tree) it will train.
        **options: ``MultiOptimizer`` options not kept in the file
            (``metrics_every``, ``compile``, ``skip_nonfinite``, ``cache``;
            ``cache`` defaults to False when a rule reads parameter values).

    Raises:
        RuleFileError: The file cannot be read, a group has no optimizer,
            names an unknown class or schedule, or gives arguments its class
            refuses (the message names the file, the group and the fix).

    Example:
        >>> import os, tempfile
        >>> import mlx.nn as nn, mlx.optimizers as optim
        >>> import multiopt_lab as mol
        >>> original = mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"])
        >>> path = os.path.join(tempfile.mkdtemp(), "rules.toml")
        >>> mol.save_optimizer(path, original)
        >>> loaded = mol.load_optimizer(path, nn.Linear(4, 2))
        >>> loaded.labels, [type(o).__name__ for o in loaded.optimizers], loaded.filters[0].text
        (('muon', 'adamw'), ['Muon', 'AdamW'], 'ndim == 2')
    """
    if not isinstance(model, (nn.Module, dict, list, tuple)):
        raise TypeError(f"load_optimizer(path, model) expects the model (an nn.Module) or its "
                        f"parameter tree (a dict), got {type(model).__name__}")
    contents = read_rule_file(path)
    missing = [label for label, table in zip(contents.labels, contents.optimizers) if table is None]
    if missing:
        shown = ", ".join(repr(label) for label in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise RuleFileError(
            f"{path}: {len(missing)} of {len(contents.labels)} groups have no optimizer ({shown}); "
            "load_optimizer needs one per group ([group.optimizer] with class = \"AdamW\" and its "
            "arguments, as save_optimizer writes); load_rules reads the rules alone")
    optimizers = []
    for label, table in zip(contents.labels, contents.optimizers):
        try:
            optimizers.append(optimizer_from_data(table, f"{path}: group {label!r}"))
        except ValueError as err:
            raise RuleFileError(str(err)) from None
    if "cache" not in options and any(rule.depends_on_values for rule in contents.rules):
        options["cache"] = False  # a rule reading values: the original could not cache either
    optimizer = MultiOptimizer(optimizers, contents.rules, labels=contents.labels, **options)
    optimizer.init(model)  # type: ignore[arg-type]  # MLX's init takes any parameter tree
    return optimizer

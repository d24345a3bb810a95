"""What a report says about the optimizers: each group's label, rule, class and settings.

From a live optimizer (:func:`setup_of_optimizer`) everything is known: the
hyperparameters and a learning-rate schedule, sampled. From files (the
command line), a rule file written by ``save_optimizer`` gives everything a
live optimizer does; one with rules alone gives the labels and rules, a
checkpoint the labels, rules, classes and learning rates, and a History's run
metadata the classes and learning rates: :func:`setup_of_files` says what it
could not know.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx

from multiopt_lab._src.io.rulefile import RuleFileError, read_rule_file
from multiopt_lab._src.mlx_internals import schedules
from multiopt_lab._src.optimizer.describe import hyperparameters, rule_text
from multiopt_lab._src.optimizer.groups import group_labels
from multiopt_lab._src.optimizer.multi_optimizer import MultiOptimizer
from multiopt_lab._src.optimizer_file.as_data import optimizer_from_data
from multiopt_lab._src.rules import Rule

__all__ = ["GroupSetup", "RunSetup", "setup_of_optimizer", "setup_of_files", "sample_schedule"]

#: Steps at which a schedule is shown, as fractions of the run.
_SCHEDULE_POINTS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class GroupSetup:
    """One group as the report shows it.

    Attributes:
        label (str): The group's label.
        rule (str): The rule's text, a callable's name, or ``"(fallback)"``.
        optimizer (str): The optimizer's class name, or ``""`` when unknown.
        settings (dict[str, str]): Hyperparameters, formatted (``lr``, ``betas``...).
        schedule (tuple[tuple[int, float], ...]): ``(step, learning rate)`` samples
            of a learning-rate schedule; empty for a constant rate.
        schedule_name (str): The schedule's function (``cosine_decay``), or ``""``.
    """

    label: str
    rule: str
    optimizer: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    schedule: tuple[tuple[int, float], ...] = ()
    schedule_name: str = ""


@dataclass(frozen=True)
class RunSetup:
    """The groups of a run and where the report learnt them.

    Attributes:
        groups (tuple[GroupSetup, ...]): In partition order, the fallback last.
        rules (tuple): What ``assign`` takes: a ``Rule`` or callable per group but the fallback.
        source (str): Where the setup came from (``"the optimizer"``, a file name).
        notes (tuple[str, ...]): What could not be known (hyperparameters a file does not hold).
        optimizers (tuple): The optimizers themselves, one per group, when known (their
            contracts are then checked); empty otherwise.
    """

    groups: tuple[GroupSetup, ...]
    rules: tuple
    source: str
    notes: tuple[str, ...] = ()
    optimizers: tuple = ()

    @property
    def labels(self) -> tuple[str, ...]:
        """The group labels, the fallback last."""
        return tuple(g.label for g in self.groups)


def _schedule_name(function) -> str:
    name = getattr(function, "__qualname__", "") or type(function).__name__
    return name.split(".<locals>")[0]


def sample_schedule(function, last_step: int) -> tuple[tuple[int, float], ...]:
    """``(step, value)`` of a schedule at the start, quarters and end of ``last_step`` steps.
    """
    steps = sorted({round(f * max(1, last_step)) for f in _SCHEDULE_POINTS})
    samples = []
    for step in steps:
        try:
            value = function(mx.array(step))
            value = float(value.item() if hasattr(value, "item") else value)
            samples.append((step, float(f"{value:.6g}")))  # float32's digits, no more
        except Exception:  # a user's schedule that cannot be called alone: show none
            return ()
    return tuple(samples)


def setup_of_optimizer(optimizer, last_step: int = 1000) -> RunSetup:
    """The setup of a ``MultiOptimizer`` (multiopt_lab's or MLX's).

    Args:
        optimizer: The multi-optimizer.
        last_step (int, optional): How far to sample a learning-rate schedule.
            Default: ``1000`` (the report passes the run's last step).

    Raises:
        TypeError: ``optimizer`` is not a multi-optimizer (no ``optimizers``).
    """
    optimizers = list(getattr(optimizer, "optimizers", None) or ())
    if not optimizers:
        raise TypeError(f"expected a MultiOptimizer (multiopt_lab's or mlx.optimizers'), found "
                        f"{type(optimizer).__name__}; a report describes how groups of parameters "
                        "are split between optimizers")
    labels = getattr(optimizer, "labels", None) or group_labels(None, optimizers)
    rules = list(getattr(optimizer, "filters", ()))[: len(optimizers) - 1]
    groups = []
    for i, (label, sub) in enumerate(zip(labels, optimizers)):
        scheduler = schedules(sub).get("learning_rate")
        groups.append(GroupSetup(
            str(label), rule_text(rules[i]) if i < len(rules) else "(fallback)", type(sub).__name__,
            hyperparameters(sub),
            sample_schedule(scheduler, last_step) if scheduler is not None else (),
            _schedule_name(scheduler) if scheduler is not None else ""))
    return RunSetup(tuple(groups), tuple(rules), "the optimizer", optimizers=tuple(optimizers))


def _checkpoint(path: str) -> tuple[list[str], list[str | None], list[str], list[dict]]:
    """Labels, rule texts, classes and per-group scalar state of a :func:`save_state` file."""
    arrays: dict[str, Any]  # mx.load's return type depends on return_metadata
    metadata: dict[str, str]
    try:  # lazily: only the scalars read below are loaded
        arrays, metadata = mx.load(path, return_metadata=True)  # type: ignore[assignment]  # a pair
    except (RuntimeError, ValueError, OSError) as error:
        raise ValueError(f"cannot read the checkpoint {path}: {error}") from None
    try:
        labels = json.loads(metadata.get("labels") or "null")
        rules = json.loads(metadata.get("rules") or "null")
        classes = json.loads(metadata.get("optimizers") or "null")
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: its metadata is not the JSON save_state writes ({error})") from None
    scalars: dict[int, dict] = {}
    for key, array in arrays.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "states" and parts[1].isdigit() and parts[2] != "step" \
                and array.size == 1:
            scalars.setdefault(int(parts[1]), {})[parts[2]] = float(array.reshape(-1)[0].item())
    if not isinstance(labels, list) or not isinstance(rules, list) or len(rules) != len(labels) - 1:
        raise ValueError(f"{path} is not a multiopt_lab checkpoint with groups (save_state of a "
                         "MultiOptimizer writes their labels and rules); pass a rule file instead")
    classes = classes if isinstance(classes, list) and len(classes) == len(labels) else [""] * len(labels)
    return labels, rules, classes, [scalars.get(i, {}) for i in range(len(labels))]


def setup_of_files(rules_or_checkpoint: str | os.PathLike, run_metadata: Mapping[str, Any] | None = None) -> RunSetup:
    """The setup from a rule file (``.toml``/``.json``) or a checkpoint (``.safetensors``), with
    what a History's run metadata adds (each group's optimizer class and learning rate).

    Raises:
        RuleFileError: An unreadable rule file, or an optimizer in it that cannot be built.
        ValueError: A checkpoint without groups, or one whose rules are Python callables.
    """
    path = os.fspath(rules_or_checkpoint)
    notes = []
    if path.endswith(".safetensors"):
        labels, texts, classes, scalars = _checkpoint(path)
        missing = [labels[i] for i, t in enumerate(texts) if not isinstance(t, str)]
        if missing:
            raise ValueError(f"{path}: the rules of {', '.join(map(repr, missing))} were Python callables, "
                             "which a checkpoint cannot hold; pass the rule file (.toml) instead")
        rules = [Rule(t, label=label) for t, label in zip(texts, labels)]
        settings = [{"lr": f"{s['learning_rate']:.4g}"} if "learning_rate" in s else {} for s in scalars]
        source = f"checkpoint {os.path.basename(path)}"
    else:
        contents = read_rule_file(path)
        if all(table is not None for table in contents.optimizers):
            # A file save_optimizer wrote: the whole optimizer, as a live one tells it.
            try:
                optimizers = [optimizer_from_data(table, f"{path}: group {label!r}")
                              for label, table in zip(contents.labels, contents.optimizers)]
            except ValueError as err:
                raise RuleFileError(str(err)) from None
            whole = setup_of_optimizer(MultiOptimizer(optimizers, contents.rules,
                                                      labels=contents.labels))
            return RunSetup(whole.groups, whole.rules, f"rule file {os.path.basename(path)}",
                            optimizers=whole.optimizers)
        labels, rules = contents.labels, contents.rules
        classes, settings = [""] * len(labels), [{} for _ in labels]
        source = f"rule file {os.path.basename(path)}"
    meta = dict(run_metadata or {})
    ran = meta.get("optimizers")
    if isinstance(ran, list) and len(ran) == len(labels) and list(meta.get("labels") or labels) == list(labels):
        for i, entry in enumerate(ran):
            if isinstance(entry, Mapping):
                classes[i] = classes[i] or str(entry.get("class", ""))
                if "lr" not in settings[i] and isinstance(entry.get("learning_rate"), (int, float)):
                    settings[i] = {"lr": f"{entry['learning_rate']:.4g}", **settings[i]}
    elif ran:
        notes.append("the History's run has other groups than the rules: its optimizers are not shown")
    if not all(classes):
        notes.append("the optimizers are not known: pass a History recorded with this optimizer "
                     "(its run metadata names them), or a checkpoint")
    else:
        notes.append("hyperparameters other than the learning rate are not stored in these files")
    groups = tuple(GroupSetup(str(label), rule_text(rules[i]) if i < len(rules) else "(fallback)",
                              classes[i], settings[i]) for i, label in enumerate(labels))
    return RunSetup(groups, tuple(rules), source, tuple(notes))

"""What ``History.record`` and ``History.start_run`` accept, checked before anything is stored.

Values become floats (an ``mx.array`` scalar, a NumPy scalar, a number);
names (runs, groups, metrics, parameter paths) follow the character rule of
every label, so that a file can hold them; per-parameter metrics come as
``optimizer.parameter_metrics`` or as ``{path: {"group": label, metric: value}}``.
A bad value raises before anything is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from multiopt_lab._src.partition.labels import SCALAR_LABEL, check_label_text

__all__ = ["as_float", "check_name", "check_metadata_labels", "group_rows", "ParameterInput"]


def as_float(value: Any, what: str) -> float:
    """``value`` as a float; TypeError naming ``what`` for a value that is not a scalar number.
    """
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what} must be a scalar number (float or 0-d array), found {value!r}") from error


def check_name(text: Any, what: str) -> str:
    """``text`` if a history file can store it as a run, group, metric or path name; else
    ValueError (:func:`~multiopt_lab._src.partition.labels.check_label_text`: one line of
    printable text, no control characters, no lone surrogates).
    """
    return check_label_text(text, what)


def check_metadata_labels(metadata: Mapping[str, Any]) -> None:
    """Check the group labels a run's metadata names (``labels``), as names a file can hold."""
    labels = metadata.get("labels")
    if isinstance(labels, (list, tuple)):
        for label in labels:
            if isinstance(label, str):
                check_name(label, "group label")


def group_rows(loss: Any, metrics: Mapping[str, Mapping[str, Any]] | None,
               scalars: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """``(group, metric, value)`` of one step: the loss and other scalars in group ``"-"``,
    then ``metrics`` (``{group: {metric: value}}``), every value a float.

    Raises:
        TypeError: A value is not a scalar number, or ``metrics`` is not a
            mapping of mappings.
        ValueError: A name holds a line break or another control character,
            or ``metrics`` names the scalar group ``"-"``.
    """
    rows = []
    if loss is not None:
        scalars = {"loss": loss, **scalars}
    for metric, value in scalars.items():
        rows.append((SCALAR_LABEL, check_name(metric, "metric name"), as_float(value, metric)))
    for group, values in (metrics or {}).items():
        if not isinstance(values, Mapping):
            raise TypeError(f"metrics must map group -> {{metric: value}}, found {group!r}: {values!r}")
        group = check_name(str(group), "group label")
        if group == SCALAR_LABEL:
            raise ValueError(f"metrics holds the group {SCALAR_LABEL!r}, which is the group of "
                             "the loss and other scalars; record those as keyword arguments "
                             "(history.record(step, loss=..., accuracy=...)), or name the "
                             "group otherwise")
        for metric, value in values.items():
            rows.append((group, check_name(str(metric), "metric name"),
                         as_float(value, f"{group}.{metric}")))
    return rows


def _parameter_block(parameters: Any) -> tuple[tuple, tuple, tuple, Any]:
    """``(paths, groups, metrics, values)`` of what ``History.record(parameters=...)`` was given."""
    if all(hasattr(parameters, name) for name in ("paths", "groups", "metrics", "table")):
        return (tuple(parameters.paths), tuple(parameters.groups), tuple(parameters.metrics),
                parameters.table)  # a ParameterMetrics (optimizer.parameter_metrics)
    if not isinstance(parameters, Mapping):
        raise TypeError(f"parameters must be optimizer.parameter_metrics or a mapping "
                        f"{{path: {{'group': label, metric: value, ...}}}}, found "
                        f"{type(parameters).__name__}")
    paths, groups, rows, metrics = [], [], [], None
    for path, values in parameters.items():
        if not isinstance(values, Mapping) or not isinstance(values.get("group"), str):
            raise TypeError(f"parameters must map path -> {{'group': label, metric: value, ...}}, "
                            f"found {path!r}: {values!r:.80}")
        names = tuple(k for k in values if k != "group")
        if metrics is None:
            metrics = names
        elif set(names) != set(metrics):
            raise ValueError(f"every parameter needs the same metrics: {paths[0]!r} has "
                             f"{list(metrics)}, {path!r} has {list(names)}")
        paths.append(path)
        groups.append(values["group"])
        rows.append([as_float(values[m], f"{path}.{m}") for m in metrics])
    return tuple(paths), tuple(groups), tuple(metrics or ()), rows


class ParameterInput:
    """Checks the per-parameter metrics given to ``History.record``; the names of a
    layout (paths, groups, metrics) are checked once, not at every step.
    """

    def __init__(self) -> None:
        self._checked_layouts: set[tuple] = set()

    def check(self, parameters: Any) -> tuple[tuple, tuple, tuple, np.ndarray]:
        """``(paths, groups, metrics, values)``, ``values`` a float64 array (paths x metrics).

        Raises:
            TypeError: ``parameters`` has another shape, or a value is not a number.
            ValueError: A name a file could not hold, metrics that differ
                between parameters, or values of the wrong shape.
        """
        paths, groups, metrics, values = _parameter_block(parameters)
        layout = (paths, groups, metrics)
        if layout not in self._checked_layouts:
            for what, names in (("parameter path", paths), ("group label", groups),
                                ("metric name", metrics)):
                for name in set(names):
                    check_name(name, what)
            self._checked_layouts.add(layout)
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(f"parameters: every value must be a number ({error})") from None
        if array.shape != (len(paths), len(metrics)):
            raise ValueError(f"parameters: expected {len(paths)} rows of {len(metrics)} values, "
                             f"found shape {array.shape}")
        return paths, groups, metrics, array

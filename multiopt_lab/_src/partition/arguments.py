"""Checks of a ``parameters`` argument (a model, a tree or a table), beside the generic
ones of :mod:`multiopt_lab._src.arguments`.
"""

from __future__ import annotations

from typing import Any

import mlx.nn as nn

from multiopt_lab._src.arguments import check_kind
from multiopt_lab._src.partition.table import ParameterTable

__all__ = ["check_parameters"]


def check_parameters(value: Any, where: str, name: str = "parameters") -> Any:
    """The model, a parameter tree (dict or list of arrays) or a ``ParameterTable``.
    """
    return check_kind(value, (nn.Module, dict, list, tuple, ParameterTable), where, name,
                      "the model (an mlx.nn.Module), a parameter tree (dict or list) or a "
                      "ParameterTable", "pass the model, or model.trainable_parameters()")

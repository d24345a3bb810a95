"""What a rule reads of one parameter: its path, name, ndim, shape, size and dtype.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["features_of", "dtype_name"]

_DTYPE_NAMES: dict[Any, str] = {}


def dtype_name(dtype: Any) -> str:
    """The short name of an MLX or NumPy dtype, as a rule compares it (``dtype == "bfloat16"``).
    """
    try:
        return _DTYPE_NAMES[dtype]
    except (KeyError, TypeError):
        name = str(getattr(dtype, "name", None) or dtype).rsplit(".", 1)[-1]
        try:
            _DTYPE_NAMES[dtype] = name
        except TypeError:  # an unhashable dtype-like object: just don't cache it
            pass
        return name


_ARRAY_FEATURES = frozenset({"ndim", "shape", "size", "dtype"})


def features_of(path: str, array: Any, names: frozenset | None = None) -> tuple:
    """The feature tuple ``(path, name, ndim, shape, size, dtype)`` of one parameter.

    Args:
        path (str): The dotted path.
        array: The parameter (anything with ``shape`` and ``dtype``).
        names (frozenset, optional): Compute only these features (the others
            are None): a rule called by MLX on every step reads few. Default: all.
    """
    name = path.rpartition(".")[2]
    if names is not None and not (names & _ARRAY_FEATURES):
        return (path, name, None, None, None, None)
    try:
        shape = array.shape
        dtype = dtype_name(array.dtype) if names is None or "dtype" in names else None
    except AttributeError:
        raise TypeError(f"parameter {path!r} is a {type(array).__name__}, expected an array "
                        "with a shape and a dtype") from None
    if type(shape) is not tuple:
        shape = tuple(shape)
    size = math.prod(shape) if names is None or "size" in names else None
    return (path, name, len(shape), shape, size, dtype)

"""Comparing MLX trees in tests: flat dicts, and "bit-identical" (same keys, dtypes and bits).

Example:
    >>> import mlx.core as mx
    >>> assert_identical({"w": mx.ones(2)}, {"w": mx.ones(2)})
    >>> sorted(flat({"a": {"b": mx.zeros(1)}}))
    ['a.b']
"""

from __future__ import annotations

import mlx.core as mx
from mlx.utils import tree_flatten

__all__ = ["flat", "assert_identical"]


def flat(tree) -> dict:
    """``{path: leaf}`` in ``tree_flatten`` order."""
    return dict(tree_flatten(tree))


def assert_identical(a, b) -> None:
    """The same paths, and at each the same dtype and the same values to the bit."""
    fa, fb = flat(a), flat(b)
    assert fa.keys() == fb.keys()
    for key in fa:
        assert fa[key].dtype == fb[key].dtype and mx.array_equal(fa[key], fb[key]).item(), key

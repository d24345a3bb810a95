"""What part each parameter plays in its model, read off the parameter table, as arrays.

Optimizer contracts ask about roles, not names: is this parameter below 2-D,
a stack of matrices (a mixture of experts' ``SwitchLinear``, MLA's
``MultiLinear``: 3-D, of the linear family), an embedding, the output head,
a norm's scale or a bias? The answers depend only on the model (module
classes, shapes and where a parameter sits), are computed once per table
and kept while the table lives (the editor reassigns one table on every
keystroke).

The output head is the last 2-D weight of a linear layer, in the model's
order, when it sits outside the repeated numbered blocks and the model has
other weights of 2 or more dimensions (``lm_head``, an MLP's ``head``). A
head tied to the embedding is the embedding. Without the model (a
parameter dict) module classes are unknown: stacks, embeddings and heads
are not told apart, only dimensions are.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from multiopt_lab._src.partition.modules import family
from multiopt_lab._src.partition.near_misses import block_of

__all__ = ["Roles", "roles_of"]


@dataclass(frozen=True)
class Roles:
    """Per parameter (table row), boolean arrays of the parts it plays.

    Attributes:
        ndim (numpy.ndarray): Number of dimensions (ints).
        vector (numpy.ndarray): At most one dimension: norm scales, biases, gains.
        stack (numpy.ndarray): A 3-D stack of matrices of the linear family.
        embedding (numpy.ndarray): An embedding layer's weight.
        head (numpy.ndarray): The output head's weight.
        known_modules (bool): The table knows module classes (stacks,
            embeddings and heads can be told apart).
    """

    ndim: np.ndarray
    vector: np.ndarray
    stack: np.ndarray
    embedding: np.ndarray
    head: np.ndarray
    known_modules: bool


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def roles_of(table) -> Roles:
    """The :class:`Roles` of a parameter table's rows (computed once per table).
    """
    try:
        return _CACHE[table]
    except (KeyError, TypeError):
        pass
    n = len(table)
    ndim = np.fromiter(table.ndims, dtype=np.int64, count=n)
    vector = ndim <= 1
    stack = np.zeros(n, dtype=bool)
    embedding = np.zeros(n, dtype=bool)
    head = np.zeros(n, dtype=bool)
    if table.has_modules and n:
        families = {kind: family(kind) for kind in set(table.module_names)}
        kind = np.array([families[k] or "" for k in table.module_names], dtype=object)
        linear = kind == "Linear"
        weight = np.array([name == "weight" for name in table.names], dtype=bool)
        stack = linear & (ndim == 3)
        embedding = (kind == "Embedding") & weight & (ndim == 2)
        matrices = np.flatnonzero(linear & weight & (ndim == 2))
        if len(matrices):
            last = int(matrices[-1])
            others = (ndim >= 2) & ~embedding
            others[last] = False
            if not block_of(table.paths[last]) and others.any():
                head[last] = True
    roles = Roles(ndim, vector, stack, embedding, head, bool(table.has_modules))
    try:
        _CACHE[table] = roles
    except TypeError:
        pass
    return roles

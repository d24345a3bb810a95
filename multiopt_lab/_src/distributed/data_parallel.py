"""Data-parallel training on MLX's own distributed layer (``mx.distributed``).

Every rank holds the whole model, takes its own slice of each global batch,
averages the gradients with the other ranks and applies the same optimizer
step, so parameters and optimizer states stay identical everywhere. MLX does
the communication (ring over TCP, MPI, NCCL); this module only adds what a
training loop with several parameter groups needs around it.

What needs reducing across ranks:

* gradients: averaged before ``optimizer.update`` (:meth:`DataParallel.average_gradients`);
* the loss and any other per-rank scalar: averaged (or summed) with
  :meth:`DataParallel.reduce` before rank 0 records them;
* the optimizer's per-group metrics (update, gradient and parameter norms,
  update ratio, learning rate) need nothing: they are computed from the
  averaged gradients and the shared parameters, so they are already the
  global values and equal on every rank.
"""

from __future__ import annotations

import os
from typing import Any
from collections.abc import Mapping

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_map

from multiopt_lab._src.arguments import found
from multiopt_lab._src.distributed import sync
from multiopt_lab._src.distributed.sync import OutOfSyncError

__all__ = ["DataParallel", "OutOfSyncError", "data_parallel"]

_REDUCE_OPS = ("mean", "sum", "max", "min")


class DataParallel:
    """The calls a data-parallel training loop makes, for one rank.

    With a single process (no ``mlx.launch``) the group has size 1 and every
    method returns its input unchanged, so the same loop runs either way.
    Every method but :meth:`shard` is a collective: all ranks must call it,
    in the same order, or the run blocks.

    Args:
        group (mlx.core.distributed.Group, optional): The ranks to train
            across. Default: ``None`` (``mx.distributed.init()``, all ranks).

    Example:
        >>> parallel = DataParallel()
        >>> parallel.size, parallel.is_main
        (1, True)
        >>> parallel.shard(mx.arange(4)).tolist()
        [0, 1, 2, 3]
    """

    def __init__(self, group: mx.distributed.Group | None = None):
        if group is not None and not isinstance(group, mx.distributed.Group):
            raise TypeError(f"DataParallel(): group must be an mx.distributed.Group (what "
                            f"mx.distributed.init() returns) or None, found {found(group)}")
        self.group = group if group is not None else mx.distributed.init()

    @property
    def rank(self) -> int:
        """This process's rank, ``0`` to ``size - 1``."""
        return self.group.rank()

    @property
    def size(self) -> int:
        """The number of ranks."""
        return self.group.size()

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that records and saves."""
        return self.rank == 0

    def __repr__(self) -> str:
        return f"DataParallel(rank={self.rank}, size={self.size})"

    def shard(self, batch: Any) -> Any:
        """This rank's contiguous slice of a global batch.

        Args:
            batch: An array, or a tuple/list/dict of arrays sharing their
                first dimension (e.g. ``(x, y)``).

        Returns:
            The same structure holding rows ``rank * n / size`` to
            ``(rank + 1) * n / size``.

        Example:
            >>> x, y = DataParallel().shard((mx.zeros((8, 3)), mx.zeros((8,))))
            >>> x.shape
            (8, 3)
        """
        leaves: list[Any] = [leaf for _, leaf in tree_flatten(batch)]  # type: ignore[str-unpack]  # a list here (mlx types it list | dict)
        rows = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
        if len(rows) != 1 or None in rows:
            raise ValueError(
                "Expected arrays that share their first (batch) dimension, "
                f"found first dimensions {sorted(map(str, rows))}; pass e.g. "
                "(inputs, targets) with one row per example."
            )
        (n,) = rows
        assert n is not None  # checked above
        if n % self.size:
            raise ValueError(
                f"A global batch of {n} rows cannot be split evenly across "
                f"{self.size} ranks; use a batch size that is a multiple of "
                f"{self.size} so the averaged gradient equals the full batch's."
            )
        start, stop = self.rank * n // self.size, (self.rank + 1) * n // self.size
        return tree_map(lambda leaf: leaf[start:stop], batch)

    def broadcast(self, tree: Any) -> Any:
        """Rank 0's copy of ``tree`` on every rank, bit for bit.

        Use it once before training so that ranks that initialised their
        model differently start from the same parameters. The arrays travel
        as raw bytes, so ``-0.0`` and NaN payloads survive unchanged.

        Example:
            >>> model = nn.Linear(2, 2)
            >>> model.update(DataParallel().broadcast(model.parameters()))
            Linear(input_dims=2, output_dims=2, bias=True)
        """
        return sync.broadcast(self.group, tree)

    def check_in_sync(self, tree: Any, what: str = "tree") -> None:
        """Raise :class:`OutOfSyncError` on every rank if ``tree`` differs
        anywhere from rank 0's, bit for bit.

        Args:
            tree: e.g. ``model.parameters()`` or ``optimizer.state``.
            what (str, optional): What to call the tree in the error.

        Example:
            >>> DataParallel().check_in_sync({"w": mx.ones(2)}, "parameters")
        """
        sync.check_in_sync(self.group, tree, what)

    def average_gradients(self, gradients: Any) -> Any:
        """Average a gradient tree over the ranks (``mlx.nn.average_gradients``).

        Example:
            >>> DataParallel().average_gradients({"w": mx.ones(2)})["w"].tolist()
            [1.0, 1.0]
        """
        return nn.average_gradients(gradients, group=self.group)

    def reduce(
        self, values: Mapping[str, Any], op: str = "mean"
    ) -> dict[str, float]:
        """Reduce named scalars over the ranks in one collective.

        Args:
            values (Mapping[str, float | mlx.core.array]): e.g.
                ``{"loss": loss}``, each this rank's value.
            op (str, optional): ``"mean"``, ``"sum"``, ``"max"`` or ``"min"``.
                Default: ``"mean"``.

        Returns:
            dict[str, float]: The reduced values, identical on every rank.
            They travel as float32.

        Example:
            >>> DataParallel().reduce({"loss": 0.5})
            {'loss': 0.5}
        """
        if op not in _REDUCE_OPS:
            raise ValueError(f"Expected op to be one of {_REDUCE_OPS}, found {op!r}.")
        names = list(values)
        if not names:
            return {}
        scalars = [mx.array(values[k], dtype=mx.float32) for k in names]
        if any(v.ndim for v in scalars):
            shapes = {k: v.shape for k, v in zip(names, scalars) if v.ndim}
            raise ValueError(
                f"Expected scalars (a float or a 0-d array) to reduce, found shapes "
                f"{shapes}; reduce a mean or a sum of them (e.g. loss.mean())."
            )
        stacked = mx.stack(scalars)
        if self.size > 1:
            if op in ("mean", "sum"):
                stacked = mx.distributed.all_sum(stacked, group=self.group)
            elif op == "max":
                stacked = mx.distributed.all_max(stacked, group=self.group)
            else:
                stacked = mx.distributed.all_min(stacked, group=self.group)
            if op == "mean":
                stacked = stacked / self.size
        return dict(zip(names, stacked.tolist()))  # type: ignore[arg-type]  # a 1-d array: tolist() is a list

    def any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` is true on at least one rank (e.g. "stop now").

        Decisions that end a loop must be taken together: a rank that stops
        alone leaves the others waiting for it.

        Example:
            >>> DataParallel().any_rank(False)
            False
        """
        return self.reduce({"flag": float(bool(flag))}, op="max")["flag"] > 0


#: Environment variables that show a process was started by ``mlx.launch``
#: (ring, NCCL, JACCL) or by ``mpirun`` (Open MPI, MPICH / PMI).
_LAUNCHER_VARIABLES = ("MLX_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")


def data_parallel(distributed: DataParallel | bool | None = None) -> DataParallel | None:
    """Resolve a training loop's ``distributed`` argument.

    Args:
        distributed (DataParallel | bool | None): ``None``: data-parallel
            when the process was started by ``mlx.launch`` or ``mpirun``
            with more than one rank; ``False``: never; ``True``: always
            (``DataParallel()``); or the :class:`DataParallel` to use.

    Returns:
        DataParallel | None: ``None`` for a plain single-process loop.
    """
    if isinstance(distributed, DataParallel):
        return distributed
    if distributed is True:
        return DataParallel()
    if distributed is False:
        return None
    if distributed is not None:
        raise TypeError(
            "Expected distributed to be None, True, False or a DataParallel, found "
            f"{type(distributed).__name__}."
        )
    # Checked first: in a notebook, mx.distributed.init() could start MPI.
    if not any(name in os.environ for name in _LAUNCHER_VARIABLES):
        return None
    parallel = DataParallel()
    return parallel if parallel.size > 1 else None

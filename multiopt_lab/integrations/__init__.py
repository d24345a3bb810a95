"""Adapters to the trainers people run: ``multiopt_lab.integrations.mlx_lm`` for mlx-lm.

Each adapter imports its trainer itself, so ``import multiopt_lab`` never
loads one; install the trainer with the package's extra
(``pip install "multiopt_lab[mlx-lm]"``, which the README's commands do).

Example:
    >>> import multiopt_lab.integrations
    >>> "mlx_lm" in multiopt_lab.integrations.ADAPTERS
    True
"""

#: The adapter modules of this package, by trainer.
ADAPTERS = ("mlx_lm",)

__all__ = ["ADAPTERS"]

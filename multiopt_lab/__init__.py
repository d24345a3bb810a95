"""multiopt_lab: split a model's parameters between MLX optimizers, see the
split, edit it live and watch each group train.

Importing this package loads only mlx, numpy and pandas: the widgets
(``multiopt_lab.widgets``) and figures (``multiopt_lab.plots``) are imported
on demand.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]

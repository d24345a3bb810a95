"""Adapters to the trainers people run: ``multiopt_lab.integrations.mlx_lm`` for mlx-lm.

Each adapter imports its trainer itself, so ``import multiopt_lab`` never
loads one; install the trainer with the package's extra
(``pip install "multiopt_lab[mlx-lm]"``, which the README's commands do).
"""

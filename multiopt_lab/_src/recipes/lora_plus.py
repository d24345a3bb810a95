"""The LoRA+ recipe: the B matrices of LoRA adapters learn ``ratio`` times faster.
"""

from __future__ import annotations

import mlx.nn as nn
import mlx.optimizers as optim

from multiopt_lab._src.optimizer.multi_optimizer import MultiOptimizer
from multiopt_lab._src.partition.table import ParameterTable
from multiopt_lab._src.arguments import check_model, check_number
from multiopt_lab._src.recipes.compose import build_optimizer, given_groups, settings_of, split_groups
from multiopt_lab._src.recipes.copies import fresh_copy, scaled_copy
from multiopt_lab._src.recipes.model_parts import kinds_text, require_groups

__all__ = ["lora_plus"]


def lora_plus(model: nn.Module, optimizer: optim.Optimizer, ratio: float = 16) -> MultiOptimizer:
    """LoRA+: the adapters' B matrices at ``ratio`` times the learning rate of the rest.

    Groups:

    * ``"lora_b"``: the ``lora_b`` matrices of the LoRA layers (mlx-lm's
      ``LoRALinear``, ``LoRASwitchLinear``, ``LoRAEmbedding``, ``DoRALinear``),
      under a copy of ``optimizer`` with ``ratio`` times its learning rate
      (a schedule is scaled too);
    * ``"rest"`` (the fallback): the ``lora_a`` matrices and anything else
      that trains, under ``optimizer`` itself.

    Why: LoRA adds ``B @ A`` to a frozen weight, with ``B`` starting at zero.
    Hayou, Ghosn and Yu ("LoRA+: Efficient Low Rank Adaptation of Large
    Models", ICML 2024, arXiv:2402.12354) show that at the width of real
    models one learning rate for both is inefficient, and that ``B`` needs a
    larger one; they suggest a ratio of about 16 (2 to the 4) as a start.

    Args:
        model (nn.Module): The model with its LoRA layers (e.g. after
            ``mlx_lm.tuner.utils.linear_to_lora_layers``).
        optimizer (Optimizer): The optimizer of the A matrices, not yet used;
            or a MultiOptimizer, each of whose groups is split into
            ``"<group>/lora_b"`` and ``"<group>/rest"`` (see
            :mod:`multiopt_lab._src.recipes.compose`).
        ratio (float, optional): Learning rate of B over that of A, a finite
            number > 0. Default: ``16``.

    Returns:
        MultiOptimizer: Groups ``("lora_b", "rest")`` (or each given group split).

    Raises:
        ValueError: The model has no trainable ``lora_b``, ``ratio`` is not a
            finite positive number, or B's learning rate would not be finite.

    Example:
        >>> import mlx.nn as nn, mlx.optimizers as optim
        >>> lora_plus(nn.Linear(2, 2), optim.AdamW(1e-4))
        Traceback (most recent call last):
        ...
        ValueError: lora_plus(): this Linear has no trainable lora_b parameter (no LoRA layer); add adapters first, e.g. mlx_lm.tuner.utils.linear_to_lora_layers(model, num_layers, config)
    """
    check_model(model, "lora_plus()")
    check_number(ratio, "lora_plus()", "ratio", low=0, low_open=True,
                 fix="the learning rate of B over that of A, 16 in the paper")
    given = given_groups(optimizer, "lora_plus", "optimizer")
    table = ParameterTable.from_tree(model)
    kinds = [k for name, k in zip(table.names, table.module_names) if name == "lora_b"]
    if not kinds:
        raise ValueError(f"lora_plus(): this {type(model).__name__} has no trainable lora_b parameter "
                         "(no LoRA layer); add adapters first, e.g. "
                         "mlx_lm.tuner.utils.linear_to_lora_layers(model, num_layers, config)")
    rule = f'name == "lora_b" and {kinds_text(kinds)}'
    require_groups("lora_plus", model, table, [rule], ["lora_b", "rest"], {
        "rest": "only lora_b matrices train (no lora_a?): use one optimizer",
    })
    ratio = float(ratio)
    if given is None:
        return MultiOptimizer([scaled_copy(optimizer, ratio), optimizer], [rule],
                              labels=["lora_b", "rest"])
    groups = split_groups(given, lambda group: [
        ("lora_b", rule, scaled_copy(group.optimizer, ratio)),
        ("rest", None, fresh_copy(group.optimizer))])
    return build_optimizer(table, groups, settings_of(optimizer), drop_empty=True)

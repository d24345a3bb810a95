"""The no-weight-decay recipe: norms, biases and embeddings are not decayed.
"""

from __future__ import annotations

import mlx.nn as nn
import mlx.optimizers as optim

from multiopt_lab._src.optimizer.multi_optimizer import MultiOptimizer
from multiopt_lab._src.partition.table import ParameterTable
from multiopt_lab._src.arguments import check_flag, check_model
from multiopt_lab._src.recipes.compose import build_optimizer, given_groups, settings_of, split_groups
from multiopt_lab._src.recipes.copies import fresh_copy, without_weight_decay
from multiopt_lab._src.recipes.model_parts import is_layer_kind, kinds_text, require_groups

__all__ = ["no_weight_decay"]


def no_weight_decay(model: nn.Module, optimizer: optim.Optimizer, embeddings: bool = True) -> MultiOptimizer:
    """The same optimizer everywhere, without weight decay on norms, biases and embeddings.

    Groups:

    * ``"no_decay"``: every parameter with at most one dimension (norm
      scales and shifts, biases, other gains) and, with ``embeddings``, the
      weights of embedding layers (``Embedding`` and the like), under a copy
      of ``optimizer`` with ``weight_decay=0``;
    * ``"decay"`` (the fallback): the rest, the weight matrices, under
      ``optimizer`` itself.

    Why: weight decay pulls weights towards zero to regularise the linear
    maps; on a norm's scale or a bias it only shifts what the layer computes,
    and on an embedding it shrinks the rows of rare tokens, which get few
    gradients to push back. timm leaves out every parameter with at most one
    dimension and biases (``timm.optim.param_groups_weight_decay``), and its
    vision transformers add their position embedding and class token (their
    ``no_weight_decay()``); nanoGPT (``GPT.configure_optimizers``) decays
    only parameters of two dimensions or more, so it does decay its
    embeddings: pass ``embeddings=False`` to follow it.

    Composes: given a MultiOptimizer (another recipe's, not yet used), each
    of its groups with weight decay is split into ``"<group>/no_decay"`` and
    ``"<group>/decay"`` (its order kept, splits that would be empty left
    out), and a group without weight decay stays whole: Muon on the hidden
    matrices and AdamW without decay on the norms is
    ``no_weight_decay(model, muon(model))``. See :mod:`multiopt_lab._src.recipes.compose`.

    Args:
        model (nn.Module): The model, as it will train.
        optimizer (Optimizer): An optimizer with weight decay (``AdamW``,
            ``SGD(weight_decay=...)``, ``Muon``), not yet used; or a
            MultiOptimizer whose groups are split.
        embeddings (bool, optional): Exempt embedding weights too. Default: ``True``.

    Returns:
        MultiOptimizer: Groups ``("no_decay", "decay")`` (or each given group split).

    Raises:
        ValueError: The optimizer has no weight decay, or a group would be empty.

    Example:
        >>> import mlx.nn as nn, mlx.optimizers as optim
        >>> opt = no_weight_decay(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), optim.AdamW(1e-3))
        >>> [o.weight_decay for o in opt.optimizers]
        [0.0, 0.01]
    """
    check_model(model, "no_weight_decay()")
    check_flag(embeddings, "no_weight_decay()", "embeddings")
    given = given_groups(optimizer, "no_weight_decay", "optimizer")
    if given is None:
        exempt = without_weight_decay(optimizer)
    elif not any(getattr(g.optimizer, "weight_decay", None) for g in given):
        raise ValueError("no_weight_decay(): no group of the optimizer given has weight decay "
                         f"({', '.join(f'{g.label}: {type(g.optimizer).__name__}' for g in given)}), "
                         "so there is nothing to turn off; give them the weight decay the other "
                         "parameters get")
    table = ParameterTable.from_tree(model)
    rule = "ndim <= 1"
    if embeddings:
        kinds = [k for k in table.module_names if is_layer_kind(k, "Embedding")]
        if kinds:
            rule += f" or {kinds_text(kinds)}"
    require_groups("no_weight_decay", model, table, [rule], ["no_decay", "decay"], {
        "no_decay": "no norm, bias or embedding trains, so weight decay applies to everything: "
                    "use the optimizer alone",
        "decay": "only norms, biases and embeddings train: use the optimizer without weight decay",
    })
    if given is None:
        return MultiOptimizer([exempt, optimizer], [rule], labels=["no_decay", "decay"])

    def parts(group):
        if not getattr(group.optimizer, "weight_decay", None):
            return None  # nothing to turn off in this group: it stays whole
        return [("no_decay", rule, without_weight_decay(group.optimizer)),
                ("decay", None, fresh_copy(group.optimizer))]

    return build_optimizer(table, split_groups(given, parts), settings_of(optimizer),
                           drop_empty=True)

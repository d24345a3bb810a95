"""The no-weight-decay recipe: norms, biases and embeddings are not decayed.

Example:
    >>> import mlx.optimizers as optim
    >>> from multiopt_lab.examples import TinyGPT
    >>> no_weight_decay(TinyGPT(16, dims=8, layers=1, heads=2), optim.AdamW(1e-3)).filters[0].text
    'ndim <= 1 or module == "Embedding"'
"""

from __future__ import annotations

import mlx.nn as nn
import mlx.optimizers as optim

from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
from multiopt_lab.partition.table import ParameterTable
from multiopt_lab.recipes.copies import check_fresh, without_weight_decay
from multiopt_lab.recipes.model_parts import is_layer_kind, kinds_text, require_groups

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

    Args:
        model (nn.Module): The model, as it will train.
        optimizer (Optimizer): An optimizer with weight decay (``AdamW``,
            ``SGD(weight_decay=...)``, ``Muon``), not yet used.
        embeddings (bool, optional): Exempt embedding weights too. Default: ``True``.

    Returns:
        MultiOptimizer: Groups ``("no_decay", "decay")``.

    Raises:
        ValueError: The optimizer has no weight decay, or a group would be empty.

    Example:
        >>> import mlx.nn as nn, mlx.optimizers as optim
        >>> opt = no_weight_decay(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), optim.AdamW(1e-3))
        >>> [o.weight_decay for o in opt.optimizers]
        [0.0, 0.01]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"no_weight_decay() needs the model (an nn.Module), got {type(model).__name__}")
    optimizer = check_fresh(optimizer, "no_weight_decay", "optimizer")
    exempt = without_weight_decay(optimizer)
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
    return MultiOptimizer([exempt, optimizer], [rule], labels=["no_decay", "decay"])

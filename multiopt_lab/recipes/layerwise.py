"""The layer-wise learning-rate decay recipe: one group per block, slower towards the input.

Example:
    >>> import mlx.optimizers as optim
    >>> from multiopt_lab.examples import TinyGPT
    >>> opt = layerwise_lr_decay(TinyGPT(16, dims=8, layers=2, heads=2), optim.AdamW(1e-3), decay=0.5)
    >>> opt.labels, [round(o.learning_rate.item(), 6) for o in opt.optimizers]
    (('embed', 'block_0', 'block_1', 'top'), [0.000125, 0.00025, 0.0005, 0.001])
"""

from __future__ import annotations

import numbers

import mlx.nn as nn
import mlx.optimizers as optim

from multiopt_lab.optimizer.multi_optimizer import MultiOptimizer
from multiopt_lab.partition.table import ParameterTable
from multiopt_lab.recipes.copies import check_fresh, scaled_copy
from multiopt_lab.recipes.model_parts import find_blocks, is_layer_kind, kinds_text
from multiopt_lab.rules.text import quote_pattern

__all__ = ["layerwise_lr_decay"]


def _levels(model: nn.Module, table) -> list[tuple[str, str | None, set[str]]]:
    """``(label, rule, paths)`` from the input up; the last level is the fallback (rule None)."""
    paths = table.paths
    blocks = find_blocks(model)
    levels: list[tuple[str, str | None, set[str]]] = []
    if blocks is not None:
        inside = [p for p in paths if blocks.contains(p)]
        kinds = [k for p, k in zip(paths, table.module_names)
                 if not blocks.contains(p) and is_layer_kind(k, "Embedding")]
        if kinds:
            embed = {p for p, k in zip(paths, table.module_names)
                     if not blocks.contains(p) and is_layer_kind(k, "Embedding")}
            rule = kinds_text(kinds)
            if any(is_layer_kind(table.module_names[table.index(p)], "Embedding") for p in inside):
                rule += f" and not {blocks.scope}"
            levels.append(("embed", rule, embed))
        for i in range(blocks.count):
            prefix = f"{blocks.path}.{i}."
            levels.append((f"block_{i}", blocks.block(i), {p for p in inside if p.startswith(prefix)}))
        taken = set().union(*(members for _, _, members in levels))
        levels.append(("top", None, {p for p in paths if p not in taken}))
    else:  # one level per top-level child; parameters of the model itself form one more
        def child(path: str) -> str:
            return path.partition(".")[0] if "." in path else ""

        for name in dict.fromkeys(child(p) for p in paths):
            members = {p for p in paths if child(p) == name}
            if name:
                levels.append((name, f"glob({quote_pattern(name + '.*')})", members))
            else:
                levels.append((type(model).__name__.lower(), '"." not in path', members))
    levels = [level for level in levels if level[2]]
    if levels:
        label, _, members = levels[-1]
        levels[-1] = (label, None, members)
    return levels


def layerwise_lr_decay(model: nn.Module, optimizer: optim.Optimizer, decay: float = 0.8) -> MultiOptimizer:
    """One group per level of the model, the learning rate times ``decay`` per level down.

    Levels, from the input up: ``"embed"`` (embedding layers outside the
    blocks), ``"block_0"`` .. ``"block_{n-1}"`` (``glob("layers.3.*")``), and
    ``"top"``, the fallback: the final norm, the head and anything else.
    Level ``k`` of ``n`` trains at the optimizer's learning rate times
    ``decay ** (n - 1 - k)``: the top at the rate given, the embeddings at
    the smallest. A model without a list of blocks (``SmallCNN``) has one
    level per top-level child (``conv1``, ``conv2``, ``head``). Levels with
    nothing trainable are left out (a LoRA model's frozen embeddings), and
    the highest level left is the fallback.

    Why: when fine-tuning, the layers near the input hold the most general
    features and should move least. Howard and Ruder's ULMFiT
    ("discriminative fine-tuning", 2018, arXiv:1801.06146) introduced it;
    ELECTRA (Clark et al. 2020, arXiv:2003.10555) and BEiT (Bao et al. 2021,
    arXiv:2106.08254) fine-tune with a layer-wise decay of 0.8 or so, the
    embeddings counted as the lowest layer.

    Args:
        model (nn.Module): The model, as it will train.
        optimizer (Optimizer): The top level's optimizer, not yet used;
            the other levels get copies with scaled learning rates (a
            schedule is scaled too).
        decay (float, optional): Factor per level, in (0, 1]. Default: ``0.8``.

    Returns:
        MultiOptimizer: One group per level, from the input up.

    Raises:
        ValueError: ``decay`` is out of range, or the model has fewer than two levels.

    Example:
        >>> import mlx.optimizers as optim
        >>> from multiopt_lab.examples import SmallCNN
        >>> layerwise_lr_decay(SmallCNN(), optim.SGD(0.1), decay=0.5).labels
        ('conv1', 'conv2', 'head')
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"layerwise_lr_decay() needs the model (an nn.Module), got {type(model).__name__}")
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0 < decay <= 1:
        raise ValueError(f"layerwise_lr_decay(): decay must be a number in (0, 1] (0.8 is usual), "
                         f"got {decay!r}")
    optimizer = check_fresh(optimizer, "layerwise_lr_decay", "optimizer")
    table = ParameterTable.from_tree(model)
    levels = _levels(model, table)
    if len(levels) < 2:
        raise ValueError(f"layerwise_lr_decay(): this {type(model).__name__} has "
                         f"{len(levels)} level with trainable parameters; decay needs two or more "
                         "(a list of blocks, or several top-level layers)")
    top = len(levels) - 1
    optimizers = [scaled_copy(optimizer, float(decay) ** (top - k)) for k in range(top)] + [optimizer]
    return MultiOptimizer(optimizers, [rule for _, rule, _ in levels[:-1]],
                          labels=[label for label, _, _ in levels])

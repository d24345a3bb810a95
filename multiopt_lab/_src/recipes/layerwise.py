"""The layer-wise learning-rate decay recipe: one group per block, slower towards the input.
"""

from __future__ import annotations

import mlx.nn as nn
import mlx.optimizers as optim

from multiopt_lab._src.optimizer.multi_optimizer import MultiOptimizer
from multiopt_lab._src.partition.table import ParameterTable
from multiopt_lab._src.arguments import check_model, check_number
from multiopt_lab._src.recipes.compose import build_optimizer, given_groups, settings_of, split_groups
from multiopt_lab._src.recipes.copies import fresh_copy, scaled_copy
from multiopt_lab._src.recipes.model_parts import (find_blocks, glob_under, is_layer_kind, kinds_text,
                                              level_labels)

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

        by_child: dict[str, set[str]] = {}
        for p in paths:
            by_child.setdefault(child(p), set()).add(p)
        names = list(by_child)
        # Labels from child names: escaped, made distinct, never "total" or "-".
        labels = level_labels([name or type(model).__name__.lower() for name in names])
        for name, label in zip(names, labels):
            rule = glob_under(name) if name else '"." not in path'
            levels.append((label, rule, by_child[name]))
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
    level per top-level child (``conv1``, ``conv2``, ``head``; the model's
    own parameters take its class name in lower case), labelled by name,
    made valid labels: distinct (``classifier``, ``classifier_2``), never
    reserved (a child named ``total`` gets ``total_group``), control
    characters written as escapes. Levels with
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
            schedule is scaled too). Or a MultiOptimizer (another recipe's,
            not yet used): each of its groups is split into
            ``"<group>/<level>"`` groups, in its order, splits that would be
            empty left out (``layerwise_lr_decay(model, no_weight_decay(model,
            optim.AdamW(...)))``; see :mod:`multiopt_lab._src.recipes.compose`).
        decay (float, optional): Factor per level, in (0, 1]. Default: ``0.8``.

    Returns:
        MultiOptimizer: One group per level, from the input up (or each given
        group split so).

    Raises:
        ValueError: ``decay`` is out of range, or the model has fewer than two levels.

    Example:
        >>> import mlx.optimizers as optim
        >>> from multiopt_lab.examples import SmallCNN
        >>> layerwise_lr_decay(SmallCNN(), optim.SGD(0.1), decay=0.5).labels
        ('conv1', 'conv2', 'head')
    """
    check_model(model, "layerwise_lr_decay()")
    check_number(decay, "layerwise_lr_decay()", "decay", low=0, low_open=True, high=1,
                 fix="0.8 is usual")
    given = given_groups(optimizer, "layerwise_lr_decay", "optimizer")
    table = ParameterTable.from_tree(model)
    levels = _levels(model, table)
    if len(levels) < 2:
        raise ValueError(f"layerwise_lr_decay(): this {type(model).__name__} has "
                         f"{len(levels)} level with trainable parameters; decay needs two or more "
                         "(a list of blocks, or several top-level layers)")
    top = len(levels) - 1
    factors = [float(decay) ** (top - k) for k in range(len(levels))]
    if given is None:
        optimizers = [scaled_copy(optimizer, factors[k]) for k in range(top)] + [optimizer]
        return MultiOptimizer(optimizers, [rule for _, rule, _ in levels[:-1]],
                              labels=[label for label, _, _ in levels])

    def parts(group):
        return [(label, rule, scaled_copy(group.optimizer, factor) if factor != 1.0
                 else fresh_copy(group.optimizer))
                for (label, rule, _), factor in zip(levels, factors)]

    return build_optimizer(table, split_groups(given, parts), settings_of(optimizer),
                           drop_empty=True)

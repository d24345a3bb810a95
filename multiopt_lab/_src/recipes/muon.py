"""The Muon recipe, and the Muon that orthogonalises each matrix of a stack.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from multiopt_lab._src.optimizer.multi_optimizer import MultiOptimizer
from multiopt_lab._src.partition.contracts import contract_of, declare_contract
from multiopt_lab._src.partition.table import ParameterTable
from multiopt_lab._src.arguments import check_model
from multiopt_lab._src.recipes.compose import build_optimizer, expand_groups, given_groups, settings_of
from multiopt_lab._src.recipes.model_parts import (glob_literal, glob_under, hidden_blocks,
                                              is_layer_kind, kinds_text, require_groups)
from multiopt_lab._src.rules.text import quote_pattern

__all__ = ["muon", "StackedMuon"]

_CONVOLUTIONS = ("Conv2d", "Conv3d")


class StackedMuon(optim.Muon):
    """MLX's Muon, except that a 3-D parameter is a stack of matrices, each orthogonalised alone.

    Mixture-of-experts layers keep every expert's matrix in one
    ``(experts, out, in)`` array (mlx-lm's ``SwitchLinear``), and MLA keeps
    one matrix per head the same way (``MultiLinear``). MLX's ``Muon``
    reshapes such an update to ``(experts, out * in)`` and orthogonalises
    that, which mixes the experts; each expert is its own linear layer, so
    this class runs the Newton-Schulz iteration on each ``(out, in)`` slice
    instead, with the same momentum, weight decay and ``sqrt(max(1, out/in))``
    scale as MLX. On 2-D parameters and on 4-D convolution filters it is
    MLX's ``Muon``, bit for bit. Same arguments as ``mlx.optimizers.Muon``.

    Do not give it 3-D parameters that are not stacks (``Conv1d`` filters,
    ``(out, kernel, in)``): :func:`muon` leaves those to AdamW.

    Example:
        >>> import mlx.core as mx
        >>> opt = StackedMuon(learning_rate=0.02)
        >>> w, g = mx.random.normal((4, 8, 6)), mx.random.normal((4, 8, 6))
        >>> new = opt.apply_gradients({"w": g}, {"w": w})
        >>> expert_0 = optim.Muon(learning_rate=0.02).apply_gradients({"w": g[0]}, {"w": w[0]})
        >>> mx.allclose(new["w"][0], expert_0["w"], atol=1e-5).item()
        True
    """

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict) -> mx.array:
        """The Muon step, per matrix of a 3-D stack."""
        if gradient.ndim != 3:
            return super().apply_single(gradient, parameter, state)
        if self.weight_decay != 0:
            gradient = gradient + self.weight_decay * parameter
        v = self.momentum * state["v"]
        v = v + (1 - self.momentum) * gradient
        state["v"] = v
        update = gradient * (1 - self.momentum) + v * self.momentum if self.nesterov else v
        lr = self.learning_rate.astype(gradient.dtype)
        update = _newton_schulz(update, self.ns_steps)
        lr = lr * max(1, update.shape[-2] / update.shape[-1]) ** 0.5
        return parameter - lr * update


# Muon's contract, except that a stack of matrices is what it is made for.
declare_contract(StackedMuon, replace(contract_of(optim.Muon(0.0)), flattens_stacks=False, stack_fix=""))  # type: ignore[type-var]  # Muon has a contract


def _newton_schulz(X: mx.array, steps: int) -> mx.array:
    # MLX's quintic iteration (optimizers.Muon), on the last two axes of each slice.
    a, b, c = (3.4445, -4.7750, 2.0315)
    transpose = X.shape[-2] > X.shape[-1]
    if transpose:
        X = X.swapaxes(-1, -2)
    X = X / (mx.linalg.norm(X, axis=(-2, -1), keepdims=True) + 1e-7)  # type: ignore[arg-type]  # mlx takes a tuple of axes; its stub says list
    for _ in range(steps):
        A = X @ X.swapaxes(-1, -2)
        B = mx.addmm(b * A, A, A, beta=1.0, alpha=c)
        X = mx.addmm(a * X, B, X, beta=1.0, alpha=1.0)
    if transpose:
        X = X.swapaxes(-1, -2)
    return X


def _routers(table, blocks, stack_rows: list[int]) -> list[str]:
    """Module paths of the router gates of mixture-of-experts layers.

    The MoE layer is the nearest module above an expert stack (a ``Switch*``
    layer) with a direct child that holds a 2-D weight of its own and has one
    output per expert, or a single one (a shared expert's gate): Mixtral's
    ``block_sparse_moe.gate``, Qwen's ``mlp.gate`` and ``mlp.shared_expert_gate``.
    A LoRA router's ``lora_b`` is ``(rank, outputs)``.
    """
    paths, shapes, names, kinds = table.paths, table.shapes, table.names, table.module_names
    holders = [p.rpartition(".")[0] for p in paths]
    # module path -> {child module path: its outputs}, for children holding 2-D weights
    children: dict[str, dict[str, int]] = {}
    for i, holder in enumerate(holders):
        if len(shapes[i]) == 2 and holder and names[i] in ("weight", "lora_b"):
            outputs = shapes[i][0] if names[i] == "weight" else shapes[i][-1]
            children.setdefault(holder.rpartition(".")[0], {})[holder] = outputs
    routers: list[str] = []
    for row in stack_rows:
        if "Switch" not in (kinds[row] or ""):
            continue  # a stack of heads (MLA's MultiLinear), not of experts
        experts = shapes[row][0]
        ancestor = holders[row]
        floor = blocks.path if blocks is not None and blocks.contains(paths[row]) else ""
        while ancestor and len(ancestor) > len(floor):
            ancestor = ancestor.rpartition(".")[0]
            gates = [c for c, outputs in children.get(ancestor, {}).items() if outputs in (experts, 1)]
            if gates:
                routers += [g for g in gates if g not in routers]
                break
    return routers


def _relative(path: str, blocks) -> str:
    """``*.block_sparse_moe.gate`` for every block's copy of a module (a glob pattern)."""
    if blocks is not None and blocks.contains(path):
        rest = path[len(blocks.path) + 1:].partition(".")[2]
        return f"*.{glob_literal(rest)}"
    return glob_literal(path)


def muon(model: nn.Module, muon: Any = None, adamw: Any = None) -> MultiOptimizer:
    """Muon on the hidden weight matrices, AdamW on everything else.

    Groups, with rule texts you can read and edit (``optimizer.filters``):

    * ``"muon"``: inside the model's repeated blocks (``within("Block")``),
      the 2-D weights of its linear layers (``Linear``, and LoRA's factors
      when only adapters train), its mixture-of-experts stacks (3-D
      ``SwitchLinear`` / ``MultiLinear`` weights, orthogonalised one expert
      at a time by :class:`StackedMuon`) and 4-D/5-D convolution filters.
      A model without blocks (``SmallCNN``) gets the same layers everywhere
      but its output head.
    * ``"adamw"`` (the fallback): embeddings, the output head, norms,
      biases, every 1-D parameter, the router gates of mixture-of-experts
      layers, ``Conv1d`` filters, and whatever else no rule names.

    Why: Muon orthogonalises the update of a weight matrix, which suits the
    hidden layers of a network; Keller Jordan's write-up ("Muon: An optimizer
    for hidden layers in neural networks", 2024,
    https://kellerjordan.github.io/posts/muon/) says to optimise embeddings,
    the output head and gains/biases with AdamW, as MLX's ``Muon`` docstring
    does; Moonlight ("Muon is Scalable for LLM Training", Liu et al. 2025,
    arXiv:2502.16982) trains a mixture of experts that way at scale. A router
    gate maps the hidden state to one logit per expert, as the head maps it
    to one logit per token, and is small (experts x hidden): it stays with
    the head on AdamW. Expert stacks hold one linear layer per expert, so
    each expert's matrix is orthogonalised alone (MLX's ``Muon`` would
    orthogonalise the ``(experts, out * in)`` reshape, mixing experts).
    ``Conv1d`` filters are 3-D too, and an optimizer cannot tell them from a
    stack: they stay on AdamW.

    "Blocks" are entries of a list of modules that are blocks of layers
    (a transformer's ``TransformerBlock`` s), not single layers: an
    ``nn.Sequential`` MLP has none, so its output layer, the last ``Linear``,
    is the head and goes to AdamW.

    Composes: ``muon`` or ``adamw`` may be a MultiOptimizer (another
    recipe's, not yet used), whose groups then split that group:
    ``muon(model, adamw=no_weight_decay(model, optim.AdamW(1e-3)))`` gives
    ``"muon"``, ``"adamw/no_decay"`` and ``"adamw/decay"`` (Muon, and AdamW
    without decay on the norms); ``no_weight_decay(model, muon(model))``
    splits both groups the same way (see :mod:`multiopt_lab._src.recipes.compose`).

    Args:
        model (nn.Module): The model, as it will train (freeze and add LoRA first).
        muon (Optimizer, optional): The Muon group's optimizer, not yet used.
            Default: ``StackedMuon(learning_rate=0.02)``. A plain
            ``optim.Muon`` is refused when the model has expert stacks.
        adamw (Optimizer, optional): The rest's optimizer. Default:
            ``optim.AdamW(learning_rate=1e-3)``.

    Returns:
        MultiOptimizer: Groups ``("muon", "adamw")`` (or split as above).

    Raises:
        ValueError: A group would be empty (no hidden matrix, or nothing but
            hidden matrices trains), or ``muon`` is MLX's ``Muon`` and the
            model has expert stacks.

    Example:
        >>> from multiopt_lab.examples import TinyMoE
        >>> optimizer = muon(TinyMoE(16, dims=8, layers=2, experts=2))
        >>> print(optimizer.filters[0].text)
        within("MoEBlock") and (module == "Linear" and ndim == 2 or module == "SwitchLinear" and ndim == 3) and not glob("*.moe.gate.*")
    """
    check_model(model, "muon()")
    muon_optimizer = StackedMuon(0.02) if muon is None else muon
    adamw_optimizer = optim.AdamW(1e-3) if adamw is None else adamw
    muon_given = given_groups(muon_optimizer, "muon", "muon")
    adamw_given = given_groups(adamw_optimizer, "muon", "adamw")
    table = ParameterTable.from_tree(model)
    blocks = hidden_blocks(model)
    kinds, ndims, paths = table.module_names, table.ndims, table.paths
    head = _head(table, blocks)

    def in_scope(i: int) -> bool:
        return blocks.contains(paths[i]) if blocks is not None else paths[i].rpartition(".")[0] != head

    matrices = [k for i, k in enumerate(kinds) if in_scope(i) and ndims[i] == 2 and is_layer_kind(k, "Linear")]
    stack_rows = [i for i, k in enumerate(kinds) if in_scope(i) and ndims[i] == 3 and is_layer_kind(k, "Linear")]
    stacks = [kinds[i] for i in stack_rows]
    filters = [k for i, k in enumerate(kinds) if in_scope(i) and ndims[i] >= 4
               and any(k == c for c in _CONVOLUTIONS)]
    muons = [muon_optimizer] if muon_given is None else [g.optimizer for g in muon_given]
    if stacks and any(type(o) is optim.Muon for o in muons):
        raise ValueError(
            f"muon(): this {type(model).__name__} has 3-D expert stacks ({', '.join(sorted(set(stacks)))}, "  # type: ignore[arg-type]  # a Linear stack has a kind
            f"e.g. {paths[stack_rows[0]]} {list(table.shapes[stack_rows[0]])}); MLX's optim.Muon "
            "would orthogonalise them reshaped to (experts, out * in), mixing the experts. Pass "
            "muon=mol.recipes.StackedMuon(...) (the same arguments), which orthogonalises each "
            "expert's matrix")
    kinds_by_ndim = [("ndim == 2", matrices), ("ndim == 3", stacks), ("ndim >= 4", filters)]
    parts = [f"{kinds_text(found)} and {condition}" for condition, found in kinds_by_ndim if found]
    if not parts:
        raise ValueError(f"muon(): found no hidden weight matrix in this {type(model).__name__}: "
                         "no 2-D Linear weight, expert stack or convolution filter trains "
                         + ("inside its blocks" if blocks else "outside its output head"))
    condition = parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"
    conditions = [blocks.scope] if blocks is not None else []
    conditions.append(condition)
    if blocks is None and head:
        conditions.append(f"not {glob_under(head)}")
    for router in _routers(table, blocks, stack_rows) if stacks else []:
        exclusion = f"not glob({quote_pattern(_relative(router, blocks) + '.*')})"
        if exclusion not in conditions:
            conditions.append(exclusion)
    rule = " and ".join(conditions)
    require_groups("muon", model, table, [rule], ["muon", "adamw"], {
        "adamw": "every trainable parameter is a hidden matrix (only adapters train?); train "
                 "them with the Muon optimizer alone, or unfreeze the norms to keep them on AdamW",
    })
    if muon_given is None and adamw_given is None:
        return MultiOptimizer([muon_optimizer, adamw_optimizer], [rule], labels=["muon", "adamw"])
    groups = expand_groups([("muon", rule, muon_given or muon_optimizer),
                            ("adamw", None, adamw_given or adamw_optimizer)])
    given = adamw_optimizer if adamw_given is not None else muon_optimizer
    return build_optimizer(table, groups, settings_of(given), drop_empty=True)


def _head(table, blocks) -> str:
    """The output head of a model without blocks: the module of its last Linear weight."""
    if blocks is not None:
        return ""
    last = [p for p, k, n in zip(table.paths, table.module_names, table.ndims)
            if n == 2 and is_layer_kind(k, "Linear")]
    return last[-1].rpartition(".")[0] if last else ""

"""A tiny mixture-of-experts decoder, laid out like mlx-lm's Mixtral and Qwen3-MoE.

Each block's feed-forward part is a router (``gate``, a ``Linear`` with one
output per expert) and expert stacks: ``SwitchLinear`` layers whose weight
holds every expert's matrix, shape ``(experts, out, in)``. Those 3-D stacks
are most of the model's values, and exactly what a rule for "2-D matrices"
leaves to the fallback.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from multiopt_lab._src.examples.models import Attention

__all__ = ["TinyMoE", "SwitchLinear"]


class SwitchLinear(nn.Module):
    """One linear layer per expert, stored as one ``(experts, out, in)`` weight (as in mlx-lm).

    Args:
        in_dims (int): Input features.
        out_dims (int): Output features.
        experts (int): Number of experts.
    """

    def __init__(self, in_dims: int, out_dims: int, experts: int):
        super().__init__()
        scale = math.sqrt(1 / in_dims)
        self.weight = mx.random.uniform(-scale, scale, (experts, out_dims, in_dims))

    def __call__(self, x: mx.array) -> mx.array:
        """Every expert on every input: ``(..., in)`` -> ``(..., experts, out)``."""
        return mx.einsum("...i,eoi->...eo", x, self.weight)


class SwitchMLP(nn.Module):
    """The experts' two-layer MLPs: ``up`` and ``down`` stacks."""

    def __init__(self, dims: int, hidden: int, experts: int):
        super().__init__()
        self.up = SwitchLinear(dims, hidden, experts)
        self.down = SwitchLinear(hidden, dims, experts)

    def __call__(self, x: mx.array) -> mx.array:
        h = nn.gelu(self.up(x))  # (..., experts, hidden)
        return mx.einsum("...eh,edh->...ed", h, self.down.weight)


class SparseMoE(nn.Module):
    """A router over ``experts`` MLPs; each token goes to its ``top_k`` best."""

    def __init__(self, dims: int, experts: int, top_k: int):
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(dims, experts, bias=False)
        self.experts = SwitchMLP(dims, 2 * dims, experts)

    def __call__(self, x: mx.array) -> mx.array:
        logits = self.gate(x)
        kth = mx.sort(logits, axis=-1)[..., -self.top_k][..., None]
        weights = mx.softmax(mx.where(logits >= kth, logits, -mx.inf), axis=-1)
        return (self.experts(x) * weights[..., None]).sum(axis=-2)


class MoEBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm1(x))``, ``x + moe(norm2(x))``."""

    def __init__(self, dims: int, heads: int, experts: int, top_k: int):
        super().__init__()
        self.norm1 = nn.RMSNorm(dims)
        self.attn = Attention(dims, heads)
        self.norm2 = nn.RMSNorm(dims)
        self.moe = SparseMoE(dims, experts, top_k)

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.moe(self.norm2(x))


class TinyMoE(nn.Module):
    """A decoder whose feed-forward layers are mixtures of experts.

    Args:
        vocab_size (int): Number of tokens.
        dims (int): Model width. Default: ``32``.
        layers (int): Blocks. Default: ``2``.
        heads (int): Attention heads (must divide ``dims``). Default: ``2``.
        experts (int): Experts per block. Default: ``4``.
        top_k (int): Experts each token uses. Default: ``2``.

    Example:
        >>> from mlx.utils import tree_flatten
        >>> model = TinyMoE(16, dims=16, layers=1)
        >>> [p for p, _ in tree_flatten(model.parameters())][-5:]
        ['layers.0.moe.gate.weight', 'layers.0.moe.experts.up.weight', 'layers.0.moe.experts.down.weight', 'norm.weight', 'head.weight']
    """

    def __init__(self, vocab_size: int, dims: int = 32, layers: int = 2, heads: int = 2,
                 experts: int = 4, top_k: int = 2):
        super().__init__()
        if not 1 <= top_k <= experts:
            raise ValueError(f"top_k must be between 1 and experts ({experts}), got {top_k}")
        self.embed = nn.Embedding(vocab_size, dims)
        self.layers = [MoEBlock(dims, heads, experts, top_k) for _ in range(layers)]
        self.norm = nn.RMSNorm(dims)
        self.head = nn.Linear(dims, vocab_size, bias=False)

    def __call__(self, tokens: mx.array) -> mx.array:
        x = self.embed(tokens)
        length = tokens.shape[-1]
        mask = nn.MultiHeadAttention.create_additive_causal_mask(length).astype(x.dtype)
        for block in self.layers:
            x = block(x, mask)
        return self.head(self.norm(x))

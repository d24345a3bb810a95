"""Small ``mlx.nn`` models for tests (reuse them; keep them tiny and fast).

* :func:`transformer`: embedding, attention (q/k/v/o), norms, MLP, and a tied
  (``embed.as_linear``) or untied (``lm_head``) output head.
* :func:`cnn`: two convolutions, a BatchNorm (whose running statistics are
  not trainable), a linear classifier.
* :func:`sequential`: ``nn.Sequential`` with parameterless layers (ReLU,
  Dropout) between linears, so some indices have no parameters.

:func:`groups_by_mlx` is the reference routing: which group MLX's own
``MultiOptimizer`` sends each parameter to, observed through its updates.

Example:
    >>> from mlx.utils import tree_flatten
    >>> [p for p, _ in tree_flatten(sequential().trainable_parameters())]
    ['layers.0.weight', 'layers.0.bias', 'layers.3.weight', 'layers.3.bias']
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

__all__ = ["TinyTransformer", "SmallCNN", "transformer", "cnn", "sequential", "groups_by_mlx"]


class Attention(nn.Module):
    def __init__(self, dims: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dims, dims, bias=False)
        self.k = nn.Linear(dims, dims, bias=False)
        self.v = nn.Linear(dims, dims, bias=False)
        self.o = nn.Linear(dims, dims, bias=False)

    def __call__(self, x: mx.array) -> mx.array:
        b, n, d = x.shape
        def split(t):
            return t.reshape(b, n, self.heads, d // self.heads).transpose(0, 2, 1, 3)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        mask = nn.MultiHeadAttention.create_additive_causal_mask(n).astype(x.dtype)
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=(d // self.heads) ** -0.5, mask=mask)
        return self.o(out.transpose(0, 2, 1, 3).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dims: int, heads: int):
        super().__init__()
        self.attn_norm = nn.RMSNorm(dims)
        self.attn = Attention(dims, heads)
        self.mlp_norm = nn.LayerNorm(dims)
        self.mlp = nn.Sequential(nn.Linear(dims, 2 * dims), nn.GELU(), nn.Linear(2 * dims, dims))

    def __call__(self, x: mx.array) -> mx.array:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class TinyTransformer(nn.Module):
    """A decoder-only transformer: ``embed``, ``layers.N.*``, ``norm``, optional ``lm_head``."""

    def __init__(self, vocab: int = 32, dims: int = 16, heads: int = 2, depth: int = 2, tied: bool = False):
        super().__init__()
        self.tied = tied
        self.embed = nn.Embedding(vocab, dims)
        self.layers = [Block(dims, heads) for _ in range(depth)]
        self.norm = nn.LayerNorm(dims)
        if not tied:
            self.lm_head = nn.Linear(dims, vocab, bias=False)

    def __call__(self, tokens: mx.array) -> mx.array:
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        return self.embed.as_linear(x) if self.tied else self.lm_head(x)


class SmallCNN(nn.Module):
    """``conv1 -> bn -> conv2 -> fc`` on ``(batch, 8, 8, 1)`` images."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm(4)
        self.conv2 = nn.Conv2d(4, 8, kernel_size=3, stride=2, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, classes)

    def __call__(self, x: mx.array) -> mx.array:
        x = nn.relu(self.bn(self.conv1(x)))
        x = nn.relu(self.conv2(x))
        return self.fc(x.reshape(x.shape[0], -1))


def transformer(tied: bool = False, depth: int = 2) -> TinyTransformer:
    """A seeded :class:`TinyTransformer` (vocab 32, 16 dims, 2 heads).

    Example:
        >>> transformer(tied=True)(mx.array([[1, 2, 3]])).shape
        (1, 3, 32)
    """
    mx.random.seed(0)
    return TinyTransformer(tied=tied, depth=depth)


def cnn() -> SmallCNN:
    """A seeded :class:`SmallCNN`.

    Example:
        >>> cnn()(mx.zeros((2, 8, 8, 1))).shape
        (2, 10)
    """
    mx.random.seed(0)
    return SmallCNN()


def sequential() -> nn.Sequential:
    """``Linear(4, 8), ReLU, Dropout, Linear(8, 2)``: indices 1 and 2 have no parameters.

    Example:
        >>> sequential()(mx.zeros((3, 4))).shape
        (3, 2)
    """
    mx.random.seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))


def groups_by_mlx(parameters: dict, filters: list) -> dict[str, int]:
    """path -> group index, as ``mlx.optimizers.MultiOptimizer`` routes it.

    Observed through MLX's public state: after ``init``, group ``g``'s
    optimizer holds state (SGD's ``v``) for exactly the parameters it owns.

    Example:
        >>> groups_by_mlx({"w": mx.zeros((2, 2)), "b": mx.zeros((2,))}, [lambda p, a: a.ndim == 1])
        {'w': 1, 'b': 0}
    """
    reference = optim.MultiOptimizer([optim.SGD(0.1) for _ in range(len(filters) + 1)], list(filters))
    reference.init(parameters)
    owner = {}
    for g, state in enumerate(reference.state["states"]):
        for path, _ in tree_flatten(state):
            if path.endswith(".v"):
                owner[path[: -len(".v")]] = g
    return {path: owner[path] for path, _ in tree_flatten(parameters)}

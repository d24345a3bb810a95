"""Small models whose parameters call for different optimizers.

Each mixes matrices (what Muon and friends are for), vectors (biases, norm
scales) and, for :class:`TinyGPT`, an embedding that may double as the output
head: exactly the parameters a careless rule puts in the wrong group.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn

__all__ = ["MLP", "TinyGPT", "SmallCNN"]


class MLP(nn.Module):
    """A multi-layer perceptron: ``Linear -> ReLU`` blocks, then a linear head.

    Args:
        in_dims (int): Input features.
        hidden_dims (int | Sequence[int]): Width of each hidden layer. Default: ``64``.
        out_dims (int): Outputs (classes). Default: ``10``.
        norm (bool): Put a LayerNorm after each hidden layer. Default: ``False``.

    Example:
        >>> MLP(64, [32, 32], 10)(mx.zeros((5, 64))).shape
        (5, 10)
    """

    def __init__(self, in_dims: int, hidden_dims: int | Sequence[int] = 64, out_dims: int = 10, norm: bool = False):
        super().__init__()
        widths = [hidden_dims] if isinstance(hidden_dims, int) else list(hidden_dims)
        if not widths or min(widths) < 1 or in_dims < 1 or out_dims < 1:
            raise ValueError(f"MLP needs positive sizes, got in_dims={in_dims}, hidden_dims={hidden_dims}, out_dims={out_dims}")
        sizes = [in_dims, *widths]
        self.layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        self.norms = [nn.LayerNorm(width) for width in widths] if norm else []
        self.head = nn.Linear(widths[-1], out_dims)

    def __call__(self, x: mx.array) -> mx.array:
        for i, layer in enumerate(self.layers):
            x = nn.relu(layer(x))
            if self.norms:
                x = self.norms[i](x)
        return self.head(x)


class Attention(nn.Module):
    """Causal multi-head self-attention with separate ``q``, ``k``, ``v``, ``o`` projections."""

    def __init__(self, dims: int, heads: int):
        super().__init__()
        if dims % heads:
            raise ValueError(f"dims ({dims}) must be divisible by heads ({heads})")
        self.heads = heads
        self.q = nn.Linear(dims, dims, bias=False)
        self.k = nn.Linear(dims, dims, bias=False)
        self.v = nn.Linear(dims, dims, bias=False)
        self.o = nn.Linear(dims, dims, bias=False)

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        batch, length, dims = x.shape

        def split(t: mx.array) -> mx.array:
            return t.reshape(batch, length, self.heads, -1).transpose(0, 2, 1, 3)

        scale = (dims // self.heads) ** -0.5
        out = mx.fast.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)), scale=scale, mask=mask)
        return self.o(out.transpose(0, 2, 1, 3).reshape(batch, length, dims))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, ``x + mlp(norm2(x))``."""

    def __init__(self, dims: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dims)
        self.attn = Attention(dims, heads)
        self.norm2 = nn.LayerNorm(dims)
        self.mlp = nn.Sequential(nn.Linear(dims, mlp_ratio * dims), nn.GELU(), nn.Linear(mlp_ratio * dims, dims))

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class TinyGPT(nn.Module):
    """A GPT-style decoder: token and position embeddings, blocks, norm, head.

    Args:
        vocab_size (int): Number of tokens.
        dims (int): Model width. Default: ``64``.
        layers (int): Transformer blocks. Default: ``2``.
        heads (int): Attention heads (must divide ``dims``). Default: ``4``.
        max_length (int): Longest sequence. Default: ``64``.
        tie_embeddings (bool): Use the token embedding as the output head
            (no ``head`` parameter). Default: ``True``.

    Example:
        >>> model = TinyGPT(16, dims=32, layers=1, heads=2, tie_embeddings=False)
        >>> model(mx.zeros((2, 5), dtype=mx.int32)).shape
        (2, 5, 16)
        >>> "head" in model.parameters()
        True
    """

    def __init__(self, vocab_size: int, dims: int = 64, layers: int = 2, heads: int = 4, max_length: int = 64, tie_embeddings: bool = True):
        super().__init__()
        self.max_length = max_length
        self.tie_embeddings = tie_embeddings
        self.embed = nn.Embedding(vocab_size, dims)
        self.position = nn.Embedding(max_length, dims)
        self.layers = [Block(dims, heads) for _ in range(layers)]
        self.norm = nn.LayerNorm(dims)
        if not tie_embeddings:
            self.head = nn.Linear(dims, vocab_size, bias=False)

    def __call__(self, tokens: mx.array) -> mx.array:
        length = tokens.shape[-1]
        if length > self.max_length:
            raise ValueError(f"sequence of length {length} is longer than max_length={self.max_length}; build TinyGPT(max_length={length})")
        x = self.embed(tokens) + self.position(mx.arange(length))
        mask = nn.MultiHeadAttention.create_additive_causal_mask(length).astype(x.dtype)
        for block in self.layers:
            x = block(x, mask)
        x = self.norm(x)
        return self.embed.as_linear(x) if self.tie_embeddings else self.head(x)


class SmallCNN(nn.Module):
    """Two ``Conv2d -> ReLU -> MaxPool`` stages and a linear head (NHWC input).

    Args:
        in_channels (int): Channels of the input images. Default: ``1``.
        classes (int): Outputs. Default: ``10``.
        channels (Sequence[int]): Channels of the two conv stages. Default: ``(8, 16)``.
        image_size (int): Height (= width) of the input. Default: ``8`` (digits).

    Example:
        >>> SmallCNN()(mx.zeros((3, 8, 8, 1))).shape
        (3, 10)
    """

    def __init__(self, in_channels: int = 1, classes: int = 10, channels: Sequence[int] = (8, 16), image_size: int = 8):
        super().__init__()
        first, second = channels
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4 (two 2x2 poolings), got {image_size}")
        self.conv1 = nn.Conv2d(in_channels, first, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(first, second, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.head = nn.Linear(second * (image_size // 4) ** 2, classes)

    def __call__(self, x: mx.array) -> mx.array:
        x = self.pool(nn.relu(self.conv1(x)))
        x = self.pool(nn.relu(self.conv2(x)))
        return self.head(x.reshape(x.shape[0], -1))

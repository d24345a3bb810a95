"""Data that needs no download, deterministic for a seed, and matching losses.

- :func:`sequence_task`: generated token sequences (copy, reverse, running
  sum modulo the vocabulary) that :class:`~multiopt_lab.examples.TinyGPT`
  learns in a minute on a laptop CPU.
- :func:`digits`: scikit-learn's bundled 8x8 handwritten digits (1797
  images, read from files inside the installed package).

Every data set offers ``batch(step)``: the batch of a step, the same for the
same seed and step however it is consumed, which is what
:func:`~multiopt_lab.train` accepts as ``batches``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mlx.core as mx
import mlx.nn as nn
import numpy as np

__all__ = ["cross_entropy_loss", "masked_cross_entropy_loss", "accuracy", "SequenceTask", "sequence_task", "Digits", "digits"]

TASKS = ("copy", "reverse", "modsum")


def cross_entropy_loss(model: nn.Module, inputs: mx.array, targets: mx.array) -> mx.array:
    """Mean cross-entropy of ``model(inputs)`` against integer ``targets``.

    Example:
        >>> from multiopt_lab.examples import MLP
        >>> loss = cross_entropy_loss(MLP(4, 8, 3), mx.zeros((2, 4)), mx.array([0, 2]))
        >>> loss.shape
        ()
    """
    return nn.losses.cross_entropy(model(inputs), targets, reduction="mean")


def masked_cross_entropy_loss(model: nn.Module, inputs: mx.array, targets: mx.array, mask: mx.array) -> mx.array:
    """Cross-entropy averaged over the positions where ``mask`` is 1 (sequence tasks)."""
    losses = nn.losses.cross_entropy(model(inputs), targets) * mask
    return losses.sum() / mx.maximum(mask.sum(), 1)


def accuracy(model: nn.Module, inputs: mx.array, targets: mx.array, mask: mx.array | None = None) -> float:
    """Fraction of (masked) positions where the arg-max prediction is right."""
    right = (mx.argmax(model(inputs), axis=-1) == targets).astype(mx.float32)
    if mask is None:
        return right.mean().item()  # type: ignore[return-value]  # float32: a float
    return (right * mask).sum().item() / max(mask.sum().item(), 1.0)  # type: ignore[return-value, type-var]  # real sums


def _rng(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, step])


@dataclass(frozen=True)
class SequenceTask:
    """A generated next-token task: ``digits SEP answer``; the loss counts the answer only.

    Attributes:
        kind (str): ``"copy"``, ``"reverse"`` or ``"modsum"``.
        vocab_size (int): Tokens, the separator included (it is the last one).
        length (int): Digits before and after the separator.
        batch_size (int): Sequences per batch.
        seed (int): Seed of the generator.
    """

    kind: str
    vocab_size: int
    length: int
    batch_size: int
    seed: int
    loss_fn: object = field(default=masked_cross_entropy_loss, repr=False)

    @property
    def sequence_length(self) -> int:
        """Tokens a model sees per sequence (``2 * length``; the last token is only a target)."""
        return 2 * self.length

    def batch(self, step: int) -> tuple[mx.array, mx.array, mx.array]:
        """``(inputs, targets, mask)`` of a step: int32, int32, float32 of shape (batch, 2 * length)."""
        digits = self.vocab_size - 1
        rng = _rng(self.seed, step)
        source = rng.integers(0, digits, size=(self.batch_size, self.length))
        if self.kind == "copy":
            answer = source
        elif self.kind == "reverse":
            answer = source[:, ::-1]
        else:
            answer = np.cumsum(source, axis=1) % digits
        separator = np.full((self.batch_size, 1), digits)
        sequence = np.concatenate([source, separator, answer], axis=1)
        mask = np.zeros(sequence.shape[1] - 1, dtype=np.float32)
        mask[self.length:] = 1.0
        return (
            mx.array(sequence[:, :-1].astype(np.int32)),
            mx.array(sequence[:, 1:].astype(np.int32)),
            mx.broadcast_to(mx.array(mask), (self.batch_size, mask.size)),
        )

    def test_batch(self) -> tuple[mx.array, mx.array, mx.array]:
        """A held-out batch (from a step number no training run reaches)."""
        return self.batch(-1 % 2**32)


def sequence_task(kind: str = "reverse", *, vocab_size: int = 10, length: int = 4, batch_size: int = 32, seed: int = 0) -> SequenceTask:
    """A synthetic sequence task for :class:`~multiopt_lab.examples.TinyGPT`.

    Args:
        kind (str): ``"copy"``, ``"reverse"`` or ``"modsum"`` (running sum
            modulo ``vocab_size - 1``). Default: ``"reverse"``.
        vocab_size (int): Digits plus the separator. Default: ``10``.
        length (int): Digits per sequence. Default: ``4``.
        batch_size (int): Default: ``32``.
        seed (int): Default: ``0``.

    Example:
        >>> task = sequence_task("copy", vocab_size=5, length=3)
        >>> inputs, targets, mask = task.batch(7)
        >>> (inputs[:, 4:] == inputs[:, :3][:, :2]).all().item()
        True
    """
    if kind not in TASKS:
        raise ValueError(f"kind must be one of {TASKS}, got {kind!r}")
    if vocab_size < 3 or length < 1 or batch_size < 1:
        raise ValueError(f"need vocab_size >= 3, length >= 1, batch_size >= 1; got {vocab_size}, {length}, {batch_size}")
    return SequenceTask(kind, vocab_size, length, batch_size, seed)


@dataclass(frozen=True)
class Digits:
    """A train/test split of scikit-learn's 8x8 digits as mx arrays (pixels in [0, 1])."""

    x_train: mx.array
    y_train: mx.array
    x_test: mx.array
    y_test: mx.array
    batch_size: int
    seed: int
    loss_fn: object = field(default=cross_entropy_loss, repr=False)

    def batch(self, step: int) -> tuple[mx.array, mx.array]:
        """``(images, labels)`` of a step: a shuffled slice of the training set, one epoch after another."""
        count = self.x_train.shape[0]
        per_epoch = max(count // self.batch_size, 1)
        epoch, index = divmod(step, per_epoch)
        order = _rng(self.seed, epoch).permutation(count)
        chosen = mx.array(order[index * self.batch_size : (index + 1) * self.batch_size])
        return self.x_train[chosen], self.y_train[chosen]


def digits(*, test_fraction: float = 0.25, batch_size: int = 64, flatten: bool = True, seed: int = 0) -> Digits:
    """The digits data set bundled with scikit-learn, split deterministically.

    Args:
        test_fraction (float): Share of images held out. Default: ``0.25``.
        batch_size (int): Default: ``64``.
        flatten (bool): Images as 64 features (for :class:`MLP`) rather than
            ``(8, 8, 1)`` (for :class:`SmallCNN`). Default: ``True``.
        seed (int): Default: ``0``.

    Raises:
        ImportError: scikit-learn is not installed.

    Example:
        >>> data = digits()
        >>> data.x_train.shape, data.x_test.shape
        ((1348, 64), (449, 64))
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "multiopt_lab.examples.digits() reads the digits data set bundled with scikit-learn, "
            "which is not installed; install it with `pip install scikit-learn` "
            "(or `pip install multiopt_lab[examples]`)"
        ) from error
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    images, labels = load_digits(return_X_y=True)
    images = (images / 16.0).astype(np.float32)
    if not flatten:
        images = images.reshape(-1, 8, 8, 1)
    order = _rng(seed, 0).permutation(len(labels))
    test_count = int(round(test_fraction * len(labels)))
    test, train = order[:test_count], order[test_count:]
    return Digits(
        mx.array(images[train]), mx.array(labels[train].astype(np.int32)),
        mx.array(images[test]), mx.array(labels[test].astype(np.int32)),
        batch_size, seed,
    )

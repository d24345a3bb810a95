"""Example models and data that show why partitioning parameters matters.

Everything here is small enough to train in seconds on a laptop CPU and needs
no download.

Example:
    >>> from multiopt_lab import examples
    >>> task = examples.sequence_task("reverse")
    >>> model = examples.TinyGPT(task.vocab_size, dims=32, layers=1, heads=2)
    >>> task.loss_fn(model, *task.batch(0)).shape
    ()
"""

from multiopt_lab._src.examples.data import (
    Digits,
    SequenceTask,
    accuracy,
    cross_entropy_loss,
    digits,
    masked_cross_entropy_loss,
    sequence_task,
)
from multiopt_lab._src.examples.models import MLP, SmallCNN, TinyGPT
from multiopt_lab._src.examples.moe import TinyMoE

__all__ = [
    "MLP",
    "TinyGPT",
    "SmallCNN",
    "TinyMoE",
    "SequenceTask",
    "sequence_task",
    "Digits",
    "digits",
    "cross_entropy_loss",
    "masked_cross_entropy_loss",
    "accuracy",
]

"""Example models and data: shapes, parameter layout, determinism, clear errors."""

from __future__ import annotations

import sys

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from multiopt_lab import examples


def paths(model) -> list[str]:
    return [path for path, _ in tree_flatten(model.trainable_parameters())]


class TestModels:
    def test_tiny_gpt_tied_has_no_head(self):
        tied = examples.TinyGPT(12, dims=16, layers=2, heads=2)
        untied = examples.TinyGPT(12, dims=16, layers=2, heads=2, tie_embeddings=False)
        assert "head.weight" not in paths(tied) and "head.weight" in paths(untied)
        assert {"embed.weight", "position.weight", "norm.weight", "layers.1.attn.q.weight", "layers.0.mlp.layers.0.bias"} <= set(paths(tied))
        assert tied(mx.zeros((3, 7), dtype=mx.int32)).shape == (3, 7, 12)

    def test_tiny_gpt_is_causal(self):
        model = examples.TinyGPT(10, dims=16, layers=1, heads=2)
        a = mx.array([[1, 2, 3, 4, 5, 6]])
        b = mx.array([[1, 2, 3, 9, 9, 9]])
        assert mx.allclose(model(a)[0, :3], model(b)[0, :3]).item()
        assert not mx.allclose(model(a)[0, 3:], model(b)[0, 3:]).item()

    def test_tiny_gpt_rejects_long_sequences_and_bad_heads(self):
        with pytest.raises(ValueError, match="max_length"):
            examples.TinyGPT(10, dims=16, layers=1, heads=2, max_length=4)(mx.zeros((1, 5), dtype=mx.int32))
        with pytest.raises(ValueError, match="divisible by heads"):
            examples.TinyGPT(10, dims=10, heads=3)

    def test_mlp_and_cnn_shapes(self):
        mlp = examples.MLP(64, [32, 16], 10, norm=True)
        assert mlp(mx.zeros((4, 64))).shape == (4, 10)
        assert "norms.1.weight" in paths(mlp) and "head.bias" in paths(mlp)
        cnn = examples.SmallCNN(channels=(4, 8))
        assert cnn(mx.zeros((2, 8, 8, 1))).shape == (2, 10)
        assert cnn.conv1.weight.ndim == 4
        with pytest.raises(ValueError, match="positive sizes"):
            examples.MLP(0, 8, 2)


class TestSequenceTask:
    @pytest.mark.parametrize("kind", ["copy", "reverse", "modsum"])
    def test_answers_follow_the_rule(self, kind):
        task = examples.sequence_task(kind, vocab_size=7, length=5, batch_size=8, seed=3)
        inputs, targets, mask = (np.array(a) for a in task.batch(11))
        sequence = np.concatenate([inputs, targets[:, -1:]], axis=1)
        source, separator, answer = sequence[:, :5], sequence[:, 5], sequence[:, 6:]
        assert (separator == 6).all() and source.max() < 6
        expected = {"copy": source, "reverse": source[:, ::-1], "modsum": np.cumsum(source, axis=1) % 6}[kind]
        assert (answer == expected).all()
        assert (targets[:, :-1] == inputs[:, 1:]).all()
        assert mask.tolist() == [[0.0] * 5 + [1.0] * 5] * 8

    def test_batches_are_deterministic_per_seed_and_step(self):
        task = examples.sequence_task(seed=1)
        first = task.batch(4)[0]
        assert mx.array_equal(first, examples.sequence_task(seed=1).batch(4)[0]).item()
        assert not mx.array_equal(first, task.batch(5)[0]).item()
        assert not mx.array_equal(first, examples.sequence_task(seed=2).batch(4)[0]).item()

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="kind must be one of"):
            examples.sequence_task("sort")
        with pytest.raises(ValueError, match="vocab_size >= 3"):
            examples.sequence_task(vocab_size=2)

    def test_loss_of_a_fresh_model_is_near_chance(self):
        task = examples.sequence_task(vocab_size=10)
        mx.random.seed(0)
        model = examples.TinyGPT(task.vocab_size, dims=32, layers=1, heads=2)
        loss = task.loss_fn(model, *task.batch(0)).item()
        assert 1.0 < loss < 6.0


class TestDigits:
    def test_split_is_deterministic_and_complete(self):
        a, b = examples.digits(seed=0), examples.digits(seed=0)
        assert a.x_train.shape == (1348, 64) and a.x_test.shape == (449, 64)
        assert mx.array_equal(a.y_test, b.y_test).item()
        assert not mx.array_equal(a.y_test, examples.digits(seed=1).y_test).item()
        assert 0.0 <= a.x_train.min().item() and a.x_train.max().item() <= 1.0
        assert examples.digits(flatten=False).x_train.shape == (1348, 8, 8, 1)

    def test_batches_walk_through_epochs(self):
        data = examples.digits(batch_size=500)
        images, labels = data.batch(0)
        assert images.shape == (500, 64) and labels.dtype == mx.int32
        assert mx.array_equal(data.batch(2)[1], labels).item() is False  # next epoch reshuffled

    def test_missing_scikit_learn_says_how_to_install(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
        with pytest.raises(ImportError, match="pip install scikit-learn"):
            examples.digits()


def test_accuracy_counts_masked_positions_only():
    class Fixed:
        def __call__(self, inputs):
            return mx.array([[[0.0, 1.0], [1.0, 0.0]]])

    targets = mx.array([[1, 1]])
    assert examples.accuracy(Fixed(), None, targets) == 0.5
    assert examples.accuracy(Fixed(), None, targets, mx.array([[1.0, 0.0]])) == 1.0

"""What a user sees when they print or display diagnostics, a diff, a summary or a rule error.

Issue 17: diagnostics printed as one long line broken mid-word, ``a.diagnostics``
in a REPL dumped a dataclass, ``diff()`` printed ``[Move(path=...), ...]``,
``summary()`` showed shares as 0.952854 with its rule column cut, and
``mol.rule("ndims == 2")`` showed six of the parser's stack frames before the
RuleError. Issue 15: ``str(diagnostics)`` said "clean" while a group was empty.
"""

from __future__ import annotations

import traceback

import mlx.core as mx
import pytest

import multiopt_lab as mol
from models import transformer

LONG_RULE = 'ndim == 2 and not glob("*embed*") and "lm_head" not in path and not glob("*.norm*")'


def deep_model(layers: int = 30) -> dict:
    return {"embed": {"weight": mx.zeros((50, 8))},
            "layers": [{"attention_projection": {"weight": mx.zeros((8, 8)), "bias": mx.zeros((8,))},
                        "feed_forward_norm": {"weight": mx.zeros((8,))}} for _ in range(layers)]}


class TestDiagnostics:
    def test_never_clean_while_a_group_is_empty(self):
        # A LoRA model: every trainable matrix goes to Muon, AdamW gets nothing.
        lora = {"q": {"lora_a": mx.zeros((16, 4)), "lora_b": mx.zeros((4, 16))}}
        diagnostics = mol.assign(lora, ["ndim == 2"], ["muon", "adamw"]).diagnostics
        assert not diagnostics.is_clean
        assert "clean" not in str(diagnostics)
        assert "the fallback 'adamw' takes no parameter" in str(diagnostics)

    def test_lines_stay_short_and_paths_whole(self):
        a = mol.assign(deep_model(), ["ndim == 2", "ndim == 3"], ["muon", "conv", "adamw"])
        text = str(a.diagnostics)
        assert max(len(line) for line in text.splitlines()) <= 100
        # The same parameter in every block is listed once, whole, on one line.
        for item in ("layers.*.attention_projection.bias (in 30 blocks)",
                     "layers.*.feed_forward_norm.weight (in 30 blocks)"):
            assert any(item in line for line in text.splitlines()), text

    def test_repr_is_the_readable_text_not_a_dataclass(self):
        diagnostics = mol.assign(transformer(), ["ndim == 3"], ["conv", "adamw"]).diagnostics
        assert repr(diagnostics) == str(diagnostics)
        assert not repr(diagnostics).startswith("Diagnostics(")

    def test_html_is_a_grouped_list(self):
        diagnostics = mol.assign(transformer(), ["ndim == 3"], ["conv", "adamw"]).diagnostics
        html = diagnostics._repr_html_()
        assert "<ul" in html and "<li" in html and "conv" in html and "<script" not in html


class TestDiff:
    def test_prints_what_moved_grouped_by_direction(self):
        model = transformer()
        before = mol.assign(model, ["ndim == 2"], ["muon", "adamw"])
        after = mol.assign(model, ['ndim == 2 and not glob("*embed*")'], ["muon", "adamw"])
        moves = before.diff(after)
        assert moves == [mol.Move("embed.weight", "muon", "adamw")]  # still a list of Move
        assert not repr(moves).startswith("[Move(")
        assert str(moves) == "1 parameter moves:\n  muon -> adamw (1): embed.weight"
        assert "<table" in moves._repr_html_() or "<ul" in moves._repr_html_()

    def test_nothing_moved(self):
        a = mol.assign(transformer(), ["ndim == 2"], ["muon", "adamw"])
        assert a.diff(a) == [] and str(a.diff(a)) == "no parameter moves"


class TestSummary:
    def test_shares_are_percentages_and_the_rule_is_whole(self):
        a = mol.assign(transformer(), [LONG_RULE], ["muon", "adamw"])
        summary = a.summary()
        assert summary["share"].between(0, 1).all()  # the frame keeps numbers to compute with
        text = repr(summary)
        # Whole, continued under itself within 100 columns (issue 27), never cut with "...".
        assert all(len(line) <= 100 for line in text.splitlines())
        assert LONG_RULE in " ".join(text.split()) and "..." not in text
        share = f"{summary.loc['muon', 'share']:.1%}"
        assert share in text
        html = summary._repr_html_()
        assert share in html and "&quot;*embed*&quot;" in html or '"*embed*"' in html

    def test_a_slice_is_a_plain_frame(self):
        summary = mol.assign(transformer(), ["ndim == 2"], ["muon", "adamw"]).summary()
        assert summary["count"].tolist() == [summary.loc["muon", "count"], summary.loc["adamw", "count"]]
        assert type(summary[["count"]]).__name__ == "DataFrame"


class TestRuleErrorTraceback:
    @pytest.mark.parametrize("call", [
        lambda: mol.rule("ndims == 2"),
        lambda: mol.Rule("ndims == 2"),
        lambda: mol.as_rule("ndims == 2"),
    ], ids=["rule", "Rule", "as_rule"])
    def test_ends_at_the_users_call(self, call):
        with pytest.raises(mol.RuleError, match="did you mean 'ndim'") as info:
            call()
        frames = traceback.extract_tb(info.value.__traceback__)
        inside = [f for f in frames if "multiopt_lab" in f.filename]
        # The frame of the function the user called, and no parser internals.
        assert len(inside) == 1, [f"{f.filename}:{f.lineno} {f.name}" for f in inside]
        assert info.value.__cause__ is None and info.value.__suppress_context__


class TestHistoryForms:
    """A cell ending with ``train(...)`` shows the History it returns: a small table, not a repr."""

    def test_a_trained_history_shows_one_row_per_run(self):
        import mlx.optimizers as optim
        from multiopt_lab import examples

        task = examples.sequence_task("reverse", length=4)
        model = examples.TinyGPT(task.vocab_size, dims=16, layers=1, heads=2)
        optimizer = mol.MultiOptimizer([optim.Adam(1e-3), optim.SGD(0.1)], ["ndim == 2"],
                                       labels=["matrices", "rest"])
        history = mol.train(model, optimizer, task.loss_fn, task.batch, steps=4, metrics_every=2,
                            progress=False, run="first")
        summary = history.summary()
        assert summary.loc["first", "last step"] == 4 and summary.loc["first", "ended"]
        assert summary.loc["first", "groups"] == "matrices, rest"
        assert summary.loc["first", "last loss"] == pytest.approx(history.last("loss"))
        html = history._repr_html_()
        assert html.startswith("<table>") and "<td>first</td>" in html and "History(" not in html
        assert f"<td>{summary.loc['first', 'device']}</td>" in html and "cpu" in html or "gpu" in html

    def test_an_empty_history_says_so(self):
        assert "no run recorded yet" in mol.History()._repr_html_()

# Tests the private modules' own units: multiopt_lab._src.partition.text, multiopt_lab._src.render,
#   multiopt_lab._src.render.params, multiopt_lab._src.render.text,
#   multiopt_lab._src.render.tree_model, multiopt_lab._src.text_fit.
"""Every text form fits a width: cells shortened with an ellipsis, messages broken between words.

Issue 27: the text tree was about 175 characters wide, and a notebook shows
text output with ``word-break: break-all``, so at 1000-1600 px lines wrapped
inside words (``! 8 flagged bel`` / ``ow``, ``(LoR`` / ``ALinear``), as did long
errors and near-miss paragraphs. Each text form now takes ``width`` (default
100) and never writes a wider line, nor splits a word across lines.
"""

from __future__ import annotations

import inspect
import re

import mlx.optimizers as optim
import pytest

import multiopt_lab as mol
from multiopt_lab import render_text
from multiopt_lab._src.partition.text import format_assignment, format_summary
from multiopt_lab._src.render import details_text, legend_text
from multiopt_lab._src.render.params import param_infos
from multiopt_lab._src.render.text import tree_text
from multiopt_lab._src.text_fit import DEFAULT_WIDTH, ELLIPSIS, clip_path, wrap
from multiopt_lab.examples import MLP, TinyMoE

WIDTHS = (60, 80, 100, 120)
MLX_LM = ("llama", "qwen3_moe", "deepseek_v3", "mixtral", "llama+qlora")
# Box-drawing guides are drawing, not words (a narrow width draws them two columns wide).
GUIDES = re.compile(r"[\u2500-\u257f]+")


def words(text: str) -> list[str]:
    return GUIDES.sub(" ", text).split()


def assert_fits(text: str, width: int, whole: str) -> None:
    """No line wider than ``width``; every word of ``text`` is a word of ``whole`` (the same
    form without a width), or a shortened one (it holds an ellipsis)."""
    lines = text.splitlines()
    too_wide = [line for line in lines if len(line) > width]
    assert not too_wide, f"{len(too_wide)} lines wider than {width}:\n" + "\n".join(too_wide[:5])
    known = set(words(whole)) | {"-"}  # an error's list bullets
    split = [w for w in words(text) if w not in known and ELLIPSIS not in w]
    assert not split, f"words that are not words of the whole text (split?): {split[:10]}"


def _mlx_lm(name):
    pytest.importorskip("mlx_lm")
    from mlx_lm_models import build

    model = build(name)
    if name.endswith("lora"):  # only the adapters train: A and B matrices apart (LoRA+)
        return model, mol.MultiOptimizer([optim.Adam(1e-3), optim.Adam(1.6e-2)], ['glob("*lora_a")'],
                                         labels=["lora_a", "lora_b"])
    return model, mol.recipes.muon(model)


def _near_misses():
    model = TinyMoE(16, dims=8, layers=2, heads=2, experts=2, top_k=1)
    optimizer = mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ['ndim == 2 and module != "Embedding"'])
    return model, optimizer


def _mistakes():
    optimizers = [optim.Muon(0.02), optim.SGD(0.1), optim.SGD(0.1, momentum=0.9), optim.Adam(1e-3),
                  optim.AdamW(1e-3)]
    rules = ["ndim == 2", 'glob("*.weight")', "ndim == 4", 'glob("head.*") and ndim == 2']
    labels = ["muon", "sgd", "conv", "adam", "adamw"]
    return MLP(8, [8, 8], 4, norm=True), mol.MultiOptimizer(optimizers, rules, labels=labels)


CASES = {**{name: (lambda name=name: _mlx_lm(name)) for name in MLX_LM},
         "near misses": _near_misses, "mistakes": _mistakes}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    model, optimizer = CASES[request.param]()
    return model, optimizer, optimizer.assign(model)


@pytest.mark.parametrize("width", WIDTHS)
class TestEveryFormFits:
    def test_tree_and_legend(self, case, width):
        _, optimizer, assignment = case
        assert_fits(render_text(assignment, optimizer, width=width), width,
                    render_text(assignment, optimizer, width=None))

    def test_tree_unfolded_with_search_marks(self, case, width):
        _, optimizer, assignment = case
        paths = [p for p in assignment.labels if p.endswith("weight")][:3]
        options = dict(fold=False, highlight=paths)
        assert_fits(render_text(assignment, optimizer, width=width, **options), width,
                    render_text(assignment, optimizer, width=None, **options))

    def test_diagnostics_and_check_errors(self, case, width):
        _, _, assignment = case
        assert_fits(assignment.diagnostics.text(width), width, assignment.diagnostics.text(None))
        with pytest.raises(mol.CoverageError) as info:
            assignment.check(allow_fallback=False, allow_overlap=False, allow_near_misses=False)
        # An error cannot know the notebook's width: it uses the default.
        message = str(info.value)
        assert_fits(message, DEFAULT_WIDTH, " ".join([message.splitlines()[0],
                                                     *(f.text(because=r if r != f.severity else "")
                                                       for f, r in zip(info.value.findings,
                                                                       info.value.reasons))]))

    def test_assignment_text_and_summary(self, case, width):
        _, _, assignment = case
        assert_fits(assignment.text(width=width), width, assignment.text(width=None))
        assert_fits(format_summary(assignment, with_rules=True, width=width), width,
                    format_summary(assignment, with_rules=True, width=None))
        summary = assignment.summary()  # a frame: its text form fits the default width
        assert_fits(repr(summary), DEFAULT_WIDTH, summary.to_string(formatters=summary._formatters(), max_colwidth=None))

    def test_moves(self, case, width):
        model, _, assignment = case
        moved = assignment.diff(mol.assign(model, ["ndim >= 1"], ["all", "none"]))
        assert_fits(moved.text(width), width, moved.text(None))

    def test_details(self, case, width):
        _, optimizer, assignment = case
        for info in list(param_infos(assignment).values())[:40]:
            assert_fits(details_text(info, "x" * 150, width), width, details_text(info, "x" * 150, None))


class TestDefaults:
    def test_the_default_is_100_columns(self):
        functions = [render_text, legend_text, tree_text, details_text, format_assignment, format_summary,
                     mol.Assignment.text, mol.Diagnostics.lines, mol.Diagnostics.text]
        for function in functions:
            assert inspect.signature(function).parameters["width"].default == 100, function.__qualname__
        assert DEFAULT_WIDTH == 100

    def test_printed_forms_fit_100_columns_by_default(self):
        model, optimizer = _mlx_lm("deepseek_v3")
        assignment = optimizer.assign(model)
        for text in (render_text(assignment, optimizer), str(assignment), repr(assignment),
                     str(assignment.diagnostics), str(assignment.diff(mol.assign(model, [])))):
            assert max(len(line) for line in text.splitlines()) <= 100

    def test_a_text_that_fits_is_unchanged(self):
        assignment = mol.assign(MLP(4, [8], 2), ["ndim == 2"], ["muon", "adamw"])
        assert render_text(assignment, width=100) == render_text(assignment, width=None)

    @pytest.mark.parametrize("width", [0, 19, 80.0, "80", True])
    def test_a_bad_width_says_what_it_expects(self, width):
        assignment = mol.assign(MLP(4, [8], 2), ["ndim == 2"])
        with pytest.raises(ValueError, match=r"width must be a whole number of columns >= 20, or None"):
            render_text(assignment, width=width)


class TestShortening:
    def test_a_path_keeps_every_segment(self):
        shortened = clip_path("model.layers.0.self_attn.kv_a_proj_with_mqa.weight", 40)
        assert len(shortened) == 40 and shortened.count(".") == 5 and shortened.endswith(".weight")

    def test_a_message_breaks_between_words_and_a_long_path_is_shortened_not_split(self):
        path = "model.layers.12.block_sparse_moe.switch_mlp.gate_proj.lora_a"
        lines = wrap(f"the fallback 'adamw' took {path} and more", 50, "", "  ")
        assert lines == ["the fallback 'adamw' took", "  model.layers.12.block_s….switch_….gate_p….lora_a",
                         "  and more"]

    def test_the_tree_names_the_flag_whole_at_a_notebook_width(self):
        # The issue's own example: a module row's "! 8 flagged below" broken mid-word, on a
        # mixture of experts whose expert stacks the fallback took beside the Linear weights.
        model, _ = _mlx_lm("mixtral")
        assignment = mol.assign(model, ["ndim == 2"], ["muon", "adamw"],
                                optimizers=[optim.Muon(0.02), optim.AdamW(1e-3)])
        text = render_text(assignment)
        assert "! 8 flagged below" in text and all(len(line) <= 100 for line in text.splitlines())

    @pytest.mark.parametrize("width", [80, 100])
    def test_the_tree_keeps_every_warning_whole(self, width):
        # Tutorial 02's mixture of experts in three groups: long shares, deep names, near misses.
        model = TinyMoE(10, dims=32, layers=2, heads=2, experts=4, top_k=2)
        rules = ['module == "Embedding"', 'within("MoEBlock") and module == "Linear" and ndim == 2']
        text = render_text(mol.assign(model, rules, ["embeddings", "muon", "adamw"]), legend=False, width=width)
        notes = [line[line.index("!"):].split(";")[0] for line in text.splitlines() if "!" in line]
        assert len(notes) == 9 and all(re.fullmatch(r"! (\d flagged below|near miss of muon)", n) for n in notes), notes

    def test_a_rule_error_shows_the_part_of_a_long_rule_around_the_caret(self):
        text = "ndim == 2 and " + " and ".join(f'glob("*layer_{i}*")' for i in range(20)) + " and ndims == 3"
        with pytest.raises(mol.RuleError) as info:
            mol.rule(text)
        lines = str(info.value).splitlines()
        assert all(len(line) <= 100 for line in lines)
        rule_line, caret = lines[-2], lines[-1]
        assert rule_line[caret.index("^"):].startswith("ndims")

    def test_the_history_repr_fits(self):
        history = mol.History()
        for i in range(30):
            history.record(1, loss=1.0, run=f"a_rather_long_run_name_{i}")
        assert len(repr(history)) <= 100 and "more" in repr(history)

    def test_the_widgets_text_forms_fit(self):
        pytest.importorskip("ipywidgets")
        model, optimizer = _mlx_lm("qwen3_moe")
        lab = mol.LabWidget(model, optimizer)
        try:
            for width in (60, 100):
                text = lab.text(width=width)
                assert max(len(line) for line in text.splitlines()) <= width
                assert_fits(text, width, lab.text(width=None))
        finally:
            lab.close()

"""``multiopt_lab.report`` and ``python -m multiopt_lab report``: a run as one HTML file.

Issue 27: users wrapped ``render_html`` in pages of their own to send a run
to someone without Python. The report holds the tree and its findings, the
groups with their optimizers and settings, the rules as text, the curves,
the per-parameter metrics when recorded, and the device and versions; it
escapes everything a user wrote. (Chromium checks it offline, with
JavaScript off: tests/browser/test_report_offline.py.)
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from html.parser import HTMLParser

import mlx.core as mx
import mlx.optimizers as optim
import pandas as pd
import pytest

import multiopt_lab as mol
from multiopt_lab import examples
from multiopt_lab.cli import main
from multiopt_lab.reporting.sections import per_parameter_html

HOSTILE = '<img src=x onerror="alert(1)">'
RULE = 'within("Block") and module == "Linear" and ndim == 2'


class Elements(HTMLParser):
    """Every start tag of a page, to check that user text made none."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def trained():
    task = examples.sequence_task("reverse", length=4)
    model = examples.TinyGPT(task.vocab_size, dims=16, layers=2, heads=2)
    optimizer = mol.MultiOptimizer([optim.Muon(optim.cosine_decay(0.02, 12, 1e-3)), optim.AdamW(1e-3)],
                                   [RULE], labels=["muon", "adamw"])
    history = mol.train(model, optimizer, task.loss_fn, task.batch, steps=12, metrics_every=3,
                        progress=False, run="first")
    return model, optimizer, history


class TestContents:
    def test_every_part_of_a_run(self, trained):
        model, optimizer, history = trained
        report = mol.report(optimizer, model, history)
        assert report.sections == ("Groups and optimizers", "Findings", "Parameter tree", "Rules", "Curves",
                                   "Environment")
        groups = report.section_html("Groups and optimizers")
        for text in ("Muon", "AdamW", "momentum=0.95", "betas=(0.9, 0.999)", "weight_decay=0.01",
                     "cosine_decay", "step 0: 0.02", "step 12: 0.001", "12", "16"):
            assert text in groups, text
        assert "dead rule" not in report.section_html("Findings")
        assert 'data-path="layers.0.attn.q.weight"' in report.section_html("Parameter tree") or \
            "attn" in report.section_html("Parameter tree")
        rules = report.section_html("Rules")
        assert "[[group]]" in rules and "within(&quot;Block&quot;)" in rules
        assert mol.load_rules  # the rule text is what load_rules reads (round trip below)
        assert report.section_html("Curves").startswith('<svg class="mol-figure"')
        environment = report.section_html("Environment")
        for text in ("mlx", mx.__version__, "multiopt_lab", mol.__version__, "python", "platform",
                     "Recorded on"):
            assert text in environment, text
        assert report.summary.startswith("TinyGPT: 28 parameters") and "run 'first': 12 steps" in report.summary

    def test_the_rules_section_loads_back_as_a_rule_file(self, trained, tmp_path):
        model, optimizer, history = trained
        html = mol.report(optimizer, model).section_html("Rules")
        text = re.sub(r"</?pre[^>]*>", "", html)
        import html as html_module
        (tmp_path / "rules.toml").write_text(html_module.unescape(text))
        labels, rules = mol.load_rules(tmp_path / "rules.toml")
        assert labels == ["muon", "adamw"] and [r.text for r in rules] == [RULE]

    def test_findings_are_shown(self):
        model = examples.MLP(4, [8], 2)
        optimizer = mol.MultiOptimizer([optim.SGD(0.1), optim.SGD(0.1), optim.Adam(1e-3)],
                                       ["ndim == 3", "ndim == 2"], labels=["conv", "matrices", "rest"])
        findings = mol.report(optimizer, model).section_html("Findings")
        assert "rule &#x27;conv&#x27; (ndim == 3) matches no parameter" in findings
        # The report knows the optimizers: their contracts are checked (no "not checked" line).
        assert "contracts were not checked" not in findings

    def test_mlx_s_own_multi_optimizer(self):
        model = examples.MLP(4, [8], 2)
        optimizer = optim.MultiOptimizer([optim.SGD(0.1), optim.Adam(1e-3)], [lambda p, a: a.ndim == 2])
        report = mol.report(optimizer, model)
        assert "SGD" in report.section_html("Groups and optimizers")
        assert "Python callables" in report.section_html("Rules")

    def test_a_page_and_a_notebook_fragment(self, trained, tmp_path):
        model, optimizer, history = trained
        report = mol.report(optimizer, model, history)
        path = report.save(tmp_path / "run.html")
        page = path.read_text(encoding="utf-8")
        assert page.startswith("<!DOCTYPE html>") and page == report.html()
        tags = {tag for tag, _ in Elements(page).tags}
        assert not tags & {"script", "link", "img", "iframe", "object", "embed", "base"}, tags
        assert "default-src 'none'" in page  # no fetch of any kind, even if a page were edited
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
        fragment = report._repr_html_()
        assert fragment.startswith('<div class="mol-run-report">') and "<html" not in fragment
        with pytest.raises(ValueError, match="expected a path ending in .html"):
            report.save(tmp_path / "run.txt")


class TestEscaping:
    def test_labels_paths_rules_and_run_names_are_text(self, tmp_path):
        tree = {HOSTILE: {"weight": mx.zeros((4, 4))}, "bias</code><script>x()</script>": mx.zeros((4,))}
        optimizer = mol.MultiOptimizer([optim.SGD(0.1), optim.Adam(1e-3)],
                                       ['ndim == 2 and not glob("*</pre><script>*")'],
                                       labels=[HOSTILE.replace('"', "'"), "rest<script>"])
        history = mol.History()
        history.start_run("<script>alert(3)</script>", {"labels": list(optimizer.labels)})
        for step in range(1, 4):
            history.record(step, loss=1.0 / step, metrics={optimizer.labels[0]: {"update_norm": 0.1 * step}})
        page = mol.report(optimizer, tree, history, title="<marquee>t</marquee>").html()
        tags = Elements(page).tags
        assert not [t for t, _ in tags if t in ("script", "img", "marquee")], [t for t, _ in tags][:40]
        assert not any(any(k.startswith("on") for k in attrs) for _, attrs in tags)
        for text in ("&lt;img src=x onerror=", "&lt;script&gt;alert(3)&lt;/script&gt;", "&lt;marquee&gt;t&lt;/marquee&gt;",
                     "&lt;/pre&gt;&lt;script&gt;"):
            assert text in page, text


class RecordedHistory(mol.History):
    """A History with per-parameter rows, filled by hand in the documented long form
    (run, step, path, group, metric, value) that ``history.parameters`` holds."""

    def __init__(self, rows):
        super().__init__()
        self._parameters = pd.DataFrame(rows, columns=["run", "step", "path", "group", "metric", "value"])

    @property
    def parameters(self):
        return self._parameters


class TestPerParameter:
    def rows(self, run="r"):
        rows = []
        for step in (1, 2, 3):
            for path, group, ratio in (("layers.0.w", "muon", 0.01 * step), ("<i>b</i>", "adamw", 0.5)):
                rows += [(run, step, path, group, "update_ratio", ratio), (run, step, path, group, "grad_norm", 2.0)]
        return rows

    def test_shown_when_recorded(self):
        history = RecordedHistory(self.rows())
        history.record(1, loss=1.0, run="r")
        html = per_parameter_html(history, "r", {"muon": "#0072B2"})
        assert "2 parameters, largest update_ratio first" in html
        assert html.index("&lt;i&gt;b&lt;/i&gt;") < html.index("layers.0.w")  # largest ratio first
        assert html.count('<svg class="mol-spark"') == 2 and "<i>" not in html
        model = {"layers": [{"w": mx.zeros((2, 2))}]}
        optimizer = mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"])
        assert "Per-parameter metrics" in mol.report(optimizer, model, history).sections

    def test_absent_without_rows_or_for_another_run(self):
        assert per_parameter_html(mol.History(), None, {}) == ""
        assert per_parameter_html(RecordedHistory([]), None, {}) == ""
        assert per_parameter_html(RecordedHistory(self.rows("other")), "r", {}) == ""


class TestBadInput:
    def test_each_error_says_what_was_expected(self, trained):
        model, optimizer, history = trained
        with pytest.raises(TypeError, match="optimizer must be a MultiOptimizer .* found SGD"):
            mol.report(optim.SGD(0.1), model)
        with pytest.raises(TypeError, match="model must be the model .* or a ParameterTable, found str"):
            mol.report(optimizer, "model.safetensors")
        with pytest.raises(TypeError, match="history must be a multiopt_lab History"):
            mol.report(optimizer, model, history.frame)
        with pytest.raises(ValueError, match="run 'second' is not in the History; its runs are 'first'"):
            mol.report(optimizer, model, history, run="second")


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory, trained):
    """A project folder as the command line sees it: model code, rule file, checkpoint, History."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "report_models.py").write_text(textwrap.dedent("""
        from multiopt_lab.examples import TinyGPT
        def make_model():
            return TinyGPT(16, dims=16, layers=2, heads=2)
    """))
    model, optimizer, history = trained
    mol.save_rules(folder / "rules.toml", list(optimizer.labels), [RULE])
    mol.save_state(folder / "opt.safetensors", optimizer)
    history.save(folder / "run.parquet")
    return folder


class TestCommandLine:
    def test_from_a_rule_file_and_a_history(self, saved_run, monkeypatch, capsys):
        monkeypatch.chdir(saved_run)
        assert main(["report", "rules.toml", "--model", "report_models:make_model",
                     "--history", "run.parquet", "-o", "from_rules.html"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("wrote from_rules.html (") and "Curves" in out
        page = (saved_run / "from_rules.html").read_text(encoding="utf-8")
        assert "Muon" in page and "AdamW" in page and "not stored in these files" in page

    def test_from_a_checkpoint(self, saved_run, monkeypatch, capsys):
        monkeypatch.chdir(saved_run)
        assert main(["report", "opt.safetensors", "--model", "report_models:make_model",
                     "-o", "from_checkpoint.html"]) == 0
        page = (saved_run / "from_checkpoint.html").read_text(encoding="utf-8")
        # A checkpoint holds the classes and each group's learning rate when it was saved (the
        # cosine schedule's last value), not the other hyperparameters.
        assert "checkpoint opt.safetensors" in page and "Muon" in page and "lr=0.001" in page
        assert "within(&quot;Block&quot;)" in page

    @pytest.mark.parametrize("arguments, message", [
        (["rules.toml", "--model", "report_models:make_model", "--history", "none.csv"],
         "no History file at 'none.csv'"),
        (["rules.toml", "--model", "report_models:make_model", "--history", "run.parquet", "--run", "x"],
         "run 'x' is not in the History; its runs are 'first'"),
        (["rules.toml", "--model", "report_models:make_model", "--run", "first"], "pass the History with --history"),
        (["run.parquet", "--model", "report_models:make_model"], "expected a .toml or .json file"),
        (["rules.toml", "--model", "report_models:nothing"], "has no attribute 'nothing'"),
        (["rules.toml", "--model", "report_models:make_model", "-o", "run.pdf"], "ending in .html"),
    ])
    def test_bad_input_exits_2_and_says_why(self, saved_run, monkeypatch, capsys, arguments, message):
        monkeypatch.chdir(saved_run)
        assert main(["report", *arguments]) == 2
        assert message in " ".join(capsys.readouterr().err.split())

    def test_as_a_process(self, saved_run):
        done = subprocess.run([sys.executable, "-m", "multiopt_lab", "report", "rules.toml", "--model",
                               "report_models:make_model", "--history", "run.parquet", "-o", "p.html"],
                              cwd=saved_run, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert (saved_run / "p.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

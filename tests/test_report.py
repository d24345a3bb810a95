# Tests the private module multiopt_lab._src.reporting.sections's own unit.
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
import pytest

import multiopt_lab as mol
from multiopt_lab import examples
from multiopt_lab.__main__ import main
from multiopt_lab._src.reporting.sections import per_parameter_html

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


class TestPerParameter:
    """The per-parameter section draws what ``multiopt_lab.plots`` draws from
    ``history.parameters`` (the overview: heatmap and the parameters farthest from their
    group's median) and lists those parameters, escaped."""

    @staticmethod
    def recorded(run="r"):
        history = mol.History()
        history.start_run(run, {"labels": ["muon", "adamw"]})
        for step in (1, 2, 3):
            history.record(step, loss=1.0 / step, parameters={
                "layers.0.w": {"group": "muon", "update_ratio": 0.01 * step, "grad_norm": 2.0},
                "layers.1.w": {"group": "muon", "update_ratio": 0.01, "grad_norm": 2.0},
                "layers.2.w": {"group": "muon", "update_ratio": 0.01, "grad_norm": 2.0},
                "<i>b</i>": {"group": "adamw", "update_ratio": 0.5, "grad_norm": 2.0}})
        return history

    def test_shown_when_recorded(self):
        history = self.recorded()
        html = per_parameter_html(history, "r")
        assert html.startswith('<svg class="mol-figure"')
        assert "update / parameter ratio per parameter" in html  # the heatmap's title, in an XML comment
        caption = re.search(r"<caption>(.*?)</caption>", html).group(1)
        assert caption == ("The 4 parameters of 4 farthest from their group's median update-to-parameter "
                           "ratio at step 3")
        # Farthest first: layers.0.w is 3x its group's median (0.01) at step 3.
        paths = re.findall(r'<tr data-path="([^"]*)"', html)
        assert paths[0] == "layers.0.w" and "3x</td>" in html
        assert set(paths) == {"layers.0.w", "layers.1.w", "layers.2.w", "&lt;i&gt;b&lt;/i&gt;"}
        assert "<i>" not in html
        model = {"layers": [{"w": mx.zeros((2, 2))} for _ in range(3)]}
        optimizer = mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"],
                                       labels=["muon", "adamw"])
        report = mol.report(optimizer, model, history)
        assert "Per-parameter metrics" in report.sections
        section = report.section_html("Per-parameter metrics")
        assert section.startswith('<svg class="mol-figure"') and section.endswith(html[html.index("</svg>"):])

    def test_a_heatmap_of_many_cells_is_one_picture(self):
        # 200 parameters over 100 steps: the cells are a picture (with the group band and the
        # colour bar, three embedded PNGs), not a path per cell.
        history = mol.History()
        for step in range(1, 101):
            history.record(step, parameters={f"layers.{i}.w": {"group": "g", "update_ratio": 1e-3 * (1 + i % 7)}
                                             for i in range(200)})
        html = per_parameter_html(history, history.current_run)
        assert html.count("data:image/png;base64,") == 3 and html.count("<path") < 2000
        assert len(html) < 400_000, len(html)

    def test_the_report_from_a_per_parameter_run(self):
        task = examples.sequence_task("reverse", length=4)
        model = examples.TinyGPT(task.vocab_size, dims=16, layers=1, heads=2)
        optimizer = mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], [RULE], labels=["muon", "adamw"])
        history = mol.train(model, optimizer, task.loss_fn, task.batch, steps=6, metrics_every=3,
                            per_parameter=True, progress=False)
        section = mol.report(optimizer, model, history).section_html("Per-parameter metrics")
        assert "The 10 parameters of 16 farthest" in section and section.count("<tr data-path=") == 10

    def test_absent_without_rows_or_for_another_run(self):
        assert per_parameter_html(mol.History(), None) == ""
        history = self.recorded("other")
        history.record(1, loss=1.0, run="r")
        assert per_parameter_html(history, "r") == ""
        model = {"w": mx.zeros((2, 2))}
        optimizer = mol.MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"])
        assert "Per-parameter metrics" not in mol.report(optimizer, model, history, run="r").sections


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

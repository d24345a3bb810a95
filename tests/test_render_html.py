# Tests the private modules' own units: multiopt_lab._src.palette, multiopt_lab._src.render.details,
#   multiopt_lab._src.render.export, multiopt_lab._src.render.html, multiopt_lab._src.render.params,
#   multiopt_lab._src.render.rich, multiopt_lab._src.render.search.
"""HTML form (smoke and structure), search, details and the rule export."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import mlx.optimizers as optim
import pytest

from multiopt_lab import MultiOptimizer, assign, render_html
from multiopt_lab._src.palette import group_colour
from multiopt_lab._src.render.details import details_html, details_text
from multiopt_lab._src.render.export import rules_python
from multiopt_lab._src.render.html import tree_css
from multiopt_lab._src.render.params import param_infos
from multiopt_lab._src.render.search import search_paths
from multiopt_lab.examples import MLP, TinyGPT

VOID = {"br", "hr", "img", "input", "meta", "link", "col", "wbr"}


class Balance(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def balanced(html: str) -> bool:
    parser = Balance()
    parser.feed(html)
    return not parser.errors and not parser.stack


@pytest.fixture
def gpt():
    model = TinyGPT(16, dims=8, layers=3, heads=2, max_length=8)
    optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ['ndim == 2 and not glob("*embed*")'])
    return model, optimizer, optimizer.assign(model)


def group_of(html: str, path: str) -> tuple[str, str]:
    match = re.search(rf'data-path="{re.escape(path)}" data-group="([^"]+)" style="--mol-c:(#[0-9A-F]+)"', html)
    assert match, f"no parameter row for {path}"
    return match.group(1), match.group(2)


class TestHtml:
    def test_smoke_balanced_with_style_legend_and_tree(self, gpt):
        _, optimizer, assignment = gpt
        html = render_html(assignment, optimizer)
        assert html.startswith('<div class="mol-root"><style>') and balanced(html)
        assert '<table class="mol-legend">' in html and 'class="mol-tree"' in html
        assert "Muon(lr=0.02" in html and "&quot;*embed*&quot;" in html

    def test_parameters_carry_path_group_and_colour(self, gpt):
        _, _, assignment = gpt
        html = render_html(assignment)
        assert group_of(html, "embed.weight") == ("adamw", group_colour(1))
        assert group_of(html, "layers.0.attn.q.weight") == ("muon", group_colour(0))

    def test_colours_follow_a_new_assignment(self, gpt):
        model, _, _ = gpt
        html = render_html(assign(model, ["ndim == 1"], ["sgd", "muon"]))
        assert group_of(html, "layers.0.attn.q.weight") == ("muon", group_colour(1))

    def test_folded_run_and_unfold(self, gpt):
        _, _, assignment = gpt
        html = render_html(assignment)
        assert 'data-fold="layers" data-fold-count="3"' in html
        assert 'data-path="layers.1.attn.q.weight"' not in html
        unfolded = render_html(assignment, unfold={"layers"})
        assert "data-fold=" not in unfolded and 'data-path="layers.1.attn.q.weight"' in unfolded

    def test_diagnostics_marked_in_place_and_listed(self):
        optimizer = MultiOptimizer([optim.Muon(0.02), optim.SGD(0.1), optim.AdamW(1e-3)], ["ndim == 2", "ndim == 4"])
        html = render_html(optimizer.assign(MLP(8, [8], 4)), optimizer)
        # What the fallback took is not flagged (issue 15); the dead rule is listed, and Muon
        # on the output head is flagged on its row, in the finding's own words.
        assert 'class="mol-row mol-param" data-path="layers.0.bias"' in html
        assert '<ul class="mol-diagnostics">' in html
        assert "error: rule &#x27;sgd&#x27; (ndim == 4) matches no parameter" in html
        assert ('class="mol-row mol-param mol-flag-embedding-or-head" data-path="head.weight"' in html
                and "! Muon on the output head</span>" in html)

    def test_near_miss_marked_in_place_with_what_it_looks_like(self):
        from multiopt_lab.examples import TinyMoE

        html = render_html(assign(TinyMoE(16, dims=8, layers=1, experts=2), ["ndim == 2"], ["muon", "adamw"]))
        assert 'class="mol-row mol-param mol-flag-near-miss" data-path="layers.0.moe.experts.up.weight"' in html
        assert ('title="like layers.0.attn.q.weight (Linear [8, 8]), which muon took">'
                "! near miss of muon</span>") in html

    def test_search_marks_matches_and_opens_their_modules(self, gpt):
        _, _, assignment = gpt
        html = render_html(assignment, highlight={"norm.weight"}, searching=True, open_depth=0)
        assert 'class="mol-tree mol-searching"' in html
        assert 'mol-param mol-match" data-path="norm.weight"' in html
        assert '<details class="mol-module" data-path="norm" open>' in html
        assert '<details class="mol-module" data-path="embed">' in html

    def test_legend_optimizer_column_is_compact_with_the_full_text_as_tooltip(self, gpt):
        _, optimizer, assignment = gpt
        legend = render_html(assignment, optimizer).split('<table class="mol-legend">')[1].split("</table>")[0]
        cell = re.search(r'<td class="mol-opt" title="([^"]*)">([^<]*)</td>', legend)
        assert cell.group(2) == "Muon lr=0.02 mom=0.95 wd=0.01"
        assert cell.group(1) == "Muon(lr=0.02, momentum=0.95, weight_decay=0.01)"
        shown = re.findall(r'<td class="mol-opt" title="[^"]*">([^<]*)</td>', legend)
        assert shown == ["Muon lr=0.02 mom=0.95 wd=0.01", "AdamW lr=0.001 wd=0.01"]

    def test_legend_cells_wrap_and_leave_a_gap(self):
        css = tree_css()
        assert re.search(r"td\.mol-opt \{ white-space: normal;", css)
        assert re.search(r"td\.mol-rule-cell \{ white-space: normal;", css)
        assert "padding: 1px 2ch 1px 0;" in css

    def test_shares_of_a_module_row_fit_before_the_notes(self):
        # Short rules and labels: the shares (bar + "muon 67% | adamw 33%") are
        # wider than the group and rule columns they span.
        model = MLP(8, [8, 8], 4)
        html = render_html(assign(model, ["ndim == 2"], ["muon", "adamw"]))
        widths = dict(re.findall(r"--mol-(\w+)-w:(\d+)ch", html))
        shares = max(len(text) for text in re.findall(r"</span>([a-z]+ \d+% \| [a-z]+ \d+%)</span>", html))
        gap = 1.5
        assert int(widths["group"]) + gap + int(widths["rule"]) >= 11 + shares

    def test_interactive_marks_the_root(self, gpt):
        assert render_html(gpt[2], interactive=True).startswith('<div class="mol-root mol-interactive">')

    def test_labels_are_escaped(self):
        html = render_html(assign(MLP(2, 2, 2), ["ndim == 2"], ["<b>", 'a"b']))
        assert "<b>" not in html.split("</style>")[1] and balanced(html)


class TestSearch:
    def test_word_is_a_substring_glob(self, gpt):
        result = search_paths(gpt[2], "attn.q")
        assert result.kind == "glob" and result.paths == tuple(f"layers.{i}.attn.q.weight" for i in range(3))
        assert result.summary() == "glob *attn.q*: 3 matches"

    def test_wildcards_glob_the_whole_path(self, gpt):
        assert search_paths(gpt[2], "*.bias").paths[0] == "layers.0.norm1.bias"
        assert search_paths(gpt[2], "bias").paths == search_paths(gpt[2], "*bias*").paths

    def test_rule_expression(self, gpt):
        result = search_paths(gpt[2], "ndim == 2 and size > 100")
        assert result.kind == "rule" and result.active
        assert result.paths == ("embed.weight",) + tuple(
            f"layers.{i}.mlp.layers.{j}.weight" for i in range(3) for j in (0, 2))

    def test_bad_rule_reports_instead_of_raising(self, gpt):
        result = search_paths(gpt[2], "ndim == ")
        assert not result.active and result.paths == () and "^" in result.summary()

    def test_empty(self, gpt):
        assert not search_paths(gpt[2], "  ").active


class TestDetailsAndExport:
    def test_details_of_a_parameter(self):
        optimizer = MultiOptimizer([optim.Muon(0.02), optim.SGD(0.1), optim.AdamW(1e-3)], ["ndim == 2", "glob('*weight')"])
        info = param_infos(optimizer.assign(MLP(8, [8], 4)))["head.weight"]
        assert details_text(info, width=None) == (  # one line a row; the default width wraps
            "path          head.weight\n"
            "shape         [4, 8]\n"
            "dtype         float32\n"
            "size          32\n"
            "group         muon\n"
            "module        Linear\n"
            "inside        MLP\n"
            "matched rule  ndim == 2\n"
            "also matched  sgd\n"
            "warning       Muon on the output head; fix: add `and not glob(\"head.*\")` to the rule of "
            "'muon', so that the fallback 'adamw' takes them\n"
            "note          also matched by later rules; fix: reorder or narrow the rules if a later one "
            "should take them"
        )
        html = details_html(info, "Muon(lr=0.02)")
        assert 'data-path="head.weight" data-group="muon"' in html and "Muon(lr=0.02)" in html

    def test_details_rows_are_compact_whatever_the_page_styles(self):
        info = param_infos(assign(MLP(8, [8], 4), ["ndim == 2"]))["head.weight"]
        html = details_html(info)
        style = re.fullmatch(r"<style>(.*)</style><table.*", html, re.S).group(1)
        # Doubled classes outrank JupyterLab's table styles; the line height
        # undoes the 28 px line height of an ipywidgets.HTML's content.
        rule = re.search(r"table\.mol-details-table\.mol-details-table th,[^{]*\{([^}]*)\}", style).group(1)
        assert "padding:1px" in rule and "line-height:1.35" in rule and balanced(html)

    def test_python_export_is_valid_python_with_quotes_kept(self):
        text = rules_python(["muon", "adamw"], ['ndim == 2 and not glob("*embed*")'])
        assert "'ndim == 2 and not glob(\"*embed*\")',  # labels[0]" in text
        compile(text, "<export>", "exec")

    def test_export_checks_the_rule_count(self):
        with pytest.raises(ValueError, match="Expected 1 rules for 2 groups"):
            rules_python(["a", "b"], [])


class TestRichDisplayAndLayering:
    def test_assignment_and_optimizer_repr_html(self, gpt):
        model, optimizer, assignment = gpt
        from multiopt_lab._src.render.rich import assignment_repr_html, optimizer_repr_html

        assert balanced(assignment_repr_html(assignment)) and 'data-path="embed.weight"' in assignment_repr_html(assignment)
        with_model = optimizer_repr_html(optimizer, model)
        assert "Muon(lr=0.02" in with_model and 'data-path="embed.weight"' in with_model
        groups_only = optimizer_repr_html(optimizer)
        assert balanced(groups_only) and 'data-group="adamw"' in groups_only and "No parameters seen yet" in groups_only

    def test_render_imports_no_front_end(self):
        import subprocess
        import sys

        code = ("import sys, multiopt_lab._src.render; "
                "print(sorted(m for m in ('ipywidgets', 'IPython', 'matplotlib') if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "[]"


# -- without its stylesheet (static renderers and untrusted notebooks strip <style>) --------
BLOCKS = {"div", "p", "summary", "details", "li", "ul", "ol", "tr", "table", "caption", "pre", "br",
          "h1", "h2", "h3", "h4"}
CELLS = {"td", "th"}


class Unstyled(HTMLParser):
    """The text a browser shows for HTML with no stylesheet: block elements start lines,
    table cells are apart, everything inside <style> is gone; list nesting is kept as depth."""

    def __init__(self):
        super().__init__()
        self.lines: list[tuple[int, str]] = []
        self.current: list[str] = []
        self.depth = 0
        self.in_style = False

    def _break(self):
        text = " ".join("".join(self.current).split())
        if text:
            self.lines.append((self.depth, text))
        self.current = []

    def handle_starttag(self, tag, attrs):
        if tag == "style":
            self.in_style = True
        elif tag in BLOCKS:
            self._break()
            self.depth += tag in ("ul", "ol")
        elif tag in CELLS:
            self.current.append("\t")

    def handle_endtag(self, tag):
        if tag == "style":
            self.in_style = False
        elif tag in BLOCKS:
            self._break()
            self.depth -= tag in ("ul", "ol")

    def handle_data(self, data):
        if not self.in_style:
            self.current.append(data)


def unstyled(html: str) -> list[tuple[int, str]]:
    parser = Unstyled()
    parser.feed(html)
    parser._break()
    return parser.lines


class TestWithoutStylesheet:
    def test_every_cell_of_a_row_is_apart(self, gpt):
        _, optimizer, assignment = gpt
        lines = [text for _, text in unstyled(render_html(assignment, optimizer))]
        # The position embedding went to Muon: flagged below the root, in its own cell.
        assert "model 40 params 2,728 muon 87% | adamw 13% ! 1 flagged below" in lines
        assert "weight [16, 8] float32 128 adamw (fallback)" in lines
        assert 'weight [8, 8] float32 64 muon ndim == 2 and not glob("*embed*")' in lines

    def test_nesting_shows_as_list_depth(self, gpt):
        depths = dict((text.split(" ")[0], depth) for depth, text in unstyled(render_html(gpt[2]))
                      if text.startswith(("model ", "embed ", "[0..2] ", "attn ")))
        assert depths["model"] < depths["embed"] < depths["[0..2]"] < depths["attn"]

    def test_a_static_rendering_has_no_unfold_button(self, gpt):
        static = render_html(gpt[2]).split("</style>", 1)[1]
        assert "mol-unfold" not in static and "unfold</button>" not in static
        assert 'class="mol-unfold"' in render_html(gpt[2], interactive=True)

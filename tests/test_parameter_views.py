# Tests the private modules' own units: multiopt_lab._src.optimizer.parameter_metrics,
#   multiopt_lab._src.palette.
"""The per-parameter views (issue 25): heatmap, top k, one parameter's curves, the tree's column
and details, the monitor's table. The browser tests look at them in JupyterLab."""

from __future__ import annotations

import re

import matplotlib.colors
import mlx.optimizers as optim
import numpy as np
import pytest

from multiopt_lab import History, MultiOptimizer, examples, render_html
from multiopt_lab._src.optimizer.parameter_metrics import ParameterMetrics
from multiopt_lab._src.palette import group_colour
from multiopt_lab.plots import (
    plot_parameter, plot_parameter_heatmap, plot_parameter_overview, plot_top_parameters,
    top_parameters,
)

pytestmark = pytest.mark.usefixtures("recorded_comm")

ODD_BLOCK = 2


def paths_and_groups(layers=4):
    paths, groups = ["embed.weight"], ["adamw"]
    for i in range(layers):
        for name in ("attn.q.weight", "mlp.up.weight", "norm.weight"):
            paths.append(f"layers.{i}.{name}")
            groups.append("adamw" if name.startswith("norm") else "muon")
    return paths, groups


def history_with_an_odd_block(steps=(1, 11, 21), layers=4):
    """Every ratio near 1e-3, but the parameters of block ODD_BLOCK near 0.1."""
    paths, groups = paths_and_groups(layers)
    rng = np.random.default_rng(0)
    history = History()
    history.start_run("demo", {"labels": ["muon", "adamw"]})
    for step in steps:
        values = np.ones((len(paths), 4))
        values[:, 3] = 1e-3 * (1 + 0.2 * rng.random(len(paths)))
        odd = [i for i, p in enumerate(paths) if p.startswith(f"layers.{ODD_BLOCK}.")]
        values[odd, 3] = 0.1
        history.record(step, loss=1.0 / step,
                       metrics={g: {"update_ratio": 2e-3, "update_norm": 1.0} for g in ("muon", "adamw")},
                       parameters=ParameterMetrics(step, paths, groups, values))
    return history


class TestFigures:
    def test_top_parameters_are_the_odd_block_farthest_first(self):
        table = top_parameters(history_with_an_odd_block(), k=4)
        assert list(table.columns) == ["path", "group", "value", "group_median", "times_median"]
        assert sorted(table.path[:3]) == [f"layers.{ODD_BLOCK}.{n}" for n in
                                          ("attn.q.weight", "mlp.up.weight", "norm.weight")]
        assert (table.times_median[:3] > 50).all() and table.attrs["step"] == 21

    def test_top_parameters_at_an_earlier_step_and_bad_arguments(self):
        history = history_with_an_odd_block()
        assert top_parameters(history, k=1, step=11).attrs["step"] == 11
        with pytest.raises(KeyError, match="no per-parameter 'update_ratio' at step 5"):
            top_parameters(history, step=5)
        with pytest.raises(ValueError, match="k must be an integer >= 1, found 0"):
            top_parameters(history, k=0)
        assert top_parameters(History()).empty

    def test_a_zero_or_nan_value_is_farthest(self):
        history = History()
        values = {p: {"group": "g", "update_norm": v} for p, v in
                  (("a", 1.0), ("b", 1.1), ("c", 0.0), ("d", float("nan")), ("e", 30.0))}
        history.record(1, parameters=values)
        assert top_parameters(history, "update_norm", k=3).path.tolist()[:2] == ["c", "d"]

    def test_heatmap_rows_in_tree_order_with_a_band_in_group_colours(self):
        history = history_with_an_odd_block()
        figure = plot_parameter_heatmap(history)
        ax = figure.axes[0]
        paths, groups = paths_and_groups()
        mesh = ax.collections[0]
        assert mesh.get_array().shape == (len(paths), 3)
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == paths
        odd_row = paths.index(f"layers.{ODD_BLOCK}.attn.q.weight")
        assert mesh.get_array()[odd_row].min() == pytest.approx(0.1)
        figure.draw_without_rendering()  # face colours are computed when drawn
        band = [child for child in ax.child_axes][0].collections[0]
        colours = [matplotlib.colors.to_hex(c) for c in band.get_facecolors()]
        want = {"muon": group_colour(0), "adamw": group_colour(1)}
        assert colours == [want[g].lower() for g in groups]

    def test_heatmap_puts_the_same_parameter_of_every_block_together(self):
        figure = plot_parameter_heatmap(history_with_an_odd_block(), group_blocks=True)
        ax = figure.axes[0]
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == ["embed.weight", "layers.*.attn.q.weight [0..3]",
                          "layers.*.mlp.up.weight [0..3]", "layers.*.norm.weight [0..3]"]
        assert [round(t, 1) for t in ax.get_yticks()] == [0.5, 3.0, 7.0, 11.0]
        ratios = ax.collections[0].get_array()[:, 0]
        odd_rows = [1 + band * 4 + ODD_BLOCK for band in range(3)]  # band b, block i: row 1 + 4b + i
        assert all(ratios[row] == pytest.approx(0.1) for row in odd_rows)
        assert all(ratios[row] < 0.01 for row in range(13) if row not in odd_rows)

    def test_figures_say_when_nothing_was_recorded(self):
        history = History()
        history.record(1, loss=1.0)
        for figure in (plot_parameter_heatmap(history), plot_top_parameters(history)):
            assert "per_parameter=True" in " ".join(t.get_text() for t in figure.axes[0].texts)

    def test_one_parameter_beside_its_group(self):
        history = history_with_an_odd_block()
        figure = plot_parameter(history, "layers.2.attn.q.weight", theme="dark")
        ratio = [ax for ax in figure.axes if ax.get_title() == "update / parameter ratio"][0]
        lines = {line.get_label(): line.get_ydata().tolist() for line in ratio.get_lines()}
        assert lines == {"layers.2.attn.q.weight": [0.1, 0.1, 0.1], "group muon": [2e-3] * 3}
        with pytest.raises(KeyError, match="no per-parameter metrics for 'nope'"):
            plot_parameter(history, "nope")

    def test_overview_holds_heatmap_and_top(self):
        figure = plot_parameter_overview(history_with_an_odd_block(), k=3)
        titles = [ax.get_title() for ax in figure.axes]
        assert "update / parameter ratio per parameter (demo)" in titles
        assert any(t.startswith("update_ratio: farthest from the group median") for t in titles)


class TestTree:
    def model(self):
        model = examples.TinyGPT(12, dims=8, layers=3, heads=2)
        optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)],
                                   ['within("Block") and ndim == 2'], labels=["muon", "adamw"])
        return model, optimizer

    def record(self, history, model, optimizer, step, odd=None):
        assignment = optimizer.assign(model)
        values = {}
        for path in assignment.labels:
            ratio = 0.5 if odd and path.startswith(odd) else 1e-3
            values[path] = {"group": assignment.labels[path], "update_ratio": ratio,
                            "update_norm": 1.0, "grad_norm": 2.0, "param_norm": 3.0}
        history.record(step, loss=1.0, parameters=values,
                       metrics={g: {"update_ratio": 1e-3} for g in optimizer.labels})

    def test_no_history_no_column(self):
        from multiopt_lab import ParameterTreeWidget

        model, optimizer = self.model()
        tree = ParameterTreeWidget(model, optimizer)
        assert 'class="mol-value' not in tree.view.html
        assert tree.metric_box.layout.display == "none"

    def test_the_column_shows_the_latest_values_and_a_fold_their_range(self):
        from multiopt_lab import ParameterTreeWidget

        model, optimizer = self.model()
        history = History()
        history.start_run("r", {"labels": ["muon", "adamw"]})
        tree = ParameterTreeWidget(model, optimizer, history=history, value_seconds=0)
        assert 'mol-with-values"' not in tree.view.html  # nothing recorded yet
        self.record(history, model, optimizer, 1, odd="layers.1.")
        html = tree.view.html
        assert 'mol-with-values"' in html
        folded = re.search(r'data-path="layers.0.attn.q.weight".*?<span class="mol-value([^"]*)"'
                           r' title="([^"]*)">([^<]*)</span>', html)
        assert folded.group(3) == "0.001\u20130.5 !"          # the range over the 3 folded blocks
        assert "farthest: layers.1.attn.q.weight (0.5)" in folded.group(2)
        assert "mol-value-far" in folded.group(1)
        tree.fold_toggle.value = False
        unfolded = tree.view.html
        assert re.search(r'data-path="layers.1.attn.q.weight"[^>]*>.*?<span class="mol-value '
                         r'mol-value-far"[^>]*>0.5 !</span>', unfolded)
        assert re.search(r'data-path="layers.2.attn.q.weight"[^>]*>.*?<span class="mol-value"'
                         r'[^>]*>0.001</span>', unfolded)
        tree.metric_box.value = "grad_norm"
        assert re.search(r'data-path="layers.2.attn.q.weight"[^>]*>.*?<span class="mol-value"'
                         r'[^>]*>2</span>', tree.view.html)
        assert 'class="mol-value' in tree.static_html()

    def test_the_column_follows_a_recording_run(self):
        from multiopt_lab import ParameterTreeWidget

        model, optimizer = self.model()
        history = History()
        history.start_run("r", {"labels": ["muon", "adamw"]})
        tree = ParameterTreeWidget(model, optimizer, history=history, value_seconds=0)
        self.record(history, model, optimizer, 1)
        self.record(history, model, optimizer, 11, odd="embed")
        assert re.search(r'data-path="embed.weight"[^>]*>.*?>0.5 !</span>', tree.view.html)

    def test_a_click_shows_the_curves_beside_the_details(self):
        from multiopt_lab import ParameterTreeWidget

        model, optimizer = self.model()
        history = History()
        history.start_run("r", {"labels": ["muon", "adamw"]})
        for step in (1, 11):
            self.record(history, model, optimizer, step)
        tree = ParameterTreeWidget(model, optimizer, history=history)
        tree.select("layers.0.attn.q.weight")
        assert '<table class="mol-details-table" data-path="layers.0.attn.q.weight"' in tree.details.value
        assert re.search(r'<figure class="mol-parameter-curves" data-path="layers.0.attn.q.weight"'
                         r'[^>]*><img src="data:image/png;base64,', tree.details.value)

    def test_bad_metric_is_refused(self):
        from multiopt_lab import ParameterTreeWidget

        model, optimizer = self.model()
        with pytest.raises(ValueError, match="metric must be one of"):
            ParameterTreeWidget(model, optimizer, history=History(), metric="loss")

    def test_render_html_takes_values_without_a_widget(self):
        model, optimizer = self.model()
        html = render_html(optimizer.assign(model), values={"embed.weight": 0.25},
                           value_metric="grad_norm")
        assert 'title="grad_norm 0.25' in html


class TestMonitor:
    def test_the_table_of_farthest_parameters_follows_the_run(self):
        from multiopt_lab import TrainingMonitorWidget

        history = History()
        monitor = TrainingMonitorWidget(history, top_k=3, max_rate=1e9)
        assert monitor.parameters_table.value == ""
        paths, groups = paths_and_groups()
        history.start_run("demo", {"labels": ["muon", "adamw"]})
        values = np.full((len(paths), 4), 1e-3)
        values[paths.index("layers.3.mlp.up.weight"), 3] = 0.5
        history.record(1, loss=1.0, parameters=ParameterMetrics(1, paths, groups, values))
        monitor.flush()
        table = monitor.parameters_table.value
        assert table.index('data-path="layers.3.mlp.up.weight"') < table.index("</table>")
        assert "step 1" in table and "500x" in table
        values[paths.index("layers.3.mlp.up.weight"), 3] = 1e-3
        values[paths.index("embed.weight"), 3] = 1e-6
        history.record(11, loss=1.0, parameters=ParameterMetrics(11, paths, groups, values))
        history.end_run()
        rows = re.findall(r'<tr data-path="([^"]+)"', monitor.parameters_table.value)
        assert rows[0] == "embed.weight" and "1/1e+03" in monitor.parameters_table.value
        assert "and 13 parameters' metrics" in monitor.text()
        monitor.close()

    def test_top_k_is_checked(self):
        from multiopt_lab import TrainingMonitorWidget

        with pytest.raises(ValueError, match="top_k must be an int >= 0"):
            TrainingMonitorWidget(History(), top_k=-1)


def test_the_lab_passes_its_history_to_the_tree():
    from multiopt_lab import LabWidget

    model = examples.MLP(4, [8], 2)
    optimizer = MultiOptimizer([optim.SGD(0.1)])
    history = History()
    lab = LabWidget(model, optimizer, history)
    assert lab.tree.history is history and lab.monitor.parameters_table.value == ""

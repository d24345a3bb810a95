# Tests the private module multiopt_lab._src.palette's own unit.
"""Figures: what each draws (lines, labels, colours, scales), on new or given axes, in a dark theme."""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pytest
from matplotlib.figure import Figure

from multiopt_lab import History
from multiopt_lab._src.palette import FALLBACK_GREY, group_colour
from multiopt_lab.plots import (
    plot_grad_norms, plot_learning_rates, plot_loss, plot_runs, plot_training, plot_update_norms,
    plot_update_ratios, smooth,
)

LABELS = ["embed", "matrices", "vectors"]


def make_history(steps: int = 30) -> History:
    history = History()
    # Recorded in another order than the partition, on purpose: colours must follow the partition.
    history.start_run("muon", {"labels": LABELS})
    for step in range(1, steps + 1):
        metrics = None
        if step % 10 == 1:
            metrics = {
                label: {"update_norm": 0.1 * (i + 1), "grad_norm": float(step), "update_ratio": 10.0 ** -(i + 2), "learning_rate": 0.01 * (i + 1)}
                for i, label in reversed(list(enumerate(LABELS)))
            }
            metrics["total"] = {"update_norm": 1.0}
        history.record(step, loss=3.0 / step, metrics=metrics)
    return history


def lines_by_label(figure: Figure, index: int = 0) -> dict:
    return {line.get_label(): line for line in figure.axes[index].get_lines()}


def same_colour(a, b) -> bool:
    return mcolors.to_hex(a) == mcolors.to_hex(b)


def test_loss_curve_data_and_labels():
    figure = plot_loss(make_history())
    ax = figure.axes[0]
    (line,) = ax.get_lines()
    assert line.get_xdata().tolist() == list(range(1, 31))
    assert line.get_ydata()[0] == 3.0 and ax.get_xlabel() == "step" and ax.get_ylabel() == "loss"
    assert ax.get_title() == "loss (muon)"


def test_loss_smoothing_keeps_a_faint_raw_curve():
    figure = plot_loss(make_history(), smoothing=0.9)
    raw, smoothed = figure.axes[0].get_lines()
    assert raw.get_alpha() < 0.5 and "smoothed" in smoothed.get_label()
    assert np.allclose(smoothed.get_ydata(), smooth(raw.get_ydata(), 0.9))
    assert smoothed.get_ydata()[5] > raw.get_ydata()[5]  # a smoothed falling curve lags above it


def test_smoothing_is_a_debiased_average():
    assert smooth([2.0, 2.0, 2.0], 0.9).tolist() == pytest.approx([2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match=r">= 0 and < 1, found 1.0"):
        smooth([1.0], 1.0)


def test_group_colours_follow_the_partition_not_the_record_order():
    figure = plot_update_norms(make_history())
    lines = lines_by_label(figure)
    assert [line.get_label() for line in figure.axes[0].get_lines()] == LABELS
    for i, label in enumerate(LABELS):
        assert same_colour(lines[label].get_color(), group_colour(i))
        assert lines[label].get_xdata().tolist() == [1, 11, 21]
    assert "total" not in lines


def test_update_ratio_is_log_scale_with_a_reference_line():
    figure = plot_update_ratios(make_history())
    ax = figure.axes[0]
    assert ax.get_yscale() == "log"
    reference = lines_by_label(figure)["reference 0.001"]
    assert list(reference.get_ydata()) == [1e-3, 1e-3] and same_colour(reference.get_color(), FALLBACK_GREY)
    assert lines_by_label(figure)["vectors"].get_ydata().tolist() == [1e-4] * 3
    assert "reference 0.001" in [text.get_text() for text in ax.get_legend().get_texts()]


def test_learning_rates_and_grad_norms():
    history = make_history()
    rates = lines_by_label(plot_learning_rates(history))
    assert rates["matrices"].get_ydata().tolist() == pytest.approx([0.02] * 3)
    assert plot_grad_norms(history).axes[0].get_yscale() == "log"


def test_drawing_into_a_given_axes_returns_its_figure():
    figure = Figure()
    ax = figure.add_subplot()
    assert plot_update_norms(make_history(), ax=ax) is figure
    assert len(ax.get_lines()) == 3


def test_several_runs_overlaid():
    history = make_history()
    history.start_run("adam", {"labels": LABELS})
    for step in range(1, 11):
        history.record(step, loss=1.0 / step)
    figure = plot_runs(history)
    lines = lines_by_label(figure)
    assert list(lines) == ["muon", "adam"]
    assert len(lines["adam"].get_xdata()) == 10
    # A run is not a group: runs take the colours after the groups', never a group's.
    assert same_colour(lines["adam"].get_color(), group_colour(len(LABELS) + 1))
    groups = {mcolors.to_hex(group_colour(i)) for i in range(len(LABELS))}
    assert not groups & {mcolors.to_hex(line.get_color()) for line in lines.values()}
    group_runs = plot_runs(history, "update_norm", group="matrices")
    assert list(lines_by_label(group_runs)) == ["muon"]
    with pytest.raises(KeyError, match="its runs are"):
        plot_runs(history, runs=["nope"])


def test_dark_theme_has_a_dark_background_and_light_text():
    figure = plot_update_ratios(make_history(), theme="dark")
    ax = figure.axes[0]
    assert sum(mcolors.to_rgb(figure.get_facecolor())) < 0.5
    assert sum(mcolors.to_rgb(ax.get_facecolor())) < 0.5
    assert sum(mcolors.to_rgb(ax.xaxis.label.get_color())) > 2.5
    assert sum(mcolors.to_rgb(ax.get_legend().get_texts()[0].get_color())) > 2.5
    # Group colours are the same in both themes.
    assert same_colour(lines_by_label(figure)["embed"].get_color(), group_colour(0))
    with pytest.raises(ValueError, match="theme must be one of"):
        plot_loss(make_history(), theme="neon")


def test_empty_history_says_so_instead_of_failing():
    figure = plot_update_norms(History())
    assert not figure.axes[0].get_lines()
    assert "no update_norm recorded yet" in [text.get_text() for text in figure.axes[0].texts]
    assert [ax.get_title() for ax in plot_training(History()).axes] == ["loss"]


def test_overview_has_four_panels_with_metrics_one_without():
    assert [ax.get_title() for ax in plot_training(make_history()).axes] == [
        "loss", "update norm", "update / parameter ratio", "learning rate",
    ]
    loss_only = History()
    loss_only.record(1, loss=1.0)
    assert len(plot_training(loss_only).axes) == 1


def test_overview_reuses_a_figure():
    history = make_history()
    figure = Figure()
    assert plot_training(history, figure=figure) is figure
    assert plot_training(history, figure=figure) is figure
    assert len(figure.axes) == 4


def test_figures_show_as_png_in_any_notebook():
    # Without pyplot's inline backend a plain Figure displays as text only.
    png = plot_loss(make_history())._repr_png_()
    assert png.startswith(b"\x89PNG") and plot_training(make_history())._repr_png_().startswith(b"\x89PNG")


def test_a_constant_learning_rate_gets_a_readable_axis():
    history = History()
    history.start_run("flat", {"labels": ["only"]})
    for step in range(1, 21):
        history.record(step, loss=1.0, metrics={"only": {"learning_rate": 1e-3}})
    ax = plot_learning_rates(history).axes[0]
    assert ax.get_ylim() == pytest.approx((0.0009, 0.0011))
    figure = ax.figure
    figure.canvas.draw()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.0009", "0.001", "0.0011"]
    assert not ax.yaxis.get_offset_text().get_text()
    # Different rates per group are not flat: matplotlib's own limits stay.
    varied = plot_learning_rates(make_history()).axes[0]
    assert varied.get_ylim()[0] < 0.011 and varied.get_ylim()[1] > 0.029


def test_lab_axes_is_subplots_without_pyplot():
    from multiopt_lab.plots import LabFigure, lab_axes

    figure, axes = lab_axes(2, 2, sharex=True)
    assert isinstance(figure, LabFigure) and axes.shape == (2, 2)
    assert axes[0, 0].get_shared_x_axes().joined(axes[0, 0], axes[1, 1])
    assert figure._repr_png_().startswith(b"\x89PNG")


def test_redrawing_the_same_layout_moves_the_lines_instead_of_plotting_again():
    history = History()
    history.start_run("live", {"labels": ["a", "b"]})
    for step in range(1, 4):
        history.record(step, loss=1.0 / step, metrics={"a": {"update_norm": 0.1, "learning_rate": 0.01}, "b": {"update_norm": 0.2, "learning_rate": 0.01}})
    figure = plot_training(history, figure=Figure())
    loss_line, rate_ax = figure.axes[0].get_lines()[0], figure.axes[3]
    assert rate_ax.get_ylim() == pytest.approx((0.009, 0.011))  # flat: steady limits
    for step in range(4, 8):
        history.record(step, loss=1.0 / step, metrics={"a": {"update_norm": 0.1, "learning_rate": 0.01 / step}, "b": {"update_norm": 0.2, "learning_rate": 0.01}})
    assert plot_training(history, figure=figure) is figure
    assert figure.axes[0].get_lines()[0] is loss_line and loss_line.get_xdata().tolist() == list(range(1, 8))
    assert lines_by_label(figure, 3)["a"].get_ydata()[-1] == pytest.approx(0.01 / 7)
    assert rate_ax.get_ylim()[0] < 0.002 and rate_ax.get_xlim()[1] >= 7  # no longer flat: rescaled
    # A new group changes the layout: the figure is drawn again, with its line.
    history.record(8, loss=0.1, metrics={"a": {"update_norm": 0.1}, "b": {"update_norm": 0.2}, "c": {"update_norm": 0.3}})
    plot_training(history, figure=figure)
    assert figure.axes[0].get_lines()[0] is not loss_line and "c" in lines_by_label(figure, 1)


# -- figures that agree with the tutorials' words (issue 17) -----------------------------------
def two_group_history(same_rates: bool = True, steps: int = 20, run: str = "r", optimizers=("Adam", "Adam"),
                      history: History | None = None, labels=("matrices", "vectors")) -> History:
    history = history or History()
    history.start_run(run, {"labels": list(labels), "optimizers": [{"class": c} for c in optimizers],
                            "backend": "cpu", "device_name": "Test CPU"})
    for step in range(1, steps + 1):
        history.record(step, loss=1.0 / step, metrics={
            labels[0]: {"update_norm": 0.1, "update_ratio": 1e-2, "learning_rate": 1e-3},
            labels[1]: {"update_norm": 0.2, "update_ratio": 1e-3 / step,
                        "learning_rate": 1e-3 if same_rates else 1e-2}})
    return history


def test_the_reference_line_is_dashed_and_the_total_is_not():
    figure = plot_update_ratios(make_history())
    assert lines_by_label(figure)["reference 0.001"].get_linestyle() == "--"
    from multiopt_lab.plots import plot_group_metric

    total = lines_by_label(plot_group_metric(make_history(), "update_norm", include_total=True))["total"]
    assert total.get_linestyle() not in ("--", ":")


def test_a_legend_sits_beside_the_axes_not_on_the_data():
    figure = plot_update_ratios(make_history())
    figure.canvas.draw()
    ax = figure.axes[0]
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.x0 >= ax.get_window_extent().x1 - 1


def test_the_overview_has_one_legend_for_all_panels_and_none_on_the_data():
    figure = plot_training(make_history())
    assert [ax.get_legend() for ax in figure.axes] == [None] * 4
    (legend,) = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == [*LABELS, "reference 0.001"]


def test_identical_lines_stay_visible_and_say_so():
    figure = plot_learning_rates(two_group_history(same_rates=True))
    first, second = (lines_by_label(figure)[name] for name in ("matrices", "vectors (= matrices)"))
    assert first.get_linestyle() == "-" and second.get_linestyle() == "--"
    different = lines_by_label(plot_learning_rates(two_group_history(same_rates=False)))
    assert set(different) == {"matrices", "vectors"} and different["vectors"].get_linestyle() == "-"


def test_identical_runs_stay_visible_and_say_so():
    history = two_group_history(run="never stopped")
    two_group_history(run="resumed", history=history)
    lines = lines_by_label(plot_runs(history))
    assert lines["resumed (= never stopped)"].get_linestyle() == "--"


def test_step_ticks_are_whole_numbers():
    figure = plot_runs(two_group_history(steps=20))
    figure.canvas.draw()
    ticks = [t for t in figure.axes[0].get_xticks() if 1 <= t <= 20]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_runs_compared_can_colour_groups_by_optimizer():
    history = two_group_history(run="sgd", optimizers=("SGD", "SGD"), labels=("sgd", "sgd2"))
    two_group_history(run="mixed", optimizers=("Muon", "SGD"), labels=("muon", "sgd"), history=history)
    sgd = lines_by_label(plot_update_ratios(history, run="sgd", colour_by="optimizer"))
    mixed = lines_by_label(plot_update_ratios(history, run="mixed", colour_by="optimizer"))
    assert same_colour(sgd["sgd"].get_color(), mixed["sgd"].get_color())
    assert not same_colour(mixed["muon"].get_color(), mixed["sgd"].get_color())
    # Two groups of one optimizer in one run keep apart by their line style.
    assert sgd["sgd"].get_linestyle() != sgd["sgd2"].get_linestyle()
    with pytest.raises(ValueError, match="colour_by must be"):
        plot_update_ratios(history, run="sgd", colour_by="rainbow")
    # Runs compared after that wear neither a group's nor an optimizer's colour.
    used = {mcolors.to_hex(line.get_color()) for figure in (plot_update_ratios(history, run="sgd", colour_by="optimizer"),
                                                        plot_update_ratios(history, run="mixed"))
            for line in figure.axes[0].get_lines() if line.get_label() not in ("total", "reference 0.001")}
    runs = {mcolors.to_hex(line.get_color()) for line in plot_runs(history).axes[0].get_lines()}
    assert used and runs and not used & runs


def test_the_overview_title_names_the_run_and_its_device():
    figure = plot_training(two_group_history())
    assert figure.get_suptitle() == "r · cpu (Test CPU)"


def test_a_drawn_figure_can_follow_a_theme_change():
    from multiopt_lab.plots import retheme

    figure = plot_update_ratios(make_history())
    ax = figure.axes[0]
    marker = ax.axvline(5, color="black")
    retheme(figure, "dark")
    assert sum(mcolors.to_rgb(figure.get_facecolor())) < 0.5
    assert sum(mcolors.to_rgb(ax.xaxis.label.get_color())) > 2.5
    assert sum(mcolors.to_rgb(ax.get_legend().get_texts()[0].get_color())) > 2.5
    assert sum(mcolors.to_rgb(marker.get_color())) > 2.5  # black on black would vanish
    assert same_colour(lines_by_label(figure)["embed"].get_color(), group_colour(0))
    retheme(figure, "light")
    assert same_colour(figure.get_facecolor(), "white") and same_colour(marker.get_color(), "black")

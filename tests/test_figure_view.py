# Tests the private module multiopt_lab._src.widgets.figure_view's own unit.
"""Figures follow what the page reports: its theme (dark or light) and, for the monitor, its width."""

from __future__ import annotations

import matplotlib.colors as mcolors
import pytest

from multiopt_lab import History, TrainingMonitorWidget
from multiopt_lab._src.widgets import figure_view
from multiopt_lab.plots import plot_update_ratios
from test_plots import make_history, two_group_history

pytestmark = pytest.mark.usefixtures("recorded_comm")
VIEW = "application/vnd.jupyter.widget-view+json"


def dark(colour) -> bool:
    return sum(mcolors.to_rgb(colour)) < 0.5


def test_a_figure_outside_a_kernel_is_its_png():
    bundle = plot_update_ratios(make_history())._repr_mimebundle_()
    assert set(bundle) == {"image/png", "text/plain"}


def test_a_figure_in_a_kernel_follows_the_page_s_theme(monkeypatch):
    monkeypatch.setattr(figure_view, "_in_kernel", lambda: True)
    figure = plot_update_ratios(make_history())
    bundle = figure._repr_mimebundle_()
    assert VIEW in bundle and bundle["image/png"] and bundle["text/plain"] == repr(figure)
    from ipywidgets.widgets.widget import _instances  # every open widget, by model id

    view = _instances[bundle[VIEW]["model_id"]]
    light_png = view.png
    view.set_state({"dark": True})  # what the browser sends when JupyterLab's theme is dark
    assert dark(figure.get_facecolor()) and view.png != light_png
    view.set_state({"dark": False})
    assert not dark(figure.get_facecolor())


def test_the_monitor_draws_to_the_width_it_is_given_and_in_the_page_s_theme():
    history = two_group_history(steps=10)
    monitor = TrainingMonitorWidget(history)
    assert monitor.figure.get_figwidth() * monitor.dpi == pytest.approx(720)
    monitor.image.set_state({"width": 480})  # the view's column is 480 px wide
    assert monitor.figure.get_figwidth() * monitor.dpi == pytest.approx(480)
    assert monitor.figure.get_figheight() * monitor.dpi == pytest.approx(480 * 0.78)
    drawn = monitor.redraws
    monitor.image.set_state({"dark": True})
    assert monitor.redraws == drawn + 1 and dark(monitor.figure.get_facecolor())
    history.record(11, loss=0.05)
    monitor.redraw()
    assert dark(monitor.figure.get_facecolor()), "a redraw keeps the page's theme"


def test_a_fixed_theme_ignores_the_page():
    monitor = TrainingMonitorWidget(two_group_history(), theme="light")
    monitor.image.set_state({"dark": True})
    assert not dark(monitor.figure.get_facecolor())


def test_an_empty_monitor_shows_a_legible_placeholder_not_an_empty_axes():
    monitor = TrainingMonitorWidget(History())
    assert monitor.figure.axes == []
    (text,) = monitor.figure.texts
    assert text.get_text() == "Waiting for a run to record its first step" and text.get_fontsize() >= 14
    history = History()
    history.start_run("demo")
    waiting = TrainingMonitorWidget(history)
    assert "run &#x27;demo&#x27; has started; no step recorded yet" in waiting.table.value
    assert "step None" not in waiting.table.value


def test_the_monitor_title_names_the_run_and_device():
    monitor = TrainingMonitorWidget(two_group_history())
    assert monitor.title == "r · cpu (Test CPU)" and monitor.figure.get_suptitle() == monitor.title

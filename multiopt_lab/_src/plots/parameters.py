"""Figures of the per-parameter metrics (``per_parameter=True``): which parameter is it?

* :func:`plot_parameter_heatmap`: one metric of every parameter (rows, in
  tree order, a band coloured by group at the left) over the recorded steps
  (columns); ``group_blocks=True`` puts the same parameter of repeated
  blocks (``layers.0`` .. ``layers.31``) together, so the one block that
  differs stands out in its band.
* :func:`top_parameters` / :func:`plot_top_parameters`: the ``k``
  parameters farthest from their group's median at one step, as a table or
  as bars (how many times the median, log scale).
* :func:`plot_parameter`: one parameter's curves over the run beside its
  group's (the tree's details pane shows it).
* :func:`plot_parameter_overview`: the heatmap and the top ``k`` in one
  figure (what a report shows).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import matplotlib
import matplotlib.patches
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure

from multiopt_lab._src.palette import FALLBACK_GREY, group_colour
from multiopt_lab._src.plots.style import LabFigure, checked_plot, new_axes, no_data, step_axis, themed
from multiopt_lab._src.training.history import History

__all__ = ["has_parameter_metrics", "parameter_table", "top_parameters", "plot_parameter_heatmap",
           "plot_top_parameters", "plot_parameter", "plot_parameter_overview",
           "parameter_colour_map"]

#: The per-parameter metrics, as the group rows name them.
PARAMETER_METRICS = ("update_norm", "grad_norm", "param_norm", "update_ratio")
_TITLES = {"update_norm": "update norm", "grad_norm": "gradient norm", "param_norm": "parameter norm",
           "update_ratio": "update / parameter ratio"}
_BLOCK = re.compile(r"(?<=\.)(\d+)(?=\.)")


def _run(history: History, run: str | None) -> str | None:
    run = run if run is not None else history.current_run
    if run is not None and run not in history.runs:
        raise KeyError(f"no run {run!r} in this history; its runs are {list(history.runs)}")
    return run


@checked_plot
def has_parameter_metrics(history: History, run: str | None = None) -> bool:
    """Whether ``run`` (default: the current one) recorded per-parameter metrics.

    Example:
        >>> has_parameter_metrics(History())
        False
    """
    run = run if run is not None else history.current_run
    return run is not None and bool(history.parameter_groups(run))


def parameter_colour_map(history: History, run: str | None = None) -> dict[str, str]:
    """``{group: colour}`` for the groups of the per-parameter rows: the tree's colours.

    Groups the run's metadata names take their partition colour; others
    follow in order of first appearance.
    """
    run = _run(history, run)
    labels = list(history.labels(run)) if run is not None else []
    for group in (history.parameter_groups(run) or {}).values() if run is not None else ():
        if group not in labels:
            labels.append(group)
    return {label: group_colour(i) for i, label in enumerate(labels)}


@checked_plot
def parameter_table(history: History, metric: str = "update_ratio", *,
                    run: str | None = None) -> pd.DataFrame:
    """``metric`` of every parameter over the recorded steps: rows paths (tree order), columns steps.

    Example:
        >>> h = History()
        >>> h.record(1, parameters={"w": {"group": "g", "update_norm": 2.0}})
        >>> parameter_table(h, "update_norm").to_dict()
        {1: {'w': 2.0}}
    """
    run = _run(history, run)
    frame = history.parameters
    if run is None or not len(frame):
        return pd.DataFrame()
    picked = frame[(frame["run"] == run) & (frame["metric"] == metric)]
    if not len(picked):
        return pd.DataFrame()
    table = picked.pivot_table(index="path", columns="step", values="value", aggfunc="last",
                               observed=True, sort=False)
    order = [p for p in frame["path"].cat.categories if p in table.index]
    table = table.reindex(order)
    table.index = pd.Index([str(p) for p in table.index], name="path")
    return table.rename_axis(columns="step")


@checked_plot
def top_parameters(history: History, metric: str = "update_ratio", *, k: int = 10,
                   run: str | None = None, step: int | None = None) -> pd.DataFrame:
    """The ``k`` parameters farthest from their group's median ``metric`` at ``step``.

    Far means many times above or below the median of the parameters of
    the same group (``|log10(value / median)|``); a value that is not
    finite, or zero beside a non-zero median, is farthest of all.

    Args:
        history (History): With per-parameter metrics.
        metric (str): Default: ``"update_ratio"``.
        k (int): How many. Default: ``10``.
        run (str, optional): Default: the current run.
        step (int, optional): Default: the run's last per-parameter step.

    Returns:
        DataFrame: columns path, group, value, group_median, times_median
        (value / median), farthest first; empty when nothing was recorded.
        ``attrs["step"]`` holds the step.

    Example:
        >>> h = History()
        >>> h.record(1, parameters={p: {"group": "g", "update_norm": v}
        ...                         for p, v in (("a", 1.0), ("b", 2.0), ("c", 400.0))})
        >>> top_parameters(h, "update_norm", k=1)[["path", "times_median"]].values.tolist()
        [['c', 200.0]]
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, found {k!r}")
    columns = ["path", "group", "value", "group_median", "times_median"]
    run = _run(history, run)
    if run is None:
        return pd.DataFrame(columns=columns)
    if step is None:  # the latest values: no frame to build, cheap while a run records
        values = history.parameter_values(metric, run)
        step = values.attrs.get("step")
    else:
        table = parameter_table(history, metric, run=run)
        if table.empty or step not in table.columns:
            recorded = list(table.columns)
            raise KeyError(f"no per-parameter {metric!r} at step {step}; recorded steps: "
                           f"{recorded[:10]}{'...' if len(recorded) > 10 else ''}")
        values = table[step].dropna()
    if not len(values):
        return pd.DataFrame(columns=columns)
    groups = history.parameter_groups(run)
    frame = pd.DataFrame({"path": list(values.index), "value": values.to_numpy(dtype=float)})
    frame["group"] = [groups.get(p, "") for p in frame["path"]]
    medians = frame.groupby("group")["value"].median()
    frame["group_median"] = frame["group"].map(medians).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        times = frame["value"] / frame["group_median"]
        distance = np.abs(np.log10(times.to_numpy(dtype=float)))
    distance = np.where(np.isfinite(distance), distance, np.inf)
    distance = np.where((frame["value"] == frame["group_median"]).to_numpy(), 0.0, distance)
    frame["times_median"] = times
    frame["_distance"] = distance
    frame = frame.sort_values("_distance", ascending=False, kind="stable").head(k)
    result = frame[columns].reset_index(drop=True)
    result.attrs["step"] = step
    return result


def _role(path: str) -> tuple[str, int]:
    # "layers.12.attn.q.weight" -> ("layers.*.attn.q.weight", 12): the same
    # parameter of every repeated block shares a role.
    found = list(_BLOCK.finditer(path))
    if not found:
        return path, -1
    last = found[0]
    return path[:last.start()] + "*" + path[last.end():], int(last.group(1))


def _row_labels(paths: Sequence[str], limit: int) -> list[tuple[int, str]]:
    every = max(1, math.ceil(len(paths) / limit))
    return [(i, paths[i]) for i in range(0, len(paths), every)]


@themed
def plot_parameter_heatmap(history: History, metric: str = "update_ratio", *,
                           run: str | None = None, log: bool = True, group_blocks: bool = False,
                           max_labels: int = 40, ax: Axes | None = None) -> Figure:
    """One per-parameter metric as a heatmap: a row per parameter, a column per recorded step.

    Rows follow the tree (the order of the model's parameters), with a band
    at the left in each parameter's group colour. With ``group_blocks`` the
    same parameter of repeated numbered blocks (``layers.0.mlp.up.weight``,
    ``layers.1.mlp.up.weight``, ...) sits together, block after block, in a
    band labelled ``layers.*.mlp.up.weight [0..31]``, so a block that
    behaves differently stands out within its band.

    Args:
        history (History): With per-parameter metrics (``per_parameter=True``).
        metric (str): ``update_norm``, ``grad_norm``, ``param_norm`` or
            ``update_ratio``. Default: ``"update_ratio"``.
        run (str, optional): Default: the current run.
        log (bool): Logarithmic colour scale. Default: ``True``.
        group_blocks (bool): Put the same parameter of repeated blocks
            together. Default: ``False`` (tree order).
        max_labels (int): Most row labels shown (every n-th otherwise). Default: ``40``.
        ax (Axes, optional): Draw here instead of a new figure.
        theme (str, optional): ``"light"``, ``"dark"`` or ``None``.

    Example:
        >>> h = History()
        >>> for step in (1, 11):
        ...     h.record(step, parameters={"w": {"group": "g", "update_ratio": 1e-3},
        ...                                "b": {"group": "g", "update_ratio": 1e-2}})
        >>> plot_parameter_heatmap(h).axes[0].get_title()
        'update / parameter ratio per parameter (run1)'
    """
    run = _run(history, run)
    if ax is None:
        figure = LabFigure(figsize=(8.0, 5.0), layout="constrained")
        ax = figure.add_subplot()
    else:
        figure = ax.figure  # type: ignore[assignment]  # a SubFigure when ax sits in one, as new_axes
    title = f"{_TITLES.get(metric, metric)} per parameter" + (f" ({run})" if run else "")
    ax.set_title(title)
    table = parameter_table(history, metric, run=run) if run is not None else pd.DataFrame()
    if table.empty:
        no_data(ax, f"per-parameter {metric} (record with per_parameter=True)")
        return figure
    paths = list(table.index)
    if group_blocks:
        ranks = _role_rank(paths)
        order = sorted(range(len(paths)), key=lambda i: (ranks[_role(paths[i])[0]],
                                                         _role(paths[i])[1]))
        table = table.iloc[order]
        paths = list(table.index)
    values = table.to_numpy(dtype=float)
    steps = np.asarray(table.columns, dtype=float)
    positive = values[np.isfinite(values) & (values > 0)]
    norm: Normalize
    if log and positive.size:
        norm = LogNorm(vmin=positive.min(), vmax=max(positive.max(), positive.min() * 1.0001))
        shown = np.where(values > 0, values, np.nan)
    else:
        finite = values[np.isfinite(values)]
        norm = Normalize(vmin=finite.min() if finite.size else 0, vmax=finite.max() if finite.size else 1)
        shown = values
    edges = _edges(steps)
    image = ax.pcolormesh(edges, np.arange(len(paths) + 1), np.ma.masked_invalid(shown), norm=norm,
                          cmap="viridis", shading="flat")
    ax.set_ylim(len(paths), 0)
    groups = history.parameter_groups(run)
    colours = parameter_colour_map(history, run)
    band = [colours.get(groups.get(p, ""), FALLBACK_GREY) for p in paths]
    unique = list(dict.fromkeys(band))
    band_ax = ax.inset_axes((-0.035, 0, 0.025, 1), sharey=ax)
    band_ax.pcolormesh([0, 1], np.arange(len(paths) + 1),
                       np.array([[unique.index(c)] for c in band]), cmap=ListedColormap(unique),
                       shading="flat", vmin=-0.5, vmax=len(unique) - 0.5)
    band_ax.set_xticks([])
    band_ax.tick_params(axis="y", left=False, labelleft=False)
    for spine in band_ax.spines.values():
        spine.set_visible(False)
    if group_blocks:
        # One label per band: the parameter's role, with the blocks it spans.
        bands = _bands(paths)
        for start, _, _ in bands[1:]:
            ax.axhline(start, color=matplotlib.rcParams["axes.edgecolor"], linewidth=0.6, alpha=0.6)
        labelled = _row_labels([label for _, _, label in bands], max_labels)
        ax.set_yticks([(bands[i][0] + bands[i][1]) / 2 for i, _ in labelled])
        ax.set_yticklabels([label for _, label in labelled], fontsize="x-small")
    else:
        labelled = _row_labels(paths, max_labels)
        ax.set_yticks([i + 0.5 for i, _ in labelled])
        ax.set_yticklabels([p for _, p in labelled], fontsize="x-small")
    ax.tick_params(axis="y", pad=14, length=0)
    ax.set_xlabel("step")
    step_axis(ax)
    colourbar = figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    colourbar.set_label(metric)
    handles = [matplotlib.patches.Patch(color=colour, label=label) for label, colour in colours.items()
               if colour in unique]
    if handles:
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.06), ncols=len(handles),
                  frameon=False, fontsize="small", borderaxespad=0.0, handlelength=1.0)
    return figure


def _bands(paths: Sequence[str]) -> list[tuple[int, int, str]]:
    """``(first row, end row, label)`` of each run of one role (paths ordered by role)."""
    bands: list[tuple[int, int, str]] = []
    start = 0
    for i in range(1, len(paths) + 1):
        if i == len(paths) or _role(paths[i])[0] != _role(paths[start])[0]:
            role, first = _role(paths[start])
            last = _role(paths[i - 1])[1]
            label = paths[start] if i - start == 1 else f"{role} [{first}..{last}]"
            bands.append((start, i, label))
            start = i
    return bands


def _role_rank(paths: Sequence[str]) -> dict[str, int]:
    # Roles in order of their first parameter in the tree.
    ranks: dict[str, int] = {}
    for path in paths:
        ranks.setdefault(_role(path)[0], len(ranks))
    return ranks


def _edges(steps: np.ndarray) -> np.ndarray:
    # Cell edges halfway between recorded steps (one step wide for a single one).
    if len(steps) == 1:
        return np.array([steps[0] - 0.5, steps[0] + 0.5])
    middle = (steps[1:] + steps[:-1]) / 2
    return np.concatenate([[steps[0] - (middle[0] - steps[0])], middle,
                           [steps[-1] + (steps[-1] - middle[-1])]])


@themed
def plot_top_parameters(history: History, metric: str = "update_ratio", *, k: int = 10,
                        run: str | None = None, step: int | None = None,
                        ax: Axes | None = None) -> Figure:
    """The ``k`` parameters farthest from their group's median, as bars (times the median, log scale).

    Each bar is one parameter, coloured by its group, drawn from 1 (its
    group's median) to its value over that median; the value itself is
    written beside it. See :func:`top_parameters` for the table.

    Example:
        >>> h = History()
        >>> h.record(1, parameters={p: {"group": "g", "update_ratio": v}
        ...                         for p, v in (("a", 1e-3), ("b", 1e-3), ("c", 1e-1))})
        >>> [t.get_text() for t in plot_top_parameters(h, k=1).axes[0].get_yticklabels()]
        ['c']
    """
    run = _run(history, run)
    figure, ax = new_axes(ax, size=(7.2, 0.9 + 0.32 * min(k, 30)))
    table = top_parameters(history, metric, k=k, run=run, step=step) if run else pd.DataFrame()
    shown_step = table.attrs.get("step")
    ax.set_title(f"{metric}: farthest from the group median"
                 + (f", step {shown_step}" if shown_step is not None and len(table) else ""))
    if table.empty:
        no_data(ax, f"per-parameter {metric} (record with per_parameter=True)")
        return figure
    colours = parameter_colour_map(history, run)
    times = table["times_median"].to_numpy(dtype=float)
    finite = times[np.isfinite(times) & (times > 0)]
    low, high = (finite.min(), finite.max()) if finite.size else (1.0, 1.0)
    low, high = min(low, 1.0) / 2, max(high, 1.0) * 4  # room for the values written beside
    drawn = np.where(np.isfinite(times) & (times > 0), times, np.where(times == 0, low, high))
    rows = np.arange(len(table))
    ax.barh(rows, drawn - 1.0, left=1.0, height=0.7,
            color=[colours.get(g, FALLBACK_GREY) for g in table["group"]])
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.axvline(1.0, color=FALLBACK_GREY, linewidth=1.0, linestyle="--", label="group median")
    ax.set_yticks(rows)
    ax.set_yticklabels(table["path"].tolist(), fontsize="small")
    ax.set_ylim(len(table) - 0.5, -0.5)
    ax.set_xlabel(f"{metric} / its group's median")
    for row, value, x in zip(rows, table["value"], drawn):
        # Right of the bar's far end, or of the median line for a bar to its left.
        ax.annotate(f"{value:.3g}", (max(x, 1.0), row), xytext=(3, 0), textcoords="offset points",
                    va="center", ha="left", fontsize="x-small",
                    color=matplotlib.rcParams["text.color"])
    handles = [matplotlib.patches.Patch(color=colours[g], label=g)
               for g in dict.fromkeys(table["group"]) if g in colours]
    ax.legend(handles=handles + ax.get_lines(), loc="upper left", bbox_to_anchor=(1.02, 1.0),
              borderaxespad=0.0, fontsize="small", frameon=False)
    ax.grid(True, axis="x", alpha=0.3)
    return figure


@themed
def plot_parameter(history: History, path: str, *, run: str | None = None,
                   metrics: Sequence[str] = PARAMETER_METRICS, figure: Figure | None = None,
                   width: float = 6.4) -> Figure:
    """One parameter's metrics over the run (solid) beside its group's (dashed), one panel each.

    The group's numbers are the roll-up of all its parameters (norms of the
    whole group, its ratio), so a parameter's ratio reads against its
    group's directly; norms show how much of the group it is.

    Args:
        history (History): With per-parameter metrics.
        path (str): The parameter (``layers.3.attn.q.weight``).
        run (str, optional): Default: the current run.
        metrics (Sequence[str]): Panels, in order. Default: all four.
        figure (Figure, optional): Draw into this figure (cleared first).
        width (float): Inches, for a new figure. Default: ``6.4``.
        theme (str, optional): ``"light"``, ``"dark"`` or ``None``.

    Example:
        >>> h = History(); h.start_run("r", {"labels": ["g"]})
        'r'
        >>> for step in (1, 11):
        ...     h.record(step, metrics={"g": {"update_ratio": 1e-3}},
        ...              parameters={"w": {"group": "g", "update_ratio": 2e-3}})
        >>> [line.get_label() for line in plot_parameter(h, "w", metrics=["update_ratio"]).axes[0].get_lines()]
        ['w', 'group g']
    """
    run = _run(history, run)
    groups = history.parameter_groups(run) if run is not None else {}
    if path not in groups:
        known = list(groups)[:5]
        raise KeyError(f"no per-parameter metrics for {path!r} in run {run!r}; recorded paths "
                       f"start {known}" if known else f"run {run!r} recorded no per-parameter metrics")
    group = groups[path]
    colour = parameter_colour_map(history, run).get(group, FALLBACK_GREY)
    if figure is None:
        figure = LabFigure(figsize=(width, 1.0 + 1.15 * math.ceil(len(metrics) / 2) * 1.6),
                           layout="constrained")
    else:
        figure.clear()
    axes = figure.subplots(math.ceil(len(metrics) / 2), 2 if len(metrics) > 1 else 1,
                           sharex=True, squeeze=False).ravel()
    frame = history.parameters
    mine = frame[(frame["run"] == run) & (frame["path"] == path)]
    rows = history.frame
    theirs = rows[(rows["run"] == run) & (rows["group"] == group)]
    for ax, metric in zip(axes, metrics):
        own = mine[mine["metric"] == metric].sort_values("step", kind="stable")
        ax.plot(own["step"], own["value"], color=colour, linewidth=1.6, label=path)
        rolled = theirs[theirs["metric"] == metric].sort_values("step", kind="stable")
        if len(rolled):
            ax.plot(rolled["step"], rolled["value"], color=colour, linewidth=1.2, linestyle="--",
                    alpha=0.7, label=f"group {group}")
        ax.set_title(_TITLES.get(metric, metric), fontsize="small")
        values = np.concatenate([own["value"].to_numpy(dtype=float),
                                 rolled["value"].to_numpy(dtype=float)])
        values = values[np.isfinite(values)]
        # Log scale where the lines span decades; a linear one reads better within one.
        if len(values) and (values > 0).all() and values.max() > 20 * values.min():
            ax.set_yscale("log")
        ax.tick_params(labelsize="x-small")
        ax.grid(True, alpha=0.3)
        step_axis(ax)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    figure.suptitle(f"{path} ({group})", fontsize="small", x=0.01, ha="left")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper right", fontsize="x-small", frameon=False,
                  ncols=2)
    return figure


@themed
def plot_parameter_overview(history: History, metric: str = "update_ratio", *,
                            run: str | None = None, k: int = 10, group_blocks: bool = False) -> Figure:
    """The heatmap of ``metric`` and the top ``k`` parameters farthest from their group's median.

    One figure for a report or a saved notebook; it says so when the run
    recorded no per-parameter metrics.

    Example:
        >>> h = History(); h.record(1, parameters={"w": {"group": "g", "update_ratio": 1e-3}})
        >>> len(plot_parameter_overview(h).axes) >= 2
        True
    """
    figure = LabFigure(figsize=(12.0, 5.5), layout="constrained")
    left, right = figure.subfigures(1, 2, width_ratios=[1.35, 1.0])  # type: ignore[misc]  # 1 x 2: an array of two
    plot_parameter_heatmap(history, metric, run=run, group_blocks=group_blocks,
                           ax=left.add_subplot())
    plot_top_parameters(history, metric, k=k, run=run, ax=right.add_subplot())
    return figure

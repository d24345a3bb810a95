"""ParameterTreeWidget: the coloured parameter tree, with search, folding and details.
"""

from __future__ import annotations

import time
from html import escape

import ipywidgets as widgets

from multiopt_lab._src.arguments import checked, is_flag, number
from multiopt_lab._src.partition.arguments import check_parameters
from multiopt_lab._src.render.details import details_html
from multiopt_lab._src.render.document import render_html, render_text
from multiopt_lab._src.text_fit import DEFAULT_WIDTH
from multiopt_lab._src.optimizer.describe import describe_optimizer
from multiopt_lab._src.render.params import ParamInfos, param_infos
from multiopt_lab._src.render.search import SearchResult, search_paths, shown_matches
from multiopt_lab._src.render.tree_model import build_tree
from multiopt_lab._src.live.debounce import Debouncer
from multiopt_lab._src.widgets.editor_parts import close_inside
from multiopt_lab._src.widgets.static_forms import widget_bundle
from multiopt_lab._src.live.sources import assignment_of, optimizers_for, parameter_table, root_name_of
from multiopt_lab._src.widgets.tree_view import TreeView
from multiopt_lab._src.live.watch import VersionWatcher
from multiopt_lab._src.widgets.parameter_details import PARAMETER_METRICS, parameter_curves_html

__all__ = ["ParameterTreeWidget"]

_NO_SEARCH = SearchResult("", "none", ())
# Inline, so it holds wherever the status lands: lines kept whole, code font.
_STATUS_STYLE = ("white-space:pre;overflow-wrap:normal;word-break:normal;margin:0;line-height:1.35;"
                 "font-family:var(--jp-code-font-family,monospace);font-size:12px")


class ParameterTreeWidget(widgets.VBox):
    """Interactive tree of a model's parameters, coloured by optimizer group.

    Modules expand and collapse; the search box takes a path glob (``attn``,
    ``*.bias``) or a rule expression (``ndim == 1``) and highlights matches; a
    click on a parameter shows its details; repeated identical blocks fold
    into one row (the "unfold" button or the checkbox opens them).

    Given a ``history`` with per-parameter metrics (``per_parameter=True``),
    a column shows each parameter's latest value of a metric chosen in the
    toolbar (a folded row: the range over its blocks; ten times its group's
    median or more, either way, is marked ``!``), kept up to date while the
    run records, and a click on a parameter shows its curves over the run
    beside its group's in the details.

    Args:
        model_or_parameters: An ``nn.Module`` (its trainable parameters), a
            parameter tree or a ``ParameterTable``.
        optimizer_or_assignment: A ``MultiOptimizer`` (ours or MLX's), a single
            MLX optimizer, or an ``Assignment``.
        fold (bool, optional): Start with repeated blocks folded. Default: ``True``.
        open_depth (int, optional): Module levels open at first. Default: ``2``.
        search_debounce (float, optional): Seconds of quiet typing before a search
            runs. Default: ``0.2``.
        watch_seconds (float, optional): How often to check whether the optimizer's
            routing changed (then the tree redraws); ``0`` turns it off. Default: ``1.0``.
        history (History, optional): Where per-parameter metrics are recorded
            (a value column and curves in the details). Default: ``None``.
        metric (str, optional): The column's metric: ``update_ratio``,
            ``update_norm``, ``grad_norm`` or ``param_norm``. Default: ``"update_ratio"``.
        run (str, optional): The history's run to show. Default: its current run.
        value_seconds (float, optional): Shortest time between two updates of the
            column while a run records. Default: ``2.0``.

    Example:
        >>> import mlx.optimizers as optim
        >>> from multiopt_lab import MultiOptimizer
        >>> from multiopt_lab.examples import MLP
        >>> model = MLP(4, [8], 2)
        >>> optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
        >>> w = ParameterTreeWidget(model, optimizer)
        >>> w.search_box.value = "*.bias"; w.flush()
        >>> w.search.paths
        ('layers.0.bias', 'head.bias')
    """

    @checked(model_or_parameters=check_parameters, fold=is_flag,
             open_depth=number(low=0, integer=True), search_debounce=number(low=0),
             watch_seconds=number(low=0))
    def __init__(self, model_or_parameters, optimizer_or_assignment, *, fold: bool = True,
                 open_depth: int = 2, search_debounce: float = 0.2, watch_seconds: float = 1.0,
                 history=None, metric: str = "update_ratio", run: str | None = None,
                 value_seconds: float = 2.0):
        if metric not in PARAMETER_METRICS:
            raise ValueError(f"metric must be one of {PARAMETER_METRICS}, found {metric!r}")
        self.model = model_or_parameters
        self.table = parameter_table(model_or_parameters)
        self.source = optimizer_or_assignment
        self.root_name = root_name_of(model_or_parameters)
        self.open_depth = open_depth
        self._assignment = assignment_of(optimizer_or_assignment, self.table)
        self._optimizers = optimizers_for(optimizer_or_assignment)
        self._infos: ParamInfos | None = None
        self.search = _NO_SEARCH
        #: Where per-parameter values come from (None: no value column).
        self.history = history
        self.run = run
        self.value_seconds = value_seconds
        self._values_drawn_at = 0.0
        self._values_step = None

        self.search_box = widgets.Text(placeholder="search: attn, *.bias, or a rule like ndim == 1",
                                       continuous_update=True,
                                       layout=widgets.Layout(width="28em", min_width="28em", flex="0 0 auto"))
        self.search_box.add_class("mol-search")
        self.search_status = widgets.HTML()
        self.search_status.add_class("mol-search-status")
        self.fold_toggle = widgets.Checkbox(value=fold, description="fold repeated blocks", indent=False,
                                            layout=widgets.Layout(width="auto", flex="0 0 auto", margin="0 1em 0 0.5em"))
        self.fold_toggle.add_class("mol-fold-toggle")
        self.view = TreeView(layout=widgets.Layout(overflow="auto", max_width="100%"))
        self.view.add_class("mol-tree")
        self.details = widgets.HTML("<i>Click a parameter to see its details.</i>")
        self.details.add_class("mol-details")
        # A status too long for the row goes to the next line whole, never cut mid-word.
        self.metric_box = widgets.Dropdown(options=list(PARAMETER_METRICS), value=metric,
                                           description="column", style={"description_width": "auto"},
                                           layout=widgets.Layout(width="auto", flex="0 0 auto",
                                                                 display="" if history is not None else "none"))
        self.metric_box.add_class("mol-value-metric")
        toolbar = widgets.HBox([self.search_box, self.fold_toggle, self.metric_box, self.search_status],
                               layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        super().__init__([toolbar, self.view, self.details])
        self.add_class("mol-tree-widget")

        self._search_debouncer = Debouncer(search_debounce, self._run_search)
        self.search_box.observe(lambda _: self._search_debouncer(), "value")
        self.fold_toggle.observe(self._on_fold, "value")
        self.view.observe(lambda _: self.redraw(), "unfold")
        self.view.observe(lambda _: self._show_details(), "selected_path")
        self.metric_box.observe(lambda _: self.redraw(), "value")
        self._unsubscribe = history.subscribe(self._on_history) if history is not None else None
        #: Called instead of :meth:`refresh` when the optimizer's routing changes
        #: (the rule editor registers itself here to keep its draft on screen).
        self.source_listeners: list = []
        self.watcher = VersionWatcher(optimizer_or_assignment, self._source_changed, watch_seconds,
                                      alive=lambda: self.comm is not None)
        self.redraw()

    @property
    def assignment(self):
        """The assignment shown. Setting it recolours the tree (and re-runs the search)."""
        return self._assignment

    @assignment.setter
    def assignment(self, assignment) -> None:
        self._assignment = assignment
        self._infos = None
        self._run_search(redraw=False)
        self.redraw()
        self._show_details()

    def refresh(self) -> None:
        """Re-read the model's parameters, recompute the assignment and redraw.

        Runs by itself when the optimizer's routing changes (see ``watch_seconds``).

        Example:
            >>> import mlx.optimizers as optim
            >>> from multiopt_lab import MultiOptimizer
            >>> from multiopt_lab.examples import MLP
            >>> model = MLP(4, [8], 2)
            >>> optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
            >>> tree = ParameterTreeWidget(model, optimizer, watch_seconds=0)
            >>> _ = optimizer.repartition(["ndim == 1"], model); tree.refresh()
            >>> tree.assignment.labels["head.bias"]
            'muon'
        """
        self.table = parameter_table(self.model)
        self._optimizers = optimizers_for(self.source)  # a repartition may change the groups
        self.assignment = assignment_of(self.source, self.table)

    def _source_changed(self) -> None:
        if self.source_listeners:
            for listener in self.source_listeners:
                listener()
        else:
            self.refresh()

    def flush(self) -> None:
        """Run a search still waiting for the typing to pause."""
        self._search_debouncer.flush()

    def close(self) -> None:
        """Close the tree and every widget inside it; the routing watcher stops with it."""
        debouncer = getattr(self, "_search_debouncer", None)  # absent if __init__ failed
        if debouncer is not None:
            debouncer.cancel()
        unsubscribe = getattr(self, "_unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe()
        close_inside(self)
        super().close()

    @property
    def metric(self) -> str:
        """The value column's metric (the toolbar's choice)."""
        return self.metric_box.value

    def parameter_values(self) -> dict[str, float] | None:
        """``{path: latest value}`` of the column's metric, or None (no history, nothing recorded).

        Example:
            >>> import mlx.optimizers as optim
            >>> from multiopt_lab import History, MultiOptimizer
            >>> from multiopt_lab.examples import MLP
            >>> model, history = MLP(4, [8], 2), History()
            >>> tree = ParameterTreeWidget(model, MultiOptimizer([optim.SGD(0.1)]), history=history)
            >>> history.record(1, parameters={"head.bias": {"group": "sgd", "update_ratio": 0.5}})
            >>> tree.parameter_values()
            {'head.bias': 0.5}
        """
        history = self.history
        if history is None:
            return None
        run = self.run if self.run is not None else history.current_run
        if run is None or run not in history.runs:
            return None
        values = history.parameter_values(self.metric, run)
        self._values_step = values.attrs.get("step")
        return values.to_dict() if len(values) else None

    def _on_history(self, history, event: str) -> None:
        # Runs on the training thread: the column follows at most every value_seconds.
        if event == "end_run" or time.monotonic() - self._values_drawn_at >= self.value_seconds:
            run = self.run if self.run is not None else history.current_run
            if run is None or run not in history.runs:
                return
            step = history.parameter_values(self.metric, run).attrs.get("step")
            if step != self._values_step or event == "end_run":
                self.redraw()
            if event == "end_run" and self.view.selected_path:
                self._show_details()  # the curves of the whole run

    def redraw(self) -> None:
        """Render the HTML again from the current assignment, search, folding and values."""
        values = self.parameter_values()
        self._values_drawn_at = time.monotonic()
        html = render_html(self._assignment, self._matching_optimizers(), **self._options(),
                           searching=self.search.active, selected=self.view.selected_path or None,
                           open_depth=self.open_depth, interactive=True, values=values,
                           value_metric=self.metric)
        if html != self.view.html:
            self.view.html = html
        self._show_search_status()

    def text(self, legend: bool = True, width: int | None = DEFAULT_WIDTH) -> str:
        """The tree as shown (same folding and search marks), in text form no
        wider than ``width`` columns (``None``: no limit; see :func:`~multiopt_lab.render_text`).

        Example:
            >>> import mlx.optimizers as optim
            >>> from multiopt_lab import MultiOptimizer
            >>> from multiopt_lab.examples import MLP
            >>> model = MLP(4, [8], 2)
            >>> optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
            >>> print(ParameterTreeWidget(model, optimizer).text(legend=False))
            MLP                 4 params           58  muon 83% | adamw 17%  ! 1 flagged below
            ├── layers          2 params           40  muon 80% | adamw 20%
            ...
                ├── weight      [2, 8]    float32  16  muon   ndim == 2      ! Muon on the output head
            ...
        """
        return render_text(self._assignment, self._matching_optimizers(), legend=legend, width=width,
                           **self._options())

    def static_html(self) -> str:
        """The tree as shown, as HTML that needs no kernel (a saved notebook shows it).

        Example:
            >>> import mlx.optimizers as optim
            >>> from multiopt_lab import MultiOptimizer
            >>> from multiopt_lab.examples import MLP
            >>> model = MLP(4, [8], 2)
            >>> optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
            >>> ParameterTreeWidget(model, optimizer).static_html().startswith('<div class="mol-root">')
            True
        """
        return render_html(self._assignment, self._matching_optimizers(), **self._options(),
                           searching=self.search.active, open_depth=self.open_depth,
                           values=self.parameter_values(), value_metric=self.metric)

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return widget_bundle(self, self.text(), html=self.static_html())

    def select(self, path: str) -> None:
        """Select a parameter as a click on it would (``""`` clears the selection)."""
        self.view.selected_path = path

    def _matching_optimizers(self):
        """The optimizers, when they match the shown assignment's groups one to one."""
        if self._optimizers and len(self._optimizers) == len(self._assignment.group_labels):
            return self._optimizers
        return None

    def _options(self) -> dict:
        highlight = self.search.paths if self.search.active else ()
        return {"root_name": self.root_name, "fold": self.fold_toggle.value,
                "unfold": tuple(self.view.unfold), "highlight": frozenset(highlight)}

    def _run_search(self, redraw: bool = True) -> None:
        self.search = search_paths(self._assignment, self.search_box.value)
        if redraw:
            self.redraw()  # which also updates the status line

    def _show_search_status(self) -> None:
        shown = None
        if self.search.active and self.search.paths and self.fold_toggle.value:
            # Folded blocks show one block's matches: say how many rows are visible.
            options = self._options()
            tree = build_tree(self._assignment, root_name=options["root_name"], fold=True,
                              unfold=options["unfold"], highlight=options["highlight"])
            shown = shown_matches(tree)
        summary = self.search.summary(shown)
        error = self.search.error is not None
        css = "mol-error" if error else "mol-ok"
        colour = "color:var(--jp-error-color1,#D32F2F);" if error else ""
        status = (f'<pre class="{css}" style="{colour}{_STATUS_STYLE}">{escape(summary)}</pre>'
                  if summary else "")
        if status != self.search_status.value:
            self.search_status.value = status

    def _on_fold(self, change) -> None:
        if change["new"]:
            self.view.unfold = []  # folding again folds everything again
        self.redraw()

    def _show_details(self) -> None:
        path = self.view.selected_path
        if self._infos is None:
            self._infos = param_infos(self._assignment)
        info = self._infos.get(path)
        if info is None:
            self.details.value = "<i>Click a parameter to see its details.</i>"
            return
        optimizers = self._matching_optimizers()
        optimizer = describe_optimizer(optimizers[info.group]) if optimizers else ""
        curves = ""
        if self.history is not None:
            run = self.run if self.run is not None else self.history.current_run
            curves = parameter_curves_html(self.history, path, run)
        self.details.value = details_html(info, optimizer) + curves

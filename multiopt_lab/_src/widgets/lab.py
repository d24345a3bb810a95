"""LabWidget: the rule editor, the parameter tree and the training monitor together.

The layout follows the width the notebook gives the lab (a CSS container
query, not the window's width): from about 800 px the editor and the tree
sit side by side and the monitor spans the width below them (its figure up
to 60em wide, the table of last values beside it); narrower, they stack as
editor, tree, monitor. The tree never wraps a row: it scrolls
sideways in its column, and in the lab it scrolls down too past 34 rows of
text, so the monitor stays near.

What the lab's output keeps for a reader without a kernel (its text and
HTML forms, see :mod:`~multiopt_lab._src.widgets.static_forms`) follows it: the
output is displayed with a display id and updated when the monitor's run
ends and whenever the editor's status changes (an Apply landed), so a saved
notebook shows the lab after the run, not as it was displayed.
"""

from __future__ import annotations

from html import escape

import ipywidgets as widgets

from multiopt_lab._src.arguments import check_multi_optimizer, checked, number
from multiopt_lab._src.partition.arguments import check_parameters
from multiopt_lab._src.training.arguments import check_history
from multiopt_lab._src.widgets.editor import RuleEditorWidget
from multiopt_lab._src.widgets.editor_parts import close_inside
from multiopt_lab._src.widgets.static_forms import png_data_url, widget_bundle
from multiopt_lab._src.widgets.tree import ParameterTreeWidget
from multiopt_lab._src.text_fit import DEFAULT_WIDTH, clip

__all__ = ["LabWidget", "LAB_CSS", "SIDE_BY_SIDE_PX"]

#: Narrowest lab (CSS pixels) that shows the editor and the tree side by side.
SIDE_BY_SIDE_PX = 800

#: The lab's layout. Areas are named by class, never set through a widget's
#: ``Layout`` (that writes inline styles, which a container query cannot override).
LAB_CSS = f"""
.mol-lab {{ container-type: inline-size; container-name: mol-lab; width: 100%; }}
.mol-lab .mol-lab-grid.mol-lab-grid {{ display: grid; width: 100%; gap: 1.5ex 2em; align-items: start;
  grid-template-columns: minmax(0, 1fr); grid-template-areas: "editor" "tree" "monitor"; }}
.mol-lab .mol-lab-grid > .mol-rule-editor {{ grid-area: editor; min-width: 0; }}
.mol-lab .mol-lab-grid > .mol-tree-widget {{ grid-area: tree; min-width: 0; }}
.mol-lab .mol-lab-grid > .mol-monitor {{ grid-area: monitor; min-width: 0; }}
.mol-lab .mol-tree-widget .mol-tree-view {{ max-height: 34em; }}
/* The monitor spans the lab: its figure up to 60em wide (drawn to the width it
   gets), the table of last values beside it when there is room, else below. */
.mol-lab .mol-monitor.mol-monitor {{ flex-direction: row; flex-wrap: wrap; align-items: flex-start; gap: 1ex 2em; }}
.mol-lab .mol-monitor > .mol-monitor-figure {{ flex: 1 1 40em; max-width: 60em; min-width: 0; }}
.mol-lab .mol-monitor > .mol-monitor-table {{ flex: 0 1 auto; }}
.mol-lab .mol-monitor > .mol-monitor-parameters {{ flex: 0 1 auto; }}
@container mol-lab (min-width: {SIDE_BY_SIDE_PX}px) {{
  .mol-lab .mol-lab-grid.mol-lab-grid {{ grid-template-columns: minmax(22em, 34%) minmax(0, 1fr);
    grid-template-areas: "editor tree" "monitor monitor"; }}
}}
"""


class LabWidget(widgets.VBox):
    """The rule editor and the parameter tree side by side (stacked when narrow), the monitor below.

    The editor drives the tree: typing recolours it, Apply repartitions the
    optimizer (at the next step boundary when a training loop is running).

    Args:
        model: The ``nn.Module`` (or parameter tree) being trained.
        optimizer (MultiOptimizer): A ``multiopt_lab`` MultiOptimizer.
        history (History, optional): Shown in a
            :class:`~multiopt_lab.TrainingMonitorWidget`; with
            per-parameter metrics (``per_parameter=True``) the tree also shows
            each parameter's latest value and curves, and the monitor the
            parameters farthest from their group's median. Default: ``None``.
        debounce_seconds (float, optional): Editor's quiet time before re-evaluating.
            Default: ``0.3``.

    Attributes:
        tree (ParameterTreeWidget): The tree.
        editor (RuleEditorWidget): The editor (``editor.tree is tree``).
        monitor (TrainingMonitorWidget | None): The monitor, when a history was given.

    Example:
        >>> import mlx.optimizers as optim
        >>> from multiopt_lab import MultiOptimizer
        >>> from multiopt_lab.examples import MLP
        >>> model = MLP(4, [8], 2)
        >>> optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
        >>> lab = LabWidget(model, optimizer)
        >>> lab.editor.tree is lab.tree, lab.monitor is None
        (True, True)
    """

    # Class defaults: close() (also run by ipywidgets' __del__) works on a lab whose
    # __init__ refused its arguments before setting them.
    _unsubscribe = None
    _display_handle = None

    @checked(model=check_parameters, optimizer=check_multi_optimizer, history=check_history,
             debounce_seconds=number(low=0))
    def __init__(self, model, optimizer, history=None, *, debounce_seconds: float = 0.3):
        self.tree = ParameterTreeWidget(model, optimizer, history=history)
        self.editor = RuleEditorWidget(model, optimizer, tree=self.tree, debounce_seconds=debounce_seconds)
        self.monitor = None
        self._display_handle = None
        self._unsubscribe = None
        parts = [self.editor, self.tree]
        if history is not None:
            # Imported here: the monitor brings matplotlib, needed only with a history.
            from multiopt_lab._src.widgets.monitor import TrainingMonitorWidget

            self.monitor = TrainingMonitorWidget(history)
            parts.append(self.monitor)
        self.grid = widgets.GridBox(parts)
        self.grid.add_class("mol-lab-grid")
        style = widgets.HTML(f"<style>{LAB_CSS}</style>", layout=widgets.Layout(display="none"))
        style.add_class("mol-lab-style")
        super().__init__([style, self.grid])
        self.add_class("mol-lab")
        self.editor.status.observe(self._update_display, "value")
        if history is not None:
            # Subscribed after the monitor: its last figure is drawn before the lab's output takes it.
            self._unsubscribe = history.subscribe(self._on_history_event)

    def text(self, width: int | None = DEFAULT_WIDTH) -> str:
        """The editor (rules, preview), the monitor's line and the tree, as text no wider
        than ``width`` columns (``None``: no limit).

        Example:
            >>> import mlx.optimizers as optim
            >>> from multiopt_lab import MultiOptimizer
            >>> from multiopt_lab.examples import MLP
            >>> model = MLP(4, [8], 2)
            >>> optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
            >>> LabWidget(model, optimizer).text().startswith("Rules (first match wins")
            True
        """
        parts = [self.editor.text(width=width)]
        if self.monitor is not None:
            parts.append(clip(self.monitor.text(), width))
        parts.append(self.tree.text(width=width))
        return "\n\n".join(parts)

    def static_html(self) -> str:
        """The lab as HTML that needs no kernel: the rules, the monitor's last figure, the tree.

        Example:
            >>> import mlx.optimizers as optim
            >>> from multiopt_lab import MultiOptimizer
            >>> from multiopt_lab.examples import MLP
            >>> model = MLP(4, [8], 2)
            >>> optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
            >>> 'class="mol-tree"' in LabWidget(model, optimizer).static_html()
            True
        """
        parts = [self.editor.static_html()]
        if self.monitor is not None and self.monitor.image.png:
            parts.append(f'<img class="mol-monitor-png" src="{png_data_url(self.monitor.image.png)}" '
                         f'alt="{escape(self.monitor.text())}" style="max-width:100%">')
        parts.append(self.tree.static_html())
        return '<div class="mol-lab-static">' + "".join(parts) + "</div>"

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return widget_bundle(self, self.text(), html=self.static_html())

    def _ipython_display_(self) -> None:
        from IPython.display import display

        self._display_handle = display(self._repr_mimebundle_(), raw=True, display_id=True)

    def _update_display(self, *_) -> None:
        if self._display_handle is not None:
            self._display_handle.update(self._repr_mimebundle_(), raw=True)

    def _on_history_event(self, history, event: str) -> None:
        if event == "end_run" and self.monitor is not None and history.current_run == self.monitor.run:
            self._update_display()

    def close(self) -> None:
        """Close the lab: editor, monitor, tree and every widget inside them."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._display_handle = None
        close_inside(self)
        super().close()

"""LabWidget: the rule editor, the parameter tree and the training monitor side by side.

Example:
    >>> from multiopt_lab.widgets.lab import LabWidget
    >>> LabWidget(model, optimizer, history)            # doctest: +SKIP
"""

from __future__ import annotations

import ipywidgets as widgets

from multiopt_lab.widgets.editor import RuleEditorWidget
from multiopt_lab.widgets.editor_parts import close_inside
from multiopt_lab.widgets.tree import ParameterTreeWidget

__all__ = ["LabWidget"]


class LabWidget(widgets.HBox):
    """Editor and monitor on the left, the parameter tree beside them (or under them when narrow).

    The editor drives the tree: typing recolours it, Apply repartitions the
    optimizer (at the next step boundary when a training loop is running).

    Args:
        model: The ``nn.Module`` (or parameter tree) being trained.
        optimizer (MultiOptimizer): A ``multiopt_lab`` MultiOptimizer.
        history (History, optional): Shown in a
            :class:`~multiopt_lab.widgets.monitor.TrainingMonitorWidget`. Default: ``None``.
        debounce_seconds (float, optional): Editor's quiet time before re-evaluating.
            Default: ``0.3``.

    Attributes:
        tree (ParameterTreeWidget): The tree.
        editor (RuleEditorWidget): The editor (``editor.tree is tree``).
        monitor (TrainingMonitorWidget | None): The monitor, when a history was given.

    Example:
        >>> lab = LabWidget(model, optimizer)           # doctest: +SKIP
        >>> lab.editor.tree is lab.tree                 # doctest: +SKIP
        True
    """

    def __init__(self, model, optimizer, history=None, *, debounce_seconds: float = 0.3):
        self.tree = ParameterTreeWidget(model, optimizer)
        self.editor = RuleEditorWidget(model, optimizer, tree=self.tree, debounce_seconds=debounce_seconds)
        self.monitor = None
        left = [self.editor]
        if history is not None:
            # Imported here: the monitor brings matplotlib, needed only with a history.
            from multiopt_lab.widgets.monitor import TrainingMonitorWidget

            self.monitor = TrainingMonitorWidget(history)
            left.append(self.monitor)
        # Side by side where there is room, the tree under the editor where
        # there is not; the margin keeps the columns apart when side by side.
        column = widgets.VBox(left, layout=widgets.Layout(flex="0 1 42%", min_width="24em", margin="0 2em 1ex 0"))
        self.tree.layout.close()  # replaced just below: its comm would stay open
        self.tree.layout = widgets.Layout(flex="1 1 48em", min_width="0", max_width="100%", overflow="auto")
        super().__init__([column, self.tree], layout=widgets.Layout(
            align_items="flex-start", flex_flow="row wrap", width="100%"))
        self.add_class("mol-lab")

    def close(self) -> None:
        """Close the lab: editor, monitor, tree and every widget inside them."""
        close_inside(self)
        super().close()

"""LabWidget: the rule editor, the parameter tree and the training monitor side by side.

Example:
    >>> from multiopt_lab.widgets.lab import LabWidget
    >>> LabWidget(model, optimizer, history)            # doctest: +SKIP
"""

from __future__ import annotations

import ipywidgets as widgets

from multiopt_lab.widgets.editor import RuleEditorWidget
from multiopt_lab.widgets.tree import ParameterTreeWidget

__all__ = ["LabWidget"]


class LabWidget(widgets.HBox):
    """Editor and monitor on the left, the parameter tree beside them on the right.

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
        self.editor = RuleEditorWidget(optimizer, model, tree=self.tree, debounce_seconds=debounce_seconds)
        self.monitor = None
        left = [self.editor]
        if history is not None:
            # Imported here: the monitor brings matplotlib, needed only with a history.
            from multiopt_lab.widgets.monitor import TrainingMonitorWidget

            self.monitor = TrainingMonitorWidget(history)
            left.append(self.monitor)
        column = widgets.VBox(left, layout=widgets.Layout(flex="0 0 42%", min_width="24em"))
        self.tree.layout = widgets.Layout(flex="1 1 0", min_width="0", overflow="auto")
        super().__init__([column, self.tree], layout=widgets.Layout(align_items="flex-start", width="100%"))
        self.add_class("mol-lab")

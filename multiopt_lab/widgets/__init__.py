"""Jupyter widgets: the parameter tree, the rule editor, the training monitor, the lab.

``TrainingMonitorWidget`` is loaded on first use, so that importing the tree
or the editor does not import matplotlib.

Example:
    >>> from multiopt_lab.widgets import LabWidget
    >>> LabWidget(model, optimizer, history)            # doctest: +SKIP
"""

from multiopt_lab.widgets.editor import RuleEditorWidget
from multiopt_lab.widgets.lab import LabWidget
from multiopt_lab.widgets.tree import ParameterTreeWidget

__all__ = ["LabWidget", "ParameterTreeWidget", "RuleEditorWidget", "TrainingMonitorWidget"]


def __getattr__(name):
    if name == "TrainingMonitorWidget":
        from multiopt_lab.widgets.monitor import TrainingMonitorWidget

        return TrainingMonitorWidget
    raise AttributeError(f"module 'multiopt_lab.widgets' has no attribute {name!r}")

"""Jupyter widgets: the parameter tree, the rule editor, the training monitor, the lab.

``TrainingMonitorWidget`` is loaded on first use, so that importing the tree
or the editor does not import matplotlib.

Example:
    >>> from multiopt_lab.widgets import LabWidget
    >>> import mlx.optimizers as optim
    >>> from multiopt_lab import MultiOptimizer
    >>> from multiopt_lab.examples import MLP
    >>> model = MLP(4, [8], 2)
    >>> optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
    >>> lab = LabWidget(model, optimizer)
    >>> lab.editor.tree is lab.tree
    True
"""

from multiopt_lab._src.widgets.editor import RuleEditorWidget
from multiopt_lab._src.widgets.lab import LabWidget
from multiopt_lab._src.widgets.tree import ParameterTreeWidget

__all__ = ["LabWidget", "ParameterTreeWidget", "RuleEditorWidget", "TrainingMonitorWidget"]


def __getattr__(name):
    if name == "TrainingMonitorWidget":
        from multiopt_lab._src.widgets.monitor import TrainingMonitorWidget

        return TrainingMonitorWidget
    raise AttributeError(f"module 'multiopt_lab.widgets' has no attribute {name!r}")

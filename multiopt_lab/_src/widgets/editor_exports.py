"""The rule editor's exports: each form's text, kept in its Copy button so a click copies at once.

The text is computed when the editor opens and after every change of the
optimizer's routing (Apply, or code elsewhere), never while the user
clicks: the browser writes the clipboard inside the click
(see :mod:`multiopt_lab._src.widgets.copy_button`).
"""

from __future__ import annotations

from typing import Any

from multiopt_lab._src.render.export import Export, export_text

__all__ = ["EditorExports"]


class EditorExports:
    """Each export form's :class:`~multiopt_lab._src.render.export.Export` for one optimizer.

    Args:
        optimizer (MultiOptimizer): The optimizer the editor edits.
        buttons (dict): ``{form: CopyButton}``; each button's ``text`` follows its form.
    """

    def __init__(self, optimizer: Any, buttons: dict):
        self.optimizer = optimizer
        self.buttons = buttons
        self._made: dict[str, Export] = {}
        self.refresh()

    def refresh(self) -> None:
        """Recompute every form (the optimizer's rules changed) and update the buttons."""
        self._made.clear()
        for form, button in self.buttons.items():
            button.text = self.current(form).text

    def current(self, form: str) -> Export:
        """The export of ``form`` for the optimizer as it is routed now."""
        if form not in self._made:
            try:
                self._made[form] = export_text(self.optimizer, form)
            except ValueError:
                raise  # an unknown form: the caller's mistake
            except Exception as err:  # an optimizer no export foresaw must not break the editor
                self._made[form] = Export("", f"cannot export the optimizer: {type(err).__name__}: {err}")
        return self._made[form]

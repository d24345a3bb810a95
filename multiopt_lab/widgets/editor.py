"""RuleEditorWidget: edit a MultiOptimizer's rules live, preview the moves, apply.

Example:
    >>> from multiopt_lab.widgets.editor import RuleEditorWidget
    >>> editor = RuleEditorWidget(optimizer, model)     # doctest: +SKIP
    >>> editor                                          # doctest: +SKIP
"""

from __future__ import annotations

from html import escape

import ipywidgets as widgets

from multiopt_lab.training.loop_activity import is_training
from multiopt_lab.render.export import rules_python, rules_toml
from multiopt_lab.optimizer.describe import describe_optimizer
from multiopt_lab.render.preview import move_lines, move_summary
from multiopt_lab.live.applier import Applier
from multiopt_lab.live.debounce import Debouncer
from multiopt_lab.widgets.editor_parts import button, close_inside, html_box, label_html, rule_row
from multiopt_lab.live.rule_draft import Draft, evaluate_draft, group_warning, rule_field_text
from multiopt_lab.live.sources import parameter_table
from multiopt_lab.widgets.subshell import route_to_subshell
from multiopt_lab.widgets.tree import ParameterTreeWidget

__all__ = ["RuleEditorWidget"]

# The tree's stylesheet lives in its own view; these lines style themselves.
_WARN = "color: var(--jp-warn-color1, #D55E00)"
_ERROR = "color: var(--jp-error-color1, #D32F2F); margin: 0"


def _error_html(text: str) -> str:
    return f'<pre class="mol-error-text" style="{_ERROR}">{escape(text)}</pre>'


class RuleEditorWidget(widgets.VBox):
    """A text field per group's rule, a live preview of what moves, Apply and Revert.

    As you type, the rules are parsed and the assignment recomputed once typing
    pauses (``debounce_seconds``); the tree is recoloured and the preview says
    what would move. A rule that does not parse shows its error, with a caret,
    under its field; the last valid assignment stays on screen and Apply is off.
    Apply repartitions the optimizer at the next step boundary (see
    :class:`~multiopt_lab.live.applier.Applier`); Revert restores its rules.

    Args:
        optimizer (MultiOptimizer): A ``multiopt_lab`` MultiOptimizer.
        model: The ``nn.Module`` (or parameter tree) it trains.
        tree (ParameterTreeWidget, optional): A tree to recolour; by default the
            editor makes one and shows it below itself.
        debounce_seconds (float, optional): Quiet time before re-evaluating. Default: ``0.3``.

    Example:
        >>> editor = RuleEditorWidget(optimizer, model, debounce_seconds=0)   # doctest: +SKIP
        >>> editor.inputs["muon"].value = "ndim >= 2"; editor.apply()          # doctest: +SKIP
    """

    def __init__(self, optimizer, model, *, tree: ParameterTreeWidget | None = None,
                 debounce_seconds: float = 0.3):
        if not callable(getattr(optimizer, "request_repartition", None)):
            raise TypeError(
                f"RuleEditorWidget edits a multiopt_lab MultiOptimizer, got {type(optimizer).__name__}; "
                "build one with multiopt_lab.optimizer.multi_optimizer.MultiOptimizer(optimizers, filters, labels=...)")
        self.optimizer = optimizer
        self.model = model
        self.table = parameter_table(model)
        self.sizes = dict(zip(self.table.paths, self.table.sizes))
        own_tree = tree is None
        self.tree = ParameterTreeWidget(model, optimizer) if own_tree else tree
        self.current = optimizer.assign(self.table)
        self._labels = tuple(optimizer.labels)
        self._seen_texts = [rule_field_text(r) for r in optimizer.filters]
        self.tree.source_listeners.append(self._on_optimizer_changed)
        self.draft = Draft(tuple(optimizer.filters), {}, self.current, [], False)
        self.applier = Applier(optimizer, model, self._on_applied)
        self._debouncer = Debouncer(debounce_seconds, self.recompute)

        self.inputs: dict[str, widgets.Text] = {}
        self.errors: dict[str, widgets.HTML] = {}
        self.warnings: dict[str, widgets.HTML] = {}
        rows = [widgets.HTML("<b>Rules</b> (first match wins; the last group takes the rest)")]
        for i, (label, current) in enumerate(zip(optimizer.labels, optimizer.filters)):
            row, self.inputs[label], self.errors[label], self.warnings[label] = rule_row(
                label, i, current, self._debouncer)
            rows.append(row)
        fallback = optimizer.labels[-1]
        self.warnings[fallback] = html_box("mol-warning")
        rows += [widgets.HTML(label_html(fallback, len(optimizer.labels) - 1, ": everything else (fallback)")),
                 self.warnings[fallback]]
        self.preview = html_box("mol-preview")
        self.apply_button = button("Apply", "mol-apply", "Repartition the optimizer at the next step", self.apply)
        self.revert_button = button("Revert", "mol-revert", "Back to the optimizer's current rules", self.revert)
        self.python_button = button("Copy as Python", "mol-copy-python", "Show the rules as Python code",
                                    lambda: self.export("python"))
        self.toml_button = button("Copy as TOML", "mol-copy-toml", "Show the rules as TOML",
                                  lambda: self.export("toml"))
        self.status = html_box("mol-status")
        self.exported = widgets.Textarea(layout=widgets.Layout(width="48em", height="10em", display="none"))
        self.exported.add_class("mol-export")
        buttons = widgets.HBox([self.apply_button, self.revert_button, self.python_button, self.toml_button])
        children = rows + [self.preview, buttons, self.status, self.exported] + ([self.tree] if own_tree else [])
        super().__init__(children)
        self.add_class("mol-rule-editor")
        # While a training loop runs in this kernel (multiopt_lab.train, or a
        # loop inside training_in_progress()), typing and Apply are handled on
        # a kernel subshell: the edit lands at the next step, not after the cell.
        for widget in [*self.inputs.values(), self.apply_button, self.revert_button]:
            route_to_subshell(widget, when=is_training)
        self._show_warnings(self.current)
        self._show()

    def flush(self) -> None:
        """Evaluate typing still waiting for the debounce (tests, scripts)."""
        self._debouncer.flush()

    def close(self) -> None:
        """Close the editor and every widget inside it (its own tree too, not a shared one)."""
        debouncer, tree = getattr(self, "_debouncer", None), getattr(self, "tree", None)
        if debouncer is not None:  # both absent if __init__ failed
            debouncer.cancel()
        if tree is not None and self._on_optimizer_changed in tree.source_listeners:
            tree.source_listeners.remove(self._on_optimizer_changed)
        close_inside(self)
        super().close()

    def recompute(self) -> None:
        """Parse the fields, recompute the assignment, update errors, preview and tree."""
        self._debouncer.cancel()
        if tuple(self.optimizer.labels) != self._labels:
            return  # groups changed under the editor: _on_optimizer_changed said so
        texts = [self.inputs[label].value for label in self._labels[:-1]]
        draft = evaluate_draft(texts, self.optimizer, self.table, self.current)
        for label, box in self.errors.items():
            err = draft.errors.get(label)
            box.value = "" if err is None else _error_html(str(err))
        if draft.ok:
            self.draft = draft
            self.tree.assignment = draft.assignment
            self._show_warnings(draft.assignment)
        self._show(stale=not draft.ok)

    def apply(self) -> None:
        """Repartition the optimizer with the rules as typed (nothing happens on an error)."""
        self.flush()
        if not self.draft.ok or self.draft.rules is None or self._has_errors():
            self.status.value = _error_html("Not applied: fix the rule errors first.")
            return
        if tuple(self.optimizer.labels) != self._labels:
            self.status.value = "Not applied: the optimizer's groups changed; make a new editor for them."
            return
        self.status.value = "Applying at the next step boundary…"
        try:
            self.applier.apply(self.draft.rules, self._labels)
        except (ValueError, TypeError) as err:  # RuleError is a ValueError; the optimizer is unchanged
            self.status.value = _error_html(f"Not applied: {err}")


    def revert(self) -> None:
        """Put the optimizer's current rules back in the fields."""
        self._debouncer.cancel()
        for label, current in zip(self.optimizer.labels, self.optimizer.filters):
            self.inputs[label].value = rule_field_text(current)
        self.recompute()
        self.status.value = "Reverted to the optimizer's rules."

    def export(self, form: str) -> str:
        """Show (and return) the optimizer's current rules as ``"python"`` or ``"toml"``."""
        descriptions = [describe_optimizer(o) for o in self.optimizer.optimizers]
        writer = {"python": rules_python, "toml": rules_toml}[form]
        self.exported.value = writer(self.optimizer.labels, self.optimizer.filters, descriptions)
        self.exported.layout.display = None
        return self.exported.value

    def _on_optimizer_changed(self) -> None:
        """The optimizer's routing changed (Apply, or code elsewhere): follow it."""
        if tuple(self.optimizer.labels) != self._labels:
            self.apply_button.disabled = True
            self.status.value = ("The optimizer's groups changed (now "
                                 f"{escape(', '.join(self.optimizer.labels))}); make a new editor for them.")
            return
        texts = [rule_field_text(r) for r in self.optimizer.filters]
        fields = [self.inputs[label] for label in self._labels[:-1]]
        if [f.value for f in fields] == self._seen_texts:  # not edited: show the new rules
            for field, text in zip(fields, texts):
                field.value = text
        self._seen_texts = texts
        self.table = parameter_table(self.model)  # the model may have grown a layer
        self.sizes = dict(zip(self.table.paths, self.table.sizes))
        self.current = self.optimizer.assign(self.table)
        self.recompute()

    def _show_warnings(self, assignment) -> None:
        for label, box in self.warnings.items():
            note = group_warning(assignment, label)
            box.value = f'<span class="mol-warning-text" style="{_WARN}">! {escape(note)}</span>' if note else ""

    def _has_errors(self) -> bool:
        return any(box.value for box in self.errors.values())

    def _on_applied(self, pending) -> None:
        if pending.error is not None:
            self.status.value = _error_html(f"Not applied: {pending.error}")
            return
        self._on_optimizer_changed()
        self.tree.watcher.seen = getattr(self.optimizer, "version", None)
        moved = move_lines(pending.moves, self.sizes)
        self.status.value = "Applied: " + escape("; ".join(moved) if moved else "no parameter moved") + "."

    def _show(self, stale: bool = False) -> None:
        draft = self.draft
        summary = move_summary(draft.moves, self.sizes) if draft.changed else "rules as applied; nothing to do"
        note = "<i>Fix the error above; showing the last valid rules.</i><br>" if stale else ""
        self.preview.value = f'{note}<pre class="mol-preview-text">{escape(summary)}</pre>'
        self.apply_button.disabled = stale or not draft.changed

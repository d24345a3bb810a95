"""RuleEditorWidget: edit a MultiOptimizer's rules live, preview the moves, apply.
"""

from __future__ import annotations

from html import escape

import ipywidgets as widgets
import mlx.optimizers as optim

from multiopt_lab._src.arguments import check_kind, check_number
from multiopt_lab._src.partition.arguments import check_parameters
from multiopt_lab._src.training.loop_activity import is_training
from multiopt_lab._src.widgets.copy_button import CopyButton
from multiopt_lab._src.widgets.editor_exports import EditorExports
from multiopt_lab._src.render.preview import move_lines, move_summary
from multiopt_lab._src.live.applier import Applier
from multiopt_lab._src.live.debounce import Debouncer
from multiopt_lab._src.widgets.editor_parts import (
    EDITOR_CSS, button, close_inside, html_box, label_html, rule_row, typed_rule,
)
from multiopt_lab._src.live.rule_draft import Draft, evaluate_draft, group_warning, rule_field_text
from multiopt_lab._src.live.sources import parameter_table, rules_in_force
from multiopt_lab._src.widgets.static_forms import widget_bundle
from multiopt_lab._src.widgets.subshell import route_to_subshell
from multiopt_lab._src.widgets.tree import ParameterTreeWidget
from multiopt_lab._src.text_fit import DEFAULT_WIDTH, check_width, clip, wrap

__all__ = ["RuleEditorWidget"]

# The tree's stylesheet lives in its own view; these lines style themselves.
_WARN = "color: var(--jp-warn-color1, #D55E00)"
_ERROR = "color: var(--jp-error-color1, #D32F2F); margin: 0"


def _error_html(text: str) -> str:
    return f'<pre class="mol-error-text" style="{_ERROR}">{escape(text)}</pre>'


def _is_editable(optimizer) -> bool:
    return callable(getattr(optimizer, "request_repartition", None))


def _check_editable(model, optimizer) -> None:
    """A TypeError unless ``optimizer`` is a multiopt_lab MultiOptimizer (the order swapped, said)."""
    if _is_editable(optimizer):
        return
    if _is_editable(model):
        raise TypeError(
            f"RuleEditorWidget takes (model, optimizer), found the optimizer first and "
            f"{type(optimizer).__name__} second; pass RuleEditorWidget(model, optimizer), the "
            "order every multiopt_lab widget takes")
    # Name the argument that is an optimizer, whichever place it took.
    found = model if isinstance(model, optim.Optimizer) and not isinstance(optimizer, optim.Optimizer) else optimizer
    raise TypeError(
        f"RuleEditorWidget edits a multiopt_lab MultiOptimizer, got {type(found).__name__}; "
        "pass RuleEditorWidget(model, optimizer) with "
        "optimizer = multiopt_lab.MultiOptimizer(optimizers, filters, labels=...)")


class RuleEditorWidget(widgets.VBox):
    """A text field per group's rule, a live preview of what moves, Apply and Revert.

    As you type, the rules are parsed and the assignment recomputed once typing
    pauses (``debounce_seconds``); the tree is recoloured and the preview says
    what would move. A rule that does not parse shows its error, with a caret,
    under its field; the last valid assignment stays on screen and Apply is off.
    Apply repartitions the optimizer at the next step boundary (see
    :class:`~multiopt_lab._src.live.applier.Applier`); Revert restores its rules.

    Args:
        model: The ``nn.Module`` (or parameter tree) the optimizer trains.
        optimizer (MultiOptimizer): A ``multiopt_lab`` MultiOptimizer.
        tree (ParameterTreeWidget, optional): A tree to recolour; by default the
            editor makes one and shows it below itself.
        debounce_seconds (float, optional): Quiet time before re-evaluating. Default: ``0.3``.

    Example:
        >>> import mlx.optimizers as optim
        >>> from multiopt_lab import MultiOptimizer
        >>> from multiopt_lab.examples import MLP
        >>> model = MLP(4, [8], 2)
        >>> optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
        >>> editor = RuleEditorWidget(model, optimizer, debounce_seconds=0)
        >>> editor.inputs["muon"].value = "ndim == 1"   # as typed
        >>> editor.apply()                              # no training runs here: applied at once
        >>> optimizer.filters[0].text, editor.status.value
        ('ndim == 1', 'Applied: 2 parameters, 48 elements: muon -&gt; adamw; 2 parameters, 10 elements: adamw -&gt; muon.')
    """

    def __init__(self, model, optimizer, *, tree: ParameterTreeWidget | None = None,
                 debounce_seconds: float = 0.3):
        _check_editable(model, optimizer)
        check_parameters(model, "RuleEditorWidget()", "model")
        check_kind(tree, ParameterTreeWidget, "RuleEditorWidget()", "tree",
                   "a ParameterTreeWidget to recolour", optional=True)
        check_number(debounce_seconds, "RuleEditorWidget()", "debounce_seconds", low=0)
        self.optimizer = optimizer
        self.model = model
        self.table = parameter_table(model)
        self.sizes = dict(zip(self.table.paths, self.table.sizes))
        own_tree = tree is None
        self._own_tree = own_tree
        self._status_text = ""
        self.tree = ParameterTreeWidget(model, optimizer) if tree is None else tree
        # A rule in force may fail on some parameter (shape[1] on an unfrozen
        # bias): the editor still opens, with the error under that rule.
        self.current, failing = self._rules_in_force()
        self._labels = tuple(optimizer.labels)
        self._seen_texts = [rule_field_text(r) for r in optimizer.filters]
        self.tree.source_listeners.append(self._on_optimizer_changed)
        self.draft = Draft(tuple(optimizer.filters), failing, self.current, [], False)
        self.applier = Applier(optimizer, model, self._on_applied)
        self._debouncer = Debouncer(debounce_seconds, self.recompute)

        self.inputs: dict[str, widgets.Textarea] = {}
        self.errors: dict[str, widgets.HTML] = {}
        self.warnings: dict[str, widgets.HTML] = {}
        style = widgets.HTML(f"<style>{EDITOR_CSS}</style>", layout=widgets.Layout(display="none"))
        rows = [style, widgets.HTML("<b>Rules</b> (first match wins; the last group takes the rest)")]
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
        self.python_button = CopyButton(
            "Copy as Python", "mol-copy-python", "Copy the optimizer as Python code (also shown below)",
            lambda outcome, reason: self._copied("python", outcome, reason))
        self.toml_button = CopyButton(
            "Copy as TOML", "mol-copy-toml", "Copy the rule file save_optimizer writes (also shown below)",
            lambda outcome, reason: self._copied("toml", outcome, reason))
        self.status = html_box("mol-status")
        self.exported = widgets.Textarea(layout=widgets.Layout(width="100%", max_width="48em", height="10em",
                                                              display="none"))
        self.exported.add_class("mol-export")
        self._exported_form: str | None = None  # what the export shows, kept up to date after Apply
        self._exports = EditorExports(optimizer, {"python": self.python_button, "toml": self.toml_button})
        buttons = widgets.HBox([self.apply_button, self.revert_button, self.python_button, self.toml_button],
                               layout=widgets.Layout(flex_flow="row wrap"))
        children = rows + [self.preview, buttons, self.status, self.exported] + ([self.tree] if own_tree else [])
        super().__init__(children)
        self.add_class("mol-rule-editor")
        # While a training loop runs in this kernel (multiopt_lab.train, or a
        # loop inside training_in_progress()), typing and Apply are handled on
        # a kernel subshell: the edit lands at the next step, not after the cell.
        for widget in [*self.inputs.values(), self.apply_button, self.revert_button, self.python_button,
                       self.toml_button]:
            route_to_subshell(widget, when=is_training)
        for label, err in failing.items():
            self.errors[label].value = _error_html(str(err))
        self._show_warnings(self.current)
        self._show(stale=bool(failing), failing=bool(failing))

    @property
    def status_text(self) -> str:
        """The status line as plain text: what the last Apply, Revert or check said ("" at first).

        Example:
            >>> import mlx.optimizers as optim
            >>> from multiopt_lab import MultiOptimizer
            >>> from multiopt_lab.examples import MLP
            >>> optimizer = MultiOptimizer([optim.SGD(0.1), optim.Adam(1e-3)], ["ndim == 2"])
            >>> editor = RuleEditorWidget(MLP(4, [8], 2), optimizer, tree=None)
            >>> editor.inputs["sgd"].value = "ndim == 1"; editor.apply(); editor.status_text
            'Applied: 2 parameters, 48 elements: sgd -> adam; 2 parameters, 10 elements: adam -> sgd.'
        """
        self.applier.report_if_done()  # an Apply a training cell took at its next step
        return self._status_text

    def text(self, width: int | None = DEFAULT_WIDTH) -> str:
        """The rules as typed, their notes, the preview and the status, as text (and the
        editor's own tree, when it shows one), in lines of at most ``width`` columns
        (broken between words; ``None``: no limit).

        Example:
            >>> import mlx.optimizers as optim
            >>> from multiopt_lab import MultiOptimizer
            >>> from multiopt_lab.examples import MLP
            >>> model = MLP(4, [8], 2)
            >>> optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
            >>> print(*RuleEditorWidget(model, optimizer, tree=None).text().splitlines()[:5], sep=chr(10))
            Rules (first match wins; the last group takes the rest):
              muon   ndim == 2
                     ! warning: Muon on the output head (1): head.weight; fix: add `and not glob("head.*")` to
                       the rule of 'muon', so that the fallback 'adamw' takes them
              adamw  (fallback)
        """
        self.applier.report_if_done()
        width = check_width(width)
        rows = self._rule_rows()
        labels = max(len(label) for label, _, _, _ in rows)
        if width is not None:
            labels = min(labels, max(6, width // 4))
        pad = " " * (labels + 4)
        lines = ["Rules (first match wins; the last group takes the rest):"]
        for label, rule_text, error, warning in rows:
            lines += wrap(rule_text, width, f"  {clip(label, labels).ljust(labels)}  ", pad + "  ")
            # An error keeps its lines: the caret under its rule's column.
            lines += [clip(pad + line, width) for line in error.splitlines()]
            for line in warning.splitlines():
                lines += wrap(f"! {line}", width, pad, pad + "  ")
        lines += wrap(self._preview_text(), width, "", "  ")
        if self._status_text:
            lines += wrap(self._status_text, width, "", "  ")
        if self._own_tree:
            lines += ["", self.tree.text(width=width)]
        return "\n".join(lines)

    def static_html(self) -> str:
        """The editor as HTML that needs no kernel: a table of the rules, the preview, its own tree.

        Example:
            >>> import mlx.optimizers as optim
            >>> from multiopt_lab import MultiOptimizer
            >>> from multiopt_lab.examples import MLP
            >>> model = MLP(4, [8], 2)
            >>> optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"], labels=["muon", "adamw"])
            >>> "mol-rules-static" in RuleEditorWidget(model, optimizer).static_html()
            True
        """
        self.applier.report_if_done()
        cells = []
        for i, (label, rule_text, error, warning) in enumerate(self._rule_rows()):
            notes = escape(error) + "<br>".join(f"! {escape(line)}" for line in warning.splitlines())
            cells.append(f"<tr><td>{label_html(label, i)}</td> <td><code>{escape(rule_text)}</code></td> "
                         f'<td style="{_WARN if warning else _ERROR}">{notes}</td></tr>')
        html = ('<div class="mol-rule-editor-static"><table class="mol-rules-static"><caption style="text-align:left">'
                "<b>Rules</b> (first match wins; the last group takes the rest)</caption>"
                f'{"".join(cells)}</table><pre class="mol-preview-text">{escape(self._preview_text())}</pre>')
        if self._status_text:
            html += f"<p>{escape(self._status_text)}</p>"
        if self._own_tree:
            html += self.tree.static_html()
        return html + "</div>"

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return widget_bundle(self, self.text(), html=self.static_html())

    def _rule_rows(self) -> list[tuple[str, str, str, str]]:
        """``(label, rule as typed, error, warning)`` per group, the fallback last."""
        assignment = self.draft.assignment if self.draft.assignment is not None else self.current
        rows = []
        for label in self._labels[:-1]:
            error = self.draft.errors.get(label) if not self.draft.ok else None
            field = self.inputs[label]
            rows.append((label, typed_rule(field) or field.placeholder, "" if error is None else str(error),
                         group_warning(assignment, label)))
        fallback = self._labels[-1]
        rows.append((fallback, "(fallback)", "", group_warning(assignment, fallback)))
        return rows

    def _preview_text(self) -> str:
        draft = self.draft
        if not draft.changed:
            return "rules as applied; nothing to do"
        return "would move: " + move_summary(draft.moves, self.sizes).replace("\n", "; ")

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
        texts = [typed_rule(self.inputs[label]) for label in self._labels[:-1]]
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
            self._say("Not applied: fix the rule errors first.", error=True)
            return
        if tuple(self.optimizer.labels) != self._labels:
            self._say("Not applied: the optimizer's groups changed; make a new editor for them.", error=True)
            return
        self._say("Applying at the next step boundary…")
        try:
            self.applier.apply(self.draft.rules, self._labels)
        except (ValueError, TypeError) as err:  # RuleError is a ValueError; the optimizer is unchanged
            self._say(f"Not applied: {err}", error=True)


    def revert(self) -> None:
        """Put the optimizer's current rules back in the fields."""
        self._debouncer.cancel()
        for label, current in zip(self.optimizer.labels, self.optimizer.filters):
            self.inputs[label].value = rule_field_text(current)
        self.recompute()
        self._say("Reverted to the optimizer's rules.")

    def export(self, form: str) -> str:
        """Show (and return) the optimizer as ``"python"`` code or as its rule file ``"toml"``.

        The TOML is what :func:`multiopt_lab.save_optimizer` writes (labels,
        rules, each group's optimizer); the "Copy as ..." buttons also put it
        on the clipboard. What cannot be written (a Python callable rule, a
        schedule of your own) is said in the status line.

        Example:
            >>> import mlx.optimizers as optim
            >>> from multiopt_lab import MultiOptimizer
            >>> from multiopt_lab.examples import MLP
            >>> optimizer = MultiOptimizer([optim.Muon(0.02), optim.AdamW(1e-3)], ["ndim == 2"])
            >>> editor = RuleEditorWidget(MLP(4, [8], 2), optimizer, tree=None)
            >>> editor.export("toml").splitlines()[5:8]
            ['[[group]]', 'label = "muon"', "rule = 'ndim == 2'"]
        """
        made = self._exports.current(form)
        self.exported.value = made.text
        self.exported.layout.display = None if made.text else "none"
        self._exported_form = form
        if made.problem:
            self._say(f"Not all could be written: {made.problem}", error=True)
        return made.text

    def _copied(self, form: str, outcome: str, reason: str) -> None:
        """A Copy button was clicked: show the text, and say whether the clipboard has it."""
        text = self.export(form)
        if not text:
            return  # export() said why
        what = "Python code" if form == "python" else "rule file (TOML)"
        problem = self._exports.current(form).problem
        note = f" Not all could be written: {problem}" if problem else ""
        if outcome == "copied":
            self._say(f"Copied the {what} to the clipboard; it is also shown below.{note}", error=bool(problem))
        else:
            self._say(f"The browser kept the clipboard closed ({reason or 'no reason given'}): the {what} "
                      f"is below; select it and copy it.{note}", error=True)

    def _on_optimizer_changed(self) -> None:
        """The optimizer's routing changed (Apply, or code elsewhere): follow it."""
        if tuple(self.optimizer.labels) != self._labels:
            self.apply_button.disabled = True
            self._say(f"The optimizer's groups changed (now {', '.join(self.optimizer.labels)}); "
                      "make a new editor for them.")
            return
        texts = [rule_field_text(r) for r in self.optimizer.filters]
        fields = [self.inputs[label] for label in self._labels[:-1]]
        if [typed_rule(f) for f in fields] == self._seen_texts:  # not edited: show the new rules
            for field, text in zip(fields, texts):
                field.value = text
        self._seen_texts = texts
        self.table = parameter_table(self.model)  # the model may have grown a layer
        self.sizes = dict(zip(self.table.paths, self.table.sizes))
        self.current, _ = self._rules_in_force()
        self.recompute()
        self._exports.refresh()  # what the Copy buttons copy: the rules as applied now
        if self._exported_form is not None:  # the export shows the optimizer's rules: the new ones now
            self.export(self._exported_form)

    def _rules_in_force(self):
        """The optimizer's assignment of the table, and ``label -> RuleError`` of its rules
        that fail on a parameter (those parameters go on to the next rules)."""
        assignment, failures = rules_in_force(self.optimizer, self.table)
        failing: dict = {}
        for failure in failures:
            failing.setdefault(failure.label, failure.error)
        return assignment, failing

    def _say(self, text: str, error: bool = False) -> None:
        """Show ``text`` in the status line (red when it is an error)."""
        self._status_text = text
        self.status.value = _error_html(text) if error else escape(text)

    def _show_warnings(self, assignment) -> None:
        for label, box in self.warnings.items():
            note = group_warning(assignment, label)
            lines = "<br>".join(f"! {escape(line)}" for line in note.splitlines())
            box.value = f'<span class="mol-warning-text" style="{_WARN}">{lines}</span>' if note else ""

    def _has_errors(self) -> bool:
        return any(box.value for box in self.errors.values())

    def _on_applied(self, pending) -> None:
        if pending.error is not None:
            self._say(f"Not applied: {pending.error}", error=True)
            return
        self._on_optimizer_changed()
        self.tree.watcher.seen = getattr(self.optimizer, "version", None)
        moved = move_lines(pending.moves, self.sizes)
        self._say("Applied: " + ("; ".join(moved) if moved else "no parameter moved") + ".")

    def _show(self, stale: bool = False, failing: bool = False) -> None:
        draft = self.draft
        summary = move_summary(draft.moves, self.sizes) if draft.changed else "rules as applied; nothing to do"
        note = "<i>Fix the error above; showing the last valid rules.</i><br>" if stale else ""
        if failing:  # the rules in force themselves fail (opened on such an optimizer)
            note = ("<i>A rule in force fails on a parameter (above): updates fail until it is "
                    "replaced. Edit it and Apply.</i><br>")
        self.preview.value = f'{note}<pre class="mol-preview-text">{escape(summary)}</pre>'
        self.apply_button.disabled = stale or not draft.changed

"""Small building blocks of the rule editor's layout.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

import ipywidgets as widgets

from multiopt_lab._src.palette import group_colour
from multiopt_lab._src.live.rule_draft import rule_field_text

__all__ = ["label_html", "button", "html_box", "rule_row", "typed_rule", "close_inside", "EDITOR_CSS"]


def close_inside(widget: widgets.Widget) -> None:
    """Close every widget ``widget`` holds (children, layouts, styles, at any depth), not itself.

    ``Widget.close`` closes one comm; a composite left like that keeps a comm
    open (and a kernel-side object alive) for each part.
    """
    seen, stack, inside = {id(widget)}, [widget], []
    while stack:
        current = stack.pop()
        for name in current.keys:
            value = getattr(current, name, None)
            for item in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(item, widgets.Widget) and id(item) not in seen:
                    seen.add(id(item))
                    inside.append(item)
                    stack.append(item)
    for item in inside:
        item.close()


def label_html(label: str, index: int, note: str = "") -> str:
    """A group's colour swatch and bold label (``data-group`` set), then ``note``.
    """
    return (f'<span class="mol-group-label" data-group="{escape(label)}"><span style="display:inline-block;'
            f'width:1em;height:1em;border-radius:2px;vertical-align:middle;background:{group_colour(index)}">'
            f"</span> <b>{escape(label)}</b>{escape(note)}</span>")


def button(description: str, css: str, tooltip: str, on_click: Callable[[], None]) -> widgets.Button:
    """A Button with a CSS class that calls ``on_click()`` when clicked."""
    made = widgets.Button(description=description, tooltip=tooltip, layout=widgets.Layout(width="auto"))
    made.add_class(css)
    made.on_click(lambda _: on_click())
    return made


def html_box(css: str, value: str = "") -> widgets.HTML:
    """An HTML widget with a CSS class."""
    box = widgets.HTML(value)
    box.add_class(css)
    return box


#: The editor's own styles: rule fields in the code font (the caret under an
#: error lines up with what was typed), error text that never wraps mid-word.
EDITOR_CSS = """
.mol-rule-editor .mol-rule-input textarea { font-family: var(--jp-code-font-family, monospace);
  font-size: var(--jp-code-font-size, 13px); resize: vertical; }
.mol-rule-editor .widget-html-content.widget-html-content { line-height: 1.45; }
.mol-rule-editor .widget-html.widget-html { min-height: 0; height: auto; }
.mol-rule-editor .mol-error-text, .mol-rule-editor .mol-preview-text { white-space: pre; overflow-x: auto;
  font-family: var(--jp-code-font-family, monospace); font-size: 12px; line-height: 1.35; margin: 0; }
"""


def typed_rule(field: widgets.Textarea) -> str:
    """The rule a field holds, line breaks read as spaces (the field wraps; a rule is one line).
    """
    return " ".join(field.value.splitlines()) if "\n" in field.value else field.value


def rule_row(label: str, index: int, current, on_change: Callable[[], None]):
    """The rows of one group: its label, then its rule field (``mol-rule-input``, two wrapping
    lines across the editor's width), then its error and warning lines.

    An expression rule fills the field; a Python callable leaves it empty with its
    name as placeholder (an empty field keeps the callable). A line break typed
    in the field reads as a space (see :func:`typed_rule`).

    Returns:
        tuple: ``(row, field, error, warning)`` widgets.
    """
    placeholder = current.describe() if current.text is None else "e.g. ndim == 2"
    # Two wrapping lines across the editor's width: a real rule shows whole,
    # whatever the column's width (a one-line field would hide its end).
    field = widgets.Textarea(value=rule_field_text(current), continuous_update=True, placeholder=placeholder,
                             rows=2, layout=widgets.Layout(width="100%", min_width="20em"))
    field.add_class("mol-rule-input")
    field.observe(lambda _: on_change(), "value")
    error, warning = html_box("mol-error"), html_box("mol-warning")
    name = widgets.HTML(label_html(label, index))
    row = widgets.VBox([name, field, error, warning], layout=widgets.Layout(width="100%", margin="0 0 0.6ex 0"))
    return row, field, error, warning

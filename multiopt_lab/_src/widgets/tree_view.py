"""The clickable tree view: an anywidget that shows the rendered HTML.

It exists because a plain ``ipywidgets.HTML`` cannot tell Python which row was
clicked. The browser side only paints ``html``, keeps the user's open modules
open across redraws, and reports clicks: a parameter row sets
``selected_path``, an "unfold" button appends its module to ``unfold``.
Everything else (search, colours, folding) is computed in Python.
"""

from __future__ import annotations

import anywidget
import traitlets

__all__ = ["TreeView"]

_ESM = r"""
function render({ model, el }) {
  el.classList.add("mol-tree-view");
  function draw() {
    const wasOpen = new Set(
      [...el.querySelectorAll("details[open]")].map((d) => d.dataset.path)
    );
    el.innerHTML = model.get("html");
    for (const d of el.querySelectorAll("details")) {
      if (wasOpen.has(d.dataset.path)) d.open = true;
    }
    markSelected();
  }
  function markSelected() {
    const path = model.get("selected_path");
    for (const row of el.querySelectorAll(".mol-param")) {
      row.classList.toggle("mol-selected", row.dataset.path === path);
    }
  }
  function onClick(event) {
    const unfold = event.target.closest(".mol-unfold");
    if (unfold) {
      event.preventDefault();
      event.stopPropagation();
      const current = model.get("unfold");
      if (!current.includes(unfold.dataset.unfold)) {
        model.set("unfold", [...current, unfold.dataset.unfold]);
        model.save_changes();
      }
      return;
    }
    const row = event.target.closest(".mol-param");
    if (row) {
      model.set("selected_path", row.dataset.path);
      model.save_changes();
    }
  }
  draw();
  model.on("change:html", draw);
  model.on("change:selected_path", markSelected);
  el.addEventListener("click", onClick);
  return () => {
    model.off("change:html", draw);
    model.off("change:selected_path", markSelected);
    el.removeEventListener("click", onClick);
  };
}
export default { render };
"""


class TreeView(anywidget.AnyWidget):
    """Shows tree HTML and reports clicks on parameters and unfold buttons.

    Attributes:
        html (str): The HTML fragment to show (from :func:`multiopt_lab.render_html`).
        selected_path (str): Path of the last clicked parameter, ``""`` for none.
        unfold (list[str]): Module paths whose folded runs the user unfolded.
    """

    _esm = _ESM
    html = traitlets.Unicode("").tag(sync=True)
    selected_path = traitlets.Unicode("").tag(sync=True)
    unfold = traitlets.List(traitlets.Unicode()).tag(sync=True)

"""A button that copies its text to the clipboard in the browser, then tells Python how it went.

Browsers open the clipboard only to code that runs in the click itself
(``navigator.clipboard.writeText`` needs a user gesture, and a secure
context: https, or a page on localhost/127.0.0.1). A round trip to the
kernel first would lose the gesture, so the text to copy is kept in the
browser (``text``, updated by Python whenever it changes) and the click
writes it at once. Then the button sends ``{"event": "copy", "outcome":
"copied" | "refused" | "empty", "reason": ...}`` and Python calls
``on_copy(outcome, reason)``: the editor shows the text either way, so a
user whose browser refused can select and copy it.
"""

from __future__ import annotations

from collections.abc import Callable

import anywidget
import traitlets

__all__ = ["CopyButton"]

_ESM = r"""
function render({ model, el }) {
  const button = document.createElement("button");
  button.className = "jupyter-widgets jupyter-button widget-button";
  button.style.width = "auto";
  el.appendChild(button);
  function draw() {
    button.textContent = model.get("description");
    button.title = model.get("tooltip");
    button.disabled = model.get("disabled");
  }
  async function copy() {
    // Read the text and call writeText inside the click: the user gesture is what
    // lets the page write to the clipboard.
    const text = model.get("text");
    let outcome = "empty", reason = "";
    if (text) {
      if (!window.isSecureContext || !navigator.clipboard) {
        outcome = "refused";
        reason = "the page is not a secure context (https, localhost or 127.0.0.1), so the " +
                 "browser offers no clipboard";
      } else {
        try {
          await navigator.clipboard.writeText(text);
          outcome = "copied";
        } catch (error) {
          outcome = "refused";
          reason = String((error && error.message) || error);
        }
      }
    }
    model.send({ event: "copy", outcome, reason });
  }
  draw();
  model.on("change:description", draw);
  model.on("change:tooltip", draw);
  model.on("change:disabled", draw);
  button.addEventListener("click", copy);
  return () => {
    model.off("change:description", draw);
    model.off("change:tooltip", draw);
    model.off("change:disabled", draw);
    button.removeEventListener("click", copy);
  };
}
export default { render };
"""


class CopyButton(anywidget.AnyWidget):
    """A button whose click copies ``text`` to the clipboard (in the browser) and reports back.

    Args:
        description (str): The button's label.
        css (str): A CSS class for the widget (tests and styles find it by it).
        tooltip (str): The button's tooltip.
        on_copy (Callable[[str, str], None]): Called with ``(outcome, reason)``
            after each click: ``"copied"``, ``"refused"`` (``reason`` says why)
            or ``"empty"`` (there was no text to copy).

    Attributes:
        text (str): What a click copies; keep it current from Python.
    """

    _esm = _ESM
    description = traitlets.Unicode("").tag(sync=True)
    tooltip = traitlets.Unicode("").tag(sync=True)
    text = traitlets.Unicode("").tag(sync=True)
    disabled = traitlets.Bool(False).tag(sync=True)

    def __init__(self, description: str, css: str, tooltip: str,
                 on_copy: Callable[[str, str], None], **kwargs):
        super().__init__(description=description, tooltip=tooltip, **kwargs)
        self.add_class(css)
        self._on_copy = on_copy
        self.on_msg(self._message)

    def _message(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("event") == "copy":
            outcome = content.get("outcome")
            reason = content.get("reason")
            self._on_copy(outcome if outcome in ("copied", "refused", "empty") else "refused",
                          reason if isinstance(reason, str) else "")

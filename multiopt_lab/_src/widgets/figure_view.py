"""FigureView: a figure's PNG in the notebook, told the page's theme and the width it has.

The kernel draws figures (matplotlib's Agg, no interactive backend) and
cannot see the page. This view shows the PNG it is given and reports two
facts back: whether JupyterLab shows its dark theme (``data-jp-theme-light``
on the page's body, watched for changes; elsewhere the browser's
``prefers-color-scheme``) and the width in CSS pixels the view was laid out
with (rounded to 16 px). The training monitor redraws its figure to fit that
width, at the theme's colours, so its text stays legible in a narrow column
and its background is not a white box in the dark theme.
"""

from __future__ import annotations

import anywidget
import traitlets

from multiopt_lab._src.plots.style import retheme
from multiopt_lab._src.widgets.ipykernel_internals import running_kernel
from multiopt_lab._src.widgets.static_forms import widget_bundle

__all__ = ["FigureView", "figure_bundle"]

_ESM = r"""
function render({ model, el }) {
  el.classList.add("mol-figure-view");
  const img = document.createElement("img");
  img.style.display = "block";
  img.style.maxWidth = "100%";
  el.appendChild(img);
  let url = null;
  function draw() {
    const data = model.get("png");
    if (url) URL.revokeObjectURL(url);
    url = null;
    if (!data || data.byteLength === 0) {
      img.removeAttribute("src");
      return;
    }
    url = URL.createObjectURL(new Blob([data], { type: "image/png" }));
    img.src = url;
    img.alt = model.get("alt");
  }
  function report(name, value) {
    if (model.get(name) !== value) {
      model.set(name, value);
      model.save_changes();
    }
  }
  function theme() {
    const light = document.body.dataset.jpThemeLight;
    const dark = light !== undefined
      ? light === "false"
      : window.matchMedia("(prefers-color-scheme: dark)").matches;
    report("dark", dark);
  }
  function width() {
    const px = el.clientWidth;
    if (px > 0) report("width", Math.round(px / 16) * 16);
  }
  const themes = new MutationObserver(theme);
  themes.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light"] });
  const sizes = new ResizeObserver(width);
  sizes.observe(el);
  theme();
  width();
  draw();
  model.on("change:png", draw);
  return () => {
    themes.disconnect();
    sizes.disconnect();
    model.off("change:png", draw);
    if (url) URL.revokeObjectURL(url);
  };
}
export default { render };
"""


class FigureView(anywidget.AnyWidget):
    """Shows PNG bytes; the browser reports the page's theme and the view's width.

    Attributes:
        png (bytes): The picture to show (``b""``: nothing).
        alt (str): Its text alternative.
        dark (bool): Whether the page shows a dark theme (set by the browser).
        width (int): CSS pixels the view is laid out with, a multiple of 16
            (set by the browser; ``0`` until it is shown).
    """

    _esm = _ESM
    png = traitlets.Bytes(b"").tag(sync=True)
    alt = traitlets.Unicode("").tag(sync=True)
    dark = traitlets.Bool(False).tag(sync=True)
    width = traitlets.Int(0).tag(sync=True)


def _in_kernel() -> bool:
    return running_kernel() is not None


def figure_bundle(figure) -> dict | None:
    """A :class:`~multiopt_lab.plots.LabFigure` shown in a view that follows the page's theme.

    The bundle holds the view, the PNG (what a saved notebook keeps) and the
    figure's ``repr``; when the page reports its dark theme the figure is
    recoloured and drawn again. Outside a notebook kernel: ``None`` (the
    figure shows its PNG).
    """
    if not _in_kernel():
        return None
    png = figure._repr_png_()
    view = FigureView(png=png, alt=repr(figure))
    view.add_class("mol-figure")

    def follow_theme(change) -> None:
        retheme(figure, "dark" if change["new"] else "light")
        view.png = figure._repr_png_()

    view.observe(follow_theme, "dark")
    return widget_bundle(view, repr(figure), png=png)

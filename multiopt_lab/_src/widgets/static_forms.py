"""A widget's mime bundle with forms that read without a kernel.

A notebook saves each output's mime bundle. The widget view in it needs a
live kernel (or saved widget state, which this project strips), so a saved
notebook, a code host's notebook view or nbviewer would show only the
widget's ``repr``: ``ParameterTreeWidget(children=(HBox(...``. Each widget
therefore puts what it shows into the bundle too: a text form (what nbval
compares), an HTML form and, for figures, a PNG. A live front end still
picks the widget view; everything else picks the best form it can show.
JupyterLab picks the view even once its kernel is gone, so notebooks are
saved without it (:mod:`multiopt_lab.widgets.saved_notebooks`).
"""

from __future__ import annotations

import base64

import ipywidgets

__all__ = ["WIDGET_VIEW", "widget_bundle", "png_data_url"]

#: The mime type of a live widget view.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def png_data_url(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>``.
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def widget_bundle(widget: ipywidgets.Widget, text: str, *, html: str | None = None,
                  png: bytes | None = None) -> dict:
    """The widget view of ``widget`` (while its comm is open) and its static forms.

    Args:
        widget (ipywidgets.Widget): The widget displayed.
        text (str): The plain-text form.
        html (str, optional): An HTML form. Default: ``None``.
        png (bytes, optional): A PNG picture (a figure). Default: ``None``.
    """
    bundle: dict[str, object] = {"text/plain": text}
    if html:
        bundle["text/html"] = html
    if png:
        bundle["image/png"] = base64.b64encode(png).decode("ascii")
    if widget._view_name is not None and widget.comm is not None:
        bundle[WIDGET_VIEW] = {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}
    return bundle

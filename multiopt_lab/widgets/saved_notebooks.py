"""Saved notebooks that read without a kernel: each widget output keeps its static forms.

A widget's output holds its live view (``application/vnd.jupyter.widget-view+json``,
a reference to a model in the kernel) next to forms that need no kernel: the
text, HTML and PNG every widget of this package writes. JupyterLab and Notebook 7 show
the view of a trusted notebook whenever an output has one; once the kernel
that held the model is gone (the notebook reopened later, sent to someone),
the view can only say "Error displaying widget: model not found", although
the other forms would read fine. Unless the notebook saves the widget state
itself (JupyterLab's "Save Widget State Automatically"), in which case the
view is drawn from it, and nbconvert's HTML then needs the widget
JavaScript from a CDN instead of showing the static forms.

:func:`keep_readable_forms` drops, from a notebook about to be saved, every
widget view whose model the notebook does not save and whose output has
another form: the saved file then reads in JupyterLab, Notebook 7,
nbconvert's HTML (offline, without JavaScript) and a code host's notebook
view. The page being edited keeps its live widgets; only the file changes.
Reopened while the kernel still runs, an output shows its static form:
display the widget again (its variable as a cell's last line) for the live
view. It runs on every save as a Jupyter server extension, which ``python3
dev.py lab`` turns on; for another server::

    jupyter lab --ServerApp.jpserver_extensions=multiopt_lab.widgets.saved_notebooks=True

or, for good, in ``jupyter_server_config.py``:
``c.ServerApp.jpserver_extensions = {"multiopt_lab.widgets.saved_notebooks": True}``.

Example:
    >>> view = {"model_id": "3f2a", "version_major": 2, "version_minor": 0}
    >>> output = {"output_type": "display_data", "metadata": {},
    ...           "data": {WIDGET_VIEW: view, "text/plain": "tree as text", "text/html": "<pre>tree</pre>"}}
    >>> notebook = {"metadata": {}, "cells": [{"cell_type": "code", "outputs": [output]}]}
    >>> keep_readable_forms(notebook)
    1
    >>> sorted(output["data"])
    ['text/html', 'text/plain']
"""

from __future__ import annotations

__all__ = ["WIDGET_VIEW", "WIDGET_STATE", "keep_readable_forms", "pre_save_hook"]

#: The mime type of a live widget view in an output.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: The notebook metadata key under ``widgets`` that holds saved widget state.
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def saved_models(notebook: dict) -> set[str]:
    """The ids of the widget models whose state ``notebook`` saves (JupyterLab's "Save Widget State").

    Example:
        >>> saved_models({"metadata": {"widgets": {WIDGET_STATE: {"state": {"3f2a": {}}}}}})
        {'3f2a'}
        >>> saved_models({"metadata": {}})
        set()
    """
    widgets = (notebook.get("metadata") or {}).get("widgets") or {}
    state = (widgets.get(WIDGET_STATE) or {}).get("state") or {}
    return set(state)


def keep_readable_forms(notebook: dict) -> int:
    """Drop the widget views of ``notebook`` that cannot render from the file; return how many.

    A view is dropped when its model's state is not saved in the notebook and
    its output has another form (at least ``text/plain``); a view the saved
    state can draw, and an output with nothing else, are kept. Works on
    ``nbformat`` nodes and plain dictionaries alike, in place.

    Args:
        notebook (dict): A notebook (nbformat 4) as read from JSON.

    Returns:
        int: how many views were dropped.

    Example:
        >>> bare = {"output_type": "display_data", "metadata": {}, "data": {WIDGET_VIEW: {"model_id": "a"}}}
        >>> keep_readable_forms({"metadata": {}, "cells": [{"cell_type": "code", "outputs": [bare]}]})
        0
    """
    drawable = saved_models(notebook)
    dropped = 0
    for cell in notebook.get("cells") or []:
        for output in cell.get("outputs") or []:
            data = output.get("data") or {}
            view = data.get(WIDGET_VIEW)
            if view is None or len(data) == 1:
                continue
            if isinstance(view, dict) and view.get("model_id") in drawable:
                continue
            del data[WIDGET_VIEW]
            dropped += 1
    return dropped


def pre_save_hook(model: dict, **kwargs) -> None:
    """Jupyter's ``ContentsManager.pre_save_hook``: a notebook is saved with :func:`keep_readable_forms`.

    Other files pass unchanged. Registered by the server extension of this
    module; also usable alone (``c.ContentsManager.pre_save_hook =
    "multiopt_lab.widgets.saved_notebooks.pre_save_hook"``, which replaces any
    other hook of that name).

    Example:
        >>> model = {"type": "notebook", "content": {"metadata": {}, "cells": []}}
        >>> pre_save_hook(model=model, path="x.ipynb")
        >>> pre_save_hook(model={"type": "file", "content": "text"}, path="x.txt")
    """
    content = model.get("content")
    if model.get("type") == "notebook" and isinstance(content, dict):
        keep_readable_forms(content)


def _jupyter_server_extension_points() -> list[dict]:
    """Jupyter Server's entry point: this module is the extension."""
    return [{"module": "multiopt_lab.widgets.saved_notebooks"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Register :func:`pre_save_hook` with the server's contents manager (beside any other hook)."""
    serverapp.contents_manager.register_pre_save_hook(pre_save_hook)
    serverapp.log.info("multiopt_lab: notebooks are saved with their widgets' static forms, "
                       "readable without a kernel")

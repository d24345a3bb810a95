"""Strip widget state and per-run noise from notebooks, so commits show real changes.

Removes the notebook-level ``metadata.widgets`` (the saved state of every
widget: it changes on every run and tells a reader nothing), the widget
views in outputs (without that state a view can never render: JupyterLab
shows "Error displaying widget: model not found" and logs an error, where
the output's other forms, the text, HTML or PNG a widget puts next to its
view, read fine) and per-cell metadata that records a run or a view rather
than content (``execution`` timings, ``ExecuteTime``, ``scrolled``), then
writes the notebook the way Jupyter itself saves it (nbformat, one-space
indent, sorted keys).

The views go by the rule ``python3 dev.py lab`` applies on every save
(``multiopt_lab.widgets.saved_notebooks.keep_readable_forms``); this tool
also drops the state and the run metadata, for notebooks run elsewhere
(``jupyter nbconvert --execute`` saves the widget state) and for commits.

Usage:
    python tools/strip_widget_state.py                 # every notebooks/*.ipynb, in place
    python tools/strip_widget_state.py a.ipynb b.ipynb
    python tools/strip_widget_state.py --check         # exit 1, write nothing, if any would change

Example:
    >>> text = '{"cells": [], "metadata": {"widgets": {"x": 1}}, "nbformat": 4, "nbformat_minor": 5}'
    >>> "widgets" in normalised_text(text)
    False
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from multiopt_lab.widgets.saved_notebooks import keep_readable_forms

# Cell metadata written by front ends about a run or a view, not the content.
RUN_AND_VIEW_CELL_KEYS = ("execution", "ExecuteTime", "scrolled")
DEFAULT_FOLDER = Path(__file__).resolve().parents[1] / "notebooks"


def normalise_notebook(notebook: dict) -> dict:
    """Remove widget state, widget views and run/view cell metadata from ``notebook``, in place.

    A widget view is dropped only from an output that has another form to
    show (``text/plain`` at least), so no output ends up empty.

    Args:
        notebook (dict): A notebook as read by ``nbformat`` or ``json``.

    Returns:
        dict: the same notebook, for chaining.

    Example:
        >>> nb = {"metadata": {"widgets": {}}, "cells": [{"metadata": {"scrolled": True}}]}
        >>> normalise_notebook(nb)
        {'metadata': {}, 'cells': [{'metadata': {}}]}
        >>> view = {"application/vnd.jupyter.widget-view+json": {"model_id": "1"}, "text/plain": "tree"}
        >>> normalise_notebook({"cells": [{"metadata": {}, "outputs": [{"data": view}]}]})["cells"][0]["outputs"]
        [{'data': {'text/plain': 'tree'}}]
    """
    notebook.get("metadata", {}).pop("widgets", None)
    for cell in notebook.get("cells", []):
        metadata = cell.get("metadata", {})
        for key in RUN_AND_VIEW_CELL_KEYS:
            metadata.pop(key, None)
    keep_readable_forms(notebook)  # no state is left: every view that has another form goes
    return notebook


def normalised_text(text: str) -> str:
    """The normalised form of a notebook file's text, formatted as Jupyter saves it.

    Raises:
        ValueError: the text is not a notebook (the message says why).

    Example:
        >>> normalised_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
        '{\\n "cells": [],\\n "metadata": {},\\n "nbformat": 4,\\n "nbformat_minor": 5\\n}\\n'
    """
    try:
        notebook = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    except Exception as error:  # nbformat raises several unrelated types here.
        raise ValueError(f"Expected notebook JSON (nbformat 4), but it could not be read: {error}") from error
    normalise_notebook(notebook)
    written = nbformat.writes(notebook, version=nbformat.NO_CONVERT)
    return written if written.endswith("\n") else written + "\n"  # as nbformat.write does


def strip_files(paths: list[Path], check_only: bool = False) -> list[Path]:
    """Normalise each notebook file; return those that changed (or would, with ``check_only``).

    Every file is read and normalised before any is written, so an unreadable
    notebook stops the run with all files untouched.

    Example:
        >>> strip_files([Path("notebooks/01_tour.ipynb")], check_only=True)  # doctest: +SKIP
        []
    """
    planned = []
    for path in paths:
        before = path.read_text(encoding="utf-8")
        try:
            after = normalised_text(before)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error
        if after != before:
            planned.append((path, after))
    if not check_only:
        for path, after in planned:
            path.write_text(after, encoding="utf-8")
    return [path for path, _ in planned]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path,
                        help=f"notebooks to normalise (default: every *.ipynb in {DEFAULT_FOLDER})")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if any notebook is not normalised")
    options = parser.parse_args(argv)
    paths = options.paths or sorted(DEFAULT_FOLDER.glob("*.ipynb"))
    try:
        changed = strip_files(paths, check_only=options.check)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    verb = "would change" if options.check else "normalised"
    for path in changed:
        print(f"{verb}: {path}")
    if options.check and changed:
        print("Run: python tools/strip_widget_state.py " + " ".join(str(p) for p in changed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Text and HTML forms of parameter trees and legends (no IPython, no ipywidgets).
"""

from multiopt_lab._src.render.details import details_html, details_text
from multiopt_lab._src.render.document import render_html, render_text
from multiopt_lab._src.render.export import export_text, rules_python
from multiopt_lab._src.render.legend import legend_html, legend_text
from multiopt_lab._src.render.rich import assignment_repr_html, optimizer_repr_html
from multiopt_lab._src.render.search import SearchResult, search_paths, shown_matches
from multiopt_lab._src.render.tree_model import ParameterTree, build_tree

__all__ = [
    "ParameterTree",
    "SearchResult",
    "assignment_repr_html",
    "build_tree",
    "details_html",
    "details_text",
    "export_text",
    "legend_html",
    "legend_text",
    "optimizer_repr_html",
    "render_html",
    "render_text",
    "rules_python",
    "search_paths",
    "shown_matches",
]

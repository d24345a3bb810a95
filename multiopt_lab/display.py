"""Rich display of core objects without core importing the render layer.

Core objects ask this registry for their HTML; the package's ``__init__``
(which sits above every layer) registers the render layer's functions. So
``core`` keeps pointing down only, and a notebook still shows an
``Assignment`` or a ``MultiOptimizer`` as a coloured tree.

Example:
    >>> register_html("example", lambda obj: f"<b>{obj}</b>")
    >>> html_for("example", 3)
    '<b>3</b>'
    >>> html_for("unknown", 3) is None
    True
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["html_for", "register_html"]

_renderers: dict[str, Callable[[Any], str]] = {}


def register_html(kind: str, renderer: Callable[[Any], str]) -> None:
    """Use ``renderer(obj) -> str`` for the HTML of objects of ``kind``.

    Args:
        kind (str): ``"assignment"`` or ``"optimizer"``.
        renderer (Callable): Returns an HTML fragment.

    Example:
        >>> register_html("example", str)
    """
    _renderers[kind] = renderer


def html_for(kind: str, obj: Any) -> str | None:
    """The HTML of ``obj``, or None (IPython then shows the text form).

    Example:
        >>> html_for("nothing registered", object()) is None
        True
    """
    renderer = _renderers.get(kind)
    return None if renderer is None else renderer(obj)

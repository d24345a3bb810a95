"""Rich display of core objects without core importing the render layer.

Core objects ask this registry for their HTML; the package's ``__init__``
(which sits above every layer) registers the render layer's functions. So
``core`` keeps pointing down only, and a notebook still shows an
``Assignment`` or a ``MultiOptimizer`` as a coloured tree.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

__all__ = ["html_for", "register_html", "bundle_for", "register_bundle"]

_renderers: dict[str, Callable[[Any], str]] = {}
_bundlers: dict[str, Callable[[Any], dict | None]] = {}


def register_html(kind: str, renderer: Callable[[Any], str]) -> None:
    """Use ``renderer(obj) -> str`` for the HTML of objects of ``kind``.

    Args:
        kind (str): ``"assignment"`` or ``"optimizer"``.
        renderer (Callable): Returns an HTML fragment.
    """
    _renderers[kind] = renderer


def html_for(kind: str, obj: Any) -> str | None:
    """The HTML of ``obj``, or None (IPython then shows the text form).
    """
    renderer = _renderers.get(kind)
    return None if renderer is None else renderer(obj)


def register_bundle(kind: str, bundler: Callable[[Any], dict | None]) -> None:
    """Use ``bundler(obj) -> mime bundle or None`` to display objects of ``kind``.

    Lets a layer below the widgets (a figure) be shown by a widget view where
    a notebook front end runs, without importing the widgets itself.

    Args:
        kind (str): ``"figure"``.
        bundler (Callable): Returns a mime bundle, or None to fall back.
    """
    _bundlers[kind] = bundler


def bundle_for(kind: str, obj: Any) -> dict | None:
    """The mime bundle of ``obj``, or None (the object then shows its own forms).
    """
    bundler = _bundlers.get(kind)
    return None if bundler is None else bundler(obj)

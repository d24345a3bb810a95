"""The optimizer classes a rule file may name: MLX's, and those registered with :func:`register_optimizer`.

A file names a class by a string (``class = "AdamW"``). Reading it looks the
name up in a table made when this module loads (the optimizer classes of
``mlx.optimizers``) and in the registry; nothing named in a file is ever
imported.
"""

from __future__ import annotations

import keyword
import threading
from typing import Any

import mlx.optimizers as optim

from multiopt_lab._src.io.rulefile_data import shown

__all__ = ["MLX_CLASSES", "register_optimizer", "optimizer_class", "class_name"]

#: The optimizer classes of ``mlx.optimizers`` a file may name (not the base class, not
#: MultiOptimizer).
MLX_CLASSES: dict[str, type] = {
    name: value for name, value in vars(optim).items()
    if isinstance(value, type) and issubclass(value, optim.Optimizer)
    and value not in (optim.Optimizer, optim.MultiOptimizer) and not name.startswith("_")
}
_registered: dict[str, type] = {}
_names: dict[type, str] = {}
_lock = threading.Lock()


def _is_dotted_identifier(name: str) -> bool:
    return bool(name) and all(part.isidentifier() and not keyword.iskeyword(part)
                              for part in name.split("."))


def register_optimizer(cls: type, name: str | None = None) -> type:
    """Let rule files name an optimizer class of your own (or of another package).

    :func:`multiopt_lab.save_optimizer` writes ``class = "<name>"`` for it and
    :func:`multiopt_lab.load_optimizer` builds it from that name. The class
    must keep each argument of its ``__init__`` under the same name, as MLX's
    optimizers do (``self.momentum = momentum``; a scheduled learning rate
    through ``_maybe_schedule``), so that its arguments can be read back.
    Registering the same class again (a notebook cell run twice) is fine;
    it can also be used as a decorator.

    Args:
        cls (type): A subclass of ``mlx.optimizers.Optimizer``.
        name (str, optional): The name files use: a Python identifier, dots
            allowed (``"mypackage.Sophia"``). Default: ``cls.__name__``.

    Returns:
        type: ``cls`` itself.

    Raises:
        TypeError: ``cls`` is not an optimizer class.
        ValueError: The name is not an identifier, is the name of one of
            MLX's optimizers, or belongs to another class already.

    Example:
        >>> import os, tempfile
        >>> import mlx.nn as nn, mlx.optimizers as optim
        >>> import multiopt_lab as mol
        >>> @mol.register_optimizer
        ... class ClippedSGD(optim.SGD):
        ...     pass
        >>> path = os.path.join(tempfile.mkdtemp(), "rules.toml")
        >>> mol.save_optimizer(path, mol.MultiOptimizer([ClippedSGD(0.1)], labels=["all"]))
        >>> [line.strip() for line in open(path) if line.startswith("class")]
        ['class = "ClippedSGD"']
        >>> type(mol.load_optimizer(path, nn.Linear(2, 2)).optimizers[0]).__name__
        'ClippedSGD'
    """
    if not (isinstance(cls, type) and issubclass(cls, optim.Optimizer)):
        raise TypeError(f"register_optimizer expects an optimizer class (a subclass of "
                        f"mlx.optimizers.Optimizer), got {shown(cls)}")
    if cls in (optim.Optimizer, optim.MultiOptimizer) or issubclass(cls, optim.MultiOptimizer):
        raise TypeError(f"register_optimizer registers the optimizer of one group; "
                        f"{cls.__name__} is a multi-group optimizer, which a file describes "
                        "by its groups")
    name = cls.__name__ if name is None else name
    if not isinstance(name, str) or not _is_dotted_identifier(name):
        raise ValueError(f"expected a Python identifier as the name files use (dots allowed, "
                         f"e.g. 'mypackage.Sophia'), got {shown(name)}")
    if name in MLX_CLASSES and MLX_CLASSES[name] is not cls:
        raise ValueError(f"{name!r} names mlx.optimizers.{name} in rule files; register "
                         f"{cls.__module__}.{cls.__qualname__} under another name, e.g. "
                         f"register_optimizer({cls.__name__}, name='{cls.__module__}.{name}')")
    with _lock:
        holder = _registered.get(name)
        # A notebook cell run again defines a new class of the same name: take the new one.
        if holder is not None and holder is not cls and \
                (holder.__module__, holder.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"{name!r} names {holder.__module__}.{holder.__qualname__} already; "
                             f"register {cls.__module__}.{cls.__qualname__} under another name")
        if holder is not None:
            _names.pop(holder, None)
        old_name = _names.pop(cls, None)
        if old_name is not None:
            _registered.pop(old_name, None)
        _registered[name] = cls
        _names[cls] = name
    return cls


def optimizer_class(name: Any) -> type:
    """The class a file names: a registered one, else one of ``mlx.optimizers``.

    Raises:
        ValueError: For any other name (with the names known).
    """
    if isinstance(name, str):
        with _lock:
            found = _registered.get(name)
        if found is None:
            found = MLX_CLASSES.get(name)
        if found is not None:
            return found
    with _lock:
        registered = sorted(_registered)
    known = ", ".join(sorted(MLX_CLASSES))
    extra = f"; registered: {', '.join(registered)}" if registered else ""
    raise ValueError(f"unknown optimizer class {shown(name)}; expected one of mlx.optimizers' "
                     f"({known}){extra}. A class of your own must be registered first, in the "
                     "code that loads the file: multiopt_lab.register_optimizer(MyOptimizer)")


def class_name(cls: type) -> str:
    """The name a file uses for ``cls``.

    Raises:
        ValueError: For a class neither MLX's nor registered (the message says how to register).
    """
    with _lock:
        name = _names.get(cls)
    if name is not None:
        return name
    if MLX_CLASSES.get(cls.__name__) is cls:
        return cls.__name__
    bases = [base.__name__ for base in cls.__mro__[1:] if MLX_CLASSES.get(base.__name__) is base]
    kind = f" (a subclass of {bases[0]})" if bases else ""
    raise ValueError(f"its optimizer is a {cls.__module__}.{cls.__qualname__}{kind}, which a file "
                     f"cannot name; register it first: multiopt_lab.register_optimizer("
                     f"{cls.__name__}), and in the code that loads the file too")

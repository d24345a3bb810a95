"""MLX's private side, in one place: what we read and write of ``mlx.optimizers`` that MLX does not document.

A drop-in ``MultiOptimizer`` that gives MLX's results to the last bit, keeps
the state dicts a compiled step captured and describes schedules as data
needs a few things MLX keeps private: an optimizer's state dict
(``Optimizer._state``), its "state fits the parameters" flag
(``_initialized``), its schedules (``_schedulers``), the base class's
``__init__``, which methods a class overrides, and the arguments MLX's
schedule factories leave in their closures. Every such read or write in the
package goes through a function here, each saying what it relies on and why
we need it; nothing else names these attributes (``tests/test_mlx_internals.py``
checks both: each reliance against the installed MLX, failing with the
attribute's name, and that no other module reads them).
"""

from __future__ import annotations

import inspect
from typing import Any
from collections.abc import Callable, Mapping

import mlx.optimizers as optim
import mlx.optimizers.schedulers as mlx_schedulers

__all__ = ["state_dict", "install_state_dict", "is_initialized", "mark_initialized",
           "schedules", "set_schedule", "advance_step", "init_base", "keeps_state_dict",
           "runs_own_update", "own_attributes", "schedule_arguments", "PRIVATE_NAMES"]

#: The private attribute names of MLX this module reads or writes; no other
#: module of the package may (``tests/test_mlx_internals.py`` scans them).
PRIVATE_NAMES = frozenset({"_state", "_initialized", "_schedulers", "__closure__",
                           "cell_contents"})
#: MLX's own bookkeeping on every optimizer, set by ``Optimizer.__init__``.
_BOOKKEEPING = ("_initialized", "_state", "_schedulers")
_NO_SCHEDULES: Mapping[str, Callable] = {}


# -- an optimizer's state dict ----------------------------------------------------------------
def state_dict(optimizer: Any) -> dict | None:
    """The dict MLX keeps an optimizer's state in (``Optimizer._state``; None for an object without).

    Relies on: MLX's ``state`` property returns ``_state`` itself, and its
    ``init`` and ``apply_gradients`` fill that dict in place. Why: a routing
    plan keeps references into it, a compiled step captured it, and reading
    it directly bypasses a subclass whose ``state`` property builds a view
    (a multi-optimizer).
    """
    return getattr(optimizer, "_state", None)


def install_state_dict(optimizer: Any, tree: dict) -> None:
    """Make ``tree`` the optimizer's state dict, leaving its initialised flag as it is.

    Writes ``Optimizer._state``. Why: MLX's ``state`` setter also marks the
    optimizer uninitialised; after new contents were copied into the dict a
    compiled step holds, that dict must become the optimizer's own again
    without a re-initialisation, and a ``MultiOptimizer`` hands MLX its one
    state dict for good.
    """
    optimizer._state = tree


def is_initialized(optimizer: Any) -> bool:
    """Whether MLX holds the optimizer's state fit for its parameters (``Optimizer._initialized``).

    MLX sets it in ``init`` and clears it in the ``state`` setter; its
    ``apply_gradients`` calls ``init`` while it is clear. Why: a cached
    routing plan stays valid only while every group's optimizer still holds
    the state it bound (a state set from outside clears the flag).
    """
    return bool(getattr(optimizer, "_initialized", False))


def mark_initialized(optimizer: Any, initialized: bool = True) -> None:
    """Set MLX's "state fits the parameters" flag (``Optimizer._initialized``).

    Why: we initialise groups' states ourselves (leaf by leaf, moving state
    between groups), and an outer multi-optimizer holding a
    ``MultiOptimizer`` reads the flag to decide whether to call its ``init``.
    """
    optimizer._initialized = initialized


# -- schedules ---------------------------------------------------------------------------------
def schedules(optimizer: Any) -> Mapping[str, Callable]:
    """``{argument name: schedule}`` of an optimizer (``Optimizer._schedulers``); read only.

    MLX's ``_maybe_schedule`` puts an argument given as a callable there and
    ``apply_gradients`` evaluates each into the state at every step. Why: we
    reproduce that step, tell scheduled learning rates apart, and describe
    schedules as data. Empty for an object without them.
    """
    found = getattr(optimizer, "_schedulers", None)
    return found if isinstance(found, dict) else _NO_SCHEDULES


def set_schedule(optimizer: Any, name: str, schedule: Callable, step: Any) -> None:
    """Put ``name`` of ``optimizer`` on ``schedule``, valued at ``step`` now, as MLX's constructors do.

    Writes ``Optimizer._schedulers[name]`` and ``state[name]``, what
    ``Optimizer._maybe_schedule`` does for a callable argument. Why: MLX has
    no public way to replace a schedule (a recipe's scaled copy of a
    learning-rate schedule).
    """
    optimizer._schedulers[name] = schedule
    optimizer.state[name] = schedule(step)


def advance_step(optimizer: Any) -> None:
    """What MLX's ``Optimizer.apply_gradients`` does before its ``apply_single`` calls.

    Every scheduled argument is evaluated at the current step into the
    state (``_schedulers``), then the step counter goes up by one. Why: the
    update steps each group leaf by leaf (or bucket by bucket) with the
    optimizer's own ``apply_single``, and must match MLX to the last bit.
    """
    state = optimizer.state
    for name, scheduler in schedules(optimizer).items():
        state[name] = scheduler(optimizer.step)
    state["step"] = optimizer.step + 1


# -- classes -----------------------------------------------------------------------------------
def init_base(optimizer: Any) -> None:
    """Run ``mlx.optimizers.Optimizer.__init__`` on ``optimizer`` (bypassing its own class's).

    Why: ``MultiOptimizer`` subclasses MLX's ``MultiOptimizer`` (what users'
    and mlx-lm's ``isinstance`` checks expect) but keeps its groups in
    read-only properties, which MLX's ``MultiOptimizer.__init__`` would
    assign; the base ``__init__`` gives the bookkeeping MLX's methods
    expect (``_initialized``, ``_state``, ``_schedulers``).
    """
    optim.Optimizer.__init__(optimizer)


def keeps_state_dict(optimizer: Any) -> bool:
    """Whether the optimizer's ``state`` is MLX's property, which returns one dict for good.

    Compares the class attribute with ``mlx.optimizers.Optimizer.state``. Why:
    such an optimizer's state dict can be filled in place (a compiled step
    keeps it); one that overrides ``state`` (a multi-optimizer) builds its own
    and is set through its setter.
    """
    return type(optimizer).state is optim.Optimizer.state


def runs_own_update(optimizer: Any) -> bool:
    """Whether the optimizer's class overrides ``mlx.optimizers.Optimizer.apply_gradients``.

    Why: an optimizer with MLX's ``apply_gradients`` is stepped leaf by leaf
    (:func:`advance_step`, then ``apply_single``: same bits, routing cached);
    one that overrides it (a nested multi-optimizer, a clipping wrapper) is
    handed its part of the tree, as MLX's ``MultiOptimizer`` does.
    """
    return type(optimizer).apply_gradients is not optim.Optimizer.apply_gradients


def own_attributes(optimizer: Any) -> dict[str, Any]:
    """The optimizer's instance attributes, without MLX's bookkeeping (``_initialized``, ``_state``, ``_schedulers``).

    Why: these are its hyperparameters (``momentum``, ``betas``...), which a
    compiled update bakes in as constants; MLX's bookkeeping is read through
    the functions above.
    """
    return {name: value for name, value in vars(optimizer).items() if name not in _BOOKKEEPING}


# -- MLX's schedule functions ------------------------------------------------------------------
def schedule_arguments(function: Any) -> tuple[str, dict[str, Any]] | None:
    """``(factory name, its arguments)`` of a schedule one of MLX's factories made; None for any other.

    Relies on: ``mlx.optimizers.schedulers``' factories return closures
    named ``<factory>.<locals>.<inner>`` whose free variables are exactly the
    factory's arguments (read from ``__closure__`` cells' ``cell_contents``).
    Why: MLX's schedules say nothing else about themselves, and a rule file
    describes a schedule as its factory and numbers. A version of MLX that
    builds them otherwise makes this return None (and
    ``tests/test_mlx_internals.py`` fail by name), never a wrong value.
    """
    code, cells = getattr(function, "__code__", None), getattr(function, "__closure__", None)
    if code is None or cells is None or getattr(function, "__module__", None) != mlx_schedulers.__name__:
        return None
    name, inside, _ = getattr(function, "__qualname__", "").partition(".<locals>.")
    factory = getattr(mlx_schedulers, name, None)
    if not inside or name.startswith("_") or not inspect.isfunction(factory) \
            or factory.__module__ != mlx_schedulers.__name__:
        return None
    parameters = list(inspect.signature(factory).parameters)
    if sorted(code.co_freevars) != sorted(parameters):
        return None
    values = {free: cell.cell_contents for free, cell in zip(code.co_freevars, cells)}
    return name, {parameter: values[parameter] for parameter in parameters}

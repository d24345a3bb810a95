# Tests the private module multiopt_lab._src.mlx_internals's own unit.
"""The adapter to MLX's private side (``multiopt_lab/_src/mlx_internals.py``), checked against the installed MLX.

Each test checks one thing the adapter relies on and, when a new MLX changes
it, fails naming the MLX attribute ("mlx.optimizers.Optimizer no longer has
_schedulers: ..."): the adapter is then the one module to fix. The last tests
read the package's source: no other module names these attributes.
(A test of a private module's own unit: it imports ``mlx_internals`` itself.)
"""

from __future__ import annotations

import inspect

import mlx.core as mx
import mlx.optimizers as optim
import mlx.optimizers.schedulers as mlx_schedulers
import pytest
from mlx.utils import tree_flatten

from multiopt_lab import MultiOptimizer
from multiopt_lab._src import mlx_internals as internals
from private_reads import private_reads, reads_outside

BOOKKEEPING = ("_initialized", "_state", "_schedulers")


def changed(attribute: str, found: str, need: str) -> str:
    """The failure message: which MLX attribute changed, how, and what of ours needs it."""
    return (f"mlx {mx.__version__}: {attribute} {found}; multiopt_lab needs it to {need} "
            "(adapt multiopt_lab/_src/mlx_internals.py)")


def builtin_optimizers() -> dict[str, type]:
    """Every optimizer class MLX ships, but the base and the multi-optimizer."""
    return {name: cls for name, cls in vars(optim).items()
            if inspect.isclass(cls) and issubclass(cls, optim.Optimizer)
            and cls not in (optim.Optimizer, optim.MultiOptimizer)}


class TestOptimizerBookkeeping:
    """``Optimizer._state``, ``_initialized``, ``_schedulers``: set by ``Optimizer.__init__``."""

    NEEDED_FOR = {"_state": "keep each group's state in the dict a compiled step captured",
                  "_initialized": "tell whether a group's state still fits the parameters",
                  "_schedulers": "step scheduled arguments as MLX does, and describe schedules"}

    @pytest.mark.parametrize("name", BOOKKEEPING)
    def test_the_base_init_sets_it(self, name):
        sgd = optim.SGD(0.1)
        assert name in vars(sgd), changed("mlx.optimizers.Optimizer", f"no longer has {name} "
                                          "(Optimizer.__init__ does not set it)",
                                          self.NEEDED_FOR[name])

    def test_state_is_a_dict_holding_the_step(self):
        state = vars(optim.SGD(0.1)).get("_state")
        assert isinstance(state, dict) and isinstance(state.get("step"), mx.array), changed(
            "mlx.optimizers.Optimizer._state", f"is {state!r}, not a dict with an array 'step'",
            "hold each group's state in one dict a compiled step captures")

    def test_the_state_property_returns_state_itself_and_init_fills_it_in_place(self):
        sgd = optim.SGD(0.1, momentum=0.9)
        held = vars(sgd)["_state"]
        assert sgd.state is held, changed("mlx.optimizers.Optimizer.state", "no longer returns "
                                          "_state itself", "fill the state dict in place")
        sgd.init({"w": mx.zeros((2,))})
        assert vars(sgd)["_state"] is held and "w" in held, changed(
            "mlx.optimizers.Optimizer.init", "no longer fills _state in place",
            "keep references to each parameter's state")
        assert vars(sgd)["_initialized"] is True, changed(
            "mlx.optimizers.Optimizer._initialized", "is not set by init()",
            "tell a state that fits the parameters")

    def test_the_state_setter_replaces_the_dict_and_clears_initialized(self):
        sgd = optim.SGD(0.1)
        sgd.init({"w": mx.zeros((2,))})
        new = {"step": mx.array(0, mx.uint64), "learning_rate": mx.array(0.1)}
        sgd.state = new
        assert vars(sgd)["_state"] is new, changed(
            "mlx.optimizers.Optimizer.state (setter)", "no longer stores the dict as _state",
            "notice a group's state set from outside")
        assert vars(sgd)["_initialized"] is False, changed(
            "mlx.optimizers.Optimizer.state (setter)", "no longer clears _initialized",
            "re-plan after a group's state was set from outside")

    def test_apply_gradients_initialises_an_uninitialised_optimizer(self):
        sgd = optim.SGD(0.1, momentum=0.9)
        sgd.state = {"step": mx.array(0, mx.uint64), "learning_rate": mx.array(0.1)}
        sgd.apply_gradients({"w": mx.ones((2,))}, {"w": mx.zeros((2,))})
        assert "w" in sgd.state and vars(sgd)["_initialized"] is True, changed(
            "mlx.optimizers.Optimizer.apply_gradients", "no longer calls init() while "
            "_initialized is False", "initialise state where MLX would")

    def test_a_callable_argument_is_kept_in_schedulers_under_its_name(self):
        schedule = optim.cosine_decay(1e-3, 100)
        adamw = optim.AdamW(schedule)
        found = vars(adamw).get("_schedulers")
        assert found == {"learning_rate": schedule}, changed(
            "mlx.optimizers.Optimizer._schedulers", f"holds {found!r} for AdamW(cosine_decay)",
            "step scheduled learning rates and describe schedules")
        assert adamw.state["learning_rate"].item() == schedule(mx.array(0)).item(), changed(
            "mlx.optimizers.Optimizer._maybe_schedule", "no longer puts schedule(step) in the "
            "state", "read a scheduled learning rate")

    def test_the_adapter_reads_and_writes_them(self):
        sgd = optim.SGD(optim.linear_schedule(1.0, 0.0, 10))
        assert internals.state_dict(sgd) is vars(sgd)["_state"]
        assert internals.schedules(sgd) is vars(sgd)["_schedulers"]
        assert not internals.is_initialized(sgd)
        internals.mark_initialized(sgd)
        assert vars(sgd)["_initialized"] is True
        home = {"step": mx.array(4, mx.uint64)}
        internals.install_state_dict(sgd, home)
        assert sgd.state is home and internals.is_initialized(sgd)
        assert internals.schedules(object()) == {} and internals.state_dict(object()) is None


class TestTheStep:
    """``Optimizer.apply_gradients``: schedules into the state, step + 1, ``apply_single`` per leaf."""

    @pytest.mark.parametrize("make", [
        lambda: optim.AdamW(optim.cosine_decay(1e-2, 10), weight_decay=0.1),
        lambda: optim.SGD(optim.join_schedules([optim.linear_schedule(0.0, 0.1, 2),
                                                optim.step_decay(0.1, 0.5, 2)], [2]), momentum=0.9),
        lambda: optim.Muon(0.02),
    ], ids=["AdamW-cosine", "SGD-joined", "Muon"])
    def test_advance_step_and_apply_single_give_mlx_own_bits(self, make):
        mx.random.seed(0)
        params = {"a": mx.random.normal((4, 3)), "b": mx.random.normal((3,))}
        theirs, ours = make(), make()
        mine = dict(params)
        ours.init(params)
        for step in range(4):
            grads = {k: mx.random.normal(v.shape) for k, v in params.items()}
            params = theirs.apply_gradients(grads, params)
            internals.advance_step(ours)
            mine = {k: ours.apply_single(grads[k], mine[k], ours.state[k]) for k in mine}
            same = [k for k in params if mx.array_equal(params[k], mine[k]).item()]
            assert sorted(same) == sorted(params), changed(
                "mlx.optimizers.Optimizer.apply_gradients", f"no longer equals _schedulers into "
                f"the state, step + 1, then apply_single per leaf (step {step + 1}: "
                f"{sorted(set(params) - set(same))} differ)", "match MLX to the last bit")
        for (path, a), (_, b) in zip(tree_flatten(theirs.state), tree_flatten(ours.state)):
            assert mx.array_equal(a, b).item(), changed(
                "mlx.optimizers.Optimizer.apply_gradients", f"leaves another state at {path}",
                "match MLX to the last bit")


class TestClasses:
    """The base ``__init__`` and the class attributes compared by identity."""

    def test_the_base_init_makes_a_multi_optimizer_subclass_usable(self):
        class Bare(optim.MultiOptimizer):
            def __init__(self):
                internals.init_base(self)

        bare = Bare()
        assert isinstance(bare, optim.MultiOptimizer)
        assert all(name in vars(bare) for name in BOOKKEEPING), changed(
            "mlx.optimizers.Optimizer.__init__", f"set {sorted(vars(bare))} on a subclass",
            "skip MultiOptimizer.__init__, which assigns our read-only groups")
        assert "optimizers" in inspect.getsource(optim.MultiOptimizer.__init__), \
            "mlx.optimizers.MultiOptimizer.__init__ no longer assigns optimizers: " \
            "MultiOptimizer might call it again instead of init_base"

    def test_our_multi_optimizer_is_mlx_one_and_keeps_its_one_dict(self):
        opt = MultiOptimizer([optim.SGD(0.1)])
        assert isinstance(opt, optim.MultiOptimizer)
        assert internals.state_dict(opt) is opt.state and internals.runs_own_update(opt)
        assert not internals.keeps_state_dict(opt)

    def test_the_compared_class_attributes_exist(self):
        for name, kind in (("state", property), ("apply_gradients", type(lambda: 0)),
                           ("__init__", type(lambda: 0))):
            found = inspect.getattr_static(optim.Optimizer, name, None)
            assert isinstance(found, kind), changed(
                f"mlx.optimizers.Optimizer.{name}", f"is {found!r}, not a {kind.__name__}",
                "tell which optimizers keep MLX's state dict and step")

    @pytest.mark.parametrize("name", sorted(builtin_optimizers()))
    def test_every_builtin_optimizer_keeps_mlx_state_and_step(self, name):
        optimizer = builtin_optimizers()[name]
        sample = optimizer(**({"learning_rate": 0.1} if name != "Adafactor" else {}))
        assert internals.keeps_state_dict(sample), changed(
            f"mlx.optimizers.{name}.state", "now overrides Optimizer.state",
            "fill its state dict in place")
        assert not internals.runs_own_update(sample), changed(
            f"mlx.optimizers.{name}.apply_gradients", "now overrides Optimizer.apply_gradients "
            "(it would run whole, unbatched)", "step it leaf by leaf")
        assert internals.keeps_state_dict(optim.MultiOptimizer([sample])) is False
        assert internals.runs_own_update(optim.MultiOptimizer([sample])) is True

    def test_own_attributes_are_the_hyperparameters(self):
        found = internals.own_attributes(optim.SGD(0.1, momentum=0.9))
        assert found == {"momentum": 0.9, "weight_decay": 0.0, "dampening": 0.0,
                         "nesterov": False}, changed(
            "mlx.optimizers.SGD's attributes", f"are {found!r}",
            "tell the constants a compiled update bakes in")


class TestScheduleClosures:
    """MLX's schedule factories leave their arguments in ``__closure__`` under their names."""

    MADE = {
        "cosine_decay": ((1e-3, 100, 1e-5), {"init": 1e-3, "decay_steps": 100, "end": 1e-5}),
        "exponential_decay": ((0.1, 0.9), {"init": 0.1, "decay_rate": 0.9}),
        "step_decay": ((0.1, 0.5, 10), {"init": 0.1, "decay_rate": 0.5, "step_size": 10}),
        "linear_schedule": ((0.0, 1e-3, 10), {"init": 0.0, "end": 1e-3, "steps": 10}),
    }

    def test_every_factory_is_known(self):
        factories = {name for name, f in vars(mlx_schedulers).items()
                     if inspect.isfunction(f) and f.__module__ == mlx_schedulers.__name__
                     and not name.startswith("_")}
        new = factories - set(self.MADE) - {"join_schedules"}
        assert not new, (f"mlx {mx.__version__}: mlx.optimizers.schedulers has new factories "
                         f"{sorted(new)}: check that schedule_arguments reads them (add them here)")

    @pytest.mark.parametrize("name", sorted(MADE))
    def test_the_arguments_are_read_back(self, name):
        arguments, expected = self.MADE[name]
        schedule = getattr(optim, name)(*arguments)
        closure = getattr(schedule, "__closure__", None)
        assert closure is not None, changed(f"mlx.optimizers.{name}(...).__closure__",
                                            "is None", "describe the schedule as data")
        assert internals.schedule_arguments(schedule) == (name, expected), changed(
            f"mlx.optimizers.{name}(...).__closure__",
            f"holds {dict(zip(schedule.__code__.co_freevars, (c.cell_contents for c in closure)))!r}"
            f" (qualname {schedule.__qualname__!r})", f"read back {expected!r}")

    def test_joined_schedules_keep_their_parts(self):
        parts = [optim.linear_schedule(0.0, 1.0, 5), optim.exponential_decay(1.0, 0.5)]
        found = internals.schedule_arguments(optim.join_schedules(parts, [5]))
        assert found is not None and found[0] == "join_schedules" \
            and list(found[1]["schedules"]) == parts and list(found[1]["boundaries"]) == [5], \
            changed("mlx.optimizers.join_schedules(...).__closure__", f"reads as {found!r}",
                    "describe a joined schedule")

    def test_other_functions_are_not_read(self):
        scale = 2.0
        assert internals.schedule_arguments(lambda step: step * scale) is None
        assert internals.schedule_arguments(optim.cosine_decay) is None
        assert internals.schedule_arguments(None) is None


class TestNoOtherModuleReadsThem:
    """Only ``multiopt_lab/_src/mlx_internals.py`` names MLX's private attributes."""

    CLASSES = {"Optimizer": frozenset({"state", "apply_gradients", "__init__"}),
               "MultiOptimizer": frozenset({"state", "apply_gradients", "__init__"})}

    def test_the_package(self):
        found = reads_outside("_src/mlx_internals.py", internals.PRIVATE_NAMES, self.CLASSES)
        assert not found, ("MLX's private attributes used outside multiopt_lab/_src/mlx_internals.py "
                           "(call a function of the adapter instead):\n" + "\n".join(found))

    def test_the_scan_sees_each_form(self):
        code = ("x._state\ngetattr(f, '__closure__')\nc.cell_contents\n"
                "optim.Optimizer.__init__(self)\ntype(o).state is Optimizer.state\n"
                "vars(o)['_schedulers']\no._initialized = True\n")
        found = [what for _, what in private_reads(code, internals.PRIVATE_NAMES, self.CLASSES)]
        assert sorted(found) == sorted(["._state", "'__closure__'", ".cell_contents",
                                        "Optimizer.__init__", "Optimizer.state", "'_schedulers'",
                                        "._initialized"]), found

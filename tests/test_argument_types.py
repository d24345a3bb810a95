"""Every public entry point meets an argument of the wrong kind with a clear error.

One table: for each entry point (the names of ``multiopt_lab``, ``recipes``,
``widgets``, ``plots`` and ``integrations.mlx_lm``, and the MultiOptimizer
methods that take user input), valid arguments, and for each argument values
of the wrong kind a user really passes (the parameter dict for the model, the
optimizer's name or class, a file name for a History, a string for a number).
Each must raise ``TypeError`` or ``ValueError`` naming the argument and what
was found, never an ``AttributeError`` (or other error) from deep inside.
A last test checks that the table covers every public entry point.
"""

from __future__ import annotations

import inspect
import os

import mlx.core as mx
import mlx.optimizers as optim
import pytest

import multiopt_lab as mol
from multiopt_lab import plots, recipes, widgets
from multiopt_lab.examples import MLP, TinyGPT

pytest.importorskip("mlx_lm")
from multiopt_lab.integrations import mlx_lm  # noqa: E402

PARAMS_DICT = {"layers": [{"weight": mx.zeros((8, 4)), "bias": mx.zeros((8,))}]}
MODEL = [None, PARAMS_DICT, "model"]
OPTIMIZER = ["adam", None, optim.AdamW]  # the name, nothing, the class instead of an instance
FLAG = ["yes", 1]
HISTORY = ["run.csv", 3]


def model():
    return MLP(4, [8], 2)


def multi():
    return mol.MultiOptimizer([optim.SGD(0.1), optim.Adam(0.01)], ["ndim == 2"])


def history():
    h = mol.History()
    h.record(1, loss=1.0, metrics={"sgd": {"update_norm": 0.1, "learning_rate": 0.1}})
    return h


def parameter_history():
    h = mol.History()
    h.start_run("r")
    for step in (1, 2):
        h.record(step, loss=1.0, metrics={"sgd": {"update_norm": 0.1}},
                 parameters={path: {"group": "sgd", "update_norm": 0.1, "update_ratio": 0.01}
                             for path in ("layers.0.weight", "layers.1.weight")})
    return h


def figure():
    return plots.plot_loss(history())


def step_fn(m, x):
    return m(x).sum()


def saved_state(tmp):
    path = os.path.join(tmp, "state.safetensors")
    mol.save_state(path, multi())
    return path


def saved_checkpoint(tmp):
    folder = os.path.join(tmp, "checkpoint")
    optimizer = multi()
    optimizer.init(model().trainable_parameters())
    mol.save_checkpoint(folder, model(), optimizer)
    return folder


def saved_rules(tmp):
    path = os.path.join(tmp, "rules.toml")
    mol.save_rules(path, ["a", "b"], ["ndim == 2"])
    return path


def saved_optimizer(tmp):
    path = os.path.join(tmp, "optimizer.toml")
    mol.save_optimizer(path, multi())
    return path


def saved_adapters(tmp):
    adapters = os.path.join(tmp, "adapters.safetensors")
    optimizer = multi()
    optimizer.init(model().trainable_parameters())
    mol.save_state(mlx_lm.state_file_for(adapters), optimizer)
    return adapters


class _OwnOptimizer(optim.SGD):
    """A user's optimizer class, whose contract the table declares."""


# name -> (callable, lambda tmp: valid keyword arguments, {argument: [wrong values]},
#          {argument: word the message uses for it, where it is not the argument's name})
ENTRIES = {
    "MultiOptimizer": (mol.MultiOptimizer,
                       lambda tmp: dict(optimizers=[optim.SGD(0.1), optim.Adam(0.1)],
                                        filters=["ndim == 2"]),
                       {"optimizers": [optim.SGD(0.1), None, "adam", 3],
                        "filters": [None, 3, {"x": "ndim == 2"}], "labels": [3, 4.5],
                        "cache": FLAG, "compile": FLAG, "skip_nonfinite": FLAG,
                        "metrics_every": ["10"]}, {}),
    "MultiOptimizer.repartition": (lambda **kw: multi().repartition(**kw),
                                   lambda tmp: dict(filters=["ndim == 1"], parameters=model()),
                                   {"parameters": ["model", 3], "filters": [None, 3]}, {}),
    "MultiOptimizer.request_repartition": (lambda **kw: multi().request_repartition(**kw),
                                           lambda tmp: dict(filters=["ndim == 1"]),
                                           {"filters": [None, 3], "labels": [3]}, {}),
    "MultiOptimizer.init": (lambda **kw: multi().init(**kw), lambda tmp: dict(parameters=model()),
                            {"parameters": [None, "model", 3]}, {}),
    "MultiOptimizer.between_steps": (lambda **kw: multi().between_steps(**kw),
                                     lambda tmp: dict(parameters=model()),
                                     {"parameters": [None, "model"]}, {}),
    "MultiOptimizer.learning_rates": (lambda rates: setattr(multi(), "learning_rates", rates),
                                      lambda tmp: dict(rates={"sgd": 0.5}),
                                      {"rates": [3, "0.1", {"sgd": "0.1"}, {"sgd": float("nan")}]},
                                      {"rates": "rate"}),
    "History": (mol.History, lambda tmp: dict(path=os.path.join(tmp, "run.csv")),
                {"path": [3, ["run.csv"]]}, {}),
    "assign": (mol.assign, lambda tmp: dict(parameters=model(), filters=["ndim == 2"]),
               {"parameters": [None, "model", 3], "filters": [None, 3, {"x": "ndim == 2"}],
                "labels": [3]}, {}),
    "ParameterTable.from_tree": (mol.ParameterTable.from_tree,
                                 lambda tmp: dict(parameters=PARAMS_DICT, model=None),
                                 {"model": ["model", PARAMS_DICT]}, {}),
    "rule": (mol.rule, lambda tmp: dict(text="ndim == 2"), {"text": [None, 3], "label": [3]},
             {"text": "rule expression"}),
    "Rule": (mol.Rule, lambda tmp: dict(text="ndim == 2"), {"text": [3], "label": [3]},
             {"text": "rule expression"}),
    "as_rule": (mol.as_rule, lambda tmp: dict(filter="ndim == 2"), {"filter": [None, 3],
                                                                    "label": [3]},
                {"filter": "rule string"}),
    "by_glob": (mol.by_glob, lambda tmp: dict(pattern="*.w"), {"pattern": [3, None]}, {}),
    "by_regex": (mol.by_regex, lambda tmp: dict(pattern="w"), {"pattern": [3, None]}, {}),
    "by_ndim": (mol.by_ndim, lambda tmp: dict(ndim=2), {"ndim": ["2", None, 2.0]},
                {"ndim": "by_ndim"}),
    "compile_step": (mol.compile_step,
                     lambda tmp: dict(step=step_fn, model=model(), optimizer=multi()),
                     {"step": [None, 3], "model": MODEL, "optimizer": OPTIMIZER, "state": [3]}, {}),
    "CompiledStep": (mol.CompiledStep,
                     lambda tmp: dict(step=step_fn, model=model(), optimizer=multi()),
                     {"step": [None, 3], "model": MODEL, "optimizer": OPTIMIZER}, {}),
    "save_state": (mol.save_state,
                   lambda tmp: dict(file=os.path.join(tmp, "s.safetensors"), optimizer=multi()),
                   {"file": [None, 3], "optimizer": OPTIMIZER}, {}),
    "load_state": (mol.load_state, lambda tmp: dict(file=saved_state(tmp), optimizer=multi()),
                   {"file": [None, 3], "optimizer": ["adam", None, optim.SGD(0.1)],
                    "strict": FLAG, "parameters": ["model", 3]}, {}),
    "save_checkpoint": (mol.save_checkpoint,
                        lambda tmp: dict(directory=os.path.join(tmp, "c"), model=model(),
                                         optimizer=multi()),
                        {"directory": [None, 3], "model": MODEL, "optimizer": OPTIMIZER,
                         "step": ["3", -1], "parallel": ["rank0"]}, {}),
    "load_checkpoint": (mol.load_checkpoint,
                        lambda tmp: dict(directory=saved_checkpoint(tmp), model=model(),
                                         optimizer=multi()),
                        {"directory": [None, 3], "model": MODEL, "optimizer": OPTIMIZER,
                         "strict": FLAG, "parallel": ["rank0"]}, {}),
    "render_text": (mol.render_text, lambda tmp: dict(assignment=mol.assign(model(), ["ndim == 2"])),
                    {"assignment": [None, "tree", model()]}, {}),
    "render_html": (mol.render_html, lambda tmp: dict(assignment=mol.assign(model(), ["ndim == 2"])),
                    {"assignment": [None, "tree", model()]}, {}),
    "train": (mol.train,
              lambda tmp: dict(model=model(), optimizer=multi(), loss_fn=step_fn,
                               batches=lambda i: (mx.ones((2, 4)),), steps=1, progress=False),
              {"model": MODEL, "optimizer": OPTIMIZER, "loss_fn": [None, 3],
               "batches": ["batches", 3, {"x": 1}], "steps": ["10", None],
               "history": HISTORY, "compile": FLAG, "callbacks": [step_fn, 3, [3]],
               "progress": ["bar", 3], "run": [3], "metrics_every": ["10"]}, {}),
    "rules_to_toml": (mol.rules_to_toml, lambda tmp: dict(labels=["a", "b"], rules=["ndim == 2"]),
                      {"labels": [None, 3], "rules": [None, 3]}, {}),
    "rules_to_json": (mol.rules_to_json, lambda tmp: dict(labels=["a", "b"], rules=["ndim == 2"]),
                      {"labels": [None, 3], "rules": [None, 3]}, {}),
    "rules_from_toml": (mol.rules_from_toml, lambda tmp: dict(text='[[group]]\nlabel = "a"\n'),
                        {"text": [None, 3, b"[[group]]"], "source": [3]}, {}),
    "rules_from_json": (mol.rules_from_json,
                        lambda tmp: dict(text='{"group": [{"label": "a"}]}'),
                        {"text": [None, 3], "source": [3]}, {}),
    "save_rules": (mol.save_rules,
                   lambda tmp: dict(path=os.path.join(tmp, "r.toml"), labels=["a", "b"],
                                    rules=["ndim == 2"]),
                   {"path": [None, 3], "labels": [None], "rules": [3]}, {}),
    "load_rules": (mol.load_rules, lambda tmp: dict(path=saved_rules(tmp)), {"path": [None, 3]},
                   {}),
    "DataParallel": (mol.DataParallel, lambda tmp: dict(group=None), {"group": ["ring", 3]}, {}),
    "launch": (mol.launch, lambda tmp: None, {"command": ["python train.py", None, 3]}, {}),
    "RankGuard": (mol.RankGuard, lambda tmp: dict(step_timeout_s=60, run_dir=tmp),
                  {"group": ["ring", 3], "step_timeout_s": ["60", 0, -1.0, float("nan")],
                   "run_dir": [3, 1.5]}, {}),
    # recipes
    "recipes.muon": (recipes.muon, lambda tmp: dict(model=TinyGPT(16, dims=8, layers=2, heads=2)),
                     {"model": MODEL, "muon": ["muon", optim.Muon], "adamw": ["adamw", 3]}, {}),
    "recipes.no_weight_decay": (recipes.no_weight_decay,
                                lambda tmp: dict(model=model(), optimizer=optim.AdamW(1e-3)),
                                {"model": MODEL, "optimizer": OPTIMIZER, "embeddings": FLAG}, {}),
    "recipes.lora_plus": (recipes.lora_plus, lambda tmp: None,
                          {"model": MODEL, "optimizer": OPTIMIZER, "ratio": ["16", None]}, {}),
    "recipes.layerwise_lr_decay": (recipes.layerwise_lr_decay,
                                   lambda tmp: dict(model=TinyGPT(16, dims=8, layers=2, heads=2),
                                                    optimizer=optim.AdamW(1e-3)),
                                   {"model": MODEL, "optimizer": OPTIMIZER,
                                    "decay": ["0.8", None]}, {}),
    # widgets
    "widgets.ParameterTreeWidget": (widgets.ParameterTreeWidget,
                                    lambda tmp: dict(model_or_parameters=model(),
                                                     optimizer_or_assignment=multi()),
                                    {"model_or_parameters": [None, "model", 3],
                                     "optimizer_or_assignment": ["adam", 3], "fold": FLAG,
                                     "open_depth": ["2", -1], "search_debounce": ["0.2"],
                                     "watch_seconds": ["1", -1]},
                                    {"optimizer_or_assignment": "Assignment"}),
    "widgets.RuleEditorWidget": (widgets.RuleEditorWidget,
                                 lambda tmp: dict(model=model(), optimizer=multi()),
                                 {"model": [None, "model"], "optimizer": ["adam", optim.SGD(0.1)],
                                  "tree": ["tree"], "debounce_seconds": ["0.3", -1]},
                                 {"optimizer": "MultiOptimizer"}),
    "widgets.LabWidget": (widgets.LabWidget, lambda tmp: dict(model=model(), optimizer=multi()),
                          {"model": [None, "model"], "optimizer": ["adam", optim.SGD(0.1)],
                           "history": HISTORY, "debounce_seconds": ["0.3"]}, {}),
    "widgets.TrainingMonitorWidget": (widgets.TrainingMonitorWidget,
                                      lambda tmp: dict(history=history()),
                                      {"history": [None, "run.csv"], "run": [3],
                                       "max_rate": ["4", 0], "smoothing": ["0.5", 1.0],
                                       "width": ["720", 0], "dpi": [0], "clock": [3],
                                       "background": FLAG}, {}),
    # plots
    **{f"plots.{name}": (getattr(plots, name), lambda tmp: dict(history=history()),
                         {"history": [None, "run.csv", model()], "run": [3], "ax": ["ax"]}, {})
       for name in ("plot_update_norms", "plot_grad_norms", "plot_learning_rates",
                    "plot_update_ratios")},
    "plots.plot_loss": (plots.plot_loss, lambda tmp: dict(history=history()),
                        {"history": [None, "run.csv"], "run": [3], "metric": [3],
                         "smoothing": ["0.5", 1.0], "log": FLAG, "ax": ["ax"]}, {}),
    "plots.plot_group_metric": (plots.plot_group_metric,
                                lambda tmp: dict(history=history(), metric="update_norm"),
                                {"history": [None, "run.csv"], "metric": [None, 3], "run": [3],
                                 "log": FLAG, "include_total": FLAG, "reference": ["1e-3"],
                                 "title": [3], "legend": FLAG}, {}),
    "plots.plot_runs": (plots.plot_runs, lambda tmp: dict(history=history()),
                        {"history": [None, "run.csv"], "metric": [3], "group": [3],
                         "runs": ["run1", [1]], "smoothing": ["0.5"], "log": FLAG}, {}),
    "plots.plot_training": (plots.plot_training, lambda tmp: dict(history=history()),
                            {"history": [None, "run.csv"], "run": [3], "smoothing": ["0.5"],
                             "figure": ["figure"]}, {}),
    # the per-parameter views
    **{f"plots.{name}": (getattr(plots, name), lambda tmp: dict(history=parameter_history()),
                         {"history": [None, "run.csv"], "run": [3], "metric": [3], "k": ["3", 0],
                          "step": ["1"]}, {})
       for name in ("top_parameters", "plot_top_parameters")},
    **{f"plots.{name}": (getattr(plots, name), lambda tmp: dict(history=parameter_history()),
                         {"history": [None, "run.csv"], "run": [3], "metric": [3]}, {})
       for name in ("parameter_table", "plot_parameter_heatmap", "plot_parameter_overview")},
    "plots.has_parameter_metrics": (plots.has_parameter_metrics,
                                    lambda tmp: dict(history=parameter_history()),
                                    {"history": [None, "run.csv"], "run": [3]}, {}),
    "plots.plot_parameter": (plots.plot_parameter,
                             lambda tmp: dict(history=parameter_history(), path="layers.0.weight"),
                             {"history": [None, "run.csv"], "path": [None, 3], "run": [3],
                              "width": ["6", 0]}, {}),
    "plots.mark_step": (plots.mark_step, lambda tmp: dict(target=figure(), step=3),
                        {"target": ["figure", None], "step": ["3", None], "label": [3],
                         "label_every_axes": FLAG}, {"target": "Figure"}),
    "plots.retheme": (plots.retheme, lambda tmp: dict(figure=figure(), theme="dark"),
                      {"figure": ["figure", None], "theme": ["blue", 3]}, {"theme": "theme"}),
    "plots.smooth": (plots.smooth, lambda tmp: dict(values=[1.0, 2.0], smoothing=0.5),
                     {"smoothing": ["0.5", None, 1.0]}, {}),
    "plots.lab_axes": (plots.lab_axes, lambda tmp: dict(rows=1, columns=2),
                       {"rows": ["2", 0], "columns": [None]}, {}),
    # mlx-lm
    "mlx_lm.LabCallback": (mlx_lm.LabCallback, lambda tmp: dict(optimizer=multi(), model=model()),
                           {"optimizer": OPTIMIZER, "model": MODEL, "history": HISTORY,
                            "args": ["args", 3], "metrics": FLAG, "save_state": FLAG,
                            "run": [3], "iterate_batches": [3], "wrapped_callback": [3]}, {}),
    "mlx_lm.resume": (mlx_lm.resume,
                      lambda tmp: dict(optimizer=multi(), model=model(),
                                       adapter_file=saved_adapters(tmp)),
                      {"optimizer": OPTIMIZER, "model": MODEL, "adapter_file": [None, 3],
                       "iteration": ["8", -1], "strict": FLAG}, {}),
    "mlx_lm.state_file_for": (mlx_lm.state_file_for, lambda tmp: dict(adapter_file="a.safetensors"),
                              {"adapter_file": [None, 3], "iteration": ["8", -1]}, {}),
    "declare_contract": (mol.declare_contract,
                         lambda tmp: dict(optimizer_class=_OwnOptimizer,
                                          contract=mol.OptimizerContract(min_ndim=2)),
                         {"optimizer_class": [optim.SGD(0.1), "SGD", None],
                          "contract": ["min_ndim=2", 3]},
                         {"optimizer_class": "optimizer class", "contract": "OptimizerContract"}),
    "OptimizerContract": (mol.OptimizerContract, lambda tmp: dict(min_ndim=2),
                          {"min_ndim": [-1, "2", 2.0], "below_min_ndim": [3],
                           "flattens_stacks": ["yes"], "weight_decay": [0.1]}, {}),
    "save_optimizer": (mol.save_optimizer,
                       lambda tmp: dict(path=os.path.join(tmp, "rules.toml"), optimizer=multi()),
                       {"path": [3, None], "optimizer": ["adam", None, optim.SGD(0.1)]}, {}),
    "load_optimizer": (mol.load_optimizer, lambda tmp: dict(path=saved_optimizer(tmp), model=model()),
                       {"path": [3, None], "model": ["model", 3]}, {}),
    "register_optimizer": (mol.register_optimizer, lambda tmp: dict(cls=_OwnOptimizer),
                           {"cls": ["Adam", optim.Adam(0.1), None], "name": [3]},
                           {"cls": "optimizer class"}),
    "report": (mol.report, lambda tmp: dict(optimizer=multi(), model=model()),
               {"optimizer": ["adam", optim.SGD(0.1), None], "model": ["model", 3],
                "history": ["run.csv", 3], "run": [3], "title": [3]}, {}),
    "mlx_lm.adapters_checksum": (mlx_lm.adapters_checksum, lambda tmp: dict(model=model()),
                                 {"model": MODEL}, {}),
}


def _cases():
    for name, (_, _, wrong, _) in ENTRIES.items():
        for argument, values in wrong.items():
            for i, value in enumerate(values):
                shown = value.__name__ if isinstance(value, type) else type(value).__name__
                yield pytest.param(name, argument, i, id=f"{name}-{argument}-{shown}")


@pytest.fixture()
def comm(recorded_comm):
    return None


@pytest.mark.parametrize("name, argument, index", list(_cases()))
def test_a_wrong_argument_gets_a_clear_error(name, argument, index, tmp_path, comm):
    function, valid, wrong, words = ENTRIES[name]
    kwargs = dict(valid(str(tmp_path)) or {})
    if name == "recipes.lora_plus":  # a model with LoRA layers, for the other arguments
        import mlx_lm_models
        kwargs = dict(model=mlx_lm_models.build("llama+lora"), optimizer=optim.AdamW(1e-3))
    if name == "launch":
        kwargs = {}
    kwargs[argument] = wrong[argument][index]
    with pytest.raises((TypeError, ValueError)) as info:
        function(**kwargs)
    message = str(info.value)
    word = words.get(argument, argument)
    assert word in message, f"the message does not name {word!r}: {message}"
    assert "found" in message or "got" in message, f"the message does not say what was found: {message}"


def test_the_valid_calls_work(tmp_path, comm):
    # The table's valid arguments are valid: each wrong one is the only thing wrong.
    for name, (function, valid, _, _) in ENTRIES.items():
        (tmp_path / name).mkdir()
        kwargs = valid(str(tmp_path / name))
        if kwargs is not None:  # lora_plus and launch: see the test above
            function(**kwargs)


#: Public names that are results, errors or data, not entry points taking user input,
#: or that take MLX's own arguments (StackedMuon is MLX's Muon; LabFigure matplotlib's Figure).
NOT_ENTRY_POINTS = {"Finding", "FindingWarning", "Report", "Assignment", "CoverageError", "Diagnostics", "DistributedRunError",
                    "LoadReport", "Move", "OutOfSyncError", "PendingRepartition", "RuleError",
                    "RuleFileError", "training_in_progress", "recipes", "__version__",
                    "ParameterTable", "LabFigure", "StackedMuon", "ParameterTreeWidget",
                    "RuleEditorWidget", "LabWidget", "TrainingMonitorWidget"}


def test_the_table_covers_every_public_entry_point():
    modules = {"": mol, "recipes.": recipes, "widgets.": widgets, "plots.": plots,
               "mlx_lm.": mlx_lm}
    missing = []
    for prefix, module in modules.items():
        for name in module.__all__:
            if name in NOT_ENTRY_POINTS or not callable(getattr(module, name)):
                continue
            if f"{prefix}{name}" not in ENTRIES:
                missing.append(f"{prefix}{name}")
    assert not missing, f"add these to ENTRIES: {missing}"
    assert {"widgets.ParameterTreeWidget", "widgets.RuleEditorWidget", "widgets.LabWidget",
            "widgets.TrainingMonitorWidget", "ParameterTable.from_tree"} <= set(ENTRIES)
    assert inspect.signature(mol.train).parameters  # the checks keep the signatures

"""multiopt_lab inside mlx-lm's own trainer: record, edit live, save and resume.

mlx-lm's ``mlx_lm.tuner.trainer.train`` compiles its step once with
``state = [model.state, optimizer.state, mx.random.state]``. A
``MultiOptimizer`` follows every change there (its state is one dict,
changed in place), but the replayed step never runs Python of ours, so what
needs Python happens in :class:`LabCallback`:

* at every report (``steps_per_report``) it records into a ``History`` the
  training loss, every group's learning rate (schedules included; mlx-lm
  logs group 0's only) and the per-group metrics (and, with
  ``per_parameter=True``, every parameter's), the validation loss at
  every evaluation, and it applies an edit requested by the rule editor;
* passed as ``iterate_batches`` too, it also runs before every step: an
  edit then lands at the very next step, metrics are computed only on the
  steps that are reported (the other steps replay a trace without them),
  and the rule editor and the Stop-free widgets act while ``train`` runs;
* with ``save_state=True`` it writes the optimizer's state next to mlx-lm's
  adapters whenever mlx-lm saves them (every ``steps_per_save`` iterations,
  ``0000100_adapters.safetensors`` and ``adapters.safetensors``, and at the
  end), each with the iteration and a checksum of the adapters it goes
  with, so a run resumes with :func:`resume`, which refuses weights and a
  state from different iterations.

When mlx-lm saves: at iteration ``it`` it steps, reports (when ``it`` is a
multiple of ``steps_per_report``, or the last), then saves (when ``it`` is a
multiple of ``steps_per_save``), and after the loop it saves
``adapters.safetensors`` once more. The callback's report hook runs before
that save; through :meth:`LabCallback.iterate_batches` it also runs before
the next step, after the save. A save that no report precedes
(``steps_per_save`` not a multiple of ``steps_per_report``) is seen only
through ``iterate_batches``; without it such a run is refused at the
callback's first call, before a state could be saved beside the wrong
weights.

Example:
    >>> import contextlib, io, importlib, os, tempfile
    >>> import mlx.optimizers as optim
    >>> from mlx_lm.tuner.trainer import TrainingArgs, train
    >>> import multiopt_lab as mol
    >>> llama = importlib.import_module("mlx_lm.models.llama")
    >>> model = llama.Model(llama.ModelArgs.from_dict({
    ...     "model_type": "llama", "hidden_size": 16, "num_hidden_layers": 1,
    ...     "intermediate_size": 32, "num_attention_heads": 2, "rms_norm_eps": 1e-5,
    ...     "vocab_size": 32}))
    >>> optimizer = mol.MultiOptimizer([optim.Adam(1e-3), optim.AdamW(1e-3)], ["ndim == 2"])
    >>> adapters = os.path.join(tempfile.mkdtemp(), "adapters.safetensors")  # mlx-lm saves there
    >>> args = TrainingArgs(batch_size=2, iters=4, steps_per_report=2, adapter_file=adapters)
    >>> callback = LabCallback(optimizer, model, args=args)
    >>> data = [([1, 2, 3, 4, 5], 0), ([5, 6, 7, 8, 9], 0)]
    >>> with contextlib.redirect_stdout(io.StringIO()):  # mlx-lm prints its own report
    ...     train(model, optimizer, data, args=args, training_callback=callback,
    ...           iterate_batches=callback.iterate_batches)
    >>> frame = callback.history.frame
    >>> frame[frame.metric == "loss"].step.tolist(), optimizer.metrics_step
    ([2, 4], 4)
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from pathlib import Path
from typing import Any
from collections.abc import Callable

import mlx.core as mx
from mlx.utils import tree_flatten
from mlx_lm.tuner.trainer import TrainingCallback
from mlx_lm.tuner.trainer import iterate_batches as mlx_lm_iterate_batches

from multiopt_lab._src.arguments import (check_callable, check_flag, check_model, check_number,
                                    check_optimizer, check_path, check_text, found)
from multiopt_lab._src.training.arguments import check_history
from multiopt_lab._src.io.checkpoint import LoadReport, load_state, state_metadata
from multiopt_lab._src.io.checkpoint import save_state as write_state
from multiopt_lab._src.io.checksum import checksum
from multiopt_lab._src.io.safetensors_reader import SafetensorsFile, read_header
from multiopt_lab._src.optimizer.describe import optimizer_metadata
from multiopt_lab._src.optimizer.reporting import report_findings
from multiopt_lab._src.partition.labels import TOTAL_LABEL
from multiopt_lab._src.training.history import History
from multiopt_lab._src.training.loop_activity import training_in_progress

__all__ = ["LabCallback", "resume", "state_file_for", "adapters_checksum"]

#: The optimizer's state file, next to mlx-lm's adapter file.
STATE_FILE = "optimizer.safetensors"
#: Metadata of a state file LabCallback writes: the iteration, and the checksum of
#: the adapters (the model's trainable parameters) mlx-lm saves at that iteration.
ITERATION_KEY = "mlx_lm.iteration"
ADAPTERS_KEY = "mlx_lm.adapters_crc32"
#: mlx-lm's name for the adapters of an iteration (``0000100_adapters.safetensors``).
_NUMBERED = re.compile(r"(\d+)_adapters\.safetensors")
#: How many numbered adapter files :func:`resume` reads, newest first, to name
#: the iteration of the adapters a model holds.
_LOOK_AT = 20


def state_file_for(adapter_file: str | os.PathLike, iteration: int | None = None) -> Path:
    """Where :class:`LabCallback` saves the optimizer state for ``adapter_file``.

    ``optimizer.safetensors`` next to it (the latest), or, for an
    ``iteration``, ``0000100_optimizer.safetensors`` (mlx-lm's numbering of its
    adapter checkpoints).

    Example:
        >>> state_file_for("runs/a/adapters.safetensors").as_posix()
        'runs/a/optimizer.safetensors'
        >>> state_file_for("adapters.safetensors", 100).name
        '0000100_optimizer.safetensors'
    """
    check_path(adapter_file, "state_file_for()", "adapter_file")
    check_number(iteration, "state_file_for()", "iteration", low=0, integer=True, optional=True)
    folder = Path(adapter_file).parent
    return folder / (STATE_FILE if iteration is None else f"{iteration:07d}_{STATE_FILE}")


def adapters_checksum(model: Any) -> str:
    """The checksum of what mlx-lm saves as adapters: the model's trainable parameters.

    The same as the checksum of the arrays of the file mlx-lm writes from them.

    Example:
        >>> import mlx.nn as nn
        >>> len(adapters_checksum(nn.Linear(2, 2)))
        8
    """
    check_model(model, "adapters_checksum()")
    return checksum(dict(tree_flatten(model.trainable_parameters())), {})


def _file_checksum(adapter_file: Path) -> str | None:
    """:func:`adapters_checksum` of the arrays in an adapter file; None if it cannot be read."""
    try:
        with SafetensorsFile(adapter_file) as stored:
            arrays = stored.arrays
    except (OSError, ValueError):
        return None
    return checksum(arrays, {})


def _numbered_iteration(adapter_file: str | os.PathLike) -> int | None:
    """The iteration in mlx-lm's name of a numbered adapter file, else None."""
    match = _NUMBERED.fullmatch(Path(adapter_file).name)
    return int(match.group(1)) if match else None


def resume(optimizer: Any, model: Any, adapter_file: str | os.PathLike,
           iteration: int | None = None, strict: bool = True) -> LoadReport:
    """Load the optimizer state :class:`LabCallback` saved next to ``adapter_file``.

    Load the adapters into the model first (``model.load_weights(adapter_file,
    strict=False)``, as mlx-lm's ``--resume-adapter-file`` does); the state's
    groups are checked against the model's parameters, and the model's
    adapters against the ones saved with the state: weights and a state from
    different iterations (a run stopped between the two saves) are refused,
    naming both iterations. The state is ``optimizer.safetensors``, or for a
    numbered adapter file (``0000100_adapters.safetensors``) or an
    ``iteration``, ``0000100_optimizer.safetensors``. A state file written
    without the adapters' checksum (by ``save_state`` itself) is loaded
    unchecked.

    Args:
        optimizer (Optimizer): Where to load (unchanged on any error).
        model (nn.Module): The model, its adapters loaded.
        adapter_file (str | PathLike): The adapter file loaded into the model.
        iteration (int, optional): Load the state of this iteration. Default:
            the one ``adapter_file``'s name gives, else the latest.
        strict (bool, optional): As for :func:`multiopt_lab.load_state`. Default: ``True``.

    Raises:
        ValueError: The state and the adapters are from different iterations,
            or the state does not fit the optimizer and model.

    Example:
        >>> import os, tempfile, mlx.nn as nn, mlx.optimizers as optim
        >>> from multiopt_lab import MultiOptimizer, save_state
        >>> model = nn.Linear(2, 2)
        >>> optimizer = MultiOptimizer([optim.SGD(0.1, momentum=0.9)])
        >>> optimizer.init(model.trainable_parameters())
        >>> adapters = os.path.join(tempfile.mkdtemp(), "adapters.safetensors")
        >>> save_state(state_file_for(adapters), optimizer)  # what save_state=True writes
        >>> resume(MultiOptimizer([optim.SGD(0.1, momentum=0.9)]), model, adapters).loaded
        ('weight', 'bias')
    """
    check_optimizer(optimizer, "resume()")
    check_model(model, "resume()")
    check_path(adapter_file, "resume()", "adapter_file")
    check_number(iteration, "resume()", "iteration", low=0, integer=True, optional=True)
    check_flag(strict, "resume()", "strict")
    named = _numbered_iteration(adapter_file)
    if iteration is not None and named is not None and named != iteration:
        raise ValueError(f"resume(): adapter_file {Path(adapter_file).name!r} holds the adapters "
                         f"of iteration {named}, but iteration={iteration} asks for the optimizer "
                         f"state of iteration {iteration}; pass the adapters and the iteration of "
                         "one save")
    iteration = named if iteration is None else iteration
    state_file = state_file_for(adapter_file, iteration)
    _check_same_iteration(model, Path(adapter_file), state_file, state_metadata(state_file))
    return load_state(state_file, optimizer, strict, parameters=model)


def _check_same_iteration(model: Any, adapter_file: Path, state_file: Path,
                          metadata: dict[str, str]) -> None:
    """Refuse a model whose adapters are not the ones saved with ``state_file``."""
    saved = metadata.get(ADAPTERS_KEY)
    if saved is None:
        return  # written without the checksum: nothing to compare with
    held = adapters_checksum(model)
    if held == saved:
        return
    state_iteration = metadata.get(ITERATION_KEY, "?")
    where = _iteration_of(held, adapter_file)
    loaded = _file_checksum(adapter_file) == held
    if where is not None:
        what = (f"the model holds the adapters of iteration {where[0]} (as {where[1]}"
                + (f", and {adapter_file.name}" if loaded and adapter_file.name != where[1] else "")
                + ")")
    elif loaded:
        what = f"the model holds the adapters of {adapter_file.name}, from another iteration"
    else:
        what = (f"the model holds adapters that are neither {adapter_file.name} nor any other "
                f"adapter file in {adapter_file.parent} (were they loaded into the model?)")
    same = adapter_file.parent / f"{int(state_iteration):07d}_adapters.safetensors" \
        if state_iteration.isdecimal() else None
    fix = (f"load the adapters of iteration {state_iteration} first "
           f"(model.load_weights({str(same)!r}, strict=False))" if same is not None and same.exists()
           else "load the adapters saved with it first")
    raise ValueError(
        f"resume(): {state_file.name} holds the optimizer state of iteration {state_iteration}, "
        f"but {what}: weights and optimizer state from different iterations would train on "
        f"as neither run did (a run stopped between mlx-lm's save and the callback's?). "
        f"To resume from iteration {state_iteration}, {fix}; to resume from the model's "
        "adapters, pass the iteration of their optimizer state (iteration=N)")


def _iteration_of(held: str, adapter_file: Path) -> tuple[int, str] | None:
    """``(iteration, file name)`` of the saved adapters whose checksum is ``held``: from the
    numbered state files' metadata, else the newest numbered adapter files' contents."""
    folder = adapter_file.parent
    states = sorted(folder.glob(f"*_{STATE_FILE}"), reverse=True)
    for state in states:
        try:
            metadata = read_header(state)
        except (OSError, ValueError):
            continue
        if metadata.get(ADAPTERS_KEY) == held and metadata.get(ITERATION_KEY, "").isdecimal():
            iteration = int(metadata[ITERATION_KEY])
            return iteration, f"{iteration:07d}_adapters.safetensors"
    numbered = sorted((f for f in folder.glob("*_adapters.safetensors")
                       if _numbered_iteration(f) is not None), reverse=True)
    for file in numbered[:_LOOK_AT]:
        numbered_at = _numbered_iteration(file)
        if numbered_at is not None and _file_checksum(file) == held:
            return numbered_at, file.name
    return None


class LabCallback(TrainingCallback):
    """An mlx-lm ``TrainingCallback`` that records, applies live edits and saves the optimizer.

    Args:
        optimizer (Optimizer): The optimizer mlx-lm trains with: a
            ``MultiOptimizer`` (groups, metrics, edits) or any MLX optimizer
            (its loss and learning rate only).
        model (nn.Module): The model mlx-lm trains.
        history (History, optional): Where to record. Default: a new one.
        args (TrainingArgs, optional): The arguments given to ``train``. With
            them, metrics are computed only on reported steps (through
            :meth:`iterate_batches`) and ``save_state`` knows where and when
            mlx-lm saves. Default: ``None``.
        metrics (bool, optional): Record the per-group metrics (they turn
            the optimizer's ``metrics_every`` on). Default: ``True``.
        per_parameter (bool, optional): Also record every parameter's
            metrics (``history.parameters``), computed in mlx-lm's compiled
            step on the reported steps; sets the optimizer's
            ``per_parameter``. ``None``: as the optimizer is set. Default: ``None``.
        save_state (bool, optional): Save the optimizer state with
            :func:`multiopt_lab.save_state` next to the adapters whenever
            mlx-lm saves them (needs ``args``; when ``steps_per_save`` is not
            a multiple of ``steps_per_report``, also ``train(...,
            iterate_batches=callback.iterate_batches)``, or the run is
            refused at the callback's first call). Default: ``False``.
        run (str, optional): Name of the run in the history. Default: a new name.
        iterate_batches (callable, optional): The batch iterator given to
            ``train``, if not mlx-lm's own. Default: mlx-lm's.
        wrapped_callback (TrainingCallback, optional): Another callback to
            call too (mlx-lm's ``WandBCallback``, ...). Default: ``None``.
        warn_findings (bool, optional): Warn once per finding of severity
            error or warning in how ``optimizer`` splits ``model`` (MLX's
            ``Muon`` on a norm, Muon on expert stacks, a dead rule...), when
            the callback is made; ``False`` marks them reported without a
            warning. Default: ``True``.

    Attributes:
        history (History): The history recorded into.
        run (str): The run's name in it.

    Example:
        >>> import mlx.nn as nn, mlx.optimizers as optim
        >>> from multiopt_lab import MultiOptimizer
        >>> model = nn.Linear(4, 4)
        >>> opt = MultiOptimizer([optim.Adam(1e-3), optim.SGD(0.1)], ["ndim == 2"])
        >>> callback = LabCallback(opt, model)
        >>> callback.on_train_loss_report({"iteration": 10, "train_loss": 2.5})
        >>> callback.history.last("loss"), callback.history.last("learning_rate", group="sgd")
        (2.5, 0.1...)
    """

    def __init__(self, optimizer: Any, model: Any, history: History | None = None, *,
                 args: Any = None, metrics: bool = True, save_state: bool = False,
                 run: str | None = None, iterate_batches: Callable | None = None,
                 wrapped_callback: TrainingCallback | None = None, warn_findings: bool = True,
                 per_parameter: bool | None = None):
        where = "LabCallback()"
        check_optimizer(optimizer, where)
        check_model(model, where)
        check_history(history, where)
        _check_training_args(args, where)
        check_flag(metrics, where, "metrics")
        check_flag(save_state, where, "save_state")
        check_flag(warn_findings, where, "warn_findings")
        check_text(run, where, "run", optional=True)
        check_callable(iterate_batches, where, "iterate_batches",
                       "a function with the signature of mlx-lm's iterate_batches", optional=True)
        if wrapped_callback is not None and not all(
                callable(getattr(wrapped_callback, hook, None))
                for hook in ("on_train_loss_report", "on_val_loss_report")):
            raise TypeError(f"{where}: wrapped_callback must be an mlx-lm TrainingCallback (with "
                            f"on_train_loss_report and on_val_loss_report), found "
                            f"{found(wrapped_callback)}")
        if save_state and args is None:
            raise ValueError("save_state=True needs args (the TrainingArgs given to train), "
                             "to know where mlx-lm saves its adapters and when; pass args=args")
        if per_parameter is not None:
            check_flag(per_parameter, where, "per_parameter")
            if per_parameter and not (metrics and hasattr(optimizer, "per_parameter")):
                raise ValueError(f"{where}: per_parameter=True needs a multiopt_lab MultiOptimizer "
                                 f"and metrics=True, found {type(optimizer).__name__} and "
                                 f"metrics={metrics!r}")
            if hasattr(optimizer, "per_parameter"):
                optimizer.per_parameter = per_parameter
        self.optimizer, self.model, self.args = optimizer, model, args
        self.history = history if history is not None else History()
        self.save_state = save_state
        self.wrapped_callback = wrapped_callback
        self._inner = iterate_batches or mlx_lm_iterate_batches
        self._multi = hasattr(optimizer, "between_steps")
        self._metrics = metrics and hasattr(optimizer, "metrics_every")
        self._per_step = False
        self._seen_metrics_step = None
        self._saved: set[int] = set()
        self._training: contextlib.AbstractContextManager | None = None
        # mlx-lm saves on rank 0 only; so does the callback.
        self._writes = mx.distributed.init().rank() == 0
        #: The first iteration at which mlx-lm saves without reporting first (None:
        #: every save follows a report): only iterate_batches sees it.
        self._unreported_save = _first_unreported_save(args) if save_state else None
        if self._metrics and optimizer.metrics_every is None:
            optimizer.metrics_every = 1  # inside a compiled step the variant decides
        # Before between_steps routes: the optimizer then knows what was reported.
        report_findings(optimizer, model, warn=warn_findings)
        metadata = dict(optimizer_metadata(optimizer), trainer="mlx_lm")
        self.run = self.history.start_run(run, metadata)
        if self._multi:
            # The state must exist before train() captures it (or its first
            # trace would be followed by a second one), and a request made
            # before the first report is waited for, not warned about.
            optimizer.between_steps(model, record_metrics=self._metrics or None)

    # -- mlx-lm's hooks ---------------------------------------------------------------
    def on_train_loss_report(self, train_info: dict) -> None:
        """Record the report of iteration ``train_info["iteration"]``; apply a requested edit."""
        iteration = int(train_info["iteration"])
        self._check_saves_are_seen(iteration)
        if self._multi and not self._per_step:
            self.optimizer.between_steps(self.model, record_metrics=self._metrics or None)
        scalars = _scalars(train_info, ("tokens_per_second", "peak_memory"))
        if not hasattr(self.optimizer, "learning_rates"):  # one plain optimizer: no groups
            scalars.update(_scalars(train_info, ("learning_rate",)))
        values, parameters = self._group_values()
        self.history.record(iteration, loss=train_info.get("train_loss"), metrics=values,
                            parameters=parameters, run=self.run, **scalars)
        self._save_if_due(iteration)
        if self.args is not None and iteration >= self.args.iters:
            self._stop_training_mark()
        if self.wrapped_callback is not None:
            self.wrapped_callback.on_train_loss_report(train_info)
        if self.args is not None and iteration >= self.args.iters:
            # mlx-lm calls no callback when training ends: its last report ends the run, so
            # monitors and the lab draw the final state (and a saved notebook keeps it).
            self.history.end_run(self.run)

    def on_val_loss_report(self, val_info: dict) -> None:
        """Record the validation loss of iteration ``val_info["iteration"]``."""
        self._check_saves_are_seen(int(val_info["iteration"]))
        self.history.record(int(val_info["iteration"]), run=self.run,
                            val_loss=val_info["val_loss"])
        if self.wrapped_callback is not None:
            self.wrapped_callback.on_val_loss_report(val_info)

    def iterate_batches(self, *args: Any, **kwargs: Any):
        """mlx-lm's batch iterator, with this callback running before every training step.

        Pass it to ``train(..., iterate_batches=callback.iterate_batches)``.
        Validation batches (``loop=False``) go through untouched.
        """
        batches = self._inner(*args, **kwargs)
        if not kwargs.get("loop", False):
            yield from batches
            return
        self._per_step = True
        self._start_training_mark()
        iteration = 0
        try:
            for iteration, batch in enumerate(batches, start=1):
                self._before_step(iteration)
                yield batch
            # The batches ran out before args.iters: mlx-lm leaves its loop and saves
            # adapters.safetensors from this last iteration.
            self._save_if_due(iteration, final=True)
        finally:
            self._stop_training_mark()

    # -- what runs between steps ---------------------------------------------------------
    def _before_step(self, iteration: int) -> None:
        if iteration > 1:
            self._save_if_due(iteration - 1)
        if self._multi:
            record = self._records(iteration) if self._metrics else None
            self.optimizer.between_steps(self.model, record_metrics=record)

    def _records(self, iteration: int) -> bool:
        """Whether the update of ``iteration`` is the last one before the next report."""
        args = self.args
        if args is None:
            return True
        accumulation = max(int(getattr(args, "grad_accumulation_steps", 1)), 1)
        if iteration % accumulation:
            return False  # no optimizer update on this iteration
        every = max(int(args.steps_per_report), 1)
        report = min(math.ceil(iteration / every) * every, args.iters)
        return iteration + accumulation > report

    def _group_values(self) -> tuple[dict | None, Any]:
        """Every group's learning rate and new metrics, and the new per-parameter metrics."""
        optimizer = self.optimizer
        values: dict[str, dict[str, float]] = {}
        parameters = None
        rates = getattr(optimizer, "learning_rates", None)
        if rates is None:
            return None, None
        for label, rate in rates.items():
            values[label] = {"learning_rate": math.nan if rate is None else rate}
        if self._metrics:
            step = optimizer.metrics_step
            if step is not None and step != self._seen_metrics_step:
                self._seen_metrics_step = step
                for label, metrics in (optimizer.metrics or {}).items():
                    values.setdefault(label, {}).update(
                        {k: v for k, v in metrics.items()
                         if label != TOTAL_LABEL or k != "learning_rate"})
                if getattr(optimizer, "per_parameter", False):
                    parameters = optimizer.parameter_metrics
        return values, parameters

    def _save_if_due(self, iteration: int, final: bool = False) -> None:
        """Save the state beside the adapters mlx-lm saves at ``iteration`` (if it does):
        ``optimizer.safetensors`` with ``adapters.safetensors``, and the numbered file with
        the numbered adapters. ``final``: mlx-lm's loop ends after this iteration."""
        args = self.args
        if not self.save_state or not self._writes or iteration < 1 or iteration in self._saved:
            return
        periodic = iteration % max(int(args.steps_per_save), 1) == 0
        if not (periodic or final or iteration >= args.iters):
            return
        self._saved.add(iteration)
        # The model's trainable parameters are what mlx-lm writes at this iteration:
        # the state records their checksum, for resume() to check the pair.
        metadata = {ITERATION_KEY: str(iteration), ADAPTERS_KEY: adapters_checksum(self.model)}
        write_state(state_file_for(args.adapter_file), self.optimizer, metadata=metadata)
        if periodic:
            write_state(state_file_for(args.adapter_file, iteration), self.optimizer,
                        metadata=metadata)

    def _check_saves_are_seen(self, iteration: int) -> None:
        """Refuse, at the callback's first call, saves it cannot follow (see ``save_state``)."""
        first = self._unreported_save
        if first is None or self._per_step:
            return
        args = self.args
        # This is the first call: every save before this iteration followed no report.
        written = [f"{i:07d}_adapters.safetensors" for i in range(first, iteration, first)]
        raise ValueError(
            f"LabCallback(save_state=True): mlx-lm saves the adapters every "
            f"{args.steps_per_save} iterations ({first}, {2 * first}, ...) but calls this "
            f"callback only at its reports, every {args.steps_per_report}: the optimizer state "
            "cannot be saved at the iterations of those adapters. Pass "
            "train(..., iterate_batches=callback.iterate_batches) (the callback then runs before "
            "every step), or make steps_per_save a multiple of steps_per_report"
            + (f"; already written without an optimizer state: {', '.join(written[:5])}"
               + (" ..." if len(written) > 5 else "") if written else ""))

    def _start_training_mark(self) -> None:
        # While it is entered the rule editor's messages are handled on a kernel
        # subshell, so an Apply lands during train(), not after the cell.
        if self._training is None:
            self._training = training_in_progress()
            self._training.__enter__()

    def _stop_training_mark(self) -> None:
        if self._training is not None:
            training, self._training = self._training, None
            training.__exit__(None, None, None)


def _check_training_args(args: Any, where: str) -> None:
    """``args`` must be mlx-lm's ``TrainingArgs`` (or None), with positive step counts."""
    if args is None:
        return
    needed = ("iters", "steps_per_report", "steps_per_save", "adapter_file")
    missing = [name for name in needed if not hasattr(args, name)]
    if missing:
        raise TypeError(f"{where}: args must be mlx-lm's TrainingArgs (the one given to train), "
                        f"found {found(args)}, which lacks {', '.join(missing)}; pass args=args")
    for name in ("iters", "steps_per_report", "steps_per_save"):
        check_number(getattr(args, name), where, f"args.{name}", low=1, integer=True)
    check_path(args.adapter_file, where, "args.adapter_file")


def _first_unreported_save(args: Any) -> int | None:
    """The first iteration at which mlx-lm saves adapters with no report just before, or None.

    mlx-lm reports at multiples of ``steps_per_report`` and at ``iters``, saves at
    multiples of ``steps_per_save``: every save follows a report when
    ``steps_per_save`` is a multiple of ``steps_per_report``, or saves never come
    before the last iteration.

    Example:
        >>> from mlx_lm.tuner.trainer import TrainingArgs
        >>> _first_unreported_save(TrainingArgs(iters=10, steps_per_report=3, steps_per_save=2))
        2
        >>> _first_unreported_save(TrainingArgs(iters=10, steps_per_report=2, steps_per_save=4)) is None
        True
    """
    if args is None:
        return None
    every, report = int(args.steps_per_save), int(args.steps_per_report)
    if every % report == 0 or every >= int(args.iters):
        return None
    return every


def _scalars(info: dict, names: tuple[str, ...]) -> dict[str, float]:
    return {name: float(info[name]) for name in names if isinstance(info.get(name), (int, float))}

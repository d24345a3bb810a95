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
  adapters whenever mlx-lm saves them, so a run resumes with :func:`resume`.

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

import math
import os
from pathlib import Path
from typing import Any, Callable

from mlx_lm.tuner.trainer import TrainingCallback
from mlx_lm.tuner.trainer import iterate_batches as mlx_lm_iterate_batches

from multiopt_lab.io.checkpoint import LoadReport, load_state
from multiopt_lab.io.checkpoint import save_state as write_state
from multiopt_lab.optimizer.describe import optimizer_metadata
from multiopt_lab.partition.labels import TOTAL_LABEL
from multiopt_lab.training.history import History
from multiopt_lab.training.loop_activity import training_in_progress

__all__ = ["LabCallback", "resume", "state_file_for"]

#: The optimizer's state file, next to mlx-lm's adapter file.
STATE_FILE = "optimizer.safetensors"


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
    folder = Path(adapter_file).parent
    return folder / (STATE_FILE if iteration is None else f"{iteration:07d}_{STATE_FILE}")


def resume(optimizer: Any, model: Any, adapter_file: str | os.PathLike,
           iteration: int | None = None, strict: bool = True) -> LoadReport:
    """Load the optimizer state :class:`LabCallback` saved next to ``adapter_file``.

    Load the adapters into the model first (``model.load_weights(adapter_file,
    strict=False)``, as mlx-lm's ``--resume-adapter-file`` does); the state's
    groups are checked against the model's parameters.

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
    return load_state(state_file_for(adapter_file, iteration), optimizer, strict,
                      parameters=model)


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
            mlx-lm saves them (needs ``args``). Default: ``False``.
        run (str, optional): Name of the run in the history. Default: a new name.
        iterate_batches (callable, optional): The batch iterator given to
            ``train``, if not mlx-lm's own. Default: mlx-lm's.
        wrapped_callback (TrainingCallback, optional): Another callback to
            call too (mlx-lm's ``WandBCallback``, ...). Default: ``None``.

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
                 wrapped_callback: TrainingCallback | None = None,
                 per_parameter: bool | None = None):
        if save_state and args is None:
            raise ValueError("save_state=True needs args (the TrainingArgs given to train), "
                             "to know where mlx-lm saves its adapters and when; pass args=args")
        if iterate_batches is not None and not callable(iterate_batches):
            raise TypeError(f"expected iterate_batches to be callable (mlx-lm's signature), "
                            f"found {type(iterate_batches).__name__}")
        if per_parameter is not None:
            if not isinstance(per_parameter, bool):
                raise TypeError(f"expected per_parameter to be True, False or None, found "
                                f"{per_parameter!r}")
            if per_parameter and not (metrics and hasattr(optimizer, "per_parameter")):
                raise ValueError("per_parameter=True needs a multiopt_lab MultiOptimizer and "
                                 f"metrics=True, found {type(optimizer).__name__} and "
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
        self._training = None
        if self._metrics and optimizer.metrics_every is None:
            optimizer.metrics_every = 1  # inside a compiled step the variant decides
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

    def on_val_loss_report(self, val_info: dict) -> None:
        """Record the validation loss of iteration ``val_info["iteration"]``."""
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
        try:
            for iteration, batch in enumerate(batches, start=1):
                self._before_step(iteration)
                yield batch
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

    def _save_if_due(self, iteration: int) -> None:
        args = self.args
        if not self.save_state or iteration in self._saved:
            return
        if iteration % max(int(args.steps_per_save), 1) and iteration < args.iters:
            return
        self._saved.add(iteration)
        write_state(state_file_for(args.adapter_file), self.optimizer)
        if iteration % max(int(args.steps_per_save), 1) == 0:
            write_state(state_file_for(args.adapter_file, iteration), self.optimizer)

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


def _scalars(info: dict, names: tuple[str, ...]) -> dict[str, float]:
    return {name: float(info[name]) for name in names if isinstance(info.get(name), (int, float))}

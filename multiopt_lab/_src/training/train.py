"""A small training loop that records into a History.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from multiopt_lab._src.arguments import (check_model, check_optimizer, checked, found, function,
                                    is_flag, is_text, optional)
from multiopt_lab._src.training.arguments import check_history
from multiopt_lab._src.optimizer.describe import optimizer_metadata
from multiopt_lab._src.optimizer.recorder import check_every, check_per_parameter
from multiopt_lab._src.optimizer.multi_optimizer import MultiOptimizer
from multiopt_lab._src.optimizer.reporting import report_findings
from multiopt_lab._src.training.compile_step import compile_step
from multiopt_lab._src.distributed.data_parallel import DataParallel, data_parallel
from multiopt_lab._src.distributed.sync import check_same_partition
from multiopt_lab._src.training.history import History
from multiopt_lab._src.training.loop_activity import training_in_progress
from multiopt_lab._src.training.progress import StopSignal, catch_interrupt, finish_progress, make_progress

#: The reason catch_interrupt gives for Ctrl-C (see multiopt_lab._src.training.progress).
INTERRUPT_REASON = "interrupted (Ctrl-C)"

__all__ = ["train"]

Callback = Callable[[int, float, History], Any]


def _batch_source(batches: Any) -> Callable[[int], tuple]:
    if callable(batches) and not hasattr(batches, "__iter__"):
        return batches
    if isinstance(batches, Iterable):
        iterator = iter(batches)
        return lambda _index: next(iterator)
    raise TypeError(
        f"batches must be an iterable of batches or a callable step -> batch, found {type(batches).__name__}"
    )


def _check_batches(batches: Any, where: str, name: str) -> Any:
    # A string or a dict is iterable too, but its items are characters or keys.
    if isinstance(batches, (str, bytes, Mapping)) or not (
            callable(batches) or isinstance(batches, Iterable)):
        raise TypeError(f"{where}: {name} must be an iterable of batches (tuples of the "
                        f"arguments after the model) or a function step -> batch, found "
                        f"{found(batches)}")
    return batches


def _check_callbacks(callbacks: Any, where: str, name: str) -> Any:
    if callable(callbacks) or not isinstance(callbacks, (list, tuple)) or not all(
            callable(c) for c in callbacks):
        raise TypeError(f"{where}: {name} must be a list of functions (step, loss, history) -> "
                        f"bool | None, found {found(callbacks)}; wrap one in a list")
    return callbacks


def _check_progress(progress: Any, where: str, name: str) -> Any:
    if isinstance(progress, bool) or progress is None or callable(progress) or all(
            callable(getattr(progress, hook, None)) for hook in ("update", "close")):
        return progress
    raise TypeError(f"{where}: {name} must be True, False, a function (total, stop) -> progress "
                    f"or an object with update(step, loss) and close(), found {found(progress)}")


def _as_arguments(batch: Any) -> tuple:
    return tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)


def _make_step(model: nn.Module, optimizer: optim.Optimizer, loss_fn: Callable, compile: bool,
               parallel: DataParallel | None = None) -> Callable:
    loss_and_grad = nn.value_and_grad(model, loss_fn)

    def step(*batch):
        loss, gradients = loss_and_grad(model, *batch)
        if parallel is not None:
            gradients = parallel.average_gradients(gradients)
        optimizer.update(model, gradients)
        return loss

    if not compile:
        return step
    # The state must exist before tracing, or the compiled function would
    # capture an empty optimizer state.
    # Ours takes the model itself, whose module classes rules may read.
    optimizer.init(model if isinstance(optimizer, MultiOptimizer) else model.trainable_parameters())
    # compile_step is mx.compile(step, inputs=state, outputs=state) that also
    # re-traces after a repartition and skips metrics on unrecorded steps.
    return compile_step(step, model, optimizer)


def _optimizer_metrics(optimizer: Any, seen_step: Any,
                       every: int | None) -> tuple[Any, Any, Any]:
    """The optimizer's metrics and per-parameter metrics if they are new and due (steps 1, 1 + k, ...)."""
    metrics_step = getattr(optimizer, "metrics_step", None)
    if every is None or metrics_step is None or metrics_step == seen_step:
        return None, None, seen_step
    # Keep only steps 1, 1 + k, ... even if the optimizer computed more.
    if (int(metrics_step) - 1) % every:
        return None, None, metrics_step
    parameters = optimizer.parameter_metrics if getattr(optimizer, "per_parameter", False) else None
    return optimizer.metrics or None, parameters, metrics_step


def _set_per_parameter(optimizer: optim.Optimizer, per_parameter: bool | None) -> bool | None:
    """Set ``optimizer.per_parameter`` (None: leave it); returns the value to restore."""
    if per_parameter is None:
        return None
    check_per_parameter(per_parameter)
    if not hasattr(optimizer, "per_parameter"):
        if per_parameter:
            raise ValueError(f"per_parameter=True needs a multiopt_lab MultiOptimizer (it computes "
                             f"the metrics inside its update), found {type(optimizer).__name__}; "
                             "wrap the optimizer: MultiOptimizer([optimizer])")
        return None
    previous = optimizer.per_parameter
    optimizer.per_parameter = per_parameter
    return previous


@checked(model=check_model, optimizer=check_optimizer,
         loss_fn=function("a function (model, *batch) -> scalar loss"), batches=_check_batches,
         history=check_history, compile=is_flag, callbacks=_check_callbacks,
         progress=_check_progress, run=optional(is_text), warn_findings=is_flag,
         per_parameter=optional(is_flag))
def train(
    model: nn.Module,
    optimizer: optim.Optimizer,
    loss_fn: Callable,
    batches: Iterable | Callable[[int], Any],
    steps: int,
    *,
    history: History | None = None,
    metrics_every: int | None = 10,
    compile: bool = False,
    callbacks: Iterable[Callback] = (),
    progress: bool | Any = True,
    run: str | None = None,
    distributed: DataParallel | bool | None = None,
    warn_findings: bool = True,
    per_parameter: bool | None = None,
) -> History:
    """Train ``model`` for ``steps`` steps and record what happens.

    Each step computes ``loss_fn(model, *batch)`` and its gradients with
    ``nn.value_and_grad``, updates the model and records the loss. With a
    :class:`~multiopt_lab.MultiOptimizer` the per-group
    metrics are recorded every ``metrics_every`` steps; with a plain
    ``mlx.optimizers`` optimizer only the loss is.

    Ctrl-C (or the notebook's interrupt, or the Stop button of the notebook
    progress bar) ends training cleanly after the current step: the history
    keeps every step done. A second Ctrl-C raises ``KeyboardInterrupt`` at once.

    Args:
        model (nn.Module): The model.
        optimizer (mlx.optimizers.Optimizer): Any MLX optimizer.
        loss_fn (Callable): ``loss_fn(model, *batch) -> scalar array``.
        batches (Iterable | Callable[[int], tuple]): Batches (tuples of
            arguments after the model), or a function of the 0-based step
            number. Training ends early if an iterable runs out.
        steps (int): Steps to run.
        history (History, optional): Where to record. Default: a new one.
        metrics_every (int, optional): Record optimizer metrics every this
            many steps (``None``: never). Default: ``10``.
        compile (bool): Compile the step with ``mx.compile``. Default: ``False``.
        callbacks (Iterable[Callable]): Each called as
            ``callback(step, loss, history)`` after a step; returning ``True``
            stops training. Default: ``()``.
        progress (bool | object): ``True``: progress bar (widget in a
            notebook, text on stderr); ``False``: none; or a progress object
            (see :mod:`multiopt_lab._src.training.progress`). Default: ``True``.
        run (str, optional): Run name. A new name starts a run; an existing
            one is continued from its last step. Default: a new run.
        distributed (DataParallel | bool, optional): Data-parallel training
            (see :mod:`multiopt_lab._src.distributed.data_parallel`): each rank takes its
            slice of every batch, gradients are averaged, the loss recorded
            is the mean over ranks, and only rank 0 records, prints and
            shows progress. ``None``: on when started by ``mlx.launch`` with
            several ranks; ``False``: off. Default: ``None``.
        warn_findings (bool): Before the first step, warn once per finding
            of severity error or warning in how ``optimizer`` splits
            ``model`` (MLX's ``Muon`` on a bias, a dead rule, a near miss:
            one ``FindingWarning`` each, naming the paths). A
            ``MultiOptimizer`` remembers them and does not warn again;
            ``False`` marks them reported without a warning. Default: ``True``.
        per_parameter (bool, optional): Also record every parameter's
            metrics on the recorded steps (``history.parameters``); needs a
            ``MultiOptimizer``. ``None``: as the optimizer is set. Default: ``None``.

    Returns:
        History: ``history`` (or the new one), with this run recorded.

    Example:
        >>> import mlx.optimizers as optim
        >>> from multiopt_lab import examples
        >>> from multiopt_lab import MultiOptimizer
        >>> data = examples.digits()
        >>> optimizer = MultiOptimizer([optim.Adam(1e-2), optim.SGD(0.1)], ["ndim == 2"], labels=["matrices", "vectors"])
        >>> history = train(examples.MLP(64, 32, 10), optimizer, data.loss_fn, data.batch, 30, progress=False)
        >>> history.labels(), history.last_step()
        (('matrices', 'vectors'), 30)
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    metrics_every = check_every(metrics_every)
    history = history if history is not None else History()
    parallel = data_parallel(distributed)
    # Rank 0 alone speaks (as it alone prints and records).
    report_findings(optimizer, model, warn=warn_findings and (parallel is None or parallel.is_main))
    if parallel is not None:
        model.update(parallel.broadcast(model.parameters()))
        if not parallel.is_main:  # rank 0 alone records, prints and shows progress
            history, progress = History(), False
    next_batch = _batch_source(batches)
    has_metrics = hasattr(optimizer, "metrics_every")
    metered: Any = optimizer  # metrics_every, per_parameter: multiopt_lab's MultiOptimizer's
    previous_per_parameter = _set_per_parameter(optimizer, per_parameter)
    previous_every = metered.metrics_every if has_metrics else None
    if has_metrics:
        metered.metrics_every = metrics_every

    def restore() -> None:
        if has_metrics:
            metered.metrics_every = previous_every
        if previous_per_parameter is not None:
            metered.per_parameter = previous_per_parameter

    try:
        # After metrics_every is set: it decides what the optimizer state
        # holds, which a compiled step captures.
        step_fn = _make_step(model, optimizer, loss_fn, compile, parallel)
    except BaseException:
        restore()
        raise
    if run is not None and run in history.runs:
        start = history.last_step(run) or 0
        history.select_run(run)
    else:
        run = history.start_run(run, optimizer_metadata(optimizer))
        start = 0
    if parallel is not None:  # every rank resumes at the step rank 0's history says
        start = int(parallel.broadcast(mx.array(start)).item())
    stop = StopSignal()
    bar = make_progress(steps, stop, progress)
    seen_metrics_step = getattr(optimizer, "metrics_step", None)
    done = 0
    failure: BaseException | None = None
    try:
        with catch_interrupt(stop), training_in_progress():
            for index in range(start, start + steps):
                if parallel.any_rank(stop.requested) if parallel else stop.requested:
                    break
                try:
                    batch = _as_arguments(next_batch(index))
                    if parallel is not None:
                        batch = parallel.shard(batch)
                except StopIteration:
                    stop.request("the batches ran out")
                    break
                loss = step_fn(*batch)
                mx.eval(loss, model.state, optimizer.state)
                if parallel is not None and done == 0:  # other rules on a rank: stop now
                    check_same_partition(parallel.group, optimizer)
                metrics, parameters, seen_metrics_step = _optimizer_metrics(
                    optimizer, seen_metrics_step, metrics_every)
                loss_value = parallel.reduce({"loss": loss})["loss"] if parallel else loss.item()
                history.record(index + 1, loss=loss_value, metrics=metrics, parameters=parameters,
                               run=run)
                done += 1
                bar.update(done, loss_value)
                for callback in callbacks:
                    if callback(index + 1, loss_value, history) is True:
                        stop.request(f"callback {getattr(callback, '__name__', callback)!r} asked to stop")
    except BaseException as error:
        failure = error  # the bar says so, then the caller sees it
        raise
    finally:
        finish_progress(bar, failure)
        restore()
        history.end_run(run)
    if stop.requested and done < steps:
        # A stop the user asked for (Stop button, a callback, the batches ran
        # out) is news, not an error: stdout, so a notebook shows no stderr
        # box and nbval sees no error output. Ctrl-C still warns on stderr.
        interrupted = stop.reason == INTERRUPT_REASON
        print(
            f"Training stopped after {done} of {steps} steps ({stop.reason}); the history keeps them.",
            file=sys.stderr if interrupted else sys.stdout,
        )
    return history

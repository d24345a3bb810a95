"""Start a data-parallel run with ``mlx.launch`` and learn how it ended.

``mlx.launch`` starts the ranks and stops the others when one exits with an
error, but its own exit status is 0 either way (MLX 0.32). :func:`launch`
wraps it for scripts, tests and notebooks: a wall-clock limit that stops
every rank, output kept in files, and a :class:`DistributedRunError` that
names the rank that failed first (from the status that
:class:`~multiopt_lab.RankGuard` writes, or else from
the launcher's own warnings).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Mapping, Sequence

from multiopt_lab._src.arguments import found
from multiopt_lab._src.distributed.status import (RUN_DIR_ENV, failure_lines, progress_lines,
                                             read_status, status_path)

__all__ = ["DistributedRunError", "LaunchedRun", "RunResult", "launch"]

_ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
# MLX's ring backend when a port it was given is in use (errno 98, EADDRINUSE).
_PORT_TAKEN = re.compile(r"Couldn't bind socket \(error: (98|48)\)")
_PORT_RETRIES = 3


class DistributedRunError(RuntimeError):
    """A data-parallel run failed or ran past its time limit.

    Its message names the rank that failed first and where (step, error).

    Example:
        >>> try:
        ...     launch(["-c", "raise SystemExit(3)"], ranks=1, timeout_s=60).wait()
        ... except DistributedRunError as error:
        ...     for line in str(error).splitlines()[:2]:
        ...         print(line)
        Data-parallel run of 1 ranks failed.
          rank 0 exited with code 3 without reporting an error
    """


@dataclass
class RunResult:
    """How a finished run went: its output and each rank's last status.
    """

    stdout: str
    stderr: str
    statuses: list  # one dict (or None when the rank wrote none) per rank
    run_dir: str


class LaunchedRun:
    """A running ``mlx.launch`` job (made by :func:`launch`).
    """

    def __init__(self, process: subprocess.Popen, run_dir: Path, ranks: int,
                 timeout_s: float | None, restart: Callable[[], subprocess.Popen] | None = None,
                 retries: int = 0):
        self.process, self.run_dir, self.ranks = process, run_dir, ranks
        self.timeout_s = timeout_s
        self.started = time.monotonic()
        self._restart, self._retries = restart, retries
        #: How many times the run was started again because its ring ports were taken.
        self.restarts = 0

    def poll(self) -> int | None:
        """The launcher's exit status, or ``None`` while it runs."""
        return self.process.poll()

    def output(self) -> tuple[str, ...]:
        """The combined stdout and stderr of all ranks so far."""
        return tuple((self.run_dir / name).read_text(errors="replace")
                     for name in ("launcher.out", "launcher.err"))

    def stop(self) -> None:
        """Stop the launcher and every rank it started (SIGTERM, then SIGKILL)."""
        for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Ranks may outlive the launcher: kill what is left of the group and
        # wait (briefly) until it is gone.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.02)

    def wait(self, timeout_s: float | None = None) -> RunResult:
        """Wait for the run; raise :class:`DistributedRunError` unless every
        rank succeeded.

        Args:
            timeout_s (float, optional): Seconds from the start of the run
                after which every rank is stopped. Default: the one given to
                :func:`launch`.
        """
        limit = timeout_s if timeout_s is not None else self.timeout_s
        while True:
            remaining = None if limit is None else max(0.0, limit - (time.monotonic() - self.started))
            try:
                self.process.wait(remaining)
            except subprocess.TimeoutExpired:
                self.stop()
                what = f"did not finish within {limit:g} s; stopped every rank"
                raise DistributedRunError(self._report(what, progress_lines(self._statuses()))) from None
            finally:
                self.stop()  # also reaps ranks left behind by a dead launcher
            if not self._ports_were_taken():
                break
            self._start_again()
        failures = failure_lines(self._statuses(), self.output()[1])
        if failures or self.process.returncode != 0:
            raise DistributedRunError(self._report("failed", failures, ranked=True))
        out, err = self.output()
        return RunResult(out, err, self._statuses(), str(self.run_dir))

    def _ports_were_taken(self) -> bool:
        """Whether a rank could not bind its ring port (another process took it between our
        probe and MLX's bind) before any rank finished a step: then nothing ran yet."""
        if self._restart is None or self.restarts >= self._retries:
            return False
        if not _PORT_TAKEN.search(self.output()[1]):
            return False
        return all(s is None or s.get("step") is None for s in self._statuses())

    def _start_again(self) -> None:
        self.restarts += 1
        for name in ("launcher.out", "launcher.err"):
            (self.run_dir / name).replace(self.run_dir / f"{name}.attempt{self.restarts}")
        for rank in range(self.ranks):
            status_path(self.run_dir, rank).unlink(missing_ok=True)
        assert self._restart is not None  # only after _ports_were_taken(), which needs one
        self.process = self._restart()

    def _statuses(self) -> list:
        return [read_status(self.run_dir, r) for r in range(self.ranks)]

    def _report(self, what: str, lines: Sequence[str] = (), *, ranked: bool = False) -> str:
        stderr = _ANSI_COLOUR.sub("", self.output()[1])
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        report = [f"Data-parallel run of {self.ranks} ranks {what}."]
        report += [f"  {line}" + ("   <- first failure" if ranked and i == 0 and len(lines) > 1 else "")
                   for i, line in enumerate(lines)]
        if self.process.returncode not in (0, None, -signal.SIGTERM, -signal.SIGKILL) and not lines:
            report.append(f"  mlx.launch exited with code {self.process.returncode}")
        report.append(f"Logs in {self.run_dir}; the last lines of stderr:\n{tail}")
        return "\n".join(report)


def launch(
    command: Sequence[str],
    *,
    ranks: int = 2,
    backend: str = "ring",
    hosts: str | None = None,
    hostfile: str | os.PathLike | None = None,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    run_dir: str | os.PathLike | None = None,
    timeout_s: float | None = 600,
    starting_port: int | None = None,
) -> LaunchedRun:
    """Start ``python <command>`` on several ranks with ``mlx.launch``.

    Args:
        command (Sequence[str]): What follows ``python``: a script and its
            arguments, or ``["-m", "package.module", ...]``.
        ranks (int, optional): Ranks per host (``mlx.launch -n``). Default: ``2``.
        backend (str, optional): ``"ring"``, ``"mpi"``, ``"nccl"``... Default: ``"ring"``.
        hosts (str, optional): Comma-separated IPs. Default: ``None`` (this machine).
        hostfile (str, optional): An ``mlx.launch`` hostfile (JSON); its
            hosts replace ``hosts`` and ``ranks``. Default: ``None``.
        python (str, optional): The interpreter on every host. Default: this one.
        env (Mapping[str, str], optional): Extra environment for every rank.
        run_dir (str, optional): Folder for logs and rank status. Default: a new temporary folder.
        timeout_s (float, optional): Wall-clock limit for :meth:`LaunchedRun.wait`. Default: ``600``.
        starting_port (int, optional): First ring port. Default: free ports
            on this machine for a local run, MLX's default otherwise.

    Returns:
        LaunchedRun: Call ``.wait()`` for the :class:`RunResult`.

    Example:
        >>> script = "import mlx.core as mx; print(mx.distributed.init().size())"
        >>> launch(["-c", script], ranks=2, timeout_s=60).wait().stdout.split()
        ['2', '2']
    """
    if isinstance(command, (str, bytes)) or not isinstance(command, Sequence) or not all(
            isinstance(part, (str, os.PathLike)) for part in command):
        raise TypeError(f"launch(): command must be a list of strings (a script and its "
                        f"arguments), found {found(command)}; e.g. launch(['train.py', '--steps', "
                        "'100'])")
    python = python or sys.executable
    run_dir = Path(run_dir or tempfile.mkdtemp(prefix="multiopt_lab_run_"))
    run_dir.mkdir(parents=True, exist_ok=True)
    args = [*_launcher(python), "--backend", backend, "--python", python]
    if hostfile is not None:
        args += ["--hostfile", str(hostfile)]
        total = len(_hostfile_hosts(hostfile))
    else:
        args += ["--hosts", hosts or "127.0.0.1", "-n", str(ranks)]
        total = ranks * len((hosts or "127.0.0.1").split(","))
    for key, value in {RUN_DIR_ENV: str(run_dir.resolve()), **(env or {})}.items():
        args += ["--env", f"{key}={value}"]
    choose_ports = starting_port is None and backend == "ring" and hostfile is None and hosts is None

    def start() -> subprocess.Popen:
        port = _free_port_range(total) if choose_ports else starting_port
        ports = [] if port is None else ["--starting-port", str(port)]
        with open(run_dir / "launcher.out", "wb") as out, open(run_dir / "launcher.err", "wb") as err:
            return subprocess.Popen(
                [*args, *ports, "--", *command], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True,  # one process group: stop() reaches every rank
            )

    # Ports we chose were free when probed; another process may bind one before
    # the ranks do. The run then fails at once and is started again on others.
    return LaunchedRun(start(), run_dir, total, timeout_s, start if choose_ports else None,
                       retries=_PORT_RETRIES)


def _launcher(python: str) -> list[str]:
    """The ``mlx.launch`` command next to ``python``, or found on PATH."""
    beside = Path(python).parent / "mlx.launch"
    found = str(beside) if beside.exists() else shutil.which("mlx.launch")
    if found is None:
        raise DistributedRunError(
            f"Expected the mlx.launch command beside {python} or on PATH, found "
            "neither; install MLX into that environment (pip install mlx)."
        )
    return [found]


def _hostfile_hosts(hostfile) -> list:
    data = json.loads(Path(hostfile).read_text())
    return data["hosts"] if isinstance(data, dict) else data


def _free_port_range(count: int, attempts: int = 50) -> int:
    """A first port such that ``count`` consecutive ports are free here.

    Drawn at random below the kernel's ephemeral range, where the OS does
    not hand out ports to other programs' ``bind(0)`` and outgoing
    connections (those raced with the ring's bind before).
    """
    low, high = _below_ephemeral()
    draw = random.SystemRandom()
    for _ in range(attempts):
        first = draw.randrange(low, high - count)
        if all(_is_free(first + i) for i in range(count)):
            return first
    raise DistributedRunError(f"Found no {count} consecutive free ports on 127.0.0.1 between "
                              f"{low} and {high}.")


def _below_ephemeral() -> tuple[int, int]:
    try:
        start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        start = 32768  # Linux's default; macOS uses 49152 and up
    return (20000, start) if start > 21000 else (max(start, 1024), 20000)


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True

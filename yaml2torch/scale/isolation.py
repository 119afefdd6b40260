"""Run a trial's training in a child process, so a hang, a crash or a time limit cannot take the worker down.

The worker (parent) keeps the Optuna trial; the child trains and talks back over a pipe:
``channel.report(step, value)`` forwards an intermediate value and returns whether the
pruner wants the trial stopped; the child's return value (metrics) comes back when it ends.
The parent enforces the per-trial time limit by terminating the child.

The child is forked (cheap: torch and the data are already in memory; measured in
``bench/workers.py``). Forking is done only while CUDA is not initialized in the parent;
otherwise the caller should train in-process (``isolation_available``).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from yaml2torch.scale.faults import describe_failure


class TrialFailed(Exception):
    """The trial failed; ``reason`` says why in one line (the Optuna trial records it)."""

    def __init__(self, reason: str, details: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class TrialTimedOut(TrialFailed):
    pass


class Channel:
    """The child's end: report intermediate values and hear whether to prune."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def report(self, step: int, value: float) -> bool:
        self._connection.send(("report", step, float(value)))
        return bool(self._connection.recv())

    def call(self, payload: Any) -> Any:
        """Hand ``payload`` to the parent's ``on_call`` and return its answer."""
        self._connection.send(("call", payload))
        return self._connection.recv()


@dataclass(frozen=True)
class InProcessChannel:
    """The same interface for training in the worker's own process (no isolation)."""

    on_report: Callable[[int, float], bool] | None = None
    on_call: Callable[[Any], Any] | None = None

    def report(self, step: int, value: float) -> bool:
        return bool(self.on_report(step, value)) if self.on_report is not None else False

    def call(self, payload: Any) -> Any:
        return self.on_call(payload) if self.on_call is not None else None


def keep_parent_single_threaded() -> int:
    """Make this (parent) process run torch on one thread; returns the previous thread count.

    GNU OpenMP cannot be used in a forked child once the parent has started its thread pool
    (the child hangs). A worker that forks trials therefore never starts one: it only samples,
    compiles and waits; each child sets its own thread count (``child_threads``).
    """
    import torch  # a lookup in sys.modules once a trial has imported it

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    return previous


def isolation_available() -> bool:
    """Forking is safe unless this process has already initialized CUDA."""
    if sys.platform != "linux":
        return False
    torch = sys.modules.get("torch")
    return torch is None or not torch.cuda.is_initialized()


def _probe(channel: Channel) -> float:
    import torch

    value = torch.ones(1 << 18, requires_grad=True)
    total = value.exp().sum()  # large enough for a parallel region
    total.backward()  # raises here if this process's parent had started autograd's threads
    return float(total.detach())


def fork_works(threads: int, time_limit: float = 3.0) -> bool:
    """Whether a forked child can run torch with ``threads`` threads: fork one that tries.

    False when this process started GNU OpenMP's thread pool before (torch compute with more than
    one thread, e.g. an earlier training in the same Python session): the child would hang in its
    first parallel region; or autograd's threads (a backward pass here before): torch refuses the
    child's backward pass. A fresh ``yaml2torch`` process has done neither, so this costs one
    quick fork.
    """
    try:
        run_isolated(_probe, time_limit=time_limit, child_threads=threads)
    except TrialFailed:
        return False
    return True


def warm_up_torch() -> None:
    """Do once, here, what torch loads lazily on first use, so forked trials do not each pay it.

    The first optimizer built in a process imports ``torch._dynamo`` (about 1.3 s on 2 cores); a
    child that exits takes that import with it. No backward pass here: autograd's threads must
    not exist before a fork.
    """
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def _die_with_parent() -> None:
    # Linux: if the worker is killed (even with SIGKILL), the kernel kills this child too.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _child_main(connection: Any, worker_pid: int, threads: int | None, target: Callable[..., Any], args: tuple) -> None:
    _die_with_parent()
    if threads is not None and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    os.environ["YAML2TORCH_WORKER_PID"] = str(worker_pid)
    # The parent decides about stopping; Ctrl-C in a terminal reaches both, only the parent acts.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        result = target(Channel(connection), *args)
    except optuna.TrialPruned as exc:
        connection.send(("pruned", str(exc)))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the worker
        connection.send(("error", describe_failure(exc), traceback.format_exc()))
    else:
        connection.send(("result", result))
    finally:
        connection.close()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)  # skip atexit handlers inherited from the parent


def run_isolated(
    target: Callable[..., Any],
    args: tuple = (),
    *,
    time_limit: float | None = None,
    on_report: Callable[[int, float], bool] | None = None,
    on_call: Callable[[Any], Any] | None = None,
    child_threads: int | None = None,
    poll_seconds: float = 0.2,
) -> Any:
    """``target(channel, *args)`` in a forked child; its return value, or TrialFailed/TrialPruned.

    ``on_report``/``on_call`` answer the child's ``channel.report``/``channel.call`` in this
    process (where the Optuna trial lives); an exception they raise ends the child and is raised here.
    """
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    process = context.Process(
        target=_child_main, args=(child_end, os.getpid(), child_threads, target, args), daemon=True
    )
    deadline = None if time_limit is None else time.monotonic() + time_limit
    process.start()
    child_end.close()
    try:
        while True:
            wait = poll_seconds if deadline is None else max(0.0, min(poll_seconds, deadline - time.monotonic()))
            if parent_end.poll(wait):
                try:
                    message = parent_end.recv()
                except EOFError:
                    process.join(5)
                    raise TrialFailed(_death_reason(process.exitcode)) from None
                kind = message[0]
                if kind == "report":
                    parent_end.send(bool(on_report(message[1], message[2])) if on_report else False)
                elif kind == "call":
                    parent_end.send(on_call(message[1]) if on_call else None)
                elif kind == "result":
                    return message[1]
                elif kind == "pruned":
                    raise optuna.TrialPruned(message[1])
                elif kind == "error":
                    raise TrialFailed(message[1], message[2])
            elif not process.is_alive() and not parent_end.poll(0):
                raise TrialFailed(_death_reason(process.exitcode))
            if deadline is not None and time.monotonic() >= deadline:
                raise TrialTimedOut(f"timed out: exceeded the per-trial time limit of {time_limit:g}s")
    finally:
        _stop(process)
        parent_end.close()


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (possibly the out-of-memory killer)" if name == "SIGKILL" else ""
        return f"trial process killed by {name}{hint}"
    return f"trial process exited with status {exitcode} without a result"


def _stop(process: multiprocessing.process.BaseProcess) -> None:
    if process.is_alive():
        process.terminate()
        process.join(2)
    if process.is_alive():
        process.kill()
    process.join()

"""Faults inside trials: injecting them for tests, naming them, cleaning up after them.

Fault injection (for tests; never set in production)::

    YAML2TORCH_INJECT_FAULT="KIND:trial=N,epoch=M[;KIND:...]"

KIND is one of

- ``exception``: raise ``InjectedFault`` (as a bug in generated code would);
- ``nan``: the epoch's loss becomes NaN (``check_finite_loss`` then fails the trial);
- ``oom``: raise ``torch.OutOfMemoryError`` (what CUDA raises when memory runs out);
- ``hang``: sleep forever (the per-trial time limit must stop it);
- ``sigkill``: SIGKILL the worker process running the trial (as ``kill -9`` would).

``trial`` is the Optuna trial number, ``epoch`` the epoch just finished (1-based, as the search
reports it); either may be left out (then every trial / epoch 1). The training loop calls
``FaultPlan.at_epoch`` after each epoch, so the tests exercise the real handling code rather
than assume it.
"""

from __future__ import annotations

import gc
import math
import os
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass

from yaml2torch.errors import TrainingDiverged, UsageError

ENV_INJECT = "YAML2TORCH_INJECT_FAULT"
FAULT_KINDS = ("exception", "nan", "oom", "hang", "sigkill")


class InjectedFault(RuntimeError):
    """The ``exception`` fault: stands for any bug raised from generated or user code."""


@dataclass(frozen=True)
class Fault:
    kind: str
    trial: int | None = None
    epoch: int | None = None

    def matches(self, trial: int, epoch: int) -> bool:
        return (self.trial is None or self.trial == trial) and (self.epoch or 1) == epoch


@dataclass(frozen=True)
class FaultPlan:
    faults: tuple[Fault, ...] = ()

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        faults = []
        for item in filter(None, (part.strip() for part in text.split(";"))):
            kind, _, where = item.partition(":")
            kind = kind.strip()
            if kind not in FAULT_KINDS:
                raise UsageError(f"{ENV_INJECT}: unknown fault {kind!r} (one of {', '.join(FAULT_KINDS)})")
            fields: dict[str, int] = {}
            for pair in filter(None, (p.strip() for p in where.split(","))):
                key, sep, value = pair.partition("=")
                if not sep or key.strip() not in ("trial", "epoch") or not value.strip().isdigit():
                    raise UsageError(f"{ENV_INJECT}: expected trial=N or epoch=M, got {pair!r}")
                fields[key.strip()] = int(value)
            faults.append(Fault(kind, fields.get("trial"), fields.get("epoch")))
        return cls(tuple(faults))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> FaultPlan:
        return cls.parse(environ.get(ENV_INJECT, ""))

    def at_epoch(self, trial: int, epoch: int, loss: float) -> float:
        """Apply the faults planned for this trial and epoch; returns the (maybe poisoned) loss."""
        for fault in self.faults:
            if not fault.matches(trial, epoch):
                continue
            if fault.kind == "exception":
                raise InjectedFault(f"injected exception at trial {trial}, epoch {epoch}")
            if fault.kind == "nan":
                loss = math.nan
            elif fault.kind == "oom":
                import torch

                raise torch.OutOfMemoryError(f"CUDA out of memory (injected at trial {trial}, epoch {epoch})")
            elif fault.kind == "hang":
                while True:
                    time.sleep(3600)
            elif fault.kind == "sigkill":
                sys.stdout.flush()
                worker_pid = int(os.environ.get("YAML2TORCH_WORKER_PID", os.getpid()))
                os.kill(worker_pid, signal.SIGKILL)
                os.kill(os.getpid(), signal.SIGKILL)
        return loss


def check_finite_loss(loss: float, epoch: int) -> None:
    if not math.isfinite(loss):
        raise TrainingDiverged(loss, epoch)


def is_out_of_memory(exc: BaseException) -> bool:
    oom_types = []
    if "torch" in sys.modules:
        import torch

        oom_types.append(getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError))
    return isinstance(exc, (MemoryError, *oom_types)) or "out of memory" in str(exc).lower()


def describe_failure(exc: BaseException) -> str:
    """A one-line reason for a failed trial: what went wrong and where (deepest frame)."""
    if isinstance(exc, TrainingDiverged):
        return str(exc)
    kind = "out of memory" if is_out_of_memory(exc) else type(exc).__name__
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{kind}: {message}{where}" if message else f"{kind}{where}"


def release_accelerator_memory() -> None:
    """After a failed trial: drop its tensors and hand cached CUDA memory back."""
    gc.collect()
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()

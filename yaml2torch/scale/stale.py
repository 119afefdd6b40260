"""Who runs a trial, and what to do with trials whose worker died.

PostgreSQL/MySQL storages have Optuna heartbeats: a RUNNING trial whose heartbeat is older
than the grace period is failed by the next worker that looks (before each trial it starts),
and that worker enqueues its parameters once more.

A journal file has no heartbeats, so workers record their own on the trial:

- ``worker``: ``{"host", "pid", "started"}`` (``started``: the process start time from
  ``/proc/<pid>/stat``, so a recycled pid is not mistaken for the worker);
- ``heartbeat_at``: a Unix time, refreshed every heartbeat interval while the trial runs.

**The rule.** When a worker starts (and before each new trial), a RUNNING trial is *stale* when
either (a) its ``worker.host`` is this host and that process (pid and start time) no longer
exists (or is a zombie), or (b) its ``heartbeat_at`` (or, without one, its start time) is older than the grace
period. A stale trial is failed with ``reason`` saying why, and, unless it is itself a
retry, its parameters are enqueued once more as a new trial with ``retry_of`` set to its
number. Two workers reaping at once are safe: only the one whose FAIL is recorded first
enqueues the retry.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from yaml2torch.scale import _optuna
from yaml2torch.scale.budget import retried_numbers
from yaml2torch.study_record import TrialRecord, TrialStatus, record_heartbeat, record_outcome, retry_attrs


def _proc_stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on, or None when absent or not Linux."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces, so split after its ')'.
    return stat[stat.rfind(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22), or None when unknown/absent."""
    fields = _proc_stat_fields(pid)
    return int(fields[19]) if fields is not None and len(fields) > 19 else None


def _is_zombie(pid: int) -> bool:
    """A killed process its parent has not reaped yet: dead for our purposes."""
    fields = _proc_stat_fields(pid)
    return fields is not None and fields[0] in ("Z", "X")


@dataclass(frozen=True)
class WorkerIdentity:
    host: str
    pid: int
    started: int | None

    @classmethod
    def current(cls) -> WorkerIdentity:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, process_start_ticks(pid))

    @classmethod
    def from_attr(cls, value: Any) -> WorkerIdentity | None:
        if not isinstance(value, Mapping) or "host" not in value or "pid" not in value:
            return None
        return cls(str(value["host"]), int(value["pid"]), value.get("started"))

    def as_attr(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "started": self.started}

    def is_alive_here(self) -> bool | None:
        """True/False for a worker on this host; None when it ran elsewhere (cannot tell)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by someone else
        if _is_zombie(self.pid):
            return False
        if self.started is None:
            return True
        return process_start_ticks(self.pid) == self.started


def stale_reason(trial: FrozenTrial, *, now: float, grace_period: float) -> str | None:
    """Why a RUNNING trial is stale under the rule above, or None when it may still be running."""
    if trial.state != TrialState.RUNNING:
        return None
    record = TrialRecord.of(trial)
    worker = WorkerIdentity.from_attr(record.worker)
    if worker is not None and worker.is_alive_here() is False:
        return f"worker process {worker.pid} on {worker.host} died while running the trial"
    beat = record.heartbeat_at
    if beat is None and trial.datetime_start is not None:
        beat = trial.datetime_start.timestamp()
    if beat is not None and now - float(beat) > grace_period:
        return f"no heartbeat for {now - float(beat):.0f}s (grace period {grace_period:g}s)"
    return None


def enqueue_retry(study: optuna.Study, failed: FrozenTrial, reason: str) -> None:
    """Queue the failed trial's parameters once more (WAITING), marked as its retry.

    The system attributes match Optuna's own retry callback, so
    ``RetryHeartbeatStaleTrialCallback.retried_trial_number`` works on ours too.
    """
    user_attrs, system_attrs = retry_attrs(failed, reason)
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=failed.params,
            distributions=failed.distributions,
            user_attrs=user_attrs,
            system_attrs=system_attrs,
        )
    )


@dataclass(frozen=True)
class ReapedTrial:
    number: int
    reason: str
    retried: bool


def reap_stale_trials(study: optuna.Study, *, grace_period: float, now: float | None = None) -> list[ReapedTrial]:
    """Fail stale RUNNING trials and retry each once (see the module docstring for the rule).

    With Optuna heartbeats (RDB), "stale" is Optuna's own verdict (no heartbeat within its grace
    period); otherwise it is the rule above. Either way the trial gets ``status: stale`` and a
    ``reason`` before it is failed, so the report can say what happened.
    """
    now = time.time() if now is None else now
    if _optuna.has_optuna_heartbeats(study):
        stale = _optuna_stale_trials(study)
    else:
        stale = []
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            reason = stale_reason(trial, now=now, grace_period=grace_period)
            if reason is not None:
                stale.append((trial, reason))
    reaped = []
    queued = retried_numbers(study.get_trials(deepcopy=False)) if stale else set()
    for trial, reason in stale:
        trial_id = _optuna.trial_id_of(trial)
        try:
            record_outcome(_optuna.set_trial_user_attr(study, trial_id), TrialStatus.STALE, f"stale: {reason}")
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # it just finished
        if not _optuna.fail_trial(study, trial_id):
            continue  # another worker reaped it first (or it just finished)
        retried = not TrialRecord.of(trial).is_retry
        if retried and trial.number not in queued:  # queued already by a worker that could not fail it
            enqueue_retry(study, trial, reason)
        reaped.append(ReapedTrial(trial.number, reason, retried))
    return reaped


def _optuna_stale_trials(study: optuna.Study) -> list[tuple[FrozenTrial, str]]:
    """RUNNING trials whose Optuna heartbeat is older than the storage's grace period."""
    stale_ids = _optuna.optuna_stale_trial_ids(study)
    if not stale_ids:
        return []
    grace = _optuna.heartbeat_grace_period(study)
    reason = "its worker sent no heartbeat within the grace period" + (f" ({grace}s)" if grace else "")
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [(t, reason) for t in running if _optuna.trial_id_of(t) in stale_ids]


class Heartbeat:
    """While a trial runs: record Optuna's heartbeat (RDB) or a ``heartbeat_at`` attribute (journal).

    A missed beat (storage away for a moment) is skipped, not fatal.
    """

    def __init__(
        self, study: optuna.Study, trial_id: int, interval: float, on_error: Callable[[str], None] | None = None
    ):
        self._study = study
        self._beating_trial = trial_id
        self._interval = interval
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{trial_id}", daemon=True)
        self._optuna = _optuna.has_optuna_heartbeats(study)

    def beat(self) -> None:
        if self._optuna:
            _optuna.record_optuna_heartbeat(self._study, self._beating_trial)
        else:
            record_heartbeat(_optuna.set_trial_user_attr(self._study, self._beating_trial), time.time())

    def _run(self) -> None:
        # Beat at once: Optuna ignores RDB trials that never beat, so a worker killed in its
        # first interval would leave a trial that is never detected as stale.
        while True:
            try:
                self.beat()
            except optuna.exceptions.UpdateFinishedTrialError:
                return
            except Exception as exc:  # noqa: BLE001 - a skipped beat; the trial goes on
                _optuna.session_reset(self._study)()  # this thread's session
                if self._on_error is not None:
                    self._on_error(f"heartbeat for trial id {self._beating_trial} skipped: {type(exc).__name__}")
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> Heartbeat:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

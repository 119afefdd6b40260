"""Who runs a trial, and what to do with trials whose worker died.

PostgreSQL/MySQL storages have Optuna heartbeats: a RUNNING trial whose heartbeat is older
than the grace period is failed by the next worker that asks for a trial, and
``RetryStaleTrial`` enqueues its parameters once more.

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

from yaml2torch.scale.metadata import TRIAL_FAIL_REASON, TRIAL_RETRY_OF, TRIAL_RETRY_REASON, TRIAL_STATUS
from yaml2torch.scale.storage import reset_session_of

TRIAL_WORKER = "worker"
TRIAL_HEARTBEAT_AT = "heartbeat_at"


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
    worker = WorkerIdentity.from_attr(trial.user_attrs.get(TRIAL_WORKER))
    if worker is not None and worker.is_alive_here() is False:
        return f"worker process {worker.pid} on {worker.host} died while running the trial"
    beat = trial.user_attrs.get(TRIAL_HEARTBEAT_AT)
    if beat is None and trial.datetime_start is not None:
        beat = trial.datetime_start.timestamp()
    if beat is not None and now - float(beat) > grace_period:
        return f"no heartbeat for {now - float(beat):.0f}s (grace period {grace_period:g}s)"
    return None


def is_retry(trial: FrozenTrial) -> bool:
    return TRIAL_RETRY_OF in trial.user_attrs or "failed_trial" in trial.system_attrs


def enqueue_retry(study: optuna.Study, failed: FrozenTrial, reason: str) -> None:
    """Queue the failed trial's parameters once more (WAITING), marked as its retry.

    The system attributes match Optuna's own retry callback, so
    ``RetryHeartbeatStaleTrialCallback.retried_trial_number`` works on ours too.
    """
    history = list(failed.system_attrs.get("retry_history", [])) + [failed.number]
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=failed.params,
            distributions=failed.distributions,
            user_attrs={TRIAL_RETRY_OF: failed.number, TRIAL_RETRY_REASON: reason},
            system_attrs={
                "failed_trial": failed.system_attrs.get("failed_trial", failed.number),
                "retry_history": history,
            },
        )
    )


@dataclass(frozen=True)
class RetryStaleTrial:
    """Optuna's heartbeat callback for RDB storages: retry a stale trial's parameters once."""

    max_retry: int = 1

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if len(trial.system_attrs.get("retry_history", [])) >= self.max_retry:
            return
        enqueue_retry(study, trial, "its worker stopped sending heartbeats (killed or lost)")


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
    storage = study._storage
    now = time.time() if now is None else now
    if _has_optuna_heartbeats(storage):
        stale = _optuna_stale_trials(study)
    else:
        stale = []
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            reason = stale_reason(trial, now=now, grace_period=grace_period)
            if reason is not None:
                stale.append((trial, reason))
    reaped = []
    for trial, reason in stale:
        try:
            storage.set_trial_user_attr(trial._trial_id, TRIAL_STATUS, "stale")
            storage.set_trial_user_attr(trial._trial_id, TRIAL_FAIL_REASON, f"stale: {reason}")
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker reaped it first (or it just finished)
        retried = not is_retry(trial)
        if retried:
            enqueue_retry(study, trial, reason)
        reaped.append(ReapedTrial(trial.number, reason, retried))
    return reaped


def _has_optuna_heartbeats(storage: Any) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)


def _optuna_stale_trials(study: optuna.Study) -> list[tuple[FrozenTrial, str]]:
    """RUNNING trials whose Optuna heartbeat is older than the storage's grace period."""
    storage = study._storage
    stale_ids = set(storage._get_stale_trial_ids(study._study_id))
    if not stale_ids:
        return []
    grace = getattr(getattr(storage, "_backend", storage), "grace_period", None)
    reason = "its worker sent no heartbeat within the grace period" + (f" ({grace}s)" if grace else "")
    return [
        (t, reason) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t._trial_id in stale_ids
    ]


class Heartbeat:
    """While a trial runs: record Optuna's heartbeat (RDB) or a ``heartbeat_at`` attribute (journal).

    A missed beat (storage away for a moment) is skipped, not fatal.
    """

    def __init__(
        self, study: optuna.Study, trial_id: int, interval: float, on_error: Callable[[str], None] | None = None
    ):
        self._storage = study._storage
        self._trial_id = trial_id
        self._interval = interval
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{trial_id}", daemon=True)
        self._optuna = _has_optuna_heartbeats(self._storage)

    def beat(self) -> None:
        if self._optuna:
            self._storage.record_heartbeat(self._trial_id)
        else:
            self._storage.set_trial_user_attr(self._trial_id, TRIAL_HEARTBEAT_AT, time.time())

    def _run(self) -> None:
        # Beat at once: Optuna ignores RDB trials that never beat, so a worker killed in its
        # first interval would leave a trial that is never detected as stale.
        while True:
            try:
                self.beat()
            except optuna.exceptions.UpdateFinishedTrialError:
                return
            except Exception as exc:  # noqa: BLE001 - a skipped beat; the trial goes on
                reset_session_of(self._storage)()  # this thread's session
                if self._on_error is not None:
                    self._on_error(f"heartbeat for trial id {self._trial_id} skipped: {type(exc).__name__}")
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> Heartbeat:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

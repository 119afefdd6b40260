"""The worker loop: start a trial, run it, tell its outcome; survive faults, stale trials and storage blips.

``run_worker`` is generic: it runs any trial function on any study. The search drives it
(``yaml2torch.search.run``), in ``yaml2torch worker`` and in each process of
``yaml2torch search --workers N``. One trial's failure never ends the study: every exception
from the trial function becomes a FAIL with a one-line ``reason``. Interrupted trials
(SIGINT/SIGTERM) and trials lost to a storage outage are queued again (``retry_of``).

Budgets: ``n_trials`` counts this worker's trials; ``total_trials`` is study-wide and exact
(``yaml2torch.scale.budget``). A worker whose budget is met only by trials still running
elsewhere waits for them (they may turn stale and be retried) instead of exiting.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from yaml2torch.errors import CannotWrite
from yaml2torch.scale import _optuna
from yaml2torch.scale.budget import StudyLock, start_trial
from yaml2torch.scale.faults import describe_failure, release_accelerator_memory
from yaml2torch.scale.isolation import TrialFailed
from yaml2torch.scale.signals import StopRequested
from yaml2torch.scale.stale import Heartbeat, WorkerIdentity, enqueue_retry, reap_stale_trials
from yaml2torch.scale.storage import Backoff, as_cannot_write, is_transient_storage_error, with_storage_retries
from yaml2torch.study_record import (
    TRIAL_REASON,
    TrialRecord,
    TrialStatus,
    record_outcome,
    record_worker,
)

TrialFunction = Callable[[optuna.Trial], "float | Sequence[float]"]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class WorkerOptions:
    n_trials: int | None = None
    total_trials: int | None = None
    timeout: float | None = None
    heartbeat_interval: float = 10.0
    wait_seconds: float = 1.0  # poll period while only other workers' trials are left
    grace_period: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)


@dataclass
class WorkerSummary:
    """Counts for the closing line (a plain accumulator owned by one worker loop)."""

    completed: int = 0
    pruned: int = 0
    failed: int = 0
    reaped: list[int] = field(default_factory=list)
    stopped_by: str | None = None

    def line(self) -> str:
        parts = [f"{self.completed} completed", f"{self.pruned} pruned", f"{self.failed} failed"]
        if self.reaped:
            parts.append(f"stale trials failed and retried: {', '.join(map(str, self.reaped))}")
        if self.stopped_by:
            parts.append(f"stopped by {self.stopped_by}")
        return "worker: " + ", ".join(parts)


def run_worker(
    study: optuna.Study,
    run_trial: TrialFunction,
    options: WorkerOptions = WorkerOptions(),
    *,
    lock: StudyLock | None = None,
    say: Callable[[str], None] = _say,
    on_trial_done: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> WorkerSummary:
    """Run trials until a budget is met; raises StopRequested after recording an interrupted trial.

    ``lock`` is the study's budget lock (``StudyLock(url, name)``); it makes ``total_trials``
    exact across processes. ``on_trial_done(study, frozen_trial)`` is called after each of this
    worker's trials (progress bars).
    """
    with warnings.catch_warnings():
        # Optuna warns that heartbeats are meant for Study.optimize; this loop beats itself (Heartbeat).
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return _run_worker(study, run_trial, options, lock, say, on_trial_done)


def _run_worker(study, run_trial, options, lock, say, on_trial_done) -> WorkerSummary:
    summary = WorkerSummary()
    identity = WorkerIdentity.current()
    started = time.monotonic()
    mine = 0
    reset_session = _optuna.session_reset(study)

    def retrying(call, what):
        return with_storage_retries(call, what=what, backoff=options.backoff, say=say, reset=reset_session)

    while True:
        reaped = retrying(
            lambda: reap_stale_trials(study, grace_period=options.grace_period), "checking for stale trials"
        )
        for dead in reaped:
            summary.reaped.append(dead.number)
            retry = " and queued again" if dead.retried else " (already a retry: not queued again)"
            say(f"yaml2torch: trial {dead.number} was stale ({dead.reason}); marked failed{retry}")
        if options.n_trials is not None and mine >= options.n_trials:
            break
        if options.timeout is not None and time.monotonic() - started >= options.timeout:
            break
        created: list[optuna.Trial] = []
        try:
            trial = retrying(
                lambda made=created: start_trial(study, options.total_trials, lock, on_created=made.append),
                "starting a trial",
            )
            if trial is not None:
                mine += 1
                _run_one(study, trial, run_trial, identity, options, summary, retrying, say)
        except StopRequested as stop:
            # A stop held back while the trial was made is raised on the way here (or before
            # _run_one's own handler): the trial exists, still RUNNING; record it as stopped.
            if created and stop.interrupted_trial is None and _still_running(study, created[0]):
                _run_one(study, created[0], _raising(stop), identity, options, summary, retrying, say)
            raise
        if trial is None:
            trials = retrying(lambda: study.get_trials(deepcopy=False), "reading the study")
            if not any(t.state == TrialState.RUNNING for t in trials):
                break
            # The budget is met only if the trials running elsewhere finish; if their worker died,
            # they turn stale and their retries need someone, so wait here rather than exit.
            time.sleep(options.wait_seconds)
            continue
        if on_trial_done is not None:
            trial_id = _optuna.trial_id_of(trial)
            on_trial_done(study, retrying(lambda t=trial_id: _optuna.get_trial(study, t), "reading the trial"))
    return summary


def _run_one(study, trial, run_trial, identity, options, summary, retrying, say) -> None:
    retrying(lambda: record_worker(trial.set_user_attr, identity.as_attr()), "recording the trial's worker")
    values = None
    state = TrialState.COMPLETE
    reason = None
    requeue = False
    stop: StopRequested | CannotWrite | None = None
    try:
        with Heartbeat(study, _optuna.trial_id_of(trial), options.heartbeat_interval, on_error=say):
            values = run_trial(trial)
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except (StopRequested, CannotWrite) as exc:
        # an interruption, or files that cannot be written here (disk full, read-only): not the
        # architecture's fault, and every later trial would meet it too: stop, run it again later
        state, reason, requeue, stop = TrialState.FAIL, str(exc), True, exc
    except TrialFailed as exc:
        state, reason = TrialState.FAIL, exc.reason
    except Exception as exc:  # noqa: BLE001 - any fault fails only this trial
        state, reason = TrialState.FAIL, describe_failure(exc)
        # The storage went away under the trial: not the architecture's fault, run it again.
        requeue = is_transient_storage_error(exc)
        if (cannot_write := as_cannot_write(exc)) is not None:  # the storage's disk is full or read-only
            reason, requeue, stop = str(cannot_write), True, cannot_write
    if state == TrialState.FAIL:
        release_accelerator_memory()
    if isinstance(stop, CannotWrite):
        _record_cannot_write(study, trial, reason, retrying, say)
        summary.failed += 1
        raise stop
    status = TrialStatus.INTERRUPTED if stop is not None else TrialStatus.FAILED
    final = _finish(study, trial, values, state, reason, retrying, status=status)
    if final == TrialState.COMPLETE:
        summary.completed += 1
    elif final == TrialState.PRUNED:
        summary.pruned += 1
    else:
        summary.failed += 1
        queued = False
        if requeue:
            frozen = retrying(lambda: _optuna.get_trial(study, _optuna.trial_id_of(trial)), "reading the trial")
            if stop is not None or not TrialRecord.of(frozen).is_retry:
                retrying(lambda: enqueue_retry(study, frozen, reason or "re-queued"), "re-queueing the trial")
                queued = True
        if stop is not None:  # one line for the one event (its reason is only "interrupted by SIGINT")
            what = "was failed and queued again" if queued else "was failed"
            say(f"yaml2torch: stopped by {stop.signal_name}; trial {trial.number} {what}")
        else:
            say(f"yaml2torch: trial {trial.number} failed: {reason}" + ("; its parameters are queued again" * queued))
    if stop is not None:
        if final != TrialState.FAIL:  # it was told finished before the stop reached it
            say(f"yaml2torch: stopped by {stop.signal_name} after trial {trial.number}")
        summary.stopped_by = stop.signal_name
        if isinstance(stop, StopRequested):
            stop.interrupted_trial = trial.number
            stop.said = True
        raise stop


def _still_running(study: optuna.Study, trial: optuna.Trial) -> bool:
    return _optuna.get_trial(study, _optuna.trial_id_of(trial)).state == TrialState.RUNNING


def _raising(stop: StopRequested) -> TrialFunction:
    def run_trial(trial: optuna.Trial) -> float:
        raise stop

    return run_trial


def _record_cannot_write(study, trial, reason, retrying, say) -> None:
    """Queue the trial's parameters again, then fail it, as far as the storage still takes writes
    (it may live on the same full disk). In that order, no outcome loses the trial: when the retry
    cannot be queued, the trial stays RUNNING and turns stale on resume (and is retried then); when
    it is queued but the trial cannot be failed, the reaper on resume fails it without a second retry."""
    say(f"yaml2torch: trial {trial.number} stopped: {reason}")
    try:
        frozen = _optuna.get_trial(study, _optuna.trial_id_of(trial))
        retrying(lambda: enqueue_retry(study, frozen, reason or "re-queued"), "re-queueing the trial")
        say(f"yaml2torch: trial {trial.number}'s parameters are queued again")
        _finish(study, trial, None, TrialState.FAIL, reason, retrying, status=TrialStatus.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the write error below is what the user must fix
        say(f"yaml2torch: trial {trial.number} could not be recorded ({type(exc).__name__}); a resume retries it")


def _finish(study, trial, values, state, reason, retrying, status=TrialStatus.FAILED) -> TrialState:
    """Record the reason and tell the outcome; a tell that reached storage before a blip counts as done."""
    if reason is not None:
        retrying(lambda: record_outcome(trial.set_user_attr, status, reason), "recording why the trial failed")

    def tell() -> TrialState:
        try:
            if state == TrialState.COMPLETE:
                return study.tell(trial, values).state
            return study.tell(trial, state=state).state
        except optuna.exceptions.UpdateFinishedTrialError:
            return _optuna.get_trial(study, _optuna.trial_id_of(trial)).state
        except ValueError as exc:
            # Optuna refuses NaN/inf or a wrong number of values; record that as the reason.
            trial.set_user_attr(TRIAL_REASON, f"invalid objective values {values!r}: {exc}")
            return study.tell(trial, state=TrialState.FAIL).state

    return retrying(tell, "recording the trial's outcome")

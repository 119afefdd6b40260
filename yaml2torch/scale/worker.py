"""The worker loop: ask a trial, run it, tell its outcome; survive faults, stale trials and storage blips.

``run_worker`` is used by ``yaml2torch worker`` and by each process of ``yaml2torch search
--workers N``. It never lets one trial's failure end the study: every exception from the trial
function becomes a FAIL with a one-line ``reason``. Interrupted trials (SIGINT/SIGTERM) and
trials that died because the storage went away are re-queued (``retry_of``) so no sample is lost.

Budgets: ``n_trials`` counts this worker's trials; ``total_trials`` is a study-wide count, in
which a failed trial that has been retried counts once (through its retry). Near the end a worker
pauses a random moment and looks again before starting one of the last trials; a trial that was
still started beyond the count by workers racing each other is failed at once, before any
training (``status: surplus``), so a study ends with exactly ``total_trials`` counted trials
however many workers share it. A worker
whose budget is met only by trials still running elsewhere waits for them (they may turn stale
and be retried) instead of exiting.
"""

from __future__ import annotations

import random
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from yaml2torch.scale.faults import describe_failure, release_accelerator_memory
from yaml2torch.scale.isolation import InProcessChannel, TrialFailed, isolation_available, run_isolated
from yaml2torch.scale.metadata import TRIAL_FAIL_REASON, TRIAL_RETRY_OF, TRIAL_STATUS
from yaml2torch.scale.signals import StopRequested
from yaml2torch.scale.stale import TRIAL_WORKER, Heartbeat, WorkerIdentity, enqueue_retry, is_retry, reap_stale_trials
from yaml2torch.scale.storage import Backoff, is_transient_storage_error, reset_session_of, with_storage_retries

SURPLUS_PREFIX = "surplus"

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
    last_slot_jitter: float = 0.5  # seconds: the most a worker pauses before taking one of the last trials
    grace_period: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)


@dataclass
class WorkerSummary:
    """Counts for the closing line (a plain accumulator owned by one worker loop)."""

    completed: int = 0
    pruned: int = 0
    failed: int = 0
    surplus: int = 0
    reaped: list[int] = field(default_factory=list)
    stopped_by: str | None = None

    def line(self) -> str:
        parts = [f"{self.completed} completed", f"{self.pruned} pruned", f"{self.failed} failed"]
        if self.reaped:
            parts.append(f"stale trials failed and retried: {', '.join(map(str, self.reaped))}")
        if self.stopped_by:
            parts.append(f"stopped by {self.stopped_by}")
        return "worker: " + ", ".join(parts)


def retried_numbers(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of failed trials whose parameters were queued again."""
    numbers = set()
    for trial in trials:
        if TRIAL_RETRY_OF in trial.user_attrs:
            numbers.add(int(trial.user_attrs[TRIAL_RETRY_OF]))
        numbers.update(int(n) for n in trial.system_attrs.get("retry_history", ()))
    return numbers


def is_surplus(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.FAIL and str(trial.user_attrs.get(TRIAL_FAIL_REASON, "")).startswith(
        SURPLUS_PREFIX
    )


def counted_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials a study-wide budget counts: all but surplus ones and failures that were retried."""
    retried = retried_numbers(trials)
    return [t for t in trials if not is_surplus(t) and not (t.state == TrialState.FAIL and t.number in retried)]


def train_in_child(
    trial: optuna.Trial,
    train: Callable[..., object],
    args: tuple = (),
    *,
    time_limit: float | None,
    isolate: bool = True,
    report: bool = True,
) -> object:
    """Run ``train(channel, *args)`` for a trial, in a child process when possible.

    ``channel.report(epoch, value)`` reports to the trial (single objective) and returns whether
    the pruner says stop. Without isolation the time limit cannot be enforced and is ignored.
    """

    def on_report(step: int, value: float) -> bool:
        if not report:
            return False
        trial.report(value, step)
        return trial.should_prune()

    if isolate and isolation_available():
        return run_isolated(train, args, time_limit=time_limit, on_report=on_report)
    return train(InProcessChannel(on_report), *args)


def run_worker(
    study: optuna.Study,
    run_trial: TrialFunction,
    options: WorkerOptions = WorkerOptions(),
    *,
    say: Callable[[str], None] = _say,
    on_trial_done: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> WorkerSummary:
    """Run trials until a budget is met; raises StopRequested after recording an interrupted trial.

    ``on_trial_done(study, frozen_trial)`` is called after each of this worker's trials (progress bars).
    """
    with warnings.catch_warnings():
        # Optuna warns that heartbeats are meant for Study.optimize; this loop beats itself (Heartbeat).
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return _run_worker(study, run_trial, options, say, on_trial_done)


def _run_worker(study, run_trial, options, say, on_trial_done) -> WorkerSummary:
    summary = WorkerSummary()
    identity = WorkerIdentity.current()
    started = time.monotonic()
    mine = 0

    reset_session = reset_session_of(study._storage)

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
        trials = retrying(lambda: study.get_trials(deepcopy=False), "reading the study")
        if not _should_start(trials, options.total_trials):
            if not any(t.state == TrialState.RUNNING for t in trials):
                break
            # The budget is met only if the trials running elsewhere finish; if their worker died,
            # they turn stale and their retries need someone, so wait here rather than exit.
            time.sleep(options.wait_seconds)
            continue
        if _last_slots(trials, options.total_trials):
            # Workers finishing together would all start "the last" trial; a random pause and a
            # second look make that rare (the surplus rule below handles what is left).
            time.sleep(random.uniform(0.0, options.last_slot_jitter))
            trials = retrying(lambda: study.get_trials(deepcopy=False), "reading the study")
            if not _should_start(trials, options.total_trials):
                continue
        trial = retrying(study.ask, "starting a trial")
        if options.total_trials is not None and _is_beyond_budget(study, trial, options.total_trials, retrying):
            summary.surplus += 1
            reason = f"{SURPLUS_PREFIX}: the study already had its {options.total_trials} trials when this one started"
            _finish(study, trial, None, TrialState.FAIL, reason, retrying, status="surplus")
            continue
        mine += 1
        _run_one(study, trial, run_trial, identity, options, summary, retrying, say)
        if on_trial_done is not None:
            trial_id = trial._trial_id
            on_trial_done(study, retrying(lambda t=trial_id: study._storage.get_trial(t), "reading the trial"))
    return summary


def _should_start(trials: Sequence[FrozenTrial], total: int | None) -> bool:
    if any(t.state == TrialState.WAITING for t in trials):
        return True  # queued work (retries, enqueued trials) is always taken
    return total is None or len(counted_trials(trials)) < total


def _last_slots(trials: Sequence[FrozenTrial], total: int | None) -> bool:
    if total is None or any(t.state == TrialState.WAITING for t in trials):
        return False
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    return total - len(counted_trials(trials)) <= max(1, running)


def _is_beyond_budget(study: optuna.Study, trial: optuna.Trial, total: int, retrying) -> bool:
    if trial.number < total:
        return False  # numbers are dense: fewer than `total` trials can precede this one
    trials = retrying(lambda: study.get_trials(deepcopy=False), "reading the study")
    mine = next((t for t in trials if t.number == trial.number), None)
    if mine is not None and (TRIAL_RETRY_OF in mine.user_attrs or mine.system_attrs.get("fixed_params")):
        return False  # a queued trial replaces one that is not counted
    earlier = [t for t in counted_trials(trials) if t.number < trial.number]
    return len(earlier) >= total


def _run_one(study, trial, run_trial, identity, options, summary, retrying, say) -> None:
    retrying(lambda: trial.set_user_attr(TRIAL_WORKER, identity.as_attr()), "recording the trial's worker")
    values = None
    state = TrialState.COMPLETE
    reason = None
    requeue = False
    stop: StopRequested | None = None
    try:
        with Heartbeat(study, trial._trial_id, options.heartbeat_interval, on_error=say):
            values = run_trial(trial)
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except StopRequested as exc:
        state, reason, requeue, stop = TrialState.FAIL, str(exc), True, exc
    except TrialFailed as exc:
        state, reason = TrialState.FAIL, exc.reason
    except Exception as exc:  # noqa: BLE001 - any fault fails only this trial
        state, reason = TrialState.FAIL, describe_failure(exc)
        # The storage went away under the trial: not the architecture's fault, run it again.
        requeue = is_transient_storage_error(exc)
    if state == TrialState.FAIL:
        release_accelerator_memory()
    status = "interrupted" if stop is not None else "failed"
    final = _finish(study, trial, values, state, reason, retrying, status=status)
    if final == TrialState.COMPLETE:
        summary.completed += 1
    elif final == TrialState.PRUNED:
        summary.pruned += 1
    else:
        summary.failed += 1
        say(f"yaml2torch: trial {trial.number} failed: {reason}")
        if requeue:
            frozen = retrying(lambda: study._storage.get_trial(trial._trial_id), "reading the trial")
            if stop is not None or not is_retry(frozen):
                retrying(lambda: enqueue_retry(study, frozen, reason or "re-queued"), "re-queueing the trial")
                say(f"yaml2torch: trial {trial.number}'s parameters are queued again")
    if stop is not None:
        summary.stopped_by = stop.signal_name
        raise stop


def _finish(study, trial, values, state, reason, retrying, status="failed") -> TrialState:
    """Record the reason and tell the outcome; a tell that reached storage before a blip counts as done."""
    if reason is not None:
        retrying(lambda: trial.set_user_attr(TRIAL_STATUS, status), "recording the trial's status")
        retrying(lambda: trial.set_user_attr(TRIAL_FAIL_REASON, reason), "recording why the trial failed")

    def tell() -> TrialState:
        try:
            if state == TrialState.COMPLETE:
                return study.tell(trial, values).state
            return study.tell(trial, state=state).state
        except optuna.exceptions.UpdateFinishedTrialError:
            return study._storage.get_trial(trial._trial_id).state
        except ValueError as exc:
            # Optuna refuses NaN/inf or a wrong number of values; record that as the reason.
            trial.set_user_attr(TRIAL_FAIL_REASON, f"invalid objective values {values!r}: {exc}")
            return study.tell(trial, state=TrialState.FAIL).state

    return retrying(tell, "recording the trial's outcome")

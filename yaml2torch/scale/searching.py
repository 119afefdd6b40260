"""The search's trials under the scale-out machinery: workers, child-process training, weights in an artifact store.

``yaml2torch.search.runner.run_search`` calls ``optimize_search`` instead of ``study.optimize``;
that runs trials in this process (``run_worker``) or, with ``--workers N``, starts N
``yaml2torch worker`` processes on this machine and follows their progress. ``yaml2torch worker
--storage URL --study NAME`` rebuilds everything from the study: the search file (``space_yaml``)
and the run settings (``settings``: budget, epochs override, per-trial time limit, artifact store).
"""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from yaml2torch.scale.faults import FaultPlan, check_finite_loss
from yaml2torch.scale.isolation import (
    InProcessChannel,
    TrialTimedOut,
    fork_works,
    isolation_available,
    keep_parent_single_threaded,
    run_isolated,
    warm_up_torch,
)
from yaml2torch.scale.metadata import (
    ATTR_SETTINGS,
    TrialOutputs,
    download_weights,
    upload_weights,
)
from yaml2torch.scale.signals import StopRequested, stop_on_signals
from yaml2torch.scale.storage import (
    DEFAULT_GRACE_PERIOD,
    DEFAULT_HEARTBEAT_INTERVAL,
    make_artifact_store,
    with_storage_retries,
)
from yaml2torch.scale.worker import WorkerOptions, WorkerSummary, counted_trials, run_worker

# RunOptions fields that belong to one process, not to the study (everything else is shared).
PER_PROCESS_FIELDS = ("out_dir", "storage", "study", "device", "resume", "progress", "search_model", "scale")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ScaleOptions:
    """How this run spreads and guards its trials (from the command line)."""

    workers: int = 1
    devices: tuple[str, ...] = ()
    time_limit: float | None = None  # per trial, seconds
    artifacts: str | None = None  # artifact store folder (default OUT/artifacts)
    isolate: bool = True  # train each trial in a child process (CPU)
    threads: int | None = None  # torch threads per trial (default: cores // workers)
    heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL
    grace_period: int = DEFAULT_GRACE_PERIOD
    worker_index: int = 0

    def child_threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 1) // max(1, self.workers))


# --- study settings: what a worker elsewhere needs besides the search file -----------------


def study_settings(options: Any, scale: ScaleOptions) -> dict[str, Any]:
    """The run options every worker must share (budget, epochs/data overrides, time limit, artifacts)."""
    shared = {
        f.name: getattr(options, f.name)
        for f in dataclasses.fields(options)
        if f.name not in PER_PROCESS_FIELDS and _is_json_scalar(getattr(options, f.name))
    }
    artifacts = scale.artifacts or str(Path(options.out_dir) / "artifacts")
    return {**shared, "time_limit": scale.time_limit, "artifacts": str(Path(artifacts).resolve())}


def _is_json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def record_settings(study: optuna.Study, settings: dict[str, Any]) -> None:
    study.set_user_attr(ATTR_SETTINGS, settings)


def run_options_fields(settings: dict[str, Any], options_class: type) -> dict[str, Any]:
    """The stored settings that are fields of this version's RunOptions (others are ignored)."""
    names = {f.name for f in dataclasses.fields(options_class)} - set(PER_PROCESS_FIELDS)
    return {k: v for k, v in settings.items() if k in names}


# --- training a trial: in a child process, with faults injected and a time limit ------------


@dataclass(frozen=True)
class TrialTrainer:
    """``Search.train_runner``: trains one trial's model, in a forked child when possible.

    The child runs the search's ``train_model``; after each epoch it applies injected faults
    (``YAML2TORCH_INJECT_FAULT``), checks the loss is finite and hands the epoch result to the
    worker, where the search's ``on_epoch`` reports to Optuna (and may prune). The trained weights
    come back to the worker's model. Without isolation (CUDA already initialized, or --no-isolate),
    training runs here and the time limit is checked after each epoch.
    """

    time_limit: float | None = None
    isolate: bool = True
    threads: int | None = None

    def __call__(self, trial, model, data, settings, seed: int, on_epoch: Callable[[Any], None]):
        from yaml2torch.search.train import train_model

        faults = FaultPlan.from_env()
        number = trial.number

        def train_here(channel) -> tuple[list, bytes]:
            def after_epoch(result) -> None:
                loss = faults.at_epoch(number, result.epoch, result.train_loss)
                check_finite_loss(loss, result.epoch)
                channel.call(result)

            history = train_model(model, data, settings, seed, after_epoch)
            return history, _state_bytes(model)

        if self.isolate and isolation_available() and data.device.type == "cpu":
            history, state = run_isolated(
                train_here, time_limit=self.time_limit, on_call=on_epoch, child_threads=self.threads
            )
            _load_state_bytes(model, state)
            return history
        started = time.monotonic()

        def on_call(result) -> None:
            on_epoch(result)
            if self.time_limit is not None and time.monotonic() - started > self.time_limit:
                raise TrialTimedOut(f"timed out: exceeded the per-trial time limit of {self.time_limit:g}s")

        history, _ = train_here(InProcessChannel(on_call=on_call))
        return history


def torch_get_threads() -> int:
    import torch

    return torch.get_num_threads()


def torch_set_threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)


def _state_bytes(model) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def _load_state_bytes(model, data: bytes) -> None:
    import torch

    model.load_state_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))


# --- the objective: the search's, plus weights into the artifact store -----------------------


def objective_with_artifacts(search, artifact_store) -> Callable[[optuna.Trial], Any]:
    def objective(trial: optuna.Trial):
        value = search.objective(trial)
        attrs = trial.user_attrs
        if attrs.get("status") == "trained" and attrs.get("trial_dir"):
            weights = Path(search.options.out_dir) / attrs["trial_dir"] / "model.pt"
            if weights.is_file():
                upload_weights(trial, weights, artifact_store)
        return value

    return objective


# --- running the search's trials -------------------------------------------------------------


def optimize_search(
    study: optuna.Study,
    search,
    *,
    trials: int | None,
    timeout: float | None,
    on_trial_done: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    say: Callable[[str], None] = _say,
) -> WorkerSummary | None:
    """Run the search's trials to the study-wide budget ``trials`` (or for ``timeout`` seconds).

    Raises StopRequested (a KeyboardInterrupt) after SIGINT/SIGTERM, once the current trial is
    recorded as failed and re-queued.
    """
    # Called as a library (no command-line scale options): train in this process, as Optuna would.
    scale = getattr(search.options, "scale", None) or ScaleOptions(isolate=False)
    settings = study_settings(dataclasses.replace(search.options, trials=trials, timeout=timeout), scale)
    with_storage_retries(lambda: record_settings(study, settings), what="recording the study settings", say=say)
    if scale.workers > 1:
        return run_local_workers(study, search.options, scale, on_trial_done=on_trial_done, say=say)
    return run_search_worker(
        study, search, scale, settings, trials=trials, timeout=timeout, on_trial_done=on_trial_done, say=say
    )


def run_search_worker(
    study, search, scale: ScaleOptions, settings: dict, *, trials, timeout, on_trial_done, say
) -> WorkerSummary:
    isolate = scale.isolate and isolation_available() and getattr(search.device, "type", "cpu") == "cpu"
    previous_threads = None
    if isolate:
        previous_threads = keep_parent_single_threaded()
        if fork_works(scale.child_threads()):
            warm_up_torch()
        else:
            isolate = False
            if settings.get("time_limit"):  # only the time limit needs a child process; say what it loses
                say(
                    "yaml2torch: warning: trials train in this process: torch's thread pool was started here "
                    "before the search (a forked trial would hang); --time-limit is checked after each epoch"
                )
    if not isolate and scale.threads is not None:
        previous_threads = previous_threads if previous_threads is not None else torch_get_threads()
        torch_set_threads(scale.threads)  # training runs here: --threads applies here
    elif not isolate and previous_threads is not None:
        torch_set_threads(previous_threads)
        previous_threads = None
    search.train_runner = TrialTrainer(settings.get("time_limit"), isolate, scale.child_threads())
    store = make_artifact_store(scale.artifacts or settings["artifacts"])
    options = WorkerOptions(
        total_trials=trials,
        timeout=timeout,
        heartbeat_interval=scale.heartbeat_interval,
        grace_period=scale.grace_period,
    )
    try:
        with stop_on_signals():
            try:
                summary = run_worker(
                    study, objective_with_artifacts(search, store), options, say=say, on_trial_done=on_trial_done
                )
            except StopRequested as stop:
                say(f"yaml2torch: stopped by {stop.signal_name}; the running trial was failed and queued again")
                raise
    finally:
        if previous_threads is not None:
            torch_set_threads(previous_threads)
    say(f"yaml2torch: {summary.line()}")
    return summary


# --- several workers on this machine -----------------------------------------------------------


def worker_command(options, scale: ScaleOptions, index: int, device: str | None) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "yaml2torch",
        "worker",
        "--storage",
        options.storage_url,
        "--study",
        options.study,
        "--out",
        str(options.out_dir),
        "--worker-index",
        str(index),
        "--threads",
        str(scale.child_threads()),
        "--heartbeat-interval",
        str(scale.heartbeat_interval),
        "--grace-period",
        str(scale.grace_period),
        "--quiet",
    ]
    if device:
        command += ["--device", device]
    if not scale.isolate:
        command.append("--no-isolate")
    return command


def default_devices(options) -> tuple[str, ...]:
    """One worker per GPU when several are visible and the device was left to us."""
    if options.device not in (None, "auto"):
        return (options.device,)
    try:
        import torch

        count = torch.cuda.device_count()
    except ImportError:
        count = 0
    return tuple(f"cuda:{i}" for i in range(count)) if count > 1 else ()


def terminate_with_parent(parent_pid: int) -> bool:
    """In a launched worker: get SIGTERM when the launching process dies (Linux). False if it is gone already."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        return True
    return os.getppid() == parent_pid  # it may have died before prctl took effect


def run_local_workers(study, options, scale: ScaleOptions, *, on_trial_done=None, say=_say, poll: float = 1.0) -> None:
    """Start ``scale.workers`` worker processes sharing the study; follow their trials until all exit.

    Each worker runs in its own session (a terminal's Ctrl-C reaches only this process, which
    passes one SIGINT/SIGTERM to each worker) and is sent SIGTERM if this process dies.
    """
    devices = scale.devices or default_devices(options)
    processes = []
    for index in range(scale.workers):
        device = devices[index % len(devices)] if devices else options.device
        processes.append(
            subprocess.Popen(
                [*worker_command(options, scale, index, device), "--parent-pid", str(os.getpid())],
                start_new_session=True,
            )
        )
    say(f"yaml2torch: {len(processes)} workers on {options.storage_url} (study {options.study})")
    seen: set[int] = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    try:
        with stop_on_signals():
            try:
                while any(p.poll() is None for p in processes):
                    time.sleep(poll)
                    _report_new_trials(study, seen, on_trial_done)
            except StopRequested as stop:
                say(f"yaml2torch: {stop.signal_name}: stopping {len(processes)} workers")
                for process in processes:
                    if process.poll() is None:
                        process.send_signal(stop.signum)
                for process in processes:
                    process.wait(60)
                raise
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    _report_new_trials(study, seen, on_trial_done)
    failed = [p.returncode for p in processes if p.returncode != 0]
    if failed:
        say(f"yaml2torch: {len(failed)} of {len(processes)} workers exited with errors ({failed})")


def _report_new_trials(study, seen: set[int], on_trial_done) -> None:
    try:
        trials = study.get_trials(deepcopy=False)
    except Exception:  # noqa: BLE001 - progress only; the workers do the real work
        return
    for trial in trials:
        if trial.state.is_finished() and trial.number not in seen:
            seen.add(trial.number)
            if on_trial_done is not None:
                on_trial_done(study, trial)


# --- fetching a trial's files from storage alone ------------------------------------------------


def fetch_trial_files(trial: FrozenTrial, artifact_store, trials_root: Path) -> Path | None:
    """Rebuild ``trials_root/<trial_dir>/{spec.yaml, model.py, model.pt}`` from storage; the folder."""
    from yaml2torch.cli import write_atomic

    outputs = TrialOutputs.of(trial)
    name = trial.user_attrs.get("trial_dir")
    if name is None or outputs.spec_yaml is None or outputs.model_source is None:
        return None
    folder = trials_root / name
    write_atomic(folder / "spec.yaml", outputs.spec_yaml)
    write_atomic(folder / "model.py", outputs.model_source)
    if not (folder / "model.pt").is_file():
        download_weights(outputs, artifact_store, folder / "model.pt")
    return folder


def budget_reached(study: optuna.Study, trials: int | None) -> bool:
    if trials is None:
        return False
    all_trials = study.get_trials(deepcopy=False)
    active = any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in all_trials)
    return not active and len(counted_trials(all_trials)) >= trials

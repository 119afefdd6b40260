"""Scale-out pieces with real Optuna studies: storages, study metadata, faults, child trials, stale trials, signals."""

from __future__ import annotations

import linecache
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import numpy as np
import optuna
import pytest
import torch  # noqa: F401 - loaded before forking, as in a real worker (the oom fault raises a torch error)
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from yaml2torch.errors import StudyError, TrainingDiverged, UsageError
from yaml2torch.scale.budget import counted_trials
from yaml2torch.scale.faults import ENV_INJECT, FaultPlan, InjectedFault, check_finite_loss
from yaml2torch.scale.isolation import TrialFailed, TrialTimedOut, run_isolated
from yaml2torch.scale.signals import StopRequested, in_shielded_code, stop_on_signals
from yaml2torch.scale.stale import WorkerIdentity, reap_stale_trials, stale_reason
from yaml2torch.scale.storage import classify_storage, make_artifact_store, make_storage, upload_file
from yaml2torch.scale.worker import WorkerOptions, run_worker
from yaml2torch.search.export import fetch_trial_files
from yaml2torch.search.run import open_stored_study
from yaml2torch.study_record import (
    TRIAL_HEARTBEAT_AT,
    RunSettings,
    StudyRecord,
    check_same_space,
    record_files,
    record_plan,
    record_result,
    record_weights,
)

SPACE = "study: s\nmodel: {backbone: [[1, Linear, [10]]]}\n"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def new_study(storage, name="s", space=SPACE, **kwargs):
    study = optuna.create_study(storage=storage, study_name=name, directions=["minimize"], **kwargs)
    StudyRecord(space, "/nowhere/space.yaml", (("loss", "minimize"),), None, RunSettings(trials=3)).write(study)
    return study


def in_child(trial, train, args=(), time_limit=None):
    """The library's way to train a trial in a child: run_isolated, reporting to the trial."""

    def on_report(step, value):
        trial.report(value, step)
        return trial.should_prune()

    return run_isolated(train, args, time_limit=time_limit, on_report=on_report)


# --- storages ------------------------------------------------------------------------------


def test_storage_urls_name_the_right_optuna_storage(tmp_path):
    assert classify_storage(f"journal://{tmp_path}/a.log").kind == "journal"
    assert classify_storage(str(tmp_path / "a.journal")).location == str(tmp_path / "a.journal")
    assert classify_storage("postgresql://u@h/db").has_heartbeats
    assert not classify_storage("sqlite:///x.db").has_heartbeats
    assert isinstance(make_storage(str(tmp_path / "deep" / "study.log")), JournalStorage)
    assert (tmp_path / "deep" / "study.log").is_file()
    sqlite = make_storage(f"sqlite:///{tmp_path}/s.db")
    assert isinstance(sqlite, RDBStorage) and sqlite.heartbeat_interval is None
    with pytest.raises(UsageError, match="neither a database URL"):
        classify_storage("study.db")
    with pytest.raises(UsageError, match="needs a file path"):
        classify_storage("journal://")


# --- the study record --------------------------------------------------------------------


def test_study_record_round_trips_and_a_different_space_is_refused(tmp_path):
    url = str(tmp_path / "study.log")
    new_study(make_storage(url))
    # Another process (a fresh storage object) reads it back through the one reader.
    stored = open_stored_study(url, "s")
    assert stored.record.space_yaml == SPACE and stored.record.settings == RunSettings(trials=3)
    assert stored.record.space_dir() == Path.cwd()  # the recorded folder does not exist here
    assert stored.config.study == "s"
    check_same_space(stored.study, SPACE, "space.yaml")
    # Laid out or commented differently (yaml2torch fmt): the same search.
    check_same_space(stored.study, "# formatted\nstudy: s\nmodel:\n  backbone:\n    - [1, Linear, [10]]\n", "fmt.yaml")
    with pytest.raises(StudyError, match=r"different search file \(/nowhere/space.yaml\) than edited.yaml"):
        check_same_space(stored.study, SPACE.replace("[10]", "[12]"), "edited.yaml")
    with pytest.raises(StudyError, match="no study named 'nope'.*studies there: s"):
        open_stored_study(url, "nope")
    optuna.create_study(study_name="plain", storage=make_storage(url))
    with pytest.raises(StudyError, match="'plain' has no yaml2torch search file recorded"):
        open_stored_study(url, "plain")


def test_trial_files_and_weights_come_back_from_storage_alone(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    study = new_study(make_storage(url))
    store = make_artifact_store(tmp_path / "artifacts")
    trial = study.ask()
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"\x00weights\xff")
    record_plan(trial.set_user_attr, arch_hash="abc", eval_key="k", spec_yaml="a: 1\n", params=5, macs=None, train={})
    record_files(trial.set_user_attr, "trials/0000", "# src\n")
    record_result(trial.set_user_attr, {"accuracy": 0.5}, None)
    record_weights(trial.set_user_attr, upload_file(trial, weights, store))
    study.tell(trial, 0.5)
    weights.unlink()
    # Another process: only the URL, the name and the store location.
    frozen = optuna.load_study(study_name="s", storage=make_storage(url)).best_trial
    folder = fetch_trial_files(frozen, make_artifact_store(tmp_path / "artifacts"), tmp_path / "out")
    assert folder == tmp_path / "out" / "trials" / "0000"
    assert (folder / "spec.yaml").read_text() == "a: 1\n" and (folder / "model.py").read_text() == "# src\n"
    assert (folder / "model.pt").read_bytes() == b"\x00weights\xff"
    assert not list((tmp_path / "out").rglob(".*partial"))


# --- fault injection and child-process trials ----------------------------------------------


def test_fault_plan_parses_and_applies_at_the_named_trial_and_epoch():
    plan = FaultPlan.parse("exception:trial=2,epoch=2; nan:trial=3")
    assert plan.at_epoch(2, 1, 1.0) == 1.0
    with pytest.raises(InjectedFault, match="trial 2, epoch 2"):
        plan.at_epoch(2, 2, 1.0)
    assert plan.at_epoch(3, 2, 1.0) == 1.0
    poisoned = plan.at_epoch(3, 1, 1.0)
    with pytest.raises(TrainingDiverged, match="non-finite loss"):
        check_finite_loss(poisoned, 0)
    for bad in ("explode:trial=1", "nan:trial=x", "nan:step=1"):
        with pytest.raises(UsageError, match=ENV_INJECT):
            FaultPlan.parse(bad)


def _child_train(channel, fault: str, epochs: int) -> dict:
    plan = FaultPlan.parse(fault)
    loss = 1.0
    for epoch in range(1, epochs + 1):
        loss = plan.at_epoch(7, epoch, loss / 2)
        check_finite_loss(loss, epoch)
        if channel.report(epoch, loss):
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")
    return {"loss": loss, "pid": os.getpid()}


def test_child_trial_returns_its_result_and_reports_each_epoch():
    reports = []
    result = run_isolated(_child_train, ("", 3), on_report=lambda step, value: reports.append((step, value)) or False)
    assert result["loss"] == 0.125 and result["pid"] != os.getpid()
    assert reports == [(1, 0.5), (2, 0.25), (3, 0.125)]
    with pytest.raises(optuna.TrialPruned, match="epoch 1"):
        run_isolated(_child_train, ("", 3), on_report=lambda step, value: step == 1)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("exception:trial=7,epoch=1", r"^InjectedFault: injected exception at trial 7, epoch 1 \(at faults.py:\d+\)$"),
        ("nan:trial=7,epoch=2", r"^non-finite loss \(nan\) at epoch 2$"),
        ("oom:trial=7", r"^out of memory: CUDA out of memory \(injected"),
    ],
)
def test_child_trial_faults_come_back_with_their_reason(fault, reason):
    with pytest.raises(TrialFailed, match=reason):
        run_isolated(_child_train, (fault, 3))


def test_hanging_trial_is_stopped_at_its_time_limit():
    started = time.monotonic()
    with pytest.raises(TrialTimedOut, match="exceeded the per-trial time limit of 1s"):
        run_isolated(_child_train, ("hang:trial=7,epoch=1", 3), time_limit=1.0)
    assert time.monotonic() - started < 30  # stopped at the limit, not left to hang (loose: a busy CI machine)


def _die_hard(channel) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_child_killed_by_a_signal_fails_the_trial_with_the_signal_name():
    with pytest.raises(TrialFailed, match="killed by SIGKILL"):
        run_isolated(_die_hard)


# --- signals ---------------------------------------------------------------------------------


def _self_signal(seconds: float) -> threading.Timer:
    """To start inside ``stop_on_signals`` only: before it, SIGTERM would end the test process."""
    return threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))


def _raised_in(raised: pytest.ExceptionInfo) -> tuple[FrameType, int]:
    """Where the stop was raised: the frame and line before the handler's own (signals.py)."""
    entries, tb = [], raised.tb
    while tb is not None:
        entries.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    names = [frame.f_globals["__name__"] for frame, _ in entries]
    return entries[names.index("yaml2torch.scale.signals") - 1]


def test_a_signal_during_storage_writes_is_raised_outside_them_and_leaves_the_database_usable(tmp_path):
    """Raised inside SQLAlchemy, the stop once left an SQLite write transaction open: the worker then
    waited for ever on its own lock when it recorded the interrupted trial (a CI hang)."""
    path = tmp_path / "study.db"
    study = optuna.create_study(storage=f"sqlite:///{path}")
    trial = study.ask()
    random = np.random.default_rng(0)
    for _ in range(30):
        timer = _self_signal(float(random.uniform(0.0, 0.02)))
        with pytest.raises(StopRequested) as raised, stop_on_signals():
            timer.start()  # a signal that lands in it (threading) is raised on the next line
            while True:  # nearly all of the time is spent in Optuna and SQLAlchemy
                trial.set_user_attr("x", 1)
        timer.join()
        origin, _ = _raised_in(raised)
        assert origin.f_code.co_name == "test_a_signal_during_storage_writes_is_raised_outside_them_and_leaves_the_database_usable"
        assert not in_shielded_code(origin)
        # no connection of this process holds a write lock: another one gets it at once
        other = sqlite3.connect(path, timeout=1)
        other.execute("BEGIN IMMEDIATE")
        other.rollback()
        other.close()
    trial.set_user_attr("after", True)
    assert study.trials[0].user_attrs["after"] is True


def test_a_signal_held_back_in_shielded_code_is_raised_when_it_returns_or_when_the_block_ends():
    started = time.monotonic()
    timer = _self_signal(0.05)
    with pytest.raises(StopRequested) as raised, stop_on_signals():
        timer.start()
        threading.Event().wait(0.5)  # the signal lands in the threading module: held back
        time.sleep(60)  # not reached: raised on this line, before it runs
    timer.join()
    assert time.monotonic() - started >= 0.5  # the wait was not cut short
    origin, line = _raised_in(raised)
    assert origin.f_code.co_name == "test_a_signal_held_back_in_shielded_code_is_raised_when_it_returns_or_when_the_block_ends"
    assert linecache.getline(origin.f_code.co_filename, line).strip().startswith("time.sleep(60)")

    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT), sys.gettrace()
    with pytest.raises(StopRequested, match="SIGTERM"), stop_on_signals():
        sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM))
        sender.start()
        sender.join()  # lands here (threading); the block ends before another line of it runs
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT), sys.gettrace()) == handlers


class _SignalAsTrialsStart(optuna.samplers.RandomSampler):
    """Sends SIGTERM from inside ``study.ask()`` (Optuna code: the stop is held back until it returns)."""

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        super().before_trial(study, trial)
        if trial.number == 1:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_stop_as_a_trial_is_created_records_that_trial_as_interrupted(tmp_path):
    """The trial exists when the stop is raised on the way back from start_trial: it must not be
    left RUNNING with no retry (a worker that dies with it waits a grace period to be reaped)."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", sampler=_SignalAsTrialsStart(seed=0))
    with pytest.raises(StopRequested) as raised, stop_on_signals():
        run_worker(study, lambda t: t.suggest_float("x", 0, 1), WorkerOptions(total_trials=4), say=lambda m: None)
    assert raised.value.interrupted_trial == 1
    states = [(t.number, t.state, t.user_attrs.get("status"), t.user_attrs.get("retry_of")) for t in study.trials]
    assert states == [
        (0, TrialState.COMPLETE, None, None),
        (1, TrialState.FAIL, "interrupted", None),
        (2, TrialState.WAITING, None, 1),
    ]


# --- the worker loop -----------------------------------------------------------------------


def _loss_train(channel, number: int, x: float) -> dict:
    loss = 1.0
    for epoch in range(1, 3):
        loss = FaultPlan.from_env().at_epoch(number, epoch, (x - 0.5) ** 2 + 1 / epoch)
        check_finite_loss(loss, epoch)
        channel.report(epoch, loss)
    return {"loss": loss}


def test_faulty_trials_fail_with_reasons_and_the_study_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_INJECT, "exception:trial=1;nan:trial=2,epoch=1;oom:trial=3;hang:trial=4")
    study = new_study(make_storage(str(tmp_path / "s.log")), pruner=optuna.pruners.NopPruner())

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        return in_child(trial, _loss_train, (trial.number, x), time_limit=2.0)["loss"]

    summary = run_worker(study, objective, WorkerOptions(total_trials=7), say=lambda message: None)
    assert (summary.completed, summary.failed) == (3, 4)
    reasons = {t.number: t.user_attrs.get("reason") for t in study.trials}
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) == 3
    assert reasons[1].startswith("InjectedFault: injected exception at trial 1")
    assert reasons[2] == "non-finite loss (nan) at epoch 1"
    assert reasons[3].startswith("out of memory:")
    assert reasons[4] == "timed out: exceeded the per-trial time limit of 2s"
    assert reasons[0] is None and reasons[5] is None


def test_study_wide_budget_is_exact_with_retries_counted_once(tmp_path):
    study = new_study(make_storage(str(tmp_path / "s.log")))
    run_worker(study, lambda t: t.suggest_float("x", 0, 1), WorkerOptions(total_trials=3), say=lambda m: None)
    assert len(counted_trials(study.trials)) == 3
    # Another worker joining a finished study starts nothing.
    summary = run_worker(study, lambda t: t.suggest_float("x", 0, 1), WorkerOptions(total_trials=3), say=lambda m: None)
    assert summary.completed == 0 and len(study.trials) == 3


# --- stale trials (journal: no heartbeats) -------------------------------------------------


def _start_trial_in_a_process_then_kill_it(url: str, tmp_path: Path) -> int:
    """A real worker process that starts a trial (recording who runs it) and is then SIGKILLed."""
    script = (
        "import sys, time, optuna\n"
        "from yaml2torch.scale.storage import make_storage\n"
        "from yaml2torch.scale.stale import WorkerIdentity\n"
        "from yaml2torch.study_record import TRIAL_WORKER\n"
        "study = optuna.load_study(study_name='s', storage=make_storage(sys.argv[1]))\n"
        "trial = study.ask(); trial.suggest_float('x', 0, 1)\n"
        "trial.set_user_attr(TRIAL_WORKER, WorkerIdentity.current().as_attr())\n"
        "print(trial.number, flush=True); time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, url], stdout=subprocess.PIPE, text=True)
    number = int(process.stdout.readline())
    process.kill()
    process.wait()
    return number


def test_trial_of_a_killed_worker_is_failed_and_retried_once(tmp_path):
    url = str(tmp_path / "s.log")
    study = new_study(make_storage(url))
    number = _start_trial_in_a_process_then_kill_it(url, tmp_path)
    alive = study.ask()  # a trial of this (living) process: not stale
    alive.set_user_attr("worker", WorkerIdentity.current().as_attr())

    reaped = reap_stale_trials(study, grace_period=600)
    assert [(r.number, r.retried) for r in reaped] == [(number, True)]
    assert "died while running the trial" in reaped[0].reason
    trials = study.get_trials()
    assert trials[number].state == TrialState.FAIL
    assert trials[number].user_attrs["reason"].startswith("stale: worker process")
    retry = trials[-1]
    assert retry.state == TrialState.WAITING and retry.user_attrs["retry_of"] == number
    assert retry.params == trials[number].params
    assert trials[alive.number].state == TrialState.RUNNING
    # A second reaper (another worker starting) finds nothing more to do.
    assert reap_stale_trials(study, grace_period=600) == []

    # The retry itself dies: failed, but not queued a third time.
    popped = study.ask()
    assert popped.number == retry.number and popped.params == trials[number].params
    popped.set_user_attr("worker", {"host": os.uname().nodename, "pid": 2**22 + 17, "started": 1})
    [again] = reap_stale_trials(study, grace_period=600)
    assert (again.number, again.retried) == (retry.number, False)
    assert not study.get_trials(states=(TrialState.WAITING,))


def test_a_stale_trial_whose_retry_was_queued_already_is_not_queued_twice(tmp_path):
    """A worker that met a full disk queued the trial's retry but could not fail the trial: the
    reaper on resume fails it and leaves the one queued retry alone."""
    from yaml2torch.scale.stale import enqueue_retry

    study = new_study(make_storage(str(tmp_path / "s.log")))
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.set_user_attr("worker", {"host": os.uname().nodename, "pid": 2**22 + 17, "started": 1})
    enqueue_retry(study, study.get_trials()[trial.number], "cannot write: No space left on device")
    [reaped] = reap_stale_trials(study, grace_period=600)
    assert (reaped.number, reaped.retried) == (trial.number, True)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.WAITING]


def test_silent_trial_from_another_host_is_stale_after_the_grace_period(tmp_path):
    study = new_study(make_storage(str(tmp_path / "s.log")))
    trial = study.ask()
    trial.set_user_attr("worker", {"host": "elsewhere.example", "pid": 1, "started": None})
    trial.set_user_attr(TRIAL_HEARTBEAT_AT, 1000.0)
    frozen = study.get_trials()[0]
    assert stale_reason(frozen, now=1020.0, grace_period=30) is None
    assert stale_reason(frozen, now=1031.0, grace_period=30) == "no heartbeat for 31s (grace period 30s)"


def test_worker_command_errors_are_one_line_with_exit_status_2(tmp_path):
    def worker(storage: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "yaml2torch", "worker", "--storage", storage, "--study", "s"]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    missing = worker(str(tmp_path / "none.log"))
    assert (missing.returncode, missing.stderr) == (
        2,
        f"yaml2torch: error: no journal file {tmp_path / 'none.log'} (a worker joins an existing study)\n",
    )
    assert not (tmp_path / "none.log").exists()
    optuna.create_study(study_name="s", storage=make_storage(str(tmp_path / "plain.log")))
    foreign = worker(str(tmp_path / "plain.log"))
    assert foreign.returncode == 2
    assert foreign.stderr == (
        "yaml2torch: error: study 's' has no yaml2torch search file recorded (was it created by 'yaml2torch search'?)\n"
    )


def test_a_storage_that_stays_away_is_one_user_error_after_the_retries():
    from sqlalchemy.exc import OperationalError

    from yaml2torch.errors import StorageUnreachable, UserError
    from yaml2torch.scale.storage import Backoff, with_storage_retries

    said: list[str] = []

    def refuse() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    with pytest.raises(StorageUnreachable) as caught:
        with_storage_retries(refuse, what="loading the study", backoff=Backoff(0.01, 0.01, 0.03), say=said.append)
    assert isinstance(caught.value, UserError)  # the command line prints it as one line, exit 2
    assert str(caught.value).startswith("storage unreachable while loading the study (")
    assert str(caught.value).endswith("gave up after 0.03s of retries")
    assert len(said) == 3 and all("retrying in 0.0s" in line for line in said)


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/none.db", "journal://{tmp}/none.log", "{tmp}/none.journal"])
def test_reading_a_study_never_creates_a_database(url, tmp_path):
    url = url.format(tmp=tmp_path)
    with pytest.raises(StudyError, match="no such study database or journal file"):
        open_stored_study(url, "s")
    assert list(tmp_path.iterdir()) == []


def test_launched_workers_stderr_comes_back_through_say_whole_lines_and_nothing_to_the_terminal(capfd):
    """A worker writing to the terminal itself lands its line on the end of the live progress bar,
    so each worker's stderr is relayed, line by line, through the launcher's ``say``."""
    from yaml2torch.scale.launch import launch_workers

    script = "import sys\nfor i in range(3):\n    print(f'worker {sys.argv[1]} line {i}', file=sys.stderr, flush=True)\n"
    said: list[str] = []
    codes = launch_workers(
        [[sys.executable, "-c", script, "a"], [sys.executable, "-c", script, "b"]], say=said.append, poll=0.05
    )
    assert codes == [0, 0]
    assert sorted(said) == sorted(f"worker {w} line {i}" for w in "ab" for i in range(3))
    assert [line for line in said if line.startswith("worker a")] == [f"worker a line {i}" for i in range(3)]
    assert capfd.readouterr().err == ""

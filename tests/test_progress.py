"""What search, worker and train say while they run: plain lines off a terminal, bars on one,
one line per stop, a rerun that has nothing to run, and exported files a worker left behind."""

from __future__ import annotations

import io
import json
import os
import pty
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from scale_helpers import SPACE, environment, load, yaml2torch

from yaml2torch.scale.storage import journal_url
from yaml2torch.search.config import parse_config
from yaml2torch.study_record import TrialStatus, record_outcome

optuna.logging.set_verbosity(optuna.logging.WARNING)

ESCAPE = r"(?:\x1b\[[0-9;]*m)*"


def bar(name: str, text: str) -> bool:
    """Whether rich drew its ``name`` bar (``trials ━━━ 1/2``; with colours on a terminal)."""
    return re.search(rf"{ESCAPE}{name}{ESCAPE} +{ESCAPE}━", text) is not None


NET = """\
input_channel: 1
backbone:
  - [1, Conv, [8, 3, 1]]
  - [1, GlobalAvgPool, []]
  - [1, Flatten, []]
  - [1, Linear, [10]]
"""


@pytest.fixture
def space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SPACE)
    return path


def progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("[")]


def test_off_a_terminal_search_says_each_trial_as_it_finishes_and_a_stop_in_one_line(space, tmp_path):
    """Trial 0 finishes, trial 1 hangs: the line for trial 0 is read while the search still runs
    (it was flushed then, not at exit), and SIGINT then says one line for the stopped trial."""
    process = subprocess.Popen(
        [sys.executable, "-m", "yaml2torch", "search", space, "--trials", "3", "--threads", "1", "--out", tmp_path / "out"],
        stderr=subprocess.PIPE,
        text=True,
        env=environment("hang:trial=1"),
    )
    assert process.stderr is not None
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()  # type: ignore[union-attr]
    try:
        first = lines.get(timeout=120)
        # The signal is for the hanging trial 1: wait until it runs (just after trial 0's line it
        # may still be being sampled, and then the stop is rightly "between trials").
        log = tmp_path / "out" / "study.log"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            t.number == 1 and t.state == TrialState.RUNNING for t in load(journal_url(log))
        ):
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)  # trial 1 hangs: only the signal ends the search
    assert process.wait(timeout=120) == 128 + signal.SIGINT
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert first.startswith("[1/3] trial 0 complete: accuracy 0."), first
    assert first.rstrip("\n").endswith("(trial 0)")  # the best so far
    assert [line.rstrip("\n") for line in rest] == [
        "yaml2torch: stopped by SIGINT; trial 1 was failed and queued again",  # the one line of the stop
    ]
    trials = load(journal_url(tmp_path / "out" / "study.log"))
    assert trials[1].state == TrialState.FAIL and trials[1].user_attrs["status"] == "interrupted"


def test_off_a_terminal_workers_trials_are_said_before_the_workers_closing_lines(space, tmp_path):
    run = yaml2torch("search", space, "--workers", 2, "--trials", 3, "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    said = progress_lines(run.stderr)
    assert sorted(line[:5] for line in said) == ["[1/3]", "[2/3]", "[3/3]"], run.stderr
    assert sorted(int(line.split()[2]) for line in said) == [0, 1, 2]  # each trial once
    last_worker = max(i for i, line in enumerate(lines) if line.startswith("yaml2torch: worker: "))
    assert all(lines.index(line) < last_worker for line in said), run.stderr
    assert not bar("trials", run.stderr) and "\x1b" not in run.stderr


def test_train_off_a_terminal_says_each_epoch(space, tmp_path, run_cli):
    spec = tmp_path / "net.yaml"
    spec.write_text(NET)
    result = run_cli("train", spec, "-o", tmp_path / "out", "--epochs", 2, "--image-size", 8)
    assert result.status == 0, result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"], result.stderr
    assert lines[1].startswith("epoch 2/2: val accuracy 0.") and ", loss " in lines[1]
    assert not bar("epochs", result.stderr)


def on_a_terminal(*args: object) -> tuple[int, str]:
    """The command with stderr on a pseudo-terminal (rich draws its bars there): status, output."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "yaml2torch", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env={**environment(None), "COLUMNS": "200"},  # the bar's text is not cut at 80 columns
    )
    os.close(terminal)
    chunks = []
    while True:  # read as it comes: a full pty buffer would block the command
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return process.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_search_draws_bars_whose_last_trial_reads_well(space, tmp_path):
    status, shown = on_a_terminal("search", space, "--trials", 2, "--out", tmp_path / "out")
    assert status == 0, shown
    assert bar("trials", shown) and "[1/2]" not in shown, shown  # bars, not lines
    assert "last: trial 1 complete: accuracy 0." in shown, shown
    assert "complete trained" not in shown and "pruned pruned" not in shown


def test_on_a_terminal_train_draws_its_bar(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(NET)
    status, shown = on_a_terminal("train", spec, "-o", tmp_path / "out", "--epochs", 2, "--image-size", 8)
    assert status == 0, shown
    assert bar("epochs", shown) and "epoch 1/2:" not in shown, shown


def test_a_finished_trial_in_a_few_words() -> None:
    """Real Optuna trials, each ended one way, as the progress line and the bar's "last:" say them."""
    from yaml2torch.search.progress import trial_outcome

    config = parse_config(SPACE, "tiny.yaml")
    study = optuna.create_study(direction="maximize")

    def finished(state: TrialState, status: TrialStatus | None, reason: str | None = None, **attrs):
        trial = study.ask()
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if status is not None:
            record_outcome(trial.set_user_attr, status, reason)
        if state == TrialState.PRUNED:
            for epoch in range(1, 8):
                trial.report(0.9, epoch)
        study.tell(trial, 0.95 if state == TrialState.COMPLETE else None, state=state)
        return study.trials[-1]

    scores = {"accuracy": 0.95, "f1": 0.9}
    said = [
        trial_outcome(finished(TrialState.COMPLETE, TrialStatus.TRAINED, metrics=scores), config),
        trial_outcome(finished(TrialState.PRUNED, TrialStatus.PRUNED, "pruned by Median after epoch 7", metrics=scores), config),
        trial_outcome(finished(TrialState.PRUNED, TrialStatus.INFEASIBLE, "params 2,000 > max_params 1,000"), config),
        trial_outcome(finished(TrialState.COMPLETE, TrialStatus.DUPLICATE, metrics=scores, duplicate_of=0), config),
        trial_outcome(finished(TrialState.FAIL, TrialStatus.FAILED, "boom"), config),
        trial_outcome(finished(TrialState.FAIL, TrialStatus.STALE, "stale: its worker died"), config),
    ]
    assert said == [
        "trial 0 complete: accuracy 0.9500",
        "trial 1 pruned at epoch 7: accuracy 0.9500",
        "trial 2 infeasible: params 2,000 > max_params 1,000",
        "trial 3 same as trial 0: accuracy 0.9500",
        "trial 4 failed",  # the worker says why, on its own line
        "trial 5 failed (stale)",
    ]
    assert trial_outcome(study.trials[2], config, detail=False) == "trial 2 infeasible"  # the bar is short
    # The closing table names the states the same way (an infeasible trial is Optuna's PRUNED).
    from rich.console import Console

    from yaml2torch.search.progress import trials_table

    console = Console(width=200, record=True, file=io.StringIO())
    console.print(trials_table(study, config))
    states = [line.split("│")[2].strip() for line in console.export_text().splitlines() if line.startswith("│")]
    assert states == ["complete", "pruned", "infeasible", "complete", "fail", "fail"]
    assert "notes cut" not in console.export_text()
    # a long reason (a stop names its dominators) is cut, marked, and the caption says where it is whole
    long = "stopped by Dominance after epoch 2: f1 0.0190 is dominated by 3 of the 4 trials with no more MACs"
    finished(TrialState.PRUNED, TrialStatus.PRUNED, long)
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(trials_table(study, config))
    text = console.export_text()
    assert long[:69] + "…" in text and long not in text
    assert "notes cut to 70 characters: yaml2torch report OUT_DIR shows them whole" in text


def test_a_rerun_with_the_budget_spent_says_nothing_ran(space, tmp_path, run_cli):
    out = tmp_path / "out"
    assert run_cli("search", space, "--trials", 2, "--out", out).status == 0
    again = run_cli("search", space, "--trials", 2, "--out", out)
    assert again.status == 0, again.stderr
    nothing = "yaml2torch: study tiny already has its 2 trials; nothing to run (raise --trials to continue)"
    assert again.stderr.splitlines()[0] == nothing, again.stderr
    assert not progress_lines(again.stderr) and "worker:" not in again.stderr
    assert "picked trial" in again.stderr  # the table and the pick are shown again
    assert run_cli("search", space, "--trials", 2, "--out", out, "--quiet").stderr == ""  # --quiet: not said

    joined = run_cli("worker", "--storage", out)
    assert (joined.status, joined.stderr) == (0, nothing + "\n")  # the export is current: no more
    lower = run_cli("worker", "--storage", out, "--trials", 1)
    assert lower.stderr.splitlines() == [
        "yaml2torch: study tiny already has 2 trials, its budget is 1; nothing to run (raise --trials to continue)"
    ]
    assert len(load(journal_url(out / "study.log"))) == 2


def test_a_worker_says_how_to_export_a_best_trial_that_the_output_folder_does_not_show(space, tmp_path):
    """Deterministic bests: the search's only trial fails (no pick exported), so the worker's first
    completed trial is the new best; a later worker whose trial fails changes nothing."""
    out = tmp_path / "out"
    search = yaml2torch("search", space, "--trials", 1, "--out", out, fault="exception:trial=0")
    assert search.returncode == 1, search.stderr
    assert json.loads((out / "summary.json").read_text())["picked"] is None

    worker = yaml2torch("worker", "--storage", out / "study.log", "--trials", 2)
    assert worker.returncode == 0, worker.stderr
    hint = (
        f"yaml2torch: the best trial is now 1 ({out / 'summary.json'} names no trial); "
        f"run yaml2torch best --storage {out / 'study.log'} -o {out} to export it"
    )
    assert worker.stderr.splitlines()[-1] == hint, worker.stderr
    # Still stale for a worker that finds nothing to run; then best exports it, and all agree.
    again = yaml2torch("worker", "--storage", out / "study.log")
    assert again.stderr.splitlines()[-1] == hint, again.stderr
    assert yaml2torch("best", "--storage", out / "study.log", "-o", out).returncode == 0
    quiet = yaml2torch("worker", "--storage", out / "study.log", "--trials", 3, fault="exception:trial=2")
    assert quiet.returncode == 0, quiet.stderr
    assert "best trial is now" not in quiet.stderr and "trial 2 failed: InjectedFault" in quiet.stderr
    assert json.loads((out / "summary.json").read_text())["picked"]["number"] == 1

"""What search, worker and train say while they run: plain lines off a terminal, bars on one,
one line per stop."""

from __future__ import annotations

import os
import pty
import queue
import re
import signal
import subprocess
import sys
import threading
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
    finally:
        process.send_signal(signal.SIGINT)  # trial 1 hangs: only the signal ends the search
    assert process.wait(timeout=120) == 128 + signal.SIGINT
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert first.startswith("[1/3] trial 0 complete: accuracy 0."), first
    assert first.rstrip("\n").endswith("(trial 0)")  # the best so far
    assert [line.rstrip("\n") for line in rest] == [
        "yaml2torch: stopped by SIGINT; trial 1 was failed and queued again",
        "yaml2torch: interrupted",
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

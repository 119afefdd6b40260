"""Scale-out with the real search: digits training through `yaml2torch search --workers` and `yaml2torch worker`.

Tiny models, 2 epochs on 300 digits at 8x8, so a trial takes about a second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from pg_server import postgres_server  # noqa: F401 - a fixture
from scale_helpers import SPACE, check_trained, load, yaml2torch

from yaml2torch.scale.budget import counted_trials
from yaml2torch.scale.faults import ENV_INJECT
from yaml2torch.scale.storage import journal_url, make_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

@pytest.fixture
def space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SPACE)
    return path


def test_two_workers_share_a_journal_study_and_best_runs_from_storage_alone(space, tmp_path):
    out = tmp_path / "out"
    # --devices alone sets one worker per device (CPU here: the same path as cuda:0,cuda:1).
    done = yaml2torch("search", space, "--devices", "cpu,cpu", "--trials", 4, "--out", out, "--quiet")
    assert (done.returncode, done.stderr) == (0, "")  # --quiet: no worker lines either
    url = journal_url(out / "study.log")  # the default storage with workers: a journal file
    complete = check_trained(load(url), out, 4)
    assert len({c.user_attrs["worker"]["pid"] for c in complete}) == 2  # both workers trained
    for trial in complete:
        assert json.loads((out / trial.user_attrs["trial_dir"] / "metrics.json").read_text())["device"] == "cpu"
    assert (out / "best.yaml").is_file() and (out / "best_model.pt").is_file()

    # "Another machine": the trial folders are gone; storage and the artifact store remain.
    (out / "trials").rename(tmp_path / "elsewhere")
    other = tmp_path / "other"
    best = yaml2torch("best", "--storage", url, "--study", "tiny", "-o", other, "--artifacts", out / "artifacts", "--json")
    assert best.returncode == 0, best.stderr
    assert "fetched trial" in best.stderr
    picked = json.loads(best.stdout)["picked"]
    assert (other / "best.yaml").read_text() == load(url)[picked].user_attrs["spec_yaml"]
    # best_model.py is compiled beside best.yaml (its header names it); the trial's source names spec.yaml.
    assert (other / "best_model.py").read_text().replace("best.yaml", "spec.yaml") == load(url)[picked].user_attrs["model_py"]
    assert (other / "best_model.pt").read_bytes() == (out / "best_model.pt").read_bytes()
    assert json.loads(best.stdout)["test"]["accuracy"] > 0

    # A search started with a different space file for the same study is refused.
    changed = tmp_path / "changed.yaml"
    changed.write_text(SPACE.replace("limit: 300", "limit: 200"))
    refused = yaml2torch("search", changed, "--storage", url, "--study", "tiny", "--out", out, "--quiet")
    assert refused.returncode == 2
    assert "different search file" in refused.stderr


def test_quiet_search_and_worker_print_nothing_when_all_goes_well(space, tmp_path):
    out = tmp_path / "out"
    runs = (
        ("search", space, "--trials", 1, "--out", out, "--quiet"),
        ("search", space, "--trials", 3, "--workers", 2, "--out", out, "--quiet"),
        ("worker", "--storage", out, "--trials", 4, "--quiet"),
    )
    for args in runs:
        run = yaml2torch(*args)
        assert (run.returncode, run.stdout, run.stderr) == (0, "", ""), args
    assert len(load(journal_url(out / "study.log"))) == 4


def test_killed_worker_mid_training_is_retried_and_the_report_shows_it(space, tmp_path):
    out = tmp_path / "out"
    # Trial 1 SIGKILLs the worker that runs it after its first epoch (of 2).
    run = yaml2torch(
        "search", space, "--workers", 2, "--trials", 4, "--out", out, "--quiet", fault="sigkill:trial=1,epoch=1"
    )
    assert run.returncode == 0, run.stderr
    assert "1 of 2 workers exited with errors ([-9])" in run.stderr
    url = journal_url(out / "study.log")
    # The restart: a worker joining the finished study has nothing left to do.
    again = yaml2torch("worker", "--storage", url, "--study", "tiny", "--quiet")
    assert again.returncode == 0, again.stderr
    trials = load(url)
    killed = trials[1]
    assert killed.state == TrialState.FAIL and killed.user_attrs["status"] == "stale"
    assert killed.user_attrs["reason"].startswith("stale: worker process")
    [retry] = [t for t in trials if t.user_attrs.get("retry_of") == 1]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    check_trained(trials, out, 4)
    assert len(counted_trials(trials)) == 4

    report = yaml2torch("report", "--storage", url, "--study", "tiny", "-o", tmp_path / "report.html")
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "report.html").read_text()
    assert "retry of trial 1" in html and f"retried as trial {retry.number}" in html


def progress_lines(stderr: str) -> list[str]:
    """The lines search says off a terminal, one per finished trial: ``[n/N] trial ...; best ...``."""
    return [line for line in stderr.splitlines() if line.startswith("[")]


def test_the_trial_count_counts_a_retried_trial_once_and_a_rerun_says_nothing_ran(space, tmp_path):
    out = tmp_path / "out"
    # Trial 1's worker is killed mid-training: trial 1 fails (stale) and its retry runs; 5 entries, 4 counted.
    args = ("search", space, "--workers", 2, "--trials", 4, "--out", out)
    run = yaml2torch(*args, fault="sigkill:trial=1,epoch=1")
    assert run.returncode == 0, run.stderr
    trials = load(journal_url(out / "study.log"))
    assert len(trials) == 5 and len(counted_trials(trials)) == 4
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    said = progress_lines(run.stderr)
    assert len(said) == 5 and "trial 1 failed (stale)" in "\n".join(said), run.stderr  # every entry, once
    assert said[-1].startswith("[4/4] ") and max(int(line[1]) for line in said) == 4, run.stderr
    assert said[-1].endswith(f"best {best.value:.4f} (trial {best.number})"), run.stderr
    # The same command again: the budget is spent, nothing runs, and it says so.
    again = yaml2torch(*args)
    assert again.returncode == 0, again.stderr
    assert "yaml2torch: study tiny already has its 4 trials; nothing to run (raise --trials to continue)" in again.stderr
    assert not progress_lines(again.stderr) and f"picked trial {best.number} " in again.stderr, again.stderr


def test_faults_in_real_training_fail_their_trial_with_the_reason(space, tmp_path):
    out = tmp_path / "out"
    faults = "exception:trial=0;nan:trial=1,epoch=2;hang:trial=2;oom:trial=3"
    started = time.monotonic()
    run = yaml2torch(
        "search", space, "--trials", 5, "--time-limit", 10, "--threads", 1, "--out", out, "--quiet", fault=faults
    )
    assert run.returncode == 0, run.stderr
    assert time.monotonic() - started < 120
    trials = load(journal_url(out / "study.log"))
    reasons = {t.number: (t.state, t.user_attrs.get("reason")) for t in trials}
    assert reasons[0][0] == TrialState.FAIL and reasons[0][1].startswith("InjectedFault: injected exception at trial 0")
    assert reasons[1] == (TrialState.FAIL, "non-finite loss (nan) at epoch 2")
    assert reasons[2] == (TrialState.FAIL, "timed out: exceeded the per-trial time limit of 10s")
    assert reasons[3][0] == TrialState.FAIL and reasons[3][1].startswith("out of memory: CUDA out of memory (injected")
    assert reasons[4][0] == TrialState.COMPLETE
    assert all(t.user_attrs.get("status") == "failed" for t in trials[:4])


def test_a_hung_trial_is_stopped_with_the_default_threads(space, tmp_path):
    """Without --threads (measured, up to every core) trials still train in a child that the time
    limit can stop: loading the data must not start a thread pool in the parent first."""
    out = tmp_path / "out"
    run = yaml2torch("search", space, "--trials", 2, "--time-limit", 10, "--out", out, "--quiet", fault="hang:trial=0")
    assert run.returncode == 0, run.stderr
    assert "trials train in this process" not in run.stderr
    trials = load(journal_url(out / "study.log"))
    assert (trials[0].state, trials[0].user_attrs.get("reason")) == (
        TrialState.FAIL,
        "timed out: exceeded the per-trial time limit of 10s",
    )
    assert trials[1].state == TrialState.COMPLETE


def test_sigterm_stops_a_real_search_promptly_with_nothing_half_written(space, tmp_path):
    out = tmp_path / "out"
    slow = tmp_path / "slow.yaml"
    slow.write_text(SPACE.replace("epochs: 2", "epochs: 400"))
    url = f"sqlite:///{tmp_path / 'study.db'}"  # SQLite: where a stop inside a commit once hung the worker
    process = subprocess.Popen(
        [sys.executable, "-m", "yaml2torch", "search", slow, "--threads", "1", "--out", out, "--quiet", "--storage", url],
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != ENV_INJECT},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "trials" / "0000" / "model.py").is_file():
        time.sleep(0.2)
    time.sleep(1.0)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    # Promptly: within the current epoch, not after the 400-epoch training (minutes). The bound is
    # loose on purpose (a loaded CI machine); stop latency is measured, not asserted, elsewhere.
    assert time.monotonic() - sent < 60
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr
    trials = load(url)
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["status"] == "interrupted"
    assert trials[1].state == TrialState.WAITING and trials[1].user_attrs["retry_of"] == 0
    assert not (out / "trials" / "0000" / "model.pt").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith((".tmp", ".partial"))]


def search_process(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "yaml2torch", "search", *map(str, args)],
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != ENV_INJECT},
    )


def test_sigint_to_search_with_workers_says_it_stops_the_workers_that_run_trials(space, tmp_path):
    out = tmp_path / "out"
    slow = tmp_path / "slow.yaml"
    slow.write_text(SPACE.replace("epochs: 2", "epochs: 400"))
    process = search_process(slow, "--workers", 2, "--trials", 4, "--threads", 1, "--out", out, "--quiet")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all((out / "trials" / f"000{i}" / "model.py").is_file() for i in (0, 1)):
        time.sleep(0.2)
    time.sleep(1.0)  # both workers are training
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGINT, stderr
    assert "yaml2torch: SIGINT: stopping 2 workers" in stderr.splitlines(), stderr
    assert stderr.count("stopped by SIGINT; trial") == 2, stderr
    assert "failed: interrupted" not in stderr and "queued again" not in stderr.replace("was failed and queued again", "")


def test_sigint_after_the_workers_finished_their_trials_says_no_worker_was_stopped(space, tmp_path):
    """The budget is spent and the workers are only exiting (or the export runs): no "stopping N
    workers", which would say that trials were cut short."""
    process = search_process(space, "--workers", 2, "--trials", 2, "--out", tmp_path / "out")
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if sum("yaml2torch: worker: " in seen for seen in lines) == 2:  # both workers are done
            process.send_signal(signal.SIGINT)
            break
    stderr = "".join(lines) + process.communicate(timeout=120)[1]
    assert process.returncode == 128 + signal.SIGINT, stderr
    assert "stopping" not in stderr and "stopped" not in stderr, stderr
    assert stderr.splitlines()[-1] == "yaml2torch: interrupted", stderr


def test_sigterm_as_the_study_is_made_is_one_line_and_leaves_no_orphan_trial(space, tmp_path):
    """Start-up, the first trial's creation or its training: whichever the signal meets, the command
    ends with status 143 and one line, and no trial is left RUNNING without its retry."""
    out = tmp_path / "out"
    slow = tmp_path / "slow.yaml"
    slow.write_text(SPACE.replace("epochs: 2", "epochs: 400"))
    process = subprocess.Popen(
        [sys.executable, "-m", "yaml2torch", "search", slow, "--threads", "1", "--out", out, "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != ENV_INJECT},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "study.log").is_file():
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    # One line: the CLI's, or the worker loop's when the signal met a trial (then the CLI adds none).
    assert "Traceback" not in stderr and len(stderr.splitlines()) == 1, stderr
    assert stderr.splitlines()[-1] in ("yaml2torch: interrupted", "yaml2torch: stopped by SIGTERM; trial 0 was failed and queued again")
    storage = make_storage(journal_url(out / "study.log"))
    trials = load(journal_url(out / "study.log")) if "tiny" in optuna.get_all_study_names(storage) else []  # may not exist yet
    running = [t for t in trials if t.state == TrialState.RUNNING]
    assert not running, [(t.number, t.user_attrs) for t in trials]
    for trial in trials:
        if trial.state == TrialState.FAIL:
            assert trial.user_attrs["status"] == "interrupted"
            assert any(t.user_attrs.get("retry_of") == trial.number for t in trials)


@pytest.mark.postgres
def test_four_workers_on_postgres_with_a_real_search(postgres_server, space, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    url = postgres_server.url
    args = ("--trials", 8, "--storage", url, "--study", "search4", "--out", out, "--quiet")
    run = yaml2torch("search", space, "--workers", 4, *args)
    assert run.returncode == 0, run.stderr
    trials = load(url, "search4")
    check_trained(trials, out, 8)
    assert len(trials) == 8  # exactly the budget: no surplus entries


@pytest.mark.postgres
def test_report_of_a_server_study_defaults_to_its_recorded_output_folder(postgres_server, space, tmp_path):  # noqa: F811
    out, url = tmp_path / "out", postgres_server.url
    run = yaml2torch("search", space, "--trials", 1, "--storage", url, "--study", "served", "--out", out, "--quiet")
    assert run.returncode == 0, run.stderr
    report = yaml2torch("report", "--storage", url, "--study", "served")
    assert (report.returncode, report.stderr) == (0, f"wrote {out.resolve() / 'report.html'}\n")
    assert "study served" in (out / "report.html").read_text()
    out.rename(tmp_path / "moved")  # another machine: the recorded folder is not here
    refused = yaml2torch("report", "--storage", url, "--study", "served")
    expected = (
        f"yaml2torch: error: report: the study is on a database server and its output folder {out.resolve()} "
        "is not on this machine; give -o FILE.html\n"
    )
    assert (refused.returncode, refused.stderr) == (2, expected)

"""Many worker processes sharing one study through the real trial path (``yaml2torch search
--workers`` and ``yaml2torch worker``): exact budgets on a journal file, SQLite and a real
PostgreSQL server, a killed worker on PostgreSQL, and a PostgreSQL restart mid-run.

``tests/test_budget_stress.py`` runs the same budget checks many times (not in CI by default).
"""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from pg_server import postgres_server  # noqa: F401 - a fixture
from scale_helpers import SPACE, check_trained, load, start, yaml2torch

from yaml2torch.scale.budget import counted_trials
from yaml2torch.scale.storage import journal_url

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SPACE.replace("epochs: 2", "epochs: 1"))
    return path


def exact_budget(space: Path, url: str, out: Path, workers: int = 4, study: str = "tiny") -> None:
    """N workers, then a late worker, then a resume with a larger budget: exactly N trials each time."""
    common = ("--storage", url, "--study", study, "--out", out, "--quiet")
    run = yaml2torch("search", space, "--workers", workers, "--trials", 8, *common)
    assert run.returncode == 0, run.stderr
    trials = load(url, study)
    assert len(trials) == 8, [(t.number, t.state, t.user_attrs.get("reason")) for t in trials]
    check_trained(trials, out, 8)
    # A worker started after the budget is reached starts nothing.
    late = yaml2torch("worker", "--storage", url, "--study", study, "--quiet")
    assert late.returncode == 0, late.stderr
    assert len(load(url, study)) == 8
    # Resumed with a larger budget: exactly the new budget.
    more = yaml2torch("search", space, "--workers", workers, "--trials", 11, *common)
    assert more.returncode == 0, more.stderr
    check_trained(load(url, study), out, 11)
    assert len(load(url, study)) == 11


def test_four_workers_on_a_journal_file_run_exactly_the_budget(space, tmp_path):
    out = tmp_path / "out"
    exact_budget(space, journal_url(out / "study.log"), out)


def test_two_workers_on_sqlite_run_exactly_the_budget(space, tmp_path):
    out = tmp_path / "out"
    exact_budget(space, f"sqlite:///{out / 'study.db'}", out, workers=2)


@pytest.mark.postgres
def test_four_workers_on_postgres_run_exactly_the_budget(postgres_server, space, tmp_path):  # noqa: F811
    exact_budget(space, postgres_server.url, tmp_path / "out", study="exact")


@pytest.mark.postgres
def test_killed_worker_on_postgres_is_failed_by_heartbeat_and_retried(postgres_server, space, tmp_path):  # noqa: F811
    out, url = tmp_path / "out", postgres_server.url
    liveness = ("--heartbeat-interval", 1, "--grace-period", 2)
    # Trial 2 SIGKILLs the worker running it after its first epoch (of 2).
    slow = tmp_path / "slow.yaml"
    slow.write_text(SPACE)
    args = ("search", slow, "--workers", 2, "--trials", 6, "--storage", url, "--study", "killed", "--out", out, "--quiet")
    args = (*args, *liveness)
    run = yaml2torch(*args, fault="sigkill:trial=2,epoch=1")
    assert run.returncode == 0, run.stderr
    assert "1 of 2 workers exited with errors ([-9])" in run.stderr
    time.sleep(2.5)  # past the grace period, so a restarted worker sees the trial as stale
    again = yaml2torch("worker", "--storage", url, "--study", "killed", "--quiet", *liveness)
    assert again.returncode == 0, again.stderr
    trials = load(url, "killed")
    killed = trials[2]
    assert killed.state == TrialState.FAIL and killed.user_attrs["status"] == "stale"
    assert "heartbeat" in killed.user_attrs["reason"]
    [retry] = [t for t in trials if t.user_attrs.get("retry_of") == 2]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    check_trained(trials, out, 6)
    assert len(counted_trials(trials)) == 6 and len(trials) == 7  # the killed trial plus its retry


@pytest.mark.postgres
def test_workers_survive_a_postgres_restart(postgres_server, tmp_path):  # noqa: F811
    out, url = tmp_path / "out", postgres_server.url
    slow = tmp_path / "slow.yaml"
    slow.write_text(SPACE.replace("epochs: 2", "epochs: 6"))
    args = ("--trials", 6, "--storage", url, "--study", "restart", "--out", out, "--grace-period", 60)
    process = start("search", slow, "--workers", 2, *args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(out.glob("trials/*/model.py")):
        time.sleep(0.2)
    postgres_server.restart(down_seconds=2)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr
    assert "storage unreachable" in stderr and "retrying in" in stderr, stderr
    trials = load(url, "restart")
    assert len(counted_trials(trials)) == 6
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 5, [(t.number, t.state) for t in trials]

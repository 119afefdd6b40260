"""Many worker processes sharing one study, on a journal file and on a real PostgreSQL server.

The objective is trivial (see scale_trivial_worker.py) so these tests measure the storage,
the worker loop and the fault handling; tests/test_scale_search.py does the same with real training.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from pg_server import postgres_server  # noqa: F401 - a fixture

from yaml2torch.scale.faults import ENV_INJECT
from yaml2torch.scale.metadata import TrialOutputs, download_weights
from yaml2torch.scale.storage import make_artifact_store, make_storage

ROOT = Path(__file__).resolve().parent.parent
TRIVIAL_WORKER = ROOT / "tests" / "scale_trivial_worker.py"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def start_worker(
    url: str, artifacts: Path, total: int, *extra: str, fault: str | None = None, study: str = "s"
) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != ENV_INJECT}
    if fault:
        env[ENV_INJECT] = fault
    return subprocess.Popen(
        [sys.executable, str(TRIVIAL_WORKER), url, study, str(artifacts), "--total", str(total), *extra],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(processes: list[subprocess.Popen], timeout: float = 90) -> list[tuple[int, str]]:
    return [(p.wait(timeout), p.communicate()[1]) for p in processes]


def check_complete_study(
    url: str, artifacts: Path, total: int, tmp_path: Path, study: str = "s"
) -> list[optuna.trial.FrozenTrial]:
    trials = optuna.load_study(study_name=study, storage=make_storage(url)).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == total
    assert len({t.number for t in trials}) == len(trials)
    store = make_artifact_store(artifacts)
    for trial in complete:
        outputs = TrialOutputs.of(trial)
        assert outputs.spec_yaml == f"x: {trial.params['x']!r}\n" and outputs.metrics["loss"] == trial.value
        weights = download_weights(outputs, store, tmp_path / "fetched" / f"{trial.number}.txt")
        assert weights.read_text() == f"weights of trial {trial.number}: x={trial.params['x']!r}\n"
    return trials


def four_workers(url: str, tmp_path: Path, per_worker: int = 3) -> None:
    artifacts = tmp_path / "artifacts"
    total = 4 * per_worker
    results = finish([start_worker(url, artifacts, total) for _ in range(4)])
    stderr = "\n\n".join(err for _, err in results)
    assert [code for code, _ in results] == [0] * 4, stderr
    trials = check_complete_study(url, artifacts, total, tmp_path)
    # Workers finishing at the same instant may still start one trial too many: it is failed at
    # once as surplus, untrained (rare: a random pause before the last trials makes it so).
    extra = [t for t in trials if t.state != TrialState.COMPLETE]
    assert all(t.user_attrs["status"] == "surplus" and "spec_yaml" not in t.user_attrs for t in extra), extra
    assert len(extra) <= 1


def kill_one_of_two_then_restart(url: str, tmp_path: Path, *extra: str) -> list[optuna.trial.FrozenTrial]:
    artifacts = tmp_path / "artifacts"
    total = 8
    # Trial 2 SIGKILLs the worker running it in the middle of its training (epoch 1 of 3).
    fault = "sigkill:trial=2,epoch=1"
    first = [start_worker(url, artifacts, total, "--epochs", "3", *extra, fault=fault) for _ in range(2)]
    results = finish(first)
    assert sorted(code for code, _ in results) == [-9, 0], results
    restarted = finish([start_worker(url, artifacts, total, "--epochs", "3", *extra)])
    assert restarted[0][0] == 0, restarted
    trials = check_complete_study(url, artifacts, total, tmp_path)
    killed = trials[2]
    assert killed.state == TrialState.FAIL
    [retry] = [t for t in trials if t.user_attrs.get("retry_of") == 2]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert len(trials) == total + 1  # the killed trial plus its retry
    return trials


def test_four_workers_share_a_journal_file(tmp_path):
    four_workers(str(tmp_path / "study.log"), tmp_path)


def test_killed_worker_on_a_journal_file_is_detected_and_its_trial_retried(tmp_path):
    trials = kill_one_of_two_then_restart(str(tmp_path / "study.log"), tmp_path)
    assert trials[2].user_attrs["reason"].startswith("stale: worker process")


@pytest.mark.postgres
def test_four_workers_share_postgres(postgres_server, tmp_path):  # noqa: F811
    url = postgres_server.url.rsplit("/", 1)[0] + "/postgres"
    four_workers(url, tmp_path)


@pytest.mark.postgres
def test_killed_worker_on_postgres_is_failed_by_heartbeat_and_retried(postgres_server, tmp_path):  # noqa: F811
    trials = kill_one_of_two_then_restart(postgres_server.url, tmp_path, "--heartbeat", "1", "--grace", "2")
    assert trials[-1].number > 2


@pytest.mark.postgres
def test_workers_survive_a_postgres_restart(postgres_server, tmp_path):  # noqa: F811
    url = postgres_server.url
    artifacts = tmp_path / "artifacts"
    args = (url, artifacts, 10, "--epoch-seconds", "0.4", "--grace", "20")
    workers = [start_worker(*args, study="restart") for _ in range(2)]
    time.sleep(3)
    postgres_server.restart(down_seconds=2)
    results = finish(workers, timeout=120)
    assert [code for code, _ in results] == [0, 0], "\n\n".join(stderr for _, stderr in results)
    assert any("storage unreachable" in stderr and "retrying in" in stderr for _, stderr in results), results
    trials = optuna.load_study(study_name="restart", storage=make_storage(url)).get_trials()
    assert len(counted_trials_of(trials)) == 10


def counted_trials_of(trials):
    from yaml2torch.scale.worker import counted_trials

    return counted_trials(trials)

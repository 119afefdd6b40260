"""Storage overhead per trial: SQLite, journal file and PostgreSQL, with a trivial objective.

    .venv/bin/python bench/storage_overhead.py [--trials 200]

Two loops per storage, one process, the objective returning at once (so all the time is storage):
- ``optuna``: plain ``study.optimize`` (Optuna's own cost for ask/tell and one parameter);
- ``worker``: yaml2torch's worker loop (``run_worker``): adds the stale-trial check, the study-wide
  budget check, the worker identity attribute, one heartbeat and the artifact-free bookkeeping.
The PostgreSQL server is a throwaway one started here (initdb; needs the Debian package).
The per-trial time grows with the study for the journal and SQLite (each check reads all trials),
so the figures are the mean over ``--trials`` trials in a fresh study.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from _common import machine

from yaml2torch.scale.budget import StudyLock
from yaml2torch.scale.storage import make_storage
from yaml2torch.scale.worker import WorkerOptions, run_worker


def objective(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0.0, 1.0) ** 2


def per_trial_ms(url: str | None, loop: str, trials: int, name: str) -> float:
    storage = make_storage(url, heartbeat_interval=60, grace_period=120) if url else optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    started = time.perf_counter()
    if loop == "optuna":
        study.optimize(objective, n_trials=trials)
    else:
        lock = StudyLock(url, name) if url else None  # the exact budget's lock, as every worker takes it
        options = WorkerOptions(total_trials=trials, heartbeat_interval=60)
        run_worker(study, objective, options, lock=lock, say=lambda m: None)
    elapsed = time.perf_counter() - started
    assert len(study.trials) == trials
    return 1000 * elapsed / trials


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import warnings

    warnings.simplefilter("ignore")
    folder = Path(tempfile.mkdtemp(prefix="y2t-storage-bench-"))
    server = None
    try:
        from pg_server import find_pg_bin, start_postgres

        server = start_postgres() if find_pg_bin() else None
        storages = {
            "in-memory (reference)": None,
            "SQLite": f"sqlite:///{folder}/study.db",
            "journal file": str(folder / "study.log"),
        }
        if server is not None:
            storages["PostgreSQL (local, heartbeats on)"] = server.url
        print(f"# storage overhead per trial, trivial objective, {args.trials} trials, one process")
        print(f"# {machine()}, optuna {optuna.__version__}")
        print("| storage | Optuna loop (ms/trial) | yaml2torch worker loop (ms/trial) |")
        print("|---|---:|---:|")
        for index, (label, url) in enumerate(storages.items()):
            plain = per_trial_ms(url, "optuna", args.trials, f"plain{index}")
            ours = per_trial_ms(url, "worker", args.trials, f"worker{index}")
            print(f"| {label} | {plain:.1f} | {ours:.1f} |", flush=True)
        if server is None:
            print("| PostgreSQL | not installed (.ci/setup-test.sh) | |")
    finally:
        if server is not None:
            server.stop("immediate")
            shutil.rmtree(server.root, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

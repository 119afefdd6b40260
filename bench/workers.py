"""Trials per minute on digits with 1 and 2 workers, and the cost of a child process per trial.

    .venv/bin/python bench/workers.py [--trials 8] [--epochs 5]

Every trial trains the same CNN (the digits example's middle-sized architecture, fixed) on the
full digits set at 16x16 for ``--epochs`` epochs; only the learning rate is sampled, so trials
cost the same and none is skipped as a duplicate. Runs, each a fresh study through the CLI:

- 1 worker with 2 torch threads, then with 1, each training in the worker process
  (``--no-isolate``) or in a forked child per trial (the default): the child's cost;
- 2 workers (``--workers 2``: two processes, one torch thread each, a journal file).

Trials per minute are counted from the first trial's start to the last trial's end (process
start-up and the final export excluded; the whole command's time is shown too).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _common import machine

from yaml2torch.scale.storage import make_storage

SPACE = """\
study: bench
seed: 0
data: digits
objectives: [accuracy]
sampler: {{type: Random}}
pruner: {{type: none}}
train:
  epochs: {epochs}
  batch_size: 64
  image_size: 16
  optimizer: {{type: Adam, lr: {{float: [0.001, 0.01], log: true}}}}
  scheduler: cosine
model:
  backbone:
    - [1, Conv, [16, 3, 1]]
    - [1, Conv, [32, 3, 1]]
    - [1, MaxPool, [2]]
    - [1, Conv, [48, 3, 1]]
    - [1, MaxPool, [2]]
    - [1, Conv, [64, 3, 1]]
    - [1, GlobalAvgPool, []]
    - [1, Flatten, []]
    - [1, Linear, [10]]
"""


def run(space: Path, out: Path, trials: int, *extra: str) -> tuple[float, float, float]:
    """(trials per minute, mean trial seconds, whole command seconds)."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "yaml2torch",
            "search",
            str(space),
            "--trials",
            str(trials),
            "--out",
            str(out),
            "--quiet",
            *extra,
        ],
        check=True,
        capture_output=True,
    )
    command = time.perf_counter() - started
    url = f"journal://{out / 'study.log'}" if "--workers" in extra else f"sqlite:///{out / 'study.db'}"
    done = [
        t
        for t in optuna.load_study(study_name="bench", storage=make_storage(url)).trials
        if t.state == optuna.trial.TrialState.COMPLETE
    ]
    assert len(done) == trials, f"{len(done)} of {trials} trials completed"
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    mean = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done) / len(done)
    return 60 * trials / span, mean, command


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    folder = Path(tempfile.mkdtemp(prefix="y2t-workers-bench-"))
    space = folder / "bench.yaml"
    space.write_text(SPACE.format(epochs=args.epochs))
    load = os.getloadavg()[0]
    print(f"# digits, fixed CNN, {args.epochs} epochs per trial, {args.trials} trials per run; {machine()}")
    print(f"# load average at start: {load:.1f} (other processes share these cores when it is above 0)")
    print("| run | trials/min | mean trial (s) | whole command (s) |")
    print("|---|---:|---:|---:|")
    runs = {
        "1 worker, 2 threads, in-process training (--no-isolate)": ("--no-isolate", "--threads", "2"),
        "1 worker, 2 threads, child process per trial (default)": ("--threads", "2"),
        "1 worker, 1 thread, in-process training (--no-isolate)": ("--no-isolate", "--threads", "1"),
        "1 worker, 1 thread, child process per trial": ("--threads", "1"),
        "2 workers, 1 thread each (--workers 2, journal file)": ("--workers", "2"),
    }
    try:
        for index, (label, extra) in enumerate(runs.items()):
            per_minute, mean, command = run(space, folder / f"run{index}", args.trials, *extra)
            print(f"| {label} | {per_minute:.1f} | {mean:.2f} | {command:.1f} |", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

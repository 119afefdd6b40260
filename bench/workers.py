"""Trials per minute with 1 and 2 workers, with the measured thread default and fixed counts.

    .venv/bin/python bench/workers.py [--space digits|fixed] [--trials 16] [--repeats 2]

``--space digits`` runs the main job's file, examples/search/digits.yaml (its own 20 epochs, TPE,
the Median pruner; ``--trials`` replaces its budget and timeout). Workers sample different
architectures (each has its own sampler seed), so the trials of two runs are not the same; the
epochs trained per minute are therefore printed beside the trials per minute.

``--space fixed`` trains one fixed CNN (the digits example's middle-sized one, 16x16 input, 5
epochs) in every trial, only the learning rate sampled, so every trial costs the same.

Runs, each a fresh study through the CLI as a user types it, in rotating order ``--repeats`` times
(the best of each is printed, so that load drift does not favour one). ``--seeds S`` gives round r
the study seed S + r (a copy of the file with that ``seed:``; the same seed for every row of the round):
the file's fixed seed makes every round repeat the same two trial sequences, so a difference in
how long one sequence's trials train (pruning, sampled sizes) would look like a worker effect.

- 1 worker with the default (threads measured per trial), with ``--threads 1`` and ``--threads 2``;
- 2 workers (``--workers 2``: two processes, a journal file, the default measured threads capped
  at cores / workers = 1 each on 2 cores).

Throughput is counted from the first trial's start to the last trial's end (process start-up and
the final export excluded: they are in the whole command's time, shown too). Each round also
prints two workers against the default one worker of the same round, and the end the median of
those paired ratios: on a shared VM the machine's speed drifts between rounds, and a ratio of two
runs minutes apart is steadier than a ratio of two bests from different rounds.
``--rows core`` leaves out the ``--threads 2`` row, ``--rows pair`` keeps only the default one
worker and two workers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
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

FIXED_SPACE = """\
study: bench
seed: 0
data: digits
objectives: [accuracy]
sampler: {type: Random}
pruner: {type: none}
train:
  epochs: 5
  batch_size: 64
  image_size: 16
  optimizer: {type: Adam, lr: {float: [0.001, 0.01], log: true}}
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

DEFAULT = "1 worker, threads measured (default)"
ONE_THREAD = "1 worker, --threads 1"
TWO_WORKERS = "2 workers (--workers 2), threads measured, cap 1"
RUNS = {
    DEFAULT: (),
    ONE_THREAD: ("--threads", "1"),
    "1 worker, --threads 2": ("--threads", "2"),
    TWO_WORKERS: ("--workers", "2"),
}


def run(space: Path, study: str, out: Path, trials: int, *extra: str) -> dict[str, float]:
    """One search through the CLI: trials/min, epochs/min, mean trial seconds, whole command seconds."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "yaml2torch", "search", str(space), "--trials", str(trials)]
    subprocess.run([*command, "--out", str(out), "--quiet", *extra], check=True, capture_output=True)
    whole = time.perf_counter() - started
    url = f"journal://{out / 'study.log'}"  # the default storage, one worker or several
    finished = [
        t for t in optuna.load_study(study_name=study, storage=make_storage(url)).trials if t.state.is_finished()
    ]
    assert len(finished) == trials, f"{len(finished)} of {trials} trials finished"
    span = (max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)).total_seconds()
    epochs = sum(len(t.intermediate_values) for t in finished)  # one report per trained epoch
    mean = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in finished) / len(finished)
    return {
        "trials/min": 60 * trials / span,
        "epochs/min": 60 * epochs / span,
        "mean": mean,
        "whole": whole,
        "span": span,
        "trials": trials,
        "epochs": epochs,
    }


def seeded(space: Path, seed: int, folder: Path) -> Path:
    """A copy of ``space`` with its study seed set to ``seed``."""
    lines = space.read_text().splitlines()
    if any(line.startswith("seed:") for line in lines):
        lines = [f"seed: {seed}" if line.startswith("seed:") else line for line in lines]
    else:
        lines.insert(0, f"seed: {seed}")
    copy = folder / f"seed{seed}-{space.name}"
    copy.write_text("\n".join(lines) + "\n")
    return copy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--space", choices=("digits", "fixed"), default="digits")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--rows",
        choices=("all", "core", "pair"),
        default="all",
        help="core: leave out the --threads 2 row; pair: only the default one worker and two workers",
    )
    parser.add_argument("--seeds", type=int, metavar="S", help="round r runs with study seed S + r (all rows alike)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    folder = Path(tempfile.mkdtemp(prefix="y2t-workers-bench-"))
    if args.space == "digits":
        space, study = ROOT / "examples" / "search" / "digits.yaml", "digits"
    else:
        space, study = folder / "bench.yaml", "bench"
        space.write_text(FIXED_SPACE)
    print(f"# {space.name}, {args.trials} trials per run, best of {args.repeats}; {machine()}")
    print(f"# load average at start: {os.getloadavg()[0]:.1f} (other processes share these cores when above 0)")
    best: dict[str, dict[str, float]] = {}
    rows = {"all": tuple(RUNS), "core": (DEFAULT, ONE_THREAD, TWO_WORKERS), "pair": (DEFAULT, TWO_WORKERS)}[args.rows]
    labels = [label for label in RUNS if label in rows]
    paired: list[tuple[float, float]] = []  # per repeat: two workers against the default, (trials, epochs)
    pooled: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
    try:
        for repeat in range(args.repeats):
            this_round = {}
            seed = None if args.seeds is None else args.seeds + repeat
            round_space = space if seed is None else seeded(space, seed, folder)
            for index, label in enumerate(labels[repeat % len(labels) :] + labels[: repeat % len(labels)]):
                result = run(round_space, study, folder / f"run{repeat}-{index}", args.trials, *RUNS[label])
                this_round[label] = result
                pooled[label].append(result)
                if label not in best or result["trials/min"] > best[label]["trials/min"]:
                    best[label] = result
            two, one_round = this_round[TWO_WORKERS], this_round[DEFAULT]
            paired.append((two["trials/min"] / one_round["trials/min"], two["epochs/min"] / one_round["epochs/min"]))
            print(
                f"# round {repeat + 1}{'' if seed is None else f' (seed {seed})'}: "
                + ", ".join(
                    f"{label}: {this_round[label]['trials/min']:.1f} trials/min, "
                    f"{this_round[label]['epochs'] / this_round[label]['trials']:.1f} epochs/trial"
                    for label in labels
                )
                + f"; two workers / default: {paired[-1][0]:.2f}x trials, {paired[-1][1]:.2f}x epochs",
                flush=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"# load average at end: {os.getloadavg()[0]:.1f}")
    print(
        f"# two workers against the default in the same round, median of {len(paired)}: "
        f"{statistics.median(r for r, _ in paired):.2f}x trials/min, {statistics.median(e for _, e in paired):.2f}x epochs/min"
    )
    # all rounds pooled: trials (epochs) over the summed spans, the average rate over the seeds
    rate = {
        label: (
            60 * sum(r["trials"] for r in results) / sum(r["span"] for r in results),
            60 * sum(r["epochs"] for r in results) / sum(r["span"] for r in results),
        )
        for label, results in pooled.items()
    }
    print(
        "# pooled over the rounds: "
        + ", ".join(f"{label}: {t:.1f} trials/min, {e:.0f} epochs/min" for label, (t, e) in rate.items())
        + f"; two workers / default: {rate[TWO_WORKERS][0] / rate[DEFAULT][0]:.2f}x trials, "
        f"{rate[TWO_WORKERS][1] / rate[DEFAULT][1]:.2f}x epochs"
    )
    one = best[DEFAULT]
    print("| run | trials/min | epochs/min | vs 1 worker (trials, epochs) | mean trial (s) | whole command (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for label in labels:
        r = best[label]
        ratio = f"{r['trials/min'] / one['trials/min']:.2f}x, {r['epochs/min'] / one['epochs/min']:.2f}x"
        print(
            f"| {label} | {r['trials/min']:.1f} | {r['epochs/min']:.0f} | {ratio} | {r['mean']:.2f} | {r['whole']:.1f} |"
        )


if __name__ == "__main__":
    main()

"""Per-trial overhead of the search on the digits example (target: <= 5% of trial time).

Overhead = everything in a trial that is not training: sampling + checks (lowering,
constraints) + compile/write + import + data staging + saving weights + Optuna's bookkeeping
(storage writes of user attrs and per-epoch reports, pruner queries) = trial duration - train time.
The per-phase columns show where it goes; "other" is the rest (mostly storage writes).
Run: .venv/bin/python bench/search_overhead.py [--trials 6] [--epochs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("sample_compile_check", "write", "import", "stage", "save")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, help="override the example's epochs (default: the example's)")
    args = parser.parse_args()

    import torch

    from yaml2torch.search.config import load_config
    from yaml2torch.search.run import RunOptions, run_search

    config = load_config(ROOT / "examples" / "search" / "digits.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_search(
            config, RunOptions(out_dir=Path(tmp), trials=args.trials, epochs=args.epochs, device="cpu", progress=False)
        )
        wall = time.perf_counter() - start
    print(
        f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, threads {torch.get_num_threads()}, no GPU used"
    )
    print(f"digits example, {args.trials} trials, wall {wall:.1f} s (incl. the final test evaluation)")
    print(
        f"{'trial':>5} {'state':>9} {'trial s':>8} {'train s':>8} "
        + " ".join(f"{p:>20}" for p in PHASES)
        + f" {'other s':>8} {'overhead':>8}"
    )
    fractions: list[float] = []
    durations: list[float] = []
    for trial in result.study.trials:
        timing = trial.user_attrs.get("timing")
        duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
        if not timing:
            print(
                f"{trial.number:>5} {trial.state.name.lower():>9} {duration:8.3f}  ({trial.user_attrs.get('status')}: no training)"
            )
            continue
        if "train" not in timing:
            continue
        phases = sum(timing.get(p, 0.0) for p in PHASES)
        overhead = max(0.0, duration - timing["train"])
        other = max(0.0, overhead - phases)
        fraction = overhead / duration
        fractions.append(fraction)
        durations.append(duration)
        print(
            f"{trial.number:>5} {trial.state.name.lower():>9} {duration:8.3f} {timing['train']:8.3f} "
            + " ".join(f"{timing.get(p, 0.0):20.4f}" for p in PHASES)
            + f" {other:8.3f} {fraction:8.2%}"
        )
    if not fractions:
        print("no trained trial")
        return 1
    total_overhead = sum(f * d for f, d in zip(fractions, durations))
    print(
        f"overhead fraction: median {statistics.median(fractions):.2%}, max {max(fractions):.2%}, "
        f"all trials together {total_overhead / sum(durations):.2%} (target <= 5%)"
    )
    print("(the first trial also pays one-off costs: loading digits, importing the compiler and black)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

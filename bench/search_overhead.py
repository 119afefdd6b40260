"""Per-trial overhead of the search on the digits example (target: <= 5% of trial time).

Overhead = sampling + checks (lowering, constraints) + compile/write + import + data staging +
saving weights, plus Optuna's own bookkeeping (trial duration in the study minus our total).
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
PHASES = ("sample_check", "compile_write", "import", "stage", "save")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, help="override the example's epochs (default: the example's)")
    args = parser.parse_args()

    import torch

    from yaml2torch.search.config import load_config
    from yaml2torch.search.runner import RunOptions, run_search

    config = load_config(ROOT / "examples" / "search" / "digits.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_search(
            config, RunOptions(out_dir=Path(tmp), trials=args.trials, epochs=args.epochs, device="cpu", progress=False)
        )
        wall = time.perf_counter() - start
    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, threads {torch.get_num_threads()}, no GPU used")
    print(f"digits example, {args.trials} trials, wall {wall:.1f} s (incl. the final test evaluation)")
    print(f"{'trial':>5} {'state':>9} {'trial s':>8} {'train s':>8} " + " ".join(f"{p:>13}" for p in PHASES) + f" {'optuna s':>8} {'overhead':>8}")
    fractions = []
    for trial in result.study.trials:
        timing = trial.user_attrs.get("timing")
        duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
        if not timing:
            print(f"{trial.number:>5} {trial.state.name.lower():>9} {duration:8.3f}  ({trial.user_attrs.get('status')}: no training)")
            continue
        ours = sum(timing.get(p, 0.0) for p in PHASES)
        optuna_s = max(0.0, duration - timing["total"])
        fraction = (ours + optuna_s) / duration
        fractions.append(fraction)
        print(
            f"{trial.number:>5} {trial.state.name.lower():>9} {duration:8.3f} {timing['train']:8.3f} "
            + " ".join(f"{timing.get(p, 0.0):13.4f}" for p in PHASES)
            + f" {optuna_s:8.3f} {fraction:8.2%}"
        )
    if not fractions:
        print("no trained trial")
        return 1
    print(f"overhead fraction: median {statistics.median(fractions):.2%}, max {max(fractions):.2%} (target <= 5%)")
    print("(the first trial also pays one-off costs: loading digits, importing the compiler and black)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

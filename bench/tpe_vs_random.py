"""TPE against random search on the digits example at the same budget, 3 seeds.

Reports, per sampler and seed, the best validation accuracy and the first trial (1-based) that
reached 98% validation accuracy. The budget is small (default 16 trials of 6 epochs) so the
whole comparison runs in a few minutes on 2 CPU cores.
Run: .venv/bin/python bench/tpe_vs_random.py [--trials 16] [--epochs 6] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.98


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    from yaml2torch.search.config import Component, load_config
    from yaml2torch.search.run import RunOptions, run_search

    base = load_config(ROOT / "examples" / "search" / "digits.yaml")
    startup = min(4, args.trials)
    samplers = {
        "TPE": Component("TPE", (("n_startup_trials", startup),), None),
        "Random": Component("Random", (), None),
    }
    print(f"machine: {os.cpu_count()} CPU cores, no GPU; digits example, {args.trials} trials x {args.epochs} epochs")
    print(f"{'sampler':>8} {'seed':>4} {'best val acc':>12} {'first >= 98%':>12} {'wall s':>7}")
    results: dict[str, list] = {name: [] for name in samplers}
    for seed in args.seeds:
        for name, sampler in samplers.items():
            config = replace(base, sampler=sampler, seed=seed, study=f"{name}_{seed}")
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                result = run_search(
                    config,
                    RunOptions(out_dir=Path(tmp), trials=args.trials, epochs=args.epochs, device="cpu", progress=False),
                )
                wall = time.perf_counter() - start
            values = [t.value if t.state.name == "COMPLETE" else None for t in result.study.trials]
            done = [v for v in values if v is not None]
            best = max(done) if done else float("nan")
            first = next((i + 1 for i, v in enumerate(values) if v is not None and v >= TARGET), None)
            results[name].append((best, first))
            print(f"{name:>8} {seed:>4} {best:12.4f} {first or '-'!s:>12} {wall:7.1f}")
    for name, rows in results.items():
        bests = [b for b, _ in rows]
        firsts = [f for _, f in rows if f is not None]
        reached = f"{len(firsts)}/{len(rows)} seeds reach 98%"
        mean_first = f", mean first trial {statistics.mean(firsts):.1f}" if firsts else ""
        print(f"{name}: mean best {statistics.mean(bests):.4f}; {reached}{mean_first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The thread default against fixed thread counts: quiet machine, one core busy, several workers.

    .venv/bin/python bench/threads.py [--trainings 3] [--epochs 4]

One "worker" here is a fresh process that trains the digits example's middle-sized CNN on the full
digits set (8x8, batch 32) ``--trainings`` times in a row, with one thread policy:

- ``1`` / ``N``: torch fixed at 1 or at all usable cores (``--threads``);
- ``measured``: yaml2torch's default (``search/threads.py``): each training times its first steps
  at 1, 2, ... threads up to the cap and keeps the fastest; the worker remembers counts that lost.

Conditions: the machine as it is (``quiet``), with one busy-looping process per core minus one
(``one core busy`` on 2 cores), and two such workers at once (``2 workers``, the cap halved the
way ``search --workers 2`` halves it, and ``2 workers, cap = all cores`` as two ``yaml2torch
worker`` commands started by hand would run). The number is the wall time of each worker's
trainings (the mean over workers), the best of ``--repeats`` runs taken in rotating order so that
load drift does not favour one policy; the ratio is the measured default over the best fixed count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _common import machine

from yaml2torch.search.threads import cores_available


def worker(policy: str, most: int, trainings: int, epochs: int) -> None:
    """One worker process: ``trainings`` trainings with one policy; prints the seconds as JSON."""
    import torch
    from torch import nn

    from yaml2torch.search.config import DataSettings, TrainSettings
    from yaml2torch.search.data import load_splits
    from yaml2torch.search.threads import ThreadChooser, ThreadMemory
    from yaml2torch.search.train import stage, train_model

    data = stage(load_splits(DataSettings()), None, torch.device("cpu"))
    settings = TrainSettings(epochs=epochs, batch_size=32)
    memory = ThreadMemory()
    started = time.perf_counter()
    chosen = []
    for index in range(trainings):
        torch.manual_seed(index)
        model = nn.Sequential(
            *conv(1, 16), *conv(16, 24), nn.MaxPool2d(2), *conv(24, 40), nn.MaxPool2d(2), *conv(40, 64),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
        )  # fmt: skip
        fixed = None if policy == "measured" else int(policy)
        chooser = ThreadChooser(most=most, fixed=fixed, skip=memory.skip(time.monotonic()))
        train_model(model, data, settings, index, threads=chooser)
        memory.learn(chooser.verdict(), time.monotonic())
        chosen.append(chooser.chosen)
    print(json.dumps({"seconds": time.perf_counter() - started, "chosen": chosen}))


def conv(cin: int, cout: int) -> list:
    from torch import nn

    return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.SiLU()]


def run_workers(policy: str, most: int, count: int, trainings: int, epochs: int) -> tuple[float, list]:
    command = [sys.executable, __file__, "--worker", policy, "--most", str(most)]
    command += ["--trainings", str(trainings), "--epochs", str(epochs)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    results = [json.loads(p.communicate()[0]) for p in processes]
    return sum(r["seconds"] for r in results) / count, [r["chosen"] for r in results]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trainings", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--most", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.most, args.trainings, args.epochs)
        return
    cores = cores_available()
    print(f"# {args.trainings} trainings of {args.epochs} epochs per worker; {machine()}; {cores} usable cores")
    print(f"# load average at start: {os.getloadavg()[0]:.1f}")
    print("| condition | 1 thread (s) | all cores (s) | measured default (s) | default / best fixed | threads chosen |")
    print("|---|---:|---:|---:|---:|---|")
    conditions = [("quiet", 1, 0, cores), ("one core busy", 1, 1, cores), ("2 workers", 2, 0, max(1, cores // 2))]
    conditions.append(("2 workers, cap = all cores", 2, 0, cores))
    for label, workers, busy, most in conditions:
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        policies = ["1", str(cores), "measured"]
        seconds: dict[str, list[float]] = {policy: [] for policy in policies}
        chosen: list = []
        try:
            for repeat in range(args.repeats):
                for policy in policies[repeat % 3 :] + policies[: repeat % 3]:
                    taken, picked = run_workers(policy, most, workers, args.trainings, args.epochs)
                    seconds[policy].append(taken)
                    chosen += picked if policy == "measured" else []
        finally:
            for hog in hogs:
                hog.kill()
        fixed_one, fixed_all, measured = (min(seconds[policy]) for policy in policies)
        best = min(fixed_one, fixed_all)
        row = f"| {label} | {fixed_one:.1f} | {fixed_all:.1f} | {measured:.1f} | {measured / best:.2f} | {chosen} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()

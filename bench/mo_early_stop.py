"""Early stopping with several objectives: the Dominance rule against no pruner, HV against time.

The space is the course's own setup (examples/search/course_imagefolder.yaml: normal and
reduction cells, conditional optimizer, NSGA-II, objectives macro-F1 (max) and MACs (min)) on
the built-in digits instead of an image folder: 10 classes, no horizontal flips (digits are not
mirror-symmetric); everything else as written. Per seed, the same search runs twice with the
same time budget, once with ``pruner: none`` and once with ``pruner: Dominance`` (its defaults).

Why a time budget: early stopping buys more trials per hour; with a trial budget the rule run
just ends sooner with at best the same front. Both runs get ``--budget`` seconds (no trial
starts later; a trial still running at the budget is not counted). By default the two runs of
a seed go side by side, each in its own process with half the cores (one each on 2 cores), so
both see the same machine, load included; ``--one-at-a-time`` runs them in turn with all cores.

Hypervolume (our own 2-D function, ``hypervolume``): the area dominated by the completed trials'
(F1, MACs) points inside the box F1 in [0, 1], MACs in [0, REF], REF = ``--ref-macs`` (default
2e7, above every model of this space at 32x32 seen so far; a point at or above REF adds
nothing), divided by REF: 1.0 would be F1 = 1 at zero MACs. Pruned trials never count.

Per seed: h* = the no-rule run's HV at the budget; t_none, t_rule = the time each run first
reached h* (from the trials' completion times, relative to the first trial's start); ratio =
t_rule / t_none (goal <= 0.7; "> x" when the rule run never reached h*: x is budget / t_none).
Over the seeds: each arm's mean HV curve (the mean of its seeds' HV at each time); the ratio of
the times the two mean curves first reach the no-rule runs' mean HV at the budget.
``--results FILE`` keeps every run's points as JSON lines; ``--from-results FILE`` prints the
report again from them (another ``--ref-macs`` included) without running anything.
Run: .venv/bin/python bench/mo_early_stop.py [--budget 150] [--limit 500] [--epochs 6] [--seeds 0 1 2]
Default: 3 x 150 s side by side, plus the trials running at the budget and the exports: about
9 minutes on 2 quiet cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from _common import ROOT, machine

COURSE = ROOT / "examples" / "search" / "course_imagefolder.yaml"
# The course file, on digits: (text in the course file, its replacement).
ON_DIGITS = (
    ("data: {source: folder, path: data/images, channels: 3}", "data: digits"),
    ("[1, FixedConv, [3, 1, 1, null, 1, null]]", "[1, FixedConv, [10, 1, 1, null, 1, null]]"),
    ("augment: {hflip: true, shift: 2}", "augment: {shift: 2}"),
    ("seed: 0\n", "seed: {seed}\n"),
)
ARMS = ("none", "Dominance")
FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def course_on_digits(seed: int) -> str:
    text = COURSE.read_text(encoding="utf-8")
    for old, new in ON_DIGITS:
        if old not in text:
            raise SystemExit(f"{COURSE.name} changed: {old!r} not found; update ON_DIGITS")
        text = text.replace(old, new.replace("{seed}", str(seed)))
    return text


def hypervolume(points: Sequence[tuple[float, float]], ref_macs: float) -> float:
    """Area dominated by (f1, macs) points (f1 maximized, macs minimized) within [0, 1] x [0, ref_macs], / ref_macs."""
    inside = sorted((m, f) for f, m in points if m < ref_macs and f > 0)
    area, best = 0.0, 0.0
    for i, (macs, f1) in enumerate(inside):
        best = max(best, f1)
        right = inside[i + 1][0] if i + 1 < len(inside) else ref_macs
        area += (right - macs) * best
    return area / ref_macs


@dataclass(frozen=True)
class Run:
    """One search: its completed points with their completion times (s from the first start)."""

    arm: str
    seed: int
    points: tuple[tuple[float, float, float], ...]  # (time, f1, macs), by time
    trials: int  # started before the budget
    stopped: int  # pruned by the rule
    infeasible: int
    wall: float  # last completion

    def hv_at(self, t: float, ref_macs: float) -> float:
        return hypervolume([(f, m) for when, f, m in self.points if when <= t], ref_macs)

    def first_reach(self, target: float, ref_macs: float, budget: float) -> float | None:
        for when, _, _ in self.points:
            if when <= budget and self.hv_at(when, ref_macs) >= target - 1e-12:
                return when
        return None


def run_arm(arm: str, seed: int, args: argparse.Namespace, keep: Path | None) -> Run:
    from yaml2torch.search.config import Component, parse_config
    from yaml2torch.search.run import RunOptions, run_search

    config = parse_config(course_on_digits(seed), str(COURSE.with_name("course_digits.yaml")), COURSE.parent)
    rule_args = (
        tuple((key, int(value)) for key, value in (item.split("=") for item in args.rule)) if arm != "none" else ()
    )
    config = replace(config, study=f"course_digits_{arm}_{seed}", pruner=Component(arm, rule_args, None))
    out = Path(tempfile.mkdtemp(prefix="mo-early-stop-"))
    options = RunOptions(
        out_dir=out, trials=100_000, timeout=args.budget, epochs=args.epochs, data_limit=args.limit,
        device="cpu", progress=False, isolate=True, threads=args.threads,
    )  # fmt: skip
    try:
        study = run_search(config, options).study
        return summarize(arm, seed, study.get_trials(deepcopy=False), args.budget)
    finally:
        if keep is not None:
            shutil.copytree(out, keep / f"{arm}_{seed}", dirs_exist_ok=True)
        shutil.rmtree(out, ignore_errors=True)


def summarize(arm: str, seed: int, trials: Sequence[Any], budget: float) -> Run:
    start = min(t.datetime_start for t in trials if t.datetime_start is not None)
    points, stopped, infeasible, wall = [], 0, 0, 0.0
    for trial in trials:
        if trial.datetime_complete is None:
            continue
        when = (trial.datetime_complete - start).total_seconds()
        wall = max(wall, when)
        status = trial.user_attrs.get("status")
        stopped += trial.state.name == "PRUNED" and status == "pruned"
        infeasible += status == "infeasible"
        if trial.state.name == "COMPLETE" and when <= budget:
            points.append((when, trial.values[0], trial.values[1]))
    return Run(arm, seed, tuple(sorted(points)), len(trials), stopped, infeasible, wall)


def report(runs: dict[tuple[str, int], Run], args: argparse.Namespace) -> None:
    ref, budget = args.ref_macs, args.budget
    print(
        f"\n{'seed':>4} {'HV none':>8} {'HV rule':>8} {'wall none':>9} {'wall rule':>9} {'trials none':>11} "
        f"{'trials rule (stopped)':>21} {'t_none(h*)':>10} {'t_rule(h*)':>10} {'ratio':>6}"
    )
    ratios: list[float] = []
    for seed in args.seeds:
        none, rule = runs["none", seed], runs["Dominance", seed]
        target = none.hv_at(budget, ref)
        t_none = none.first_reach(target, ref, budget) or budget
        t_rule = rule.first_reach(target, ref, budget)
        ratio = f"{t_rule / t_none:.2f}" if t_rule is not None else f">{budget / t_none:.2f}"
        ratios.append(t_rule / t_none if t_rule is not None else budget / t_none)
        print(
            f"{seed:>4} {target:8.4f} {rule.hv_at(budget, ref):8.4f} {none.wall:9.1f} {rule.wall:9.1f} "
            f"{none.trials:>11} {f'{rule.trials} ({rule.stopped})':>21} {t_none:10.1f} "
            f"{'-' if t_rule is None else f'{t_rule:.1f}':>10} {ratio:>6}"
        )
    means = {arm: statistics.mean(runs[arm, s].hv_at(budget, ref) for s in args.seeds) for arm in ARMS}
    print(
        f"mean {means['none']:8.4f} {means['Dominance']:8.4f}   ratio: mean {statistics.mean(ratios):.2f}, "
        f"median {statistics.median(ratios):.2f} (goal <= 0.7; a '>' ratio counts as its bound)"
    )
    t_none_mean = mean_curve_reach(runs, "none", args, means["none"])
    t_rule_mean = mean_curve_reach(runs, "Dominance", args, means["none"])
    print(
        f"mean curve: the no-rule runs' mean HV at the budget ({means['none']:.4f}) is first reached by the "
        f"mean no-rule curve at {t_none_mean:.1f} s and by the mean rule curve at "
        + (
            f"{t_rule_mean:.1f} s: ratio {t_rule_mean / t_none_mean:.2f} (goal <= 0.7)"
            if t_rule_mean is not None
            else f"never: ratio > {budget / t_none_mean:.2f}"
        )
    )
    print("\nmean HV over the seeds at a share of the budget:")
    print(f"{'arm':>10} " + " ".join(f"{f'{int(f * 100)}% ({f * budget:.0f} s)':>14}" for f in FRACTIONS))
    for arm in ARMS:
        row = [statistics.mean(runs[arm, s].hv_at(f * budget, ref) for s in args.seeds) for f in FRACTIONS]
        print(f"{arm:>10} " + " ".join(f"{v:14.4f}" for v in row))


def mean_curve_reach(
    runs: dict[tuple[str, int], Run], arm: str, args: argparse.Namespace, target: float
) -> float | None:
    """When the mean over the seeds of ``arm``'s HV first reaches ``target`` (the mean curve only
    steps at a trial's completion, so its steps are the times to check)."""
    seeds_runs = [runs[arm, s] for s in args.seeds]
    times = sorted({when for run in seeds_runs for when, _, _ in run.points if when <= args.budget})
    for when in times:
        if statistics.mean(run.hv_at(when, args.ref_macs) for run in seeds_runs) >= target - 1e-12:
            return when
    return None


def run_json(run: Run) -> str:
    return json.dumps(asdict(run))


def run_from_json(text: str) -> Run:
    fields = json.loads(text)
    return Run(**{**fields, "points": tuple(tuple(p) for p in fields["points"])})


def side_by_side(seed: int, args: argparse.Namespace) -> dict[str, Run]:
    """Both arms at once, each in its own process with half the cores: the same machine for both."""
    threads = args.threads or max(1, (os.cpu_count() or 2) // 2)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as logs:
        procs = {}
        for arm in ARMS:
            command = [sys.executable, __file__, "--arm", arm, "--seeds", str(seed), "--budget", str(args.budget)]
            command += ["--limit", str(args.limit), "--epochs", str(args.epochs), "--threads", str(threads)]
            command += [
                "--json",
                f"{tmp}/{arm}.json",
                *(["--keep", str(args.keep)] if args.keep else []),
                "--rule",
                *args.rule,
            ]
            log = logs.enter_context(open(f"{tmp}/{arm}.err", "w"))
            procs[arm] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        for arm, proc in procs.items():
            if proc.wait() != 0:
                raise SystemExit(f"the {arm} run of seed {seed} failed:\n{Path(tmp, arm + '.err').read_text()[-3000:]}")
        return {arm: run_from_json(Path(tmp, f"{arm}.json").read_text()) for arm in ARMS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=150.0, help="seconds per search (default 150)")
    parser.add_argument("--limit", type=int, default=500, help="stratified digits subset (default 500)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per trial (default 6; the course file says 10)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ref-macs", type=float, default=2e7, help="hypervolume reference MACs (default 2e7)")
    parser.add_argument("--one-at-a-time", action="store_true", help="run the arms one after the other, all cores each")
    parser.add_argument("--threads", type=int, help="torch threads per trial (default: the cores each run has)")
    parser.add_argument(
        "--rule", nargs="*", default=[], metavar="KEY=N", help="Dominance arguments (default: its defaults)"
    )
    parser.add_argument("--keep", type=Path, help="copy each run's output folder (study.log, trials/) here")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # one run, for side_by_side
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, help="write every run's points here (JSON lines)")
    parser.add_argument("--from-results", type=Path, help="report from a --results file; run nothing")
    args = parser.parse_args()
    if args.from_results is not None:
        runs = {(r.arm, r.seed): r for r in map(run_from_json, args.from_results.read_text().splitlines())}
        args.seeds = sorted({seed for _, seed in runs})
        report(runs, args)
        return 0
    if args.arm is not None:
        args.json.write_text(run_json(run_arm(args.arm, args.seeds[0], args, args.keep)))
        return 0

    import torch

    print(f"machine: {machine()}; torch {torch.__version__}, CPU")
    mode = "one at a time" if args.one_at_a_time else "side by side, half the cores each"
    print(
        f"course space on digits: limit {args.limit}, {args.epochs} epochs, {args.budget:g} s per search ({mode}), "
        f"seeds {args.seeds}; HV reference F1 = 0, MACs = {args.ref_macs:g}; Dominance {args.rule or 'defaults'}"
    )
    runs: dict[tuple[str, int], Run] = {}
    for i, seed in enumerate(args.seeds):
        started = time.perf_counter()
        if args.one_at_a_time:
            for arm in ARMS if i % 2 == 0 else ARMS[::-1]:  # alternate which arm goes first
                runs[arm, seed] = run_arm(arm, seed, args, args.keep)
        else:
            runs.update({(arm, seed): run for arm, run in side_by_side(seed, args).items()})
        for arm in ARMS:
            run = runs[arm, seed]
            print(
                f"seed {seed} {arm:>9}: {run.trials} trials ({run.stopped} stopped, {run.infeasible} infeasible), "
                f"HV {run.hv_at(args.budget, args.ref_macs):.4f}",
                flush=True,
            )
        print(f"seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
        if args.results is not None:
            with args.results.open("a", encoding="utf-8") as results:
                results.writelines(run_json(runs[arm, seed]) + "\n" for arm in ARMS)
    report(runs, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

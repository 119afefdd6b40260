"""Time to quality on the digits example: `yaml2torch search` against a plain Optuna script.

Baseline (what users do today, like the course notebook): `optuna.create_study().optimize()` in
one Python process; the objective samples the digits space with hand-written `trial.suggest_*`
calls (the same names, distributions and order as the search file, so the same sampler and seed
sample the same architectures), builds the network at run time with a small row parser
(nn.Sequential, no compiler, no files) and trains it in that process with the same loop
(`yaml2torch.search.train.train_model`: same data, epochs, batch size, optimizer, seed).
Ours: `yaml2torch search examples/search/digits.yaml --out TMP --trials N --epochs E`, the
command a user types (defaults: a journal-file study, each trial trained in a forked child;
--storage sqlite for SQLite).

Both run as fresh processes, alternating which goes first each round (load drift). Trial times
come from the studies' own start/complete stamps. A few probes afterwards split our per-trial
overhead into black, trial-child fork and storage costs (on the storage ours used); --commits
adds one more run of ours that times every SQLite commit by the yaml2torch function behind it.
Run: .venv/bin/python bench/baseline_optuna.py [--trials 12] [--epochs 20] [--seed 0] [--rounds 3]
     [--threads N] [--storage default|sqlite|journal] [--tmp DIR] [--commits]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine

ROOT = Path(__file__).resolve().parent.parent
SPACE = ROOT / "examples" / "search" / "digits.yaml"
# digits.yaml, written out by hand for the baseline (checked against the file at run time).
TPE_STARTUP = 5
MEDIAN = {"n_startup_trials": 3, "n_warmup_steps": 6}
MAX_PARAMS = 100_000
CLASSES = 10
IMAGE = (8, 8)  # digits' native size: two 2x2 pools leave 2x2, so min_spatial 2 always holds


# --- the baseline: a notebook-style objective -----------------------------------------------------


def sample_rows(trial: Any) -> tuple[list[list[Any]], dict[str, Any]]:
    """digits.yaml's space as suggest_* calls: backbone rows [repeat, module, args] and train settings."""
    rows: list[list[Any]] = [[1, "Conv", [trial.suggest_int("backbone.0.c", 8, 32, step=8), 3, 1]]]
    if trial.suggest_categorical("backbone.1", ["Conv", "Pass"]) == "Conv":
        rows.append([1, "Conv", [trial.suggest_int("backbone.1.Conv.c", 16, 48, step=8), 3, 1]])
    rows.append([1, "MaxPool", [2]])
    repeat = trial.suggest_int("backbone.3.repeat", 1, 2)
    rows.append([repeat, "Conv", [trial.suggest_int("backbone.3.c", 24, 64, step=8), 3, 1]])
    rows.append([1, "MaxPool", [2]])
    rows.append([1, "Conv", [trial.suggest_int("backbone.5.c", 32, 128, step=32), 3, 1]])
    rows += [[1, "GlobalAvgPool", []], [1, "Flatten", []]]
    rows.append([1, "Dropout", [trial.suggest_float("backbone.8.p", 0.0, 0.3, step=0.1)]])
    rows.append([1, "Linear", [CLASSES]])
    train = {
        "batch_size": trial.suggest_categorical("train.batch_size", [32, 64]),
        "shift": trial.suggest_categorical("train.augment.shift", [0, 1]),
        "lr": trial.suggest_float("train.optimizer.lr", 0.001, 0.01, log=True),
    }
    return rows, train


def build_net(rows: list[list[Any]], in_channels: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """A runtime row parser (like kindle's ModelParser) for the blocks the digits space uses."""
    import torch
    from torch import nn

    class Normalize(nn.Module):  # what the generated model does first, so the inputs match
        mean: torch.Tensor
        std: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x - self.mean) / self.std

    layers: list[nn.Module] = [Normalize()]
    c = in_channels
    for repeat, module, args in rows:
        for _ in range(repeat):
            if module == "Conv":
                out, k, s = args
                layers.append(
                    nn.Sequential(
                        nn.Conv2d(c, out, k, s, k // 2, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)
                    )
                )
                c = out
            elif module == "MaxPool":
                layers.append(nn.MaxPool2d(args[0]))
            elif module == "GlobalAvgPool":
                layers.append(nn.AdaptiveAvgPool2d(1))
            elif module == "Flatten":
                layers.append(nn.Flatten())
            elif module == "Dropout":
                layers.append(nn.Dropout(args[0]))
            elif module == "Linear":
                layers.append(nn.Linear(c, args[0]))
                c = args[0]
            else:
                raise ValueError(f"unknown module {module}")
    return nn.Sequential(*layers)


def data_settings(seed: int) -> Any:
    from yaml2torch.search.config import DataSettings

    return DataSettings(source="digits", split_seed=seed)  # digits.yaml: the split follows the seed


def run_baseline(trials: int, epochs: int, seed: int, threads: int | None, out_json: Path) -> None:
    """The baseline process: one study, optimized in this process; trial records to a JSON file."""
    import optuna
    import torch

    from yaml2torch.search.config import OptimizerSettings, TrainSettings
    from yaml2torch.search.train import DataCache, resolve_device, train_model

    # Ours trains each trial on --threads or cores / workers threads; the same count, the same numbers.
    torch.set_num_threads(threads or os.cpu_count() or 1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = DataCache(data_settings(seed), resolve_device("auto"))
    staged = data.staged(IMAGE)
    splits = data.splits
    records: dict[int, dict[str, Any]] = {}

    def objective(trial: optuna.Trial) -> float:
        start = time.perf_counter()
        rows, hyper = sample_rows(trial)
        torch.manual_seed(seed)  # as yaml2torch's seeded_model: same seed, same initial weights
        net = build_net(rows, splits.channels, splits.mean, splits.std)
        params = sum(p.numel() for p in net.parameters())
        record = records[trial.number] = {"arch_params": params, "status": "infeasible"}
        if params > MAX_PARAMS:
            raise optuna.TrialPruned(f"{params} params > {MAX_PARAMS}")
        settings = TrainSettings(
            epochs=epochs,
            batch_size=hyper["batch_size"],
            optimizer=OptimizerSettings("Adam", hyper["lr"]),
            scheduler="cosine",
            image_size=IMAGE,
            shift=hyper["shift"],
        )
        record["train_key"] = settings.key()
        record["build_s"] = time.perf_counter() - start

        def on_epoch(result: Any) -> None:
            trial.report(result.metrics["accuracy"], result.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {result.epoch}")

        t = time.perf_counter()
        record["status"] = "pruned"
        try:
            history = train_model(net, staged, settings, seed, on_epoch)
        finally:
            record["train_s"] = time.perf_counter() - t
        record["status"] = "trained"
        return history[-1].metrics["accuracy"]

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(n_startup_trials=TPE_STARTUP, seed=seed),
        pruner=optuna.pruners.MedianPruner(**MEDIAN),
    )
    study.optimize(objective, n_trials=trials)
    rows = [{**_frozen(t), **records.get(t.number, {})} for t in study.trials]
    out_json.write_text(json.dumps({"threads": torch.get_num_threads(), "trials": rows}))


def _frozen(t: Any) -> dict[str, Any]:
    from optuna.distributions import distribution_to_json

    return {
        "number": t.number,
        "state": t.state.name,
        "value": t.value if t.state.name == "COMPLETE" else None,
        "params": t.params,
        "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()},
        "start": t.datetime_start.timestamp(),
        "complete": t.datetime_complete.timestamp() if t.datetime_complete else None,
    }


# --- running both ---------------------------------------------------------------------------------


@dataclass
class Run:
    side: str  # "ours" or "baseline"
    launch: float
    exit: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    threads: int | None = None  # the baseline's torch threads

    def completed(self) -> list[dict[str, Any]]:
        return [t for t in self.trials if t["value"] is not None]

    @property
    def best(self) -> float:
        return max((t["value"] for t in self.completed()), default=float("nan"))

    def time_to(self, score: float) -> float | None:
        """Seconds from launch until a trial first reached ``score`` (None: never)."""
        done = [t["complete"] for t in self.completed() if t["value"] >= score - 1e-12]
        return min(done) - self.launch if done else None

    def cycles(self) -> dict[int, float]:
        """Per trial: its start to the next trial's start (the last: to its completion)."""
        ordered = sorted(self.trials, key=lambda t: t["start"])
        ends = [n["start"] for n in ordered[1:]] + [ordered[-1]["complete"]]
        return {t["number"]: end - t["start"] for t, end in zip(ordered, ends)}


def search_file(seed: int, folder: Path) -> Path:
    """digits.yaml itself, or a copy with another seed (the search file is where the seed lives)."""
    text = SPACE.read_text(encoding="utf-8")
    found = re.search(r"^seed: (\d+)", text, re.MULTILINE)
    if found is not None and found.group(1) == str(seed):
        return SPACE
    path = folder / "digits.yaml"
    path.write_text(re.sub(r"^seed: \d+", f"seed: {seed}", text, flags=re.MULTILINE), encoding="utf-8")
    return path


def run_ours(args: argparse.Namespace, space: Path, out: Path) -> Run:
    import optuna

    from yaml2torch.scale.storage import journal_url, make_storage
    from yaml2torch.study_record import TrialRecord

    script = Path(sys.executable).with_name("yaml2torch")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "yaml2torch"]
    command = [*cli, "search", str(space), "--out", str(out)]
    command += ["--trials", str(args.trials), "--epochs", str(args.epochs)]
    command += ["--threads", str(args.threads)] if args.threads else []
    url = f"sqlite:///{out / 'study.db'}" if args.storage == "sqlite" else journal_url(out / "study.log")
    command += ["--storage", url] if args.storage != "default" else []
    launch, log = time.time(), out.with_suffix(".out")
    with log.open("w") as handle:
        code = subprocess.call(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    end = time.time()
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}):\n{log.read_text()[-2000:]}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stored = f"sqlite:///{out / 'study.db'}" if (out / "study.db").is_file() else journal_url(out / "study.log")
    study = optuna.load_study(study_name="digits", storage=make_storage(stored))
    run = Run("ours", launch, end)
    for t in study.trials:
        record = TrialRecord.of(t)
        timing = dict(record.timing or {})
        run.trials.append(
            {
                **_frozen(t),
                "arch_params": record.params,
                "status": record.status,
                "timing": timing,
                "train_s": timing.get("train"),
                "train_key": record.train,
                "attrs": len(t.user_attrs),
            }
        )
    return run


def run_plain(args: argparse.Namespace, out: Path) -> Run:
    path = out.with_suffix(".json")
    command = [sys.executable, __file__, "--baseline-json", str(path)]
    command += ["--trials", str(args.trials), "--epochs", str(args.epochs), "--seed", str(args.seed)]
    command += ["--threads", str(args.threads)] if args.threads else []
    launch = time.time()
    code = subprocess.call(command, cwd=ROOT)
    end = time.time()
    if code != 0:
        raise SystemExit(f"the baseline failed ({code})")
    result = json.loads(path.read_text())
    return Run("baseline", launch, end, result["trials"], result["threads"])


# --- probes: where our extra time per trial goes ---------------------------------------------------


def stored_in(kind: str, folder: Path, name: str) -> Any:
    """A new storage of ``kind`` ("sqlite" or "journal", as ours used) in ``folder``."""
    from yaml2torch.scale.storage import journal_url, make_storage

    return make_storage(f"sqlite:///{folder / name}.db" if kind == "sqlite" else journal_url(folder / f"{name}.log"))


def probes(ours: Run, seed: int, epochs: int, folder: Path, kind: str) -> dict[str, float]:
    """Milliseconds, measured here in ``folder`` (where ours wrote its study) on ours' storage
    ``kind``: black, Optuna's suggest calls, a trial child's fork and pipe, one write, report, prune."""
    import black
    import optuna

    from yaml2torch.files import state_dict_bytes
    from yaml2torch.scale.isolation import keep_parent_single_threaded, run_isolated
    from yaml2torch.search import space as sp
    from yaml2torch.search.config import load_config
    from yaml2torch.search.train import DataCache, resolve_device
    from yaml2torch.search.trial import Infeasible, Objective

    keep_parent_single_threaded()  # as the search's parent: a forked child must not inherit a thread pool
    config = load_config(search_file(seed, folder))
    objective = Objective(config, DataCache(config.data, resolve_device("auto")), folder / "probe", epochs=epochs)
    spent = [0.0]
    format_str = black.format_str

    def timed_black(*a: Any, **k: Any) -> str:
        t = time.perf_counter()
        try:
            return format_str(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t

    # The same trials sampled twice: a stored study as ours uses, an in-memory one as the baseline;
    # same sampler seed and the same told outcomes, so the same samples; the difference is storage.
    def study(storage: Any) -> optuna.Study:
        sampler = optuna.samplers.TPESampler(n_startup_trials=TPE_STARTUP, seed=seed)
        return optuna.create_study(storage=storage, direction="maximize", sampler=sampler)

    studies = {"stored": study(stored_in(kind, folder, "probe")), "memory": study(None)}
    plans: dict[str, list[float]] = {"stored": [], "memory": []}
    blacks: list[float] = []
    black.format_str = timed_black  # a timing wrapper
    try:
        for number, past in enumerate(sorted(ours.trials, key=lambda t: t["number"])):
            kinds = ("stored", "memory") if number % 2 else ("memory", "stored")  # neither always warmer
            for which in kinds:
                s = studies[which]
                trial, spent[0] = s.ask(), 0.0
                start = time.perf_counter()
                try:
                    objective.plan(trial, sp.TrialParams(trial))
                    infeasible = False
                except Infeasible:
                    infeasible = True
                if number > 0:  # trial 0 imports the compiler and black
                    plans[which].append(time.perf_counter() - start)
                    blacks += [spent[0]] if which == "memory" and not infeasible else []
                value = past["value"]
                s.tell(trial, value, state=None if value is not None else optuna.trial.TrialState.PRUNED)
    finally:
        black.format_str = format_str
    suggests = [len(t["params"]) for t in ours.trials]

    params = next((t["params"] for t in ours.trials if t["status"] == "trained"), ours.trials[0]["params"])
    splits = objective.data.splits
    net = build_net(sample_rows(optuna.trial.FixedTrial(params))[0], splits.channels, splits.mean, splits.std)

    def child(channel: Any) -> bytes:
        for _ in range(epochs):
            channel.call(None)
        return state_dict_bytes(net)

    forks = []
    for _ in range(5):
        start = time.perf_counter()
        run_isolated(child, on_call=lambda _: None, child_threads=os.cpu_count())
        forks.append(time.perf_counter() - start)

    pruned = optuna.create_study(
        storage=stored_in(kind, folder, "probe-prune"),
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(**MEDIAN),
    )
    reports, prunes, writes = [], [], []
    for n in range(6):
        trial = pruned.ask()
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            trial.report(0.5 + 0.01 * n + 0.001 * epoch, epoch)
            middle = time.perf_counter()
            trial.should_prune()
            reports.append(middle - start)
            prunes.append(time.perf_counter() - middle)
        start = time.perf_counter()
        trial.set_user_attr("model_py", "x" * 4000)  # about the size of a generated model.py
        writes.append(time.perf_counter() - start)
        pruned.tell(trial, 0.5)
    ms = 1000.0
    return {
        "plan_stored": med(plans["stored"]) * ms,
        "plan_memory": med(plans["memory"]) * ms,
        "black": med(blacks) * ms,
        "suggests": med([float(n) for n in suggests]),
        "fork": med(forks) * ms,
        "report": med(reports) * ms,
        "prune": med(prunes) * ms,
        "write": med(writes) * ms,
    }


def commit_detail(args: argparse.Namespace, folder: Path) -> None:
    """One more run of ours, in this process as `yaml2torch search` runs it (trials in forked
    children, SQLite), timing every SQLite commit by the yaml2torch function that caused it."""
    import traceback
    from collections import Counter, defaultdict

    from sqlalchemy.engine import default

    from yaml2torch.search.config import load_config
    from yaml2torch.search.run import RunOptions, run_search

    spent: dict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()
    do_commit = default.DefaultDialect.do_commit

    def timed(self: Any, connection: Any) -> None:
        start = time.perf_counter()
        try:
            do_commit(self, connection)
        finally:
            took = time.perf_counter() - start  # before the stack walk, which is not the storage's
            frames = [f for f in traceback.extract_stack() if "/yaml2torch/" in f.filename]
            key = " < ".join(f"{Path(f.filename).name}:{f.name}" for f in frames[-2:][::-1]) or "?"
            spent[key] += took
            count[key] += 1

    default.DefaultDialect.do_commit = timed  # type: ignore[method-assign]  # a timing wrapper
    try:
        config = load_config(search_file(args.seed, folder))
        options = RunOptions(
            folder / "commits",
            trials=args.trials,
            epochs=args.epochs,
            progress=False,
            isolate=True,
            threads=args.threads,
        )
        study = run_search(config, options).study
    finally:
        default.DefaultDialect.do_commit = do_commit  # type: ignore[method-assign]  # restored
    n = len(study.trials)
    total = sum(spent.values()) * 1000 / n
    print(f"SQLite commits in one more run of ours ({n} trials; ms and commits per trial, by caller):")
    for key in sorted(spent, key=lambda k: spent[k], reverse=True)[:12]:
        print(f"  {spent[key] * 1000 / n:7.1f} ms {count[key] / n:5.1f}  {key}")
    print(f"  {total:7.1f} ms {sum(count.values()) / n:5.1f}  in all (reads commit too, without a disk write)")


# --- the report ---------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def _med_or_none(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else med([v for v in values if v is not None])


def check_file(seed: int, tmp: Path) -> list[str]:
    """The hand-written baseline against digits.yaml: sampler, pruner, constraints, data."""
    from yaml2torch.search.config import load_config

    config = load_config(search_file(seed, tmp))
    problems = []
    if config.sampler.type != "TPE" or dict(config.sampler.kwargs) != {"n_startup_trials": TPE_STARTUP}:
        problems.append(f"sampler {config.sampler}")
    if config.pruner.type != "Median" or dict(config.pruner.kwargs) != MEDIAN:
        problems.append(f"pruner {config.pruner}")
    if config.constraints.max_params != MAX_PARAMS:
        problems.append(f"max_params {config.constraints.max_params}")
    if config.data != data_settings(seed):
        problems.append(f"data {config.data}")
    return problems


def report(args: argparse.Namespace, runs: list[Run], order: list[str], loads: tuple[str, str], tmp: Path) -> None:
    ours = [r for r in runs if r.side == "ours"]
    base = [r for r in runs if r.side == "baseline"]
    numbers = sorted({t["number"] for r in runs for t in r.trials})
    o_by = {t["number"]: t for t in ours[-1].trials}
    b_by = {t["number"]: t for t in base[-1].trials}
    both = [n for n in numbers if o_by.get(n, {}).get("status") == b_by.get(n, {}).get("status") == "trained"]
    parts = overhead_parts(ours, base, both)
    kind = "sqlite" if args.storage == "sqlite" else "journal"
    probe = probes(ours[-1], args.seed, args.epochs, tmp, kind)

    print(f"machine: {machine()}")
    print(f"load average before: {loads[0]}; after: {loads[1]}")
    print(f"torch threads per training: baseline {base[0].threads}, ours {args.threads or os.cpu_count()}")
    print(f"digits example: {args.trials} trials x {args.epochs} epochs, seed {args.seed}, order {' | '.join(order)}")
    print()
    headline(ours, base, both, parts, probe, args.epochs)
    print()
    checks(args, runs, numbers, o_by, b_by, both, tmp)
    print()
    per_trial(ours, base, numbers, o_by, b_by, both)
    print()
    breakdown(ours, parts, probe, args.epochs, tmp, kind)


def loop(run: Run) -> float:
    return max(t["complete"] for t in run.trials) - min(t["start"] for t in run.trials)


def headline(
    ours: list[Run], base: list[Run], both: list[int], parts: dict[str, float], probe: dict[str, float], epochs: int
) -> None:
    def states(run: Run) -> str:
        counts: dict[str, int] = {}
        for t in run.trials:
            counts[t["status"]] = counts.get(t["status"], 0) + 1
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))

    def each(f: Any, unit: str = "s", digits: int = 1) -> tuple[str, str]:
        return f"{med([f(r) for r in ours]):.{digits}f} {unit}", f"{med([f(r) for r in base]):.{digits}f} {unit}"

    rows = [
        ("trials (last round)", (states(ours[-1]), states(base[-1]))),
        ("total wall, launch to exit", each(lambda r: r.exit - r.launch)),
        ("  startup, launch to trial 0 start", each(lambda r: min(t["start"] for t in r.trials) - r.launch)),
        ("  trial loop", each(loop)),
        ("  after the last trial (export)", each(lambda r: r.exit - max(t["complete"] for t in r.trials))),
        ("median per-trial time", each(lambda r: med(list(r.cycles().values())), digits=2)),
        ("best val accuracy", each(lambda r: r.best, "", 4)),
        ("time to own best, from launch", each(lambda r: r.time_to(r.best) or math.nan)),
        (
            "time to the baseline's best",
            (
                seconds(_med_or_none([o.time_to(b.best) for o, b in zip(ours, base)])),
                each(lambda r: r.time_to(r.best) or math.nan)[1],
            ),
        ),
    ]
    print(f"{'':36} {'ours (yaml2torch search)':>34} {'baseline (plain Optuna)':>34}")
    for name, (a, b) in rows:
        print(f"{name:36} {a:>34} {b:>34}")
    ratio = med([(o.time_to(o.best) or 0) / (b.time_to(b.best) or 1) for o, b in zip(ours, base)])
    print(f"{'time to best, ours / baseline':36} {f'{ratio:.2f}x (own best); baseline best ' + _ratio(ours, base):>69}")
    # Two views of the per-trial overhead: trial-by-trial times (exact on a quiet machine, but they
    # carry the training-time noise of a loaded one), and the non-training parts plus the probes.
    o_cyc, b_cyc = cycles(ours), cycles(base)
    paired = med([(o_cyc[n] - b_cyc[n]) / b_cyc[n] for n in both])
    whole = (sum(o_cyc.values()) - sum(b_cyc.values())) / sum(b_cyc.values())
    print(
        f"{'per-trial overhead of ours, timed':36} {f'median {paired:+.1%} per trained trial; all trials {whole:+.1%}':>69}"
    )
    if parts:
        extra = parts["ours_other"] - parts["base_other"] + probe["fork"] + epochs * (probe["report"] + probe["prune"])
        text = (
            f"{extra:.0f} ms = {extra / parts['base_cycle']:.1%} of the baseline's {parts['base_cycle'] / 1000:.2f} s"
        )
        print(f"{'  from its parts (see below)':36} {text:>69}")
    print(f"{'  goal':36} {'< 5%':>69}")


def cycles(runs: list[Run]) -> dict[int, float]:
    """Per trial number: its start to the next trial's start, the fastest of the rounds (other
    jobs only ever add time, and one busy moment would otherwise swamp a 2 s trial)."""
    numbers = sorted({t["number"] for r in runs for t in r.trials})
    return {n: min(r.cycles()[n] for r in runs if n in r.cycles()) for n in numbers}


def checks(
    args: argparse.Namespace,
    runs: list[Run],
    numbers: list[int],
    o_by: dict[int, dict[str, Any]],
    b_by: dict[int, dict[str, Any]],
    both: list[int],
    tmp: Path,
) -> None:
    """The two runs sample the same architectures; both builders count the same parameters."""
    from optuna.trial import FixedTrial

    def yes(bad: list[Any], what: str = "NO at trials") -> str:
        return "yes" if not bad else f"{what} {bad}"

    paired = [n for n in numbers if n in o_by and n in b_by]
    print("checks:")
    problems = check_file(args.seed, tmp)
    print(f"  baseline's hand-written settings match digits.yaml: {'yes' if not problems else '; '.join(problems)}")
    dists = [n for n in paired if o_by[n]["distributions"] != b_by[n]["distributions"]]
    print(f"  same parameter names and distributions at every trial: {yes(dists)}")
    diverged = [n for n in paired if o_by[n]["params"] != b_by[n]["params"]]
    print(f"  same sampled architecture and training settings at every trial: {yes(diverged)}")
    if diverged:
        print(
            "    TPE samples from the scores so far: once one score differs (training not bitwise equal, a"
            " duplicate ours did not train again) the two searches part, and time to best compares different searches"
        )
    keys = [n for n in both if o_by[n]["train_key"] != b_by[n]["train_key"]]
    print(f"  same TrainSettings where both trained: {yes(keys)}")
    scores = [n for n in paired if (o_by[n]["value"], o_by[n]["status"]) != (b_by[n]["value"], b_by[n]["status"])]
    print(f"  same outcome and val accuracy at every trial (last round): {yes(scores)}")
    same = all([t["value"] for t in r.trials] == [t["value"] for t in runs[0].trials] for r in runs)
    print(f"  every run gave the same scores: {'yes (deterministic)' if same else 'no (training not deterministic)'}")
    mismatch = []
    counted = [t for t in o_by.values() if t["arch_params"] is not None]
    for t in counted:
        net = build_net(sample_rows(FixedTrial(t["params"]))[0], 1, (0.0,), (1.0,))
        n = sum(p.numel() for p in net.parameters())
        if n != t["arch_params"]:
            mismatch.append((t["number"], t["arch_params"], n))
    print(
        f"  parameters, compiler vs runtime builder, ours' {len(counted)} sampled architectures: "
        + ("equal" if not mismatch else f"DIFFER (trial, compiler, builder) {mismatch}")
    )


def per_trial(
    ours: list[Run],
    base: list[Run],
    numbers: list[int],
    o_by: dict[int, dict[str, Any]],
    b_by: dict[int, dict[str, Any]],
    both: list[int],
) -> None:
    o_cyc, b_cyc = cycles(ours), cycles(base)
    print("per trial (s: its start to the next trial's start, fastest round; outcome of the last round):")
    print(
        f"{'trial':>5} {'params':>7} {'ours':>10} {'baseline':>10} {'val acc':>7} {'ours s':>7} {'base s':>7} {'extra':>8}"
    )
    for n in numbers:
        ot, bt = o_by.get(n, {}), b_by.get(n, {})
        value = ot.get("value")
        extra = f"{(o_cyc[n] - b_cyc[n]) / b_cyc[n]:+8.1%}" if n in both else ""
        print(
            f"{n:>5} {ot.get('arch_params') or '-'!s:>7} {ot.get('status') or '-'!s:>10} {bt.get('status') or '-'!s:>10}"
            f" {'-' if value is None else f'{value:.4f}':>7} {o_cyc[n]:7.2f} {b_cyc[n]:7.2f} {extra:>8}"
        )


def overhead_parts(ours: list[Run], base: list[Run], both: list[int]) -> dict[str, float]:
    """Ms per trial trained in both (median over those trials and rounds): ours' own phase timings,
    its training minus the paired baseline's, and the rest from the studies' start/complete stamps."""
    parts: dict[str, list[float]] = {}
    for o_run, b_run in zip(ours, base):
        ob = {t["number"]: t for t in o_run.trials}
        bb = {t["number"]: t for t in b_run.trials}
        oc, bc = o_run.cycles(), b_run.cycles()
        for n in both:
            ot, bt, tm = ob[n], bb[n], ob[n]["timing"]
            if not tm or bt.get("train_s") is None:
                continue
            add = parts.setdefault
            for key in ("sample_compile_check", "write", "import", "stage", "save"):
                add(key, []).append(tm.get(key, 0.0) * 1000)
            add("train", []).append((tm["train"] - bt["train_s"]) * 1000)
            add("in_trial", []).append(((ot["complete"] - ot["start"]) - tm["total"]) * 1000)
            add("between", []).append((oc[n] - (ot["complete"] - ot["start"])) * 1000)
            add("ours_other", []).append((oc[n] - tm["train"]) * 1000)
            add("base_other", []).append((bc[n] - bt["train_s"]) * 1000)
            add("diff", []).append((oc[n] - bc[n]) * 1000)
            add("base_cycle", []).append(bc[n] * 1000)
            add("attrs", []).append(ot["attrs"])
    return {k: med(v) for k, v in parts.items()}


def breakdown(ours: list[Run], p: dict[str, float], probe: dict[str, float], epochs: int, tmp: Path, kind: str) -> None:
    if not p:
        print("no trial trained in both runs: no breakdown")
        return
    suggest_ms = probe["plan_stored"] - probe["plan_memory"]
    name = {"sqlite": "SQLite", "journal": "journal file"}[kind]
    per_epoch = probe["report"] + probe["prune"]
    storage = suggest_ms + epochs * per_epoch + p["attrs"] * probe["write"]
    cycle = p["base_cycle"]
    lines = [
        (
            "sample + compile + check (trial.py Objective.plan)",
            p["sample_compile_check"],
            (
                f"probe: {probe['suggests']:.0f} suggest_* on {name} {suggest_ms:.0f} ms, black {probe['black']:.0f} ms,"
                f" rest {probe['plan_memory'] - probe['black']:.0f} ms"
            ),
        ),
        ("write spec.yaml + model.py (write_trial_files)", p["write"], ""),
        ("import the generated model.py (import_model_class)", p["import"], ""),
        ("stage data (DataCache.staged, cached)", p["stage"], ""),
        ("save weights, metrics, artifact (write_trial_result)", p["save"], ""),
        (
            "training: ours in a child - baseline in process",
            p["train"],
            (
                f"probe: fork+pipe+weights {probe['fork']:.0f} ms; per epoch {name} report {probe['report']:.1f} ms"
                f" + should_prune {probe['prune']:.1f} ms, x {epochs} = {epochs * per_epoch:.0f} ms"
            ),
        ),
        (
            "rest of the trial (user attrs, dedupe query, tell)",
            p["in_trial"],
            f"probe: {p['attrs']:.0f} user attrs x {probe['write']:.1f} ms per {name} write",
        ),
        ("between trials (reap stale, lock, ask, progress)", p["between"], ""),
    ]
    print(
        f"where ours' extra time per trial goes (ms, median over trials trained in both; baseline trial {cycle:.0f} ms):"
    )
    for label, value, note in lines:
        print(f"  {label:54} {value:8.1f} {value / cycle:6.1%}  {note}")
    print(f"  {'timed difference, ours - baseline':54} {p['diff']:8.1f} {p['diff'] / cycle:6.1%}")
    print(f"  {f'{name} writes and reads in it (estimate from the probes)':54} {storage:8.1f} {storage / cycle:6.1%}")
    print(f"  baseline's own non-training time per trial: {p['base_other']:.1f} ms (in-memory storage)")
    print(f"  a {name} write takes {probe['write']:.1f} ms here (on the disk under {tmp})")
    first = [r.trials[0]["timing"].get("sample_compile_check", 0.0) for r in ours if r.trials and r.trials[0]["timing"]]
    print(f"  one-off: ours' trial 0 plan {med(first):.2f} s (imports the compiler and black)")


def _ratio(ours: list[Run], base: list[Run]) -> str:
    pairs = [(o.time_to(b.best), b.time_to(b.best) or 1.0) for o, b in zip(ours, base)]
    if any(a is None for a, _ in pairs):
        return "not reached by ours in every round"
    return f"{med([a / b for a, b in pairs if a is not None]):.2f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="pairs of runs, alternating which goes first")
    parser.add_argument(
        "--threads", type=int, help="torch threads per training, both sides (default: the CPU cores, as ours)"
    )
    parser.add_argument(
        "--storage",
        choices=("default", "sqlite", "journal"),
        default="default",
        help="ours' study storage (default: what `yaml2torch search` picks)",
    )
    parser.add_argument("--tmp", type=Path, help="where ours writes its study and trial folders (default: system temp)")
    parser.add_argument(
        "--commits", action="store_true", help="also time ours' SQLite commits by caller (one more run)"
    )
    parser.add_argument("--baseline-json", type=Path, help=argparse.SUPPRESS)  # the baseline's own process
    args = parser.parse_args()
    if args.baseline_json is not None:
        run_baseline(args.trials, args.epochs, args.seed, args.threads, args.baseline_json)
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="yaml2torch-baseline-", dir=args.tmp))
    try:
        space = search_file(args.seed, tmp)
        loads = " ".join(f"{v:.2f}" for v in os.getloadavg())
        runs: list[Run] = []
        order = []
        for k in range(args.rounds):
            sides = ("ours", "baseline") if k % 2 == 0 else ("baseline", "ours")
            order.append(", ".join(sides))
            for side in sides:
                out = tmp / f"{side}-{k}"
                run = run_ours(args, space, out) if side == "ours" else run_plain(args, out)
                runs.append(run)
                print(f"round {k + 1}: {side:8} {run.exit - run.launch:6.1f} s, best {run.best:.4f}", file=sys.stderr)
        after = " ".join(f"{v:.2f}" for v in os.getloadavg())
        report(args, runs, order, (loads, after), tmp)
        if args.commits:
            print()
            commit_detail(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Early stopping for studies with several objectives: the ``Dominance`` rule.

Optuna's pruners need ``trial.report``, which multi-objective studies refuse. But the static
objectives (params, MACs, latency) are known before a trial trains, so a trial can be judged
at epoch k against the other trials at epoch k: its point (static objectives, measured
objectives at epoch k) is compared with those of the trials that cost no more, and a trial whose
point is dominated by at least ``min_dominators`` of them, and by at least ``min_percent``
percent of them, is stopped (the share keeps the rule as strict late in a long study as early
on: a fixed count alone stops nearly every trial once hundreds of cheaper ones have run). A dominator is no more expensive in every static
objective and, at that epoch, no worse in every measured one and better in one, so the cheapest
trials are never stopped and a trial stays while few cheaper trials beat it.

Each trial's per-epoch metrics are recorded on the trial (``study_record.record_epochs``), so
the rule reads the other trials' values from the study: one ``get_trials`` per epoch, and the
same for every worker sharing a storage. The decision itself (``decide``) is a pure function of
frozen trials. The stopped trial is pruned with its reason (``Stop.reason``); pruned trials
never enter the Pareto front.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from yaml2torch.study_record import FrozenTrialLike, TrialRecord

STATIC_METRICS = ("params", "macs", "latency")  # known before training: the cost side
NAME = "Dominance"


@dataclass(frozen=True)
class Dominance:
    """The rule's settings (``pruner: {type: Dominance, ...}`` in a search file).

    The first ``n_warmup_epochs`` epochs of a trial always run; at each later epoch k, once at
    least ``n_startup_trials`` other trials have reached epoch k, the trial is stopped when at
    least ``min_dominators`` of those that cost no more dominate its epoch-k point, and at least
    ``min_percent`` percent of them.
    """

    n_startup_trials: int = 5
    n_warmup_epochs: int = 1
    min_dominators: int = 3
    min_percent: int = 50

    def __post_init__(self) -> None:
        if self.min_percent > 100:
            raise ValueError(f"min_percent must be at most 100, got {self.min_percent}")


# name -> minimum; every argument is an int (checked at load, search/config.py)
ARG_MINIMUMS = {"n_startup_trials": 0, "n_warmup_epochs": 0, "min_dominators": 1, "min_percent": 0}
ARG_MAXIMUMS = {"min_percent": 100}


@dataclass(frozen=True)
class Point:
    """A trial at one epoch: its number, each objective's value (``None``: unknown)."""

    number: int
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class Stop:
    """Why a trial is stopped: what ``decide`` found at ``epoch``."""

    epoch: int
    metric: str  # the first measured objective (its value and threshold are reported)
    value: float
    threshold: float  # the min_dominators-th best value of ``metric`` among the dominators
    dominators: tuple[int, ...]  # trial numbers
    compared: int  # trials no more expensive than this one that reached the epoch
    reached: int  # trials that reached the epoch
    cost: str  # the static objectives, for the message ("MACs", "params and MACs", "cost")

    def reason(self, rule: Dominance) -> str:
        listed = ", ".join(str(n) for n in self.dominators[:5]) + (", ..." if len(self.dominators) > 5 else "")
        return (
            f"stopped by {NAME} after epoch {self.epoch}: {self.metric} {self.value:.4f} is dominated by "
            f"{len(self.dominators)} of the {self.compared} trials with no more {self.cost} that reached epoch "
            f"{self.epoch} ({100 * len(self.dominators) // self.compared}%; trials {listed}; threshold "
            f"{self.threshold:.4f}, the {_ordinal(rule.min_dominators)} best {self.metric} of those); "
            f"min_dominators {rule.min_dominators}, min_percent {rule.min_percent}"
        )

    def as_attr(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "dominators": list(self.dominators),
            "compared": self.compared,
            "reached": self.reached,
        }


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _cost_words(objectives: Sequence[tuple[str, str]]) -> str:
    names = {"params": "params", "macs": "MACs", "latency": "latency"}
    static = [names[m] for m, _ in objectives if m in STATIC_METRICS]
    if not static:
        return "cost"
    return static[0] if len(static) == 1 else ", ".join(static[:-1]) + " and " + static[-1]


def static_value(record: TrialRecord, metric: str) -> float | None:
    """A static objective's value as the trial recorded it before training."""
    value = {"params": record.params, "macs": record.macs, "latency": record.latency_ms}[metric]
    return None if value is None else float(value)


def point_at(record: TrialRecord, objectives: Sequence[tuple[str, str]], epoch: int) -> Point | None:
    """The trial's point at ``epoch`` (1-based), or None when it has not reached it."""
    epochs = record.epoch_metrics or ()
    if len(epochs) < epoch:
        return None
    values: list[float | None] = []
    for metric, _ in objectives:
        raw = static_value(record, metric) if metric in STATIC_METRICS else epochs[epoch - 1].get(metric)
        values.append(None if raw is None or not math.isfinite(float(raw)) else float(raw))
    return Point(record.number, tuple(values))


def dominates(a: Point, b: Point, objectives: Sequence[tuple[str, str]]) -> bool:
    """``a`` is no worse than ``b`` in every objective and better in a measured one (unknown values:
    no). Being cheaper at an equal score is not enough: early scores tie at chance level."""
    better = False
    for x, y, (metric, direction) in zip(a.values, b.values, objectives, strict=True):
        if x is None or y is None:
            return False
        if direction == "minimize":
            x, y = -x, -y
        if x < y:
            return False
        better = better or (x > y and metric not in STATIC_METRICS)
    return better


def no_more_expensive(a: Point, b: Point, objectives: Sequence[tuple[str, str]]) -> bool:
    """``a`` costs no more than ``b`` in every static objective (the trials ``b`` is compared with)."""
    for x, y, (metric, direction) in zip(a.values, b.values, objectives, strict=True):
        if metric not in STATIC_METRICS:
            continue
        if x is None or y is None or (x > y if direction == "minimize" else x < y):
            return False
    return True


def decide(
    rule: Dominance, objectives: Sequence[tuple[str, str]], record: TrialRecord, others: Iterable[FrozenTrialLike]
) -> Stop | None:
    """Whether the trial ``record`` describes stops at its last recorded epoch. ``others`` are the
    study's trials: itself, duplicates and trials that have not reached the epoch are left out."""
    epoch = len(record.epoch_metrics or ())
    if epoch <= rule.n_warmup_epochs:
        return None
    own = point_at(record, objectives, epoch)
    if own is None or any(v is None for v in own.values):
        return None
    points = []
    for other in others:
        theirs = TrialRecord.of(other)
        if other.number != record.number and theirs.duplicate_of is None:
            point = point_at(theirs, objectives, epoch)
            if point is not None:
                points.append(point)
    if len(points) < rule.n_startup_trials:
        return None
    cheaper = [p for p in points if no_more_expensive(p, own, objectives)]
    dominators = [p for p in cheaper if dominates(p, own, objectives)]
    if len(dominators) < rule.min_dominators or 100 * len(dominators) < rule.min_percent * len(cheaper):
        return None
    index, (metric, direction) = next((i, o) for i, o in enumerate(objectives) if o[0] not in STATIC_METRICS)
    value = own.values[index]
    assert value is not None  # own has every value (checked above)
    best_first = sorted((v for p in dominators if (v := p.values[index]) is not None), reverse=direction == "maximize")
    return Stop(
        epoch=epoch,
        metric=metric,
        value=value,
        threshold=best_first[rule.min_dominators - 1],
        dominators=tuple(sorted(p.number for p in dominators)),
        compared=len(cheaper),
        reached=len(points),
        cost=_cost_words(objectives),
    )

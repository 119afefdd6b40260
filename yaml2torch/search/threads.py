"""How many torch threads a CPU training uses: measured on the training's own first steps.

A fixed default is a trap on a shared machine: two OpenMP threads on two cores are ~1.7x faster
than one when the machine is quiet, and 10-100x slower when another process keeps a core busy
(their barriers spin while a thread waits for the CPU). So, unless ``--threads N`` fixes it,
each training first times a few steps of a throwaway copy of its model on its first batch at 1,
2, 4, ... threads (up to ``most``: the cores this process may use, divided among the workers on
the machine) and trains at the fastest. A candidate that is clearly losing is dropped after one
step, and larger counts are not tried once one got slower. The probe leaves the model, the
optimizer and the random streams untouched, so a training is bit-identical to one with
``--threads`` fixed at the chosen count. If an epoch runs much slower than the probe measured (the
load changed), the next epoch probes again (recorded: the history has each epoch's count).

A dropped count costs one slow step (0.25-0.7 s for a digits model when a core is busy, against
3 ms on one thread), so a worker remembers it (``ThreadMemory``) and does not try it again for
30 s, then 60, 120, up to 240 s while it keeps losing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PROBE_STEPS = 3  # timed steps per candidate, after one untimed warm-up step
GIVE_UP = 3.0  # a candidate whose step is this many times the best median so far is dropped
DRIFT = 2.0  # an epoch whose median step is this many times the chosen one probes again
MAX_PROBES = 3  # per training: a machine whose load keeps changing is not probed forever
COOLDOWN_S = 30.0  # a dropped count is not tried again for this long, doubled while it keeps losing
MAX_COOLDOWN_S = 240.0


def cores_available() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(cores, quota) if quota else cores)


def _cgroup_cpu_quota() -> int | None:
    """cgroup v2's ``cpu.max`` (``"200000 100000"`` = 2 cores), rounded up; None when unlimited."""
    try:
        limit, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if limit == "max":
        return None
    return max(1, -(-int(limit) // int(period)))


def thread_limit(workers: int) -> int:
    """The most threads one of ``workers`` trainings on this machine may use."""
    return max(1, cores_available() // max(1, workers))


def candidates(most: int) -> tuple[int, ...]:
    counts = [1]
    while counts[-1] * 2 <= most:
        counts.append(counts[-1] * 2)
    if counts[-1] != most:
        counts.append(most)
    return tuple(counts)


@dataclass(frozen=True)
class ThreadVerdict:
    """What a training's probes found: the count in use, counts timed to the end, counts dropped."""

    chosen: int
    held_up: frozenset[int] = frozenset()
    given_up: frozenset[int] = frozenset()


@dataclass
class ThreadChooser:
    """Picks torch's thread count for one training; ``fixed`` skips the measuring.

    ``probe(step)`` times ``step`` (one training step on a copy of the model) at each candidate
    and sets the fastest; ``after_step(seconds)`` and ``end_epoch()`` watch the real steps, and
    ``wants_probe`` turns true again when an epoch ran much slower than measured.
    """

    most: int
    fixed: int | None = None
    skip: frozenset[int] = frozenset()  # counts not to try (``ThreadMemory.skip``)
    max_probes: int = MAX_PROBES  # 1: never change the count mid-training
    chosen: int | None = None
    probes: int = 0
    given_up: set[int] = field(default_factory=set)  # counts dropped after losing badly
    held_up: set[int] = field(default_factory=set)  # counts timed to the end of a probe
    medians: dict[int, float] = field(default_factory=dict)  # the last probe's seconds per step
    clock: Callable[[], float] = time.perf_counter
    _epoch_times: list[float] = field(default_factory=list)
    _drifted: bool = False

    @property
    def wants_probe(self) -> bool:
        """Before the first epoch (nothing set yet), and after an epoch that ran much slower."""
        return self.chosen is None or self._drifted

    def probe(self, step: Callable[[], None]) -> None:
        """Time ``step`` at 1, 2, 4, ... threads and keep the fastest (then set it)."""
        import torch

        if self.fixed is not None or self.most <= 1:
            self.chosen = self.fixed or 1
            torch.set_num_threads(self.chosen)  # nothing to measure
            return
        self.probes += 1
        self.medians = {}
        dropped = self.skip | self.given_up  # counts that collapsed lately stay dropped (a re-probe too)
        queue = [count for count in candidates(self.most) if count == 1 or count not in dropped]
        for count in queue if len(queue) > 1 else []:
            torch.set_num_threads(count)
            times = self._time(step, count)
            if times is None:
                self.given_up.add(count)  # losing badly: threads waiting for a busy core
                break
            self.held_up.add(count)
            self.medians[count] = sorted(times)[len(times) // 2]
            if self.medians[count] > min(self.medians.values()):
                break  # more threads got slower: more still would not help
        self.chosen = min(self.medians, key=lambda c: (self.medians[c], c)) if self.medians else 1
        torch.set_num_threads(self.chosen)
        self._epoch_times, self._drifted = [], False

    def _time(self, step: Callable[[], None], count: int) -> list[float] | None:
        """PROBE_STEPS timings after one warm-up step; None once a step loses by GIVE_UP."""
        best = min(self.medians.values()) if self.medians else None
        times = []
        for _ in range(PROBE_STEPS + 1):
            started = self.clock()
            step()
            times.append(self.clock() - started)
            if best is not None and times[-1] > GIVE_UP * best:
                return None
        return times[1:]

    def verdict(self) -> ThreadVerdict:
        return ThreadVerdict(self.chosen or 1, frozenset(self.held_up), frozenset(self.given_up))

    def after_step(self, seconds: float) -> None:
        self._epoch_times.append(seconds)

    def end_epoch(self) -> None:
        """After an epoch: probe again before the next if its steps ran much slower than measured."""
        epoch_times, self._epoch_times = self._epoch_times, []
        if self.fixed is not None or not epoch_times or self.probes >= self.max_probes or self.chosen not in self.medians:
            return
        self._drifted = sorted(epoch_times)[len(epoch_times) // 2] > DRIFT * self.medians[self.chosen]


@dataclass
class ThreadMemory:
    """One worker's memory across its trainings: thread counts that lost badly, and for how long
    not to try them again (each training runs in a fresh child process, so it lives here)."""

    skip_until: dict[int, float] = field(default_factory=dict)  # count -> time.monotonic()
    cooldown: dict[int, float] = field(default_factory=dict)  # count -> seconds of the last skip

    def skip(self, now: float) -> frozenset[int]:
        return frozenset(count for count, until in self.skip_until.items() if until > now)

    def learn(self, verdict: ThreadVerdict, now: float) -> None:
        """After a training: counts it dropped are skipped for a while; counts that held up are forgiven."""
        for count in verdict.given_up:
            wait = min(MAX_COOLDOWN_S, 2 * self.cooldown[count]) if count in self.cooldown else COOLDOWN_S
            self.cooldown[count] = wait
            self.skip_until[count] = now + wait
        for count in verdict.held_up - verdict.given_up:
            self.cooldown.pop(count, None)
            self.skip_until.pop(count, None)

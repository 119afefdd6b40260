"""How many torch threads a CPU training uses: measured on the training's own first steps.

A fixed default is a trap on a shared machine: two OpenMP threads on two cores are ~1.7x faster
than one when the machine is quiet, and 10-30x slower when another process keeps a core busy
(their barriers spin while a thread waits for the CPU). So, unless ``--threads N`` fixes it,
each training times a few of its own steps at 1, 2, 4, ... threads (up to ``most``: the cores this
process may use, divided among the workers on the machine) and keeps the fastest. A candidate
that is clearly losing is dropped after one step, and larger counts are not tried once one got
slower. If later epochs run much slower than the probe measured (the load changed), the next
epoch probes again. The probe steps are real training steps: nothing is trained twice.

A dropped count costs one slow step (0.25-0.7 s for a digits model when a core is busy, against
3 ms on one thread), so a worker remembers it (``ThreadMemory``) and does not try it again for
30 s, then 60, 120, up to 240 s while it keeps losing.
"""

from __future__ import annotations

import os
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
    """Sets torch's thread count before each training step; ``fixed`` skips the measuring.

    ``before_step()`` and ``after_step(seconds)`` bracket every training step; ``end_epoch()``
    decides whether the next epoch probes again. ``chosen`` is the count in use after the probe.
    """

    most: int
    fixed: int | None = None
    skip: frozenset[int] = frozenset()  # counts not to try (``ThreadMemory.skip``)
    chosen: int | None = None
    probes: int = 0
    given_up: set[int] = field(default_factory=set)  # counts dropped after losing badly
    held_up: set[int] = field(default_factory=set)  # counts timed to the end of a probe
    _queue: list[int] = field(default_factory=list)  # candidates still to time, this probe
    _times: dict[int, list[float]] = field(default_factory=dict)  # per candidate, warm-up first
    _epoch_times: list[float] = field(default_factory=list)
    _current: int = 0

    def __post_init__(self) -> None:
        if self.fixed is not None:
            self.chosen = self.fixed
        elif self.most <= 1:
            self.chosen = 1
        else:
            self._start_probe()

    def _start_probe(self) -> None:
        self.probes += 1
        self._queue = [count for count in candidates(self.most) if count == 1 or count not in self.skip]
        self._times = {}
        if len(self._queue) == 1:
            self.chosen, self._queue = self._queue[0], []

    @property
    def probing(self) -> bool:
        return bool(self._queue)

    def verdict(self) -> ThreadVerdict:
        return ThreadVerdict(self.chosen or 1, frozenset(self.held_up), frozenset(self.given_up))

    def before_step(self) -> None:
        count = self._queue[0] if self._queue else self.chosen
        assert count is not None  # chosen is set whenever no probe is running
        if count != self._current:
            import torch

            torch.set_num_threads(count)
            self._current = count

    def after_step(self, seconds: float) -> None:
        if not self._queue:
            self._epoch_times.append(seconds)
            return
        count = self._queue[0]
        times = self._times.setdefault(count, [])
        times.append(seconds)
        best = self._best_median()
        if best is not None and count not in self._medians() and seconds > GIVE_UP * best:
            self.given_up.add(count)
            self._finish_probe()  # losing badly (e.g. threads waiting for a busy core)
        elif len(times) > PROBE_STEPS:
            self.held_up.add(count)
            self._queue.pop(0)
            medians = self._medians()
            if not self._queue or medians[count] > min(medians.values()):
                self._finish_probe()  # more threads got slower: more still would not help

    def _medians(self) -> dict[int, float]:
        return {c: sorted(t[1:])[len(t[1:]) // 2] for c, t in self._times.items() if len(t) > PROBE_STEPS}

    def _best_median(self) -> float | None:
        medians = self._medians()
        return min(medians.values()) if medians else None

    def _finish_probe(self) -> None:
        medians = self._medians()
        self.chosen = min(medians, key=lambda c: (medians[c], c)) if medians else 1
        self._queue = []
        self._epoch_times = []

    def end_epoch(self) -> None:
        """After an epoch: probe again next epoch if its steps ran much slower than measured."""
        if self.fixed is not None or self._queue or not self._epoch_times or self.probes >= MAX_PROBES:
            self._epoch_times = []
            return
        measured = self._medians().get(self.chosen or 1)
        epoch = sorted(self._epoch_times)[len(self._epoch_times) // 2]
        self._epoch_times = []
        if measured is not None and epoch > DRIFT * measured:
            self._start_probe()


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

"""The measured thread default: the chooser's decisions, the worker's memory, and real trainings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from yaml2torch.search.threads import (
    COOLDOWN_S,
    MAX_COOLDOWN_S,
    PROBE_STEPS,
    ThreadChooser,
    ThreadMemory,
    ThreadVerdict,
    candidates,
    cores_available,
    thread_limit,
)


class Machine:
    """A step whose duration depends on torch's thread count, on a clock only it advances."""

    def __init__(self, step_time: dict[int, float]) -> None:
        self.step_time = step_time
        self.now = 0.0
        self.counts: list[int] = []

    def clock(self) -> float:
        return self.now

    def step(self) -> None:
        import torch

        count = torch.get_num_threads()
        self.counts.append(count)
        self.now += self.step_time[count]


def chooser_on(machine: Machine, **kwargs) -> ThreadChooser:
    return ThreadChooser(clock=machine.clock, **kwargs)


def train_epochs(chooser: ThreadChooser, machine: Machine, epochs: int, steps: int = 17) -> list[int]:
    """What train_model does with a chooser: probe when it wants to, then time the real steps."""
    import torch

    used = []
    for _ in range(epochs):
        if chooser.wants_probe:
            chooser.probe(machine.step)
        used.append(torch.get_num_threads())
        for _ in range(steps):
            chooser.after_step(machine.step_time[torch.get_num_threads()])
        chooser.end_epoch()
    return used


@pytest.fixture(autouse=True)
def _restore_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_candidates_are_powers_of_two_up_to_the_cap() -> None:
    assert candidates(1) == (1,)
    assert candidates(2) == (1, 2)
    assert candidates(6) == (1, 2, 4, 6)
    assert candidates(8) == (1, 2, 4, 8)


def test_cores_available_is_the_affinity_mask_at_most() -> None:
    assert 1 <= cores_available() <= len(os.sched_getaffinity(0))
    assert thread_limit(1) == cores_available()
    assert thread_limit(10_000) == 1


def test_two_threads_kept_when_they_are_faster() -> None:
    machine = Machine({1: 0.010, 2: 0.006})
    chooser = chooser_on(machine, most=2)
    assert train_epochs(chooser, machine, 3) == [2, 2, 2]
    probe = PROBE_STEPS + 1
    assert machine.counts == [1] * probe + [2] * probe  # one warm-up and PROBE_STEPS timed steps each
    assert chooser.verdict() == ThreadVerdict(2, frozenset({1, 2}), frozenset())


def test_one_thread_kept_when_more_are_slower() -> None:
    machine = Machine({1: 0.005, 2: 0.008})
    chooser = chooser_on(machine, most=2)
    assert train_epochs(chooser, machine, 3) == [1, 1, 1]
    assert not chooser.given_up


def test_a_collapsing_count_is_dropped_after_one_step() -> None:
    """Two threads waiting for a busy core: 250 ms a step against 3 ms (measured on this machine)."""
    machine = Machine({1: 0.003, 2: 0.250})
    chooser = chooser_on(machine, most=2)
    assert train_epochs(chooser, machine, 2) == [1, 1]
    assert machine.counts.count(2) == 1
    assert chooser.verdict() == ThreadVerdict(1, frozenset({1}), frozenset({2}))


def test_larger_counts_are_not_tried_once_one_got_slower() -> None:
    machine = Machine({1: 0.010, 2: 0.007, 4: 0.009, 8: 0.001})
    chooser = chooser_on(machine, most=8)
    train_epochs(chooser, machine, 1)
    assert 8 not in machine.counts and chooser.chosen == 2


def test_a_slowdown_after_the_probe_probes_again() -> None:
    machine = Machine({1: 0.010, 2: 0.005})
    chooser = chooser_on(machine, most=2)
    assert train_epochs(chooser, machine, 1) == [2]
    machine.step_time = {1: 0.010, 2: 0.200}  # another process now keeps a core busy
    assert train_epochs(chooser, machine, 2) == [2, 1]
    assert chooser.probes == 2 and chooser.given_up == {2}


def test_fixed_threads_are_never_measured() -> None:
    machine = Machine({3: 0.5})
    chooser = chooser_on(machine, most=8, fixed=3)
    assert train_epochs(chooser, machine, 3) == [3, 3, 3]
    assert chooser.probes == 0 and machine.counts == []


def test_skipped_counts_are_not_tried() -> None:
    machine = Machine({1: 0.01, 2: 0.001})
    chooser = chooser_on(machine, most=2, skip=frozenset({2}))
    assert train_epochs(chooser, machine, 2) == [1, 1]
    assert machine.counts == []  # one candidate left: nothing to time


def test_memory_backs_off_while_a_count_keeps_losing() -> None:
    memory = ThreadMemory()
    lost = ThreadVerdict(1, frozenset({1}), frozenset({2}))
    memory.learn(lost, now=0.0)
    assert memory.skip(COOLDOWN_S - 1) == {2} and memory.skip(COOLDOWN_S + 1) == frozenset()
    memory.learn(lost, now=100.0)
    assert memory.skip(100 + 2 * COOLDOWN_S - 1) == {2}
    for _ in range(10):
        memory.learn(lost, now=1000.0)
    assert memory.skip(1000 + MAX_COOLDOWN_S + 1) == frozenset()
    memory.learn(ThreadVerdict(2, frozenset({1, 2})), now=2000.0)  # two threads held up again
    assert memory.cooldown == {} and memory.skip(2000.0) == frozenset()


def test_a_real_training_settles_on_a_measured_count() -> None:
    import torch

    from yaml2torch.search.config import DataSettings, TrainSettings
    from yaml2torch.search.data import load_splits
    from yaml2torch.search.train import stage, train_model

    data = stage(load_splits(DataSettings(limit=300)), None, torch.device("cpu"))
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 64, 10)
    )
    chooser = ThreadChooser(most=2)
    history = train_model(model, data, TrainSettings(epochs=3, batch_size=16), 0, threads=chooser)
    assert all(h.threads is not None for h in history)
    assert history[-1].threads == chooser.verdict()
    assert chooser.chosen in (1, 2) and 1 in chooser.held_up


def test_search_records_the_thread_count_of_each_trial(tmp_path: Path, run_cli) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(
        "study: t\nseed: 0\ntrials: 2\ndata: {source: digits, limit: 200}\nobjectives: [accuracy]\n"
        "train: {epochs: 2, batch_size: 16}\n"
        "model:\n  backbone:\n    - [1, Conv, [{choice: [4, 8]}, 3, 1]]\n    - [1, GlobalAvgPool, []]\n"
        "    - [1, Flatten, []]\n    - [1, Linear, [10]]\n"
    )
    out = tmp_path / "out"
    result = run_cli("search", space, "--out", out, "--quiet", "--max-threads", "2")
    assert result.status == 0, result.stderr
    counts = [json.loads(p.read_text())["threads"] for p in sorted(out.glob("trials/*/metrics.json"))]
    assert counts and all(count in (1, 2) for count in counts)
    fixed = run_cli("search", space, "--out", tmp_path / "fixed", "--quiet", "--threads", "1")
    assert fixed.status == 0, fixed.stderr
    assert {json.loads(p.read_text())["threads"] for p in (tmp_path / "fixed").glob("trials/*/metrics.json")} == {1}


def test_the_probe_does_not_change_the_training() -> None:
    """Measured threads train bit-identically to --threads fixed at the chosen count (dropout too)."""
    import torch

    from yaml2torch.search.config import DataSettings, TrainSettings
    from yaml2torch.search.data import load_splits
    from yaml2torch.search.train import stage, train_model

    data = stage(load_splits(DataSettings(limit=300)), None, torch.device("cpu"))

    def trained(chooser: ThreadChooser) -> torch.Tensor:
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Flatten(),
            torch.nn.Linear(8 * 64, 10),
        )  # fmt: skip
        train_model(model, data, TrainSettings(epochs=2, batch_size=16), 0, threads=chooser)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    measured = ThreadChooser(most=2, max_probes=1)  # a load change mid-test must not switch counts
    first = trained(measured)
    assert measured.probes == 1 and measured.chosen in (1, 2)
    assert torch.equal(first, trained(ThreadChooser(most=2, fixed=measured.chosen)))


def test_one_worker_per_gpu_and_a_share_of_the_cores_each() -> None:
    from yaml2torch.search.run import RunOptions, default_workers

    assert default_workers(None, (), "auto", gpus=4) == 4
    assert default_workers(None, (), "cuda:0", gpus=4) == 1  # one device asked for
    assert default_workers(None, ("cuda:0", "cuda:1"), "auto", gpus=4) == 2
    assert default_workers(3, (), "auto", gpus=4) == 3
    assert default_workers(None, (), "auto", gpus=0) == default_workers(None, (), "auto", gpus=1) == 1
    options = RunOptions(out_dir=Path("unused"), workers=4)
    assert options.thread_cap() == thread_limit(4)
    assert RunOptions(out_dir=Path("unused"), workers=4, threads=3).thread_cap() == 3
    assert RunOptions(out_dir=Path("unused"), workers=4, max_threads=2).thread_cap() == 2


def test_a_reprobe_skips_the_count_that_collapsed() -> None:
    machine = Machine({1: 0.003, 2: 0.250})
    chooser = chooser_on(machine, most=2)
    train_epochs(chooser, machine, 1)
    machine.step_time = {1: 0.010, 2: 0.250}  # one thread slows down too: the epoch drifts
    train_epochs(chooser, machine, 2)
    assert chooser.probes == 2 and machine.counts.count(2) == 1  # two threads were not tried again


def test_threads_and_max_threads_together_are_refused(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text("backbone:\n  - [1, Conv, [4, 3, 1]]\n  - [1, GlobalAvgPool, []]\n  - [1, Flatten, []]\n  - [1, Linear, [10]]\n")
    for argv in (
        ("search", "examples/search/digits.yaml", "--out", tmp_path / "s"),
        ("train", spec, "-o", tmp_path / "t"),
    ):
        result = run_cli(*argv, "--threads", "2", "--max-threads", "1")
        assert result.status == 2
        assert result.stderr == (
            "yaml2torch: error: --max-threads caps the measured thread count; "
            "with --threads N nothing is measured (give one)\n"
        )
    assert not (tmp_path / "s").exists() and not (tmp_path / "t").exists()


def test_train_records_its_thread_count(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text("backbone:\n  - [1, Conv, [4, 3, 1]]\n  - [1, GlobalAvgPool, []]\n  - [1, Flatten, []]\n  - [1, Linear, [10]]\n")
    out = tmp_path / "t"
    result = run_cli("train", spec, "--epochs", "1", "--max-threads", "1", "--quiet", "-o", out)
    assert result.status == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["threads"] == 1 and [row["threads"] for row in metrics["history"]] == [1]


def test_a_library_search_gives_the_thread_count_back(tmp_path: Path) -> None:
    import torch

    from yaml2torch.search.config import parse_config
    from yaml2torch.search.run import RunOptions, run_search

    text = (
        "study: t\nseed: 0\ntrials: 1\ndata: {source: digits, limit: 200}\nobjectives: [accuracy]\n"
        "train: {epochs: 1, batch_size: 16}\n"
        "model:\n  backbone:\n    - [1, Conv, [4, 3, 1]]\n    - [1, GlobalAvgPool, []]\n"
        "    - [1, Flatten, []]\n    - [1, Linear, [10]]\n"
    )
    torch.set_num_threads(2)
    run_search(parse_config(text, "t.yaml", tmp_path), RunOptions(out_dir=tmp_path / "out", isolate=True, progress=False))
    assert torch.get_num_threads() == 2

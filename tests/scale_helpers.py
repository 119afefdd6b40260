"""Shared by the scale-out tests: a tiny real search (digits, 8x8, 2 epochs: about a second a
trial), the command line as a subprocess, and checks on what a study holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from yaml2torch.scale.faults import ENV_INJECT
from yaml2torch.scale.storage import make_storage

SPACE = """\
study: tiny
seed: 0
trials: 4
data: {source: digits, limit: 300}
objectives: [accuracy]
sampler: {type: Random}
pruner: {type: none}
train:
  epochs: 2
  batch_size: 32
  image_size: 8
  optimizer: {type: Adam, lr: {float: [0.003, 0.01], log: true}}
  scheduler: none
model:
  backbone:
    - [1, Conv, [{int: [4, 16], step: 4}, 3, 1]]
    - [1, MaxPool, [2]]
    - [1, GlobalAvgPool, []]
    - [1, Flatten, []]
    - [1, Linear, [10]]
"""


def yaml2torch(*args: object, fault: str | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "yaml2torch", *map(str, args)],
        check=False,
        env=environment(fault),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(*args: object, fault: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "yaml2torch", *map(str, args)], env=environment(fault), stderr=subprocess.PIPE, text=True
    )


def environment(fault: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_INJECT}
    if fault:
        env[ENV_INJECT] = fault
    return env


def load(url: str, study: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=make_storage(url)).get_trials()


def check_trained(trials: list[optuna.trial.FrozenTrial], out: Path, count: int) -> list[optuna.trial.FrozenTrial]:
    """``count`` complete trials, each with its record, files and weights in the artifact store."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == count and len({t.number for t in trials}) == len(trials)
    for trial in complete:
        attrs = trial.user_attrs
        assert {"spec_yaml", "arch_hash", "metrics", "model_py", "weights_artifact"} <= set(attrs), trial.number
        assert (out / attrs["trial_dir"] / "model.pt").is_file()
        assert (out / "artifacts" / attrs["weights_artifact"]).read_bytes() == (
            out / attrs["trial_dir"] / "model.pt"
        ).read_bytes()
    return complete

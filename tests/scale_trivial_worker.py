"""A worker with a trivial objective, for scale-out tests that do not need real training.

It uses the real worker loop, storage, heartbeats, child-process trials, fault injection and
artifact store of ``yaml2torch.scale``; only the "training" is a few sleeps and a formula.
Usage: python tests/scale_trivial_worker.py STORAGE STUDY ARTIFACTS --total N [--epochs E] [--epoch-seconds S]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import optuna

from yaml2torch.scale.faults import FaultPlan, check_finite_loss
from yaml2torch.scale.metadata import StudyMetadata, create_or_join_study, record_trial_outputs, upload_weights
from yaml2torch.scale.signals import StopRequested, stop_on_signals
from yaml2torch.scale.storage import make_artifact_store, make_storage, with_storage_retries
from yaml2torch.scale.worker import WorkerOptions, run_worker, train_in_child

SPACE = "x: {float: [0, 1]}\n"


def train(channel, trial_number: int, x: float, epochs: int, epoch_seconds: float, out: str) -> dict:
    faults = FaultPlan.from_env()
    loss = 1.0
    for epoch in range(1, epochs + 1):
        time.sleep(epoch_seconds)
        loss = faults.at_epoch(trial_number, epoch, (x - 0.5) ** 2 + 1.0 / epoch)
        check_finite_loss(loss, epoch)
        if channel.report(epoch, loss):
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")
    Path(out).write_text(f"weights of trial {trial_number}: x={x!r}\n")
    return {"loss": loss}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("storage")
    parser.add_argument("study")
    parser.add_argument("artifacts")
    parser.add_argument("--total", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--epoch-seconds", type=float, default=0.1)
    parser.add_argument("--time-limit", type=float, default=None)
    parser.add_argument("--heartbeat", type=int, default=1)
    parser.add_argument("--grace", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    storage = with_storage_retries(
        lambda: make_storage(args.storage, heartbeat_interval=args.heartbeat, grace_period=args.grace),
        what="opening the storage",
    )
    study = with_storage_retries(
        lambda: create_or_join_study(
            storage,
            args.study,
            StudyMetadata(SPACE, "trivial.yaml", {"total": args.total}),
            directions=["minimize"],
            sampler=optuna.samplers.RandomSampler(),
            pruner=optuna.pruners.NopPruner(),
        ),
        what="opening the study",
    )
    artifacts = make_artifact_store(args.artifacts)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        with tempfile.TemporaryDirectory() as tmp:
            weights = os.path.join(tmp, "weights.txt")
            metrics = train_in_child(
                trial, train, (trial.number, x, args.epochs, args.epoch_seconds, weights), time_limit=args.time_limit
            )
            record_trial_outputs(trial, spec_yaml=f"x: {x!r}\n", arch_hash=f"h{trial.number}", metrics=metrics)
            upload_weights(trial, Path(weights), artifacts)
        return metrics["loss"]

    options = WorkerOptions(total_trials=args.total, heartbeat_interval=args.heartbeat, grace_period=args.grace)
    try:
        with stop_on_signals():
            summary = run_worker(study, objective, options)
    except StopRequested as stop:
        print(f"worker {os.getpid()}: stopped by {stop.signal_name}", file=sys.stderr, flush=True)
        return stop.exit_status
    print(f"worker {os.getpid()}: {summary.line()}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

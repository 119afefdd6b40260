"""``yaml2torch train``: one architecture through the search's own trial path.

The spec is fitted to the data, compiled, written and trained exactly as a search trial is
(``yaml2torch.search.trial``): same files (``spec.yaml``, ``model.py``, ``model.pt``,
``metrics.json``), same training loop. The spec and settings come from a file (``SPEC.yaml``,
``--config``, options) or from a stored study's trial (``--from OUT_DIR [--trial N]``: the picked
trial by default), with the study's data and the trial's own training settings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from yaml2torch.errors import UsageError
from yaml2torch.search import space as sp
from yaml2torch.search.config import (
    DATA_SOURCES,
    DataSettings,
    OptimizerSettings,
    TrainSettings,
    load_config,
    parse_train,
)
from yaml2torch.spec.yaml_nodes import Node, load_text, read_text

TRAIN_OUTPUTS = ("spec.yaml", "model.py", "model.pt", "metrics.json")  # written into -o OUT


@dataclass(frozen=True)
class TrainRequest:
    """What ``yaml2torch train`` was asked (each override replaces the file's or trial's setting)."""

    out_dir: Path
    spec: Path | None = None
    source: str | None = None  # a stored study: output folder, database path or URL
    study: str | None = None
    trial: int | None = None  # default: the study's picked trial
    data: str = "digits"
    data_path: Path | None = None
    config: Path | None = None  # a search file whose data: and train: settings to use
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    image_size: int | None = None
    device: str | None = None
    seed: int = 0
    threads: int | None = None
    max_threads: int | None = None  # the measured rule's cap (default: usable cores)
    progress: bool = True


@dataclass(frozen=True)
class TrainInput:
    """The spec to train (as located nodes), where its relative paths start, and the settings."""

    node: Node
    filename: str
    base_dir: Path
    data: DataSettings
    train: TrainSettings


def _from_files(request: TrainRequest) -> TrainInput:
    assert request.spec is not None  # checked by resolve_input
    if request.config is not None:
        config = load_config(request.config)
        if not isinstance(config.train, sp.Fixed):
            raise UsageError(f"{request.config}: the train section has choices; train needs concrete settings")
        data, train = config.data, parse_train(config.train.node)
    else:
        if request.data not in DATA_SOURCES:
            raise UsageError(f"--data {request.data!r}: one of {', '.join(DATA_SOURCES)}")
        if request.data != "digits" and request.data_path is None:
            raise UsageError(f"--data {request.data} needs --data-path")
        data, train = DataSettings(source=request.data, path=request.data_path, split_seed=request.seed), TrainSettings()
    node = load_text(read_text(request.spec), str(request.spec))
    return TrainInput(node, str(request.spec), request.spec.parent, data, train)


def _from_study(request: TrainRequest) -> TrainInput:
    from yaml2torch.search.export import pick
    from yaml2torch.search.run import open_stored_study
    from yaml2torch.study_record import TrialRecord, TrialStatus

    assert request.source is not None  # checked by resolve_input
    stored = open_stored_study(request.source, request.study)
    trials = stored.study.get_trials(deepcopy=False)
    if request.trial is None:
        trial, _ = pick(stored.study, stored.config)
        if trial is None:
            raise UsageError(f"study {stored.study.study_name!r} has no completed trial to train (give --trial N)")
    elif 0 <= request.trial < len(trials):
        trial = trials[request.trial]
    else:
        raise UsageError(f"--trial {request.trial}: study {stored.study.study_name!r} has trials 0 to {len(trials) - 1}")
    record = TrialRecord.of(trial)
    if record.spec_yaml is None or record.train is None:
        why = f": {record.reason}" if record.reason else ""  # an infeasible sample: its constraint
        raise UsageError(
            f"trial {trial.number} of study {stored.study.study_name!r} has no spec to train "
            f"({'infeasible' if record.status == TrialStatus.INFEASIBLE else trial.state.name.lower()}{why})"
        )
    config = stored.config
    data = replace(config.data, limit=stored.record.settings.data_limit or config.data.limit)
    name = f"{stored.study.study_name}:trial {trial.number}"
    return TrainInput(load_text(record.spec_yaml, name), name, config.base_dir, data, TrainSettings.from_key(record.train))


def resolve_input(request: TrainRequest) -> TrainInput:
    if (request.spec is None) == (request.source is None):
        given = "both" if request.spec is not None else "neither"
        raise UsageError(f"train takes a SPEC.yaml or --from OUT_DIR (a stored study); {given} given")
    found = _from_study(request) if request.source is not None else _from_files(request)
    train = found.train
    if request.epochs is not None:
        train = replace(train, epochs=request.epochs)
    if request.batch_size is not None:
        train = replace(train, batch_size=request.batch_size)
    if request.lr is not None:
        train = replace(train, optimizer=OptimizerSettings(train.optimizer.type, request.lr, train.optimizer.kwargs))
    if request.image_size is not None:
        train = replace(train, image_size=(request.image_size, request.image_size))
    return replace(found, train=train)


def train_spec_file(request: TrainRequest) -> dict[str, Any]:
    """Fit, compile, write, import, train; score on the validation and test splits. The metrics."""
    from yaml2torch.files import import_model_class
    from yaml2torch.search.threads import ThreadChooser, cores_available
    from yaml2torch.search.train import DataCache, evaluate, resolve_device, seeded_model, train_model
    from yaml2torch.search.trial import compile_node, fit_to_data, history_rows, write_trial_files, write_trial_result

    found = resolve_input(request)
    data = DataCache(found.data, resolve_device(request.device))
    splits = data.splits
    node, train = fit_to_data(
        found.node, found.train, splits.channels, splits.size, (splits.mean, splits.std), splits.scaled_from
    )
    spec_yaml, compiled = compile_node(node, found.filename, found.base_dir)
    compiled.refuse_overwriting_inputs(request.out_dir / name for name in TRAIN_OUTPUTS)  # sub-specs, plugins
    write_trial_files(request.out_dir, spec_yaml, compiled.source)
    model = seeded_model(import_model_class(request.out_dir / "model.py"), request.seed)
    staged = data.staged(train.image_size)
    threads = ThreadChooser(most=request.max_threads or cores_available(), fixed=request.threads)
    with EpochProgress(train.epochs, enabled=request.progress) as progress:
        history = train_model(model, staged, train, request.seed, progress.epoch, threads)
    test = None
    if len(staged.test_y):
        test = evaluate(model, staged.test_x, staged.test_y, staged.num_classes, staged.device, train, per_class=True)
    result = {
        "arch_hash": compiled.arch_hash,
        "params": compiled.params,
        "macs": compiled.macs,
        "val": dict(history[-1].metrics),
        "test": test,
        "history": history_rows(history),
        "train": train.key(),
        "data": found.data.key(),
        "source": found.filename,
        "device": str(staged.device),
        "threads": history[-1].threads.chosen if history[-1].threads else None,  # torch threads (CPU)
    }
    write_trial_result(request.out_dir, model, result)
    return result


class EpochProgress:
    """One rich bar on stderr: epochs done, the latest validation accuracy and loss. Not on a
    terminal (a pipe, a log file), where rich draws nothing live: one plain line per epoch."""

    def __init__(self, epochs: int, enabled: bool) -> None:
        import sys

        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(file=sys.stderr, width=None if sys.stderr.isatty() else 120)
        self._epochs = epochs
        self._lines = enabled and not (console.is_terminal or console.is_jupyter)  # a notebook draws bars
        self._progress = Progress(
            TextColumn("[bold]epochs"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            disable=not enabled or self._lines,
        )
        self._task = self._progress.add_task("epochs", total=epochs, info="")

    def __enter__(self) -> EpochProgress:  # noqa: PYI034 - a final class
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    def epoch(self, result: Any) -> None:
        import sys

        metrics = result.metrics
        info = f"val accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}"
        if self._lines:
            print(f"epoch {result.epoch}/{self._epochs}: {info}", file=sys.stderr, flush=True)
        self._progress.update(self._task, completed=result.epoch, info=info)

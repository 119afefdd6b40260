"""``yaml2torch train SPEC.yaml``: one architecture through the search's own trial path.

The spec is fitted to the data, compiled, written and trained exactly as a search trial is
(``yaml2torch.search.trial``): same files (``spec.yaml``, ``model.py``, ``model.pt``,
``metrics.json``), same training loop.
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
from yaml2torch.spec.yaml_nodes import load_text, read_text


@dataclass(frozen=True)
class TrainRequest:
    """What ``yaml2torch train`` was asked (each override replaces the file's or default setting)."""

    spec: Path
    out_dir: Path
    data: str = "digits"
    data_path: Path | None = None
    config: Path | None = None  # a search file whose data: and train: settings to use
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    image_size: int | None = None
    device: str | None = None
    seed: int = 0


def _settings(request: TrainRequest) -> tuple[DataSettings, TrainSettings]:
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
    if request.epochs is not None:
        train = replace(train, epochs=request.epochs)
    if request.batch_size is not None:
        train = replace(train, batch_size=request.batch_size)
    if request.lr is not None:
        train = replace(train, optimizer=OptimizerSettings(train.optimizer.type, request.lr, train.optimizer.kwargs))
    if request.image_size is not None:
        train = replace(train, image_size=(request.image_size, request.image_size))
    return data, train


def train_spec_file(request: TrainRequest) -> dict[str, Any]:
    """Fit, compile, write, import, train; score on the validation and test splits. The metrics."""
    from yaml2torch.files import import_model_class
    from yaml2torch.search.train import DataCache, evaluate, resolve_device, seeded_model, train_model
    from yaml2torch.search.trial import compile_node, fit_to_data, history_rows, write_trial_files, write_trial_result

    data_settings, train = _settings(request)
    data = DataCache(data_settings, resolve_device(request.device))
    node = load_text(read_text(request.spec), str(request.spec))
    splits = data.splits
    node, train = fit_to_data(node, train, splits.channels, splits.size, (splits.mean, splits.std))
    spec_yaml, compiled = compile_node(node, str(request.spec), request.spec.parent)
    write_trial_files(request.out_dir, spec_yaml, compiled.source)
    model = seeded_model(import_model_class(request.out_dir / "model.py"), request.seed)
    staged = data.staged(train.image_size)
    history = train_model(model, staged, train, request.seed)
    test = None
    if len(staged.test_y):
        test = evaluate(model, staged.test_x, staged.test_y, staged.num_classes, staged.device, train)
    result = {
        "arch_hash": compiled.arch_hash,
        "params": compiled.params,
        "macs": compiled.macs,
        "val": dict(history[-1].metrics),
        "test": test,
        "history": history_rows(history),
        "train": train.key(),
        "data": data_settings.key(),
        "device": str(staged.device),
    }
    write_trial_result(request.out_dir, model, result)
    return result

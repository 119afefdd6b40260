"""``yaml2torch train SPEC.yaml``: one architecture through the search's compile/import/train path."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from yaml2torch.errors import SpecError
from yaml2torch.search import space as sp
from yaml2torch.search.config import (
    DATA_SOURCES,
    DataSettings,
    OptimizerSettings,
    TrainSettings,
    load_config,
    parse_train,
)


def _settings(config_path, data, data_path, seed) -> tuple[DataSettings, TrainSettings]:
    if config_path is not None:
        config = load_config(config_path)
        if not isinstance(config.train, sp.Fixed):
            raise ValueError(f"{config_path}: the train section has choices; train needs concrete settings")
        return config.data, parse_train(config.train.node)
    if data not in DATA_SOURCES:
        raise ValueError(f"--data {data!r}: one of {', '.join(DATA_SOURCES)}")
    if data != "digits" and data_path is None:
        raise ValueError(f"--data {data} needs --data-path")
    return DataSettings(source=data, path=data_path, split_seed=seed), TrainSettings()


def train_spec_file(
    spec_path: Path,
    out_dir: Path,
    data: str = "digits",
    data_path: Path | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    image_size: int | None = None,
    device: str | None = None,
    seed: int = 0,
    config_path: Path | None = None,
) -> dict:
    """Compile, write, import, train, and score on the validation and test splits; returns metrics."""
    import torch

    from yaml2torch.cli import write_atomic
    from yaml2torch.compiler import compile_spec
    from yaml2torch.errors import Diagnostics
    from yaml2torch.search.data import load_splits
    from yaml2torch.search.train import evaluate, import_model_file, resolve_device, seeded_model, stage, train_model

    data_settings, train = _settings(config_path, data, data_path, seed)
    if epochs is not None:
        train = replace(train, epochs=epochs)
    if batch_size is not None:
        train = replace(train, batch_size=batch_size)
    if lr is not None:
        train = replace(train, optimizer=OptimizerSettings(train.optimizer.type, lr, train.optimizer.kwargs))
    if image_size is not None:
        train = replace(train, image_size=(image_size, image_size))

    from yaml2torch.spec.model_spec import load_spec

    diagnostics = Diagnostics()
    spec = load_spec(spec_path, diagnostics)
    splits = load_splits(data_settings)
    if spec.input_channel != splits.channels:
        raise SpecError(
            spec.rows[0].loc, f"input_channel {spec.input_channel} but the data has {splits.channels} channels"
        )
    if spec.input_size is not None:
        if train.image_size is not None and tuple(train.image_size) != tuple(spec.input_size):
            raise ValueError(
                f"--image-size {train.image_size[0]} differs from the spec's input_size {list(spec.input_size)}"
            )
        train = replace(train, image_size=tuple(spec.input_size))
    else:
        train = replace(train, image_size=train.image_size or splits.size)
        spec = spec.with_input_size(train.image_size)
    compiled = compile_spec(spec, "Model", diagnostics)

    out_dir.mkdir(parents=True, exist_ok=True)
    if spec_path.resolve() != (out_dir / "spec.yaml").resolve():
        shutil.copyfile(spec_path, out_dir / "spec.yaml")
    write_atomic(out_dir / "model.py", compiled.source)
    model_class = import_model_file(out_dir / "model.py", f"yaml2torch_train_{compiled.arch_hash[:12]}")
    model = seeded_model(model_class, seed)
    target = resolve_device(device)
    staged = stage(splits, train.image_size, target)
    history = train_model(model, staged, train, seed)
    val = dict(history[-1].metrics)
    test = (
        evaluate(model, staged.test_x, staged.test_y, staged.num_classes, target, train) if len(staged.test_y) else None
    )
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, out_dir / "model.pt")
    result = {
        "arch_hash": compiled.arch_hash,
        "params": compiled.params,
        "macs": compiled.macs,
        "val": val,
        "test": test,
        "history": [{"epoch": h.epoch, "train_loss": h.train_loss, **h.metrics} for h in history],
        "train": train.key(),
        "data": data_settings.key(),
        "normalize": {"mean": list(splits.mean), "std": list(splits.std)},
        "device": str(target),
    }
    write_atomic(out_dir / "metrics.json", json.dumps(result, indent=2))
    return result

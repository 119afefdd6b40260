"""One trial, top to bottom: sample -> check -> compile -> write files -> train -> record.

``Objective`` is what every worker runs for each trial (``yaml2torch search``, ``--workers N``
and ``yaml2torch worker`` alike). The pieces a single training shares with it (fitting a spec
to the data, writing a trial's files and weights) are functions here that ``yaml2torch train``
calls too.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from yaml2torch.compiler import CompiledModel, compile_spec
from yaml2torch.errors import SpecError, UserError
from yaml2torch.files import import_file, import_model_class, save_state_dict, write_atomic
from yaml2torch.ir.nodes import ModelIR
from yaml2torch.search import early_stop
from yaml2torch.search import space as sp
from yaml2torch.search.config import (
    SCORE_METRICS,
    DataSettings,
    SearchConfig,
    TrainSettings,
    check_channels,
    parse_train,
)
from yaml2torch.search.train import DataCache, EpochResult, measure_latency, seeded_model, train_model
from yaml2torch.spec.load import parse_spec
from yaml2torch.spec.model_spec import ANCHOR_ONLY_KEYS, TOP_LEVEL_KEYS
from yaml2torch.spec.yaml_nodes import Node, load_text, type_name
from yaml2torch.study_record import (
    TrialRecord,
    TrialStatus,
    record_duplicate,
    record_early_stop,
    record_epochs,
    record_files,
    record_latency,
    record_outcome,
    record_plan,
    record_result,
    record_weights,
)

# Blocks after which spatial size no longer matters for the min_spatial constraint.
SPATIAL_END_BLOCKS = ("GlobalAvgPool", "Flatten", "nn.AdaptiveAvgPool2d", "nn.Flatten", "Linear")

# (trial, model, data, settings, seed, on_epoch) -> history: trains a model in place.
Trainer = Callable[..., list[EpochResult]]
# (trial, weights file) -> artifact id: keeps a copy of the weights beside the study.
WeightsUploader = Callable[[Any, Path], str]


class Infeasible(Exception):
    """A sample that breaks a constraint or does not compile: pruned with the reason, untrained."""


# --- concrete specs -----------------------------------------------------------------------------


class _FlowList(list):
    """A row: dumped on one line, as written by hand ([1, Conv, [16, 3, 1]])."""


class _FlowDict(dict):
    """A short mapping dumped on one line ({mean: [0.5], std: [0.25]})."""


class _SpecDumper(yaml.SafeDumper):
    """Rows indented under their section, as ``yaml2torch fmt`` writes them (PyYAML's default
    puts a block list's dashes at its key's indent)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_SpecDumper.add_representer(
    _FlowList, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)
_SpecDumper.add_representer(
    _FlowDict, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
)


def dump_spec(spec: dict) -> str:
    """A concrete model spec as YAML: keys in order, one row per line."""
    spec = dict(spec)
    for section in ("backbone", "head"):
        if isinstance(spec.get(section), list):
            spec[section] = [_FlowList(row) if isinstance(row, list) else row for row in spec[section]]
    if isinstance(spec.get("input_size"), list):
        spec["input_size"] = _FlowList(spec["input_size"])
    if isinstance(spec.get("normalize"), dict):
        spec["normalize"] = _FlowDict(spec["normalize"])
    return yaml.dump(spec, Dumper=_SpecDumper, sort_keys=False, width=200, allow_unicode=True)


def fit_to_data(
    model_node: Node,
    train: TrainSettings,
    channels: int,
    data_size: tuple[int, int],
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    scaled_from: float | None = None,
) -> tuple[Node, TrainSettings]:
    """The spec with the data's ``input_channel``, ``input_size`` and ``normalize`` (the training
    split's per-channel mean and std, ``stats``, and the raw pixel maximum the images were divided
    by, ``scaled_from``) filled in where it omits them.

    A spec that states them must agree with the data (channels) and with ``image_size``; a
    ``normalize:`` it states is kept (the user's own preprocessing).
    """
    if not model_node.is_map:
        raise SpecError(model_node.loc, f"a model spec must be a mapping, not {type_name(model_node)}")
    fields = dict(model_node.mapping())
    key_locs = dict(model_node.key_locs or {})
    if "input_channel" in fields:
        check_channels(fields["input_channel"], channels)
    else:
        fields = {"input_channel": Node(channels, model_node.loc), **fields}
        key_locs["input_channel"] = model_node.loc
    size = train.image_size
    if "input_size" in fields and fields["input_size"].value is not None:
        raw = fields["input_size"].value
        given = (raw, raw) if isinstance(raw, int) else tuple(n.value for n in raw)  # type: ignore[union-attr]  # int or [h, w]: parse_spec checks the form
        if size is not None and tuple(given) != tuple(size):
            raise SpecError(
                fields["input_size"].loc,
                f"model input_size {list(given)} differs from train image_size {list(size)}",
            )
        train = replace(train, image_size=tuple(given))  # type: ignore[arg-type]  # a pair, as above
    else:
        size = size or data_size
        fields["input_size"] = Node([Node(size[0], model_node.loc), Node(size[1], model_node.loc)], model_node.loc)
        key_locs["input_size"] = model_node.loc
        train = replace(train, image_size=(size[0], size[1]))
    if stats is not None and "normalize" not in fields:
        loc = model_node.loc
        mean, std = (Node([Node(v, loc) for v in values], loc) for values in stats)
        normalize = {"mean": mean, "std": std}
        if scaled_from is not None:
            normalize["scaled_from"] = Node(scaled_from, loc)
        fields["normalize"] = Node(normalize, loc, dict.fromkeys(normalize, loc))
        key_locs["normalize"] = loc
    # The keys in the order ``yaml2torch fmt`` writes them (unknown ones last), so the specs a
    # search writes pass ``fmt --check`` as written.
    rank = {key: n for n, key in enumerate(TOP_LEVEL_KEYS + ANCHOR_ONLY_KEYS)}
    order = sorted(fields, key=lambda key: rank.get(key, len(rank)))
    return Node({k: fields[k] for k in order}, model_node.loc, key_locs), train


def compile_node(model_node: Node, filename: str, base_dir: Path) -> tuple[str, CompiledModel]:
    """The spec's YAML text and its compiled model; the generated header names ``spec.yaml``.

    Errors keep the locations of the file the node came from (they live on the nodes).
    """
    spec_yaml = dump_spec({key: child.plain() for key, child in model_node.mapping().items()})
    spec = parse_spec(model_node, filename, base_dir, spec_yaml)
    return spec_yaml, compile_spec(replace(spec, path="spec.yaml"))


# --- checks -------------------------------------------------------------------------------------


def min_spatial(ir: ModelIR) -> int | None:
    """The smallest H or W before global pooling / flattening, or None when unknown."""
    smallest = None
    for layer in ir.layers:
        if layer.block in SPATIAL_END_BLOCKS or not layer.out_shape.is_image:
            break
        h, w = layer.out_shape.hw
        if h is None or w is None:
            return None
        smallest = min(h, w) if smallest is None else min(smallest, h, w)
    return smallest


def check_constraints(ir: ModelIR, config: SearchConfig, num_classes: int) -> None:
    """Raise Infeasible when the architecture cannot be a valid trial (nothing trained)."""
    c = config.constraints
    out = ir.output_shape
    if math.prod(d or 0 for d in out.dims) != num_classes or any(d != 1 for d in out.dims[1:]):
        raise Infeasible(f"output shape {out} does not give {num_classes} class scores")
    if c.max_params is not None and ir.params > c.max_params:
        raise Infeasible(f"{ir.params:,} params > max_params {c.max_params:,}")
    if c.max_macs is not None and ir.macs is not None and ir.macs > c.max_macs:
        raise Infeasible(f"{ir.macs:,} MACs > max_macs {c.max_macs:,}")
    smallest = min_spatial(ir)
    if c.min_spatial is not None and smallest is not None and smallest < c.min_spatial:
        raise Infeasible(f"spatial size shrinks to {smallest} < min_spatial {c.min_spatial}")


def eval_key(arch_hash: str, train: TrainSettings, data: DataSettings, seed: int) -> str:
    """Architecture + training settings + data + seed: equal keys give equal results."""
    payload = {"arch": arch_hash, "train": train.key(), "data": data.key(), "seed": seed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# --- a trial's files ----------------------------------------------------------------------------


def trial_dir_name(number: int) -> str:
    return f"trials/{number:04d}"


def write_trial_files(folder: Path, spec_yaml: str, model_source: str) -> None:
    """``spec.yaml`` and the ``model.py`` compiled from it, side by side."""
    write_atomic(folder / "spec.yaml", spec_yaml)
    write_atomic(folder / "model.py", model_source)


def write_trial_result(folder: Path, model: Any, record: Mapping[str, Any]) -> Path:
    """The trained weights (``model.pt``) and ``metrics.json``; the weights file."""
    weights = folder / "model.pt"
    save_state_dict(model, weights)
    write_atomic(folder / "metrics.json", json.dumps(record, indent=2))
    return weights


def history_rows(history: list[EpochResult]) -> list[dict[str, Any]]:
    return [
        {"epoch": h.epoch, "train_loss": h.train_loss, **h.metrics, **({"threads": h.threads.chosen} if h.threads else {})}
        for h in history
    ]


# --- the objective ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialPlan:
    """A sampled trial that passed the checks: what to compile and train."""

    spec_yaml: str
    train: TrainSettings
    compiled: CompiledModel
    key: str

    @property
    def ir(self) -> ModelIR:
        return self.compiled.ir


def load_python_function(path: Path, function: str) -> Callable[..., Any]:
    """The user's search_model from a .py file (code the user wrote, imported like a plugin)."""
    found = getattr(import_file(path, "yaml2torch_space"), function, None)
    if not callable(found):
        raise UserError(f"{path} has no function {function!r}")
    return found


@dataclass
class Objective:
    """The study's objective: one trial from its sample to its record (per process; no globals)."""

    config: SearchConfig
    data: DataCache
    out_dir: Path
    epochs: int | None = None  # override of train.epochs (part of what a trial means)
    search_model: Callable[..., Any] | None = None  # the Python escape hatch
    trainer: Trainer = train_model
    upload_weights: WeightsUploader | None = None
    progress: Any = None  # SearchProgress, or None
    _python: Callable[..., Any] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.search_model is not None:
            self._python = self.search_model
        elif self.config.python is not None:
            self._python = load_python_function(self.config.python.path, self.config.python.function)
        elif self.config.model is None:
            raise UserError(f"{self.config.path}: no model: template, no python: function, and no search_model passed")

    def __call__(self, trial: Any) -> float | list[float]:
        import optuna

        start = time.perf_counter()
        try:
            plan = self.plan(trial, sp.TrialParams(trial))
        except Infeasible as exc:
            record_outcome(trial.set_user_attr, TrialStatus.INFEASIBLE, str(exc))
            raise optuna.TrialPruned(f"infeasible: {exc}") from None
        except Exception as exc:  # user code in search_model, a bad train branch: fail this trial only
            reason = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            record_outcome(trial.set_user_attr, TrialStatus.FAILED, reason)
            raise
        timing = {"sample_compile_check": time.perf_counter() - start}
        record_plan(
            trial.set_user_attr,
            arch_hash=plan.ir.arch_hash,
            eval_key=plan.key,
            spec_yaml=plan.spec_yaml,
            params=plan.ir.params,
            macs=plan.ir.macs,
            train=plan.train.key(),
        )
        earlier = self._same_evaluation(trial, plan.key)
        if earlier is not None:
            return self._reuse(trial, earlier)
        try:
            return self._train(trial, plan, timing, start)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            record_outcome(trial.set_user_attr, TrialStatus.FAILED, f"{type(exc).__name__}: {exc}")
            raise

    # --- sample and check ---------------------------------------------------------------------

    def sample_model(self, trial: Any, params: sp.ParamSource) -> tuple[Node, str]:
        """The concrete model spec as a located node tree, and the file it points into."""
        if self._python is not None:
            spec = self._python(trial)
            if not isinstance(spec, dict):
                raise UserError(f"search_model must return a spec dict, got {type(spec).__name__}")
            return load_text(dump_spec(spec), "<search_model>"), "<search_model>"
        assert self.config.model is not None  # __post_init__: a template or a function
        return sp.sample(self.config.model, params), self.config.path

    def plan(self, trial: Any, params: sp.ParamSource) -> TrialPlan:
        """Sample, then lower and check; raise Infeasible with the reason (nothing trained)."""
        model_node, filename = self.sample_model(trial, params)
        train = parse_train(sp.sample(self.config.train, params))
        if self.epochs is not None:
            train = replace(train, epochs=self.epochs)
        splits = self.data.splits
        model_node, train = fit_to_data(
            model_node, train, splits.channels, splits.size, (splits.mean, splits.std), splits.scaled_from
        )
        try:
            spec_yaml, compiled = compile_node(model_node, filename, self.config.base_dir)
        except SpecError as exc:
            raise Infeasible(str(exc)) from None
        check_constraints(compiled.ir, self.config, splits.num_classes)
        key = eval_key(compiled.ir.arch_hash, train, self.data.settings, self.config.seed)
        return TrialPlan(spec_yaml, train, compiled, key)

    # --- duplicates ---------------------------------------------------------------------------

    def _same_evaluation(self, trial: Any, key: str) -> Any:
        from optuna.trial import TrialState

        for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if other.number != trial.number and TrialRecord.of(other).eval_key == key:
                return other
        return None

    def _reuse(self, trial: Any, earlier: Any) -> float | list[float]:
        import optuna
        from optuna.trial import TrialState

        source = record_duplicate(trial.set_user_attr, earlier)
        if earlier.state == TrialState.PRUNED:
            reason = f"same architecture and training as pruned trial {earlier.number}"
            record_outcome(trial.set_user_attr, TrialStatus.DUPLICATE, reason)
            raise optuna.TrialPruned(f"duplicate of pruned trial {earlier.number}")
        reason = f"same architecture and training as trial {source}; not trained again"
        record_outcome(trial.set_user_attr, TrialStatus.DUPLICATE, reason)
        return list(earlier.values) if len(earlier.values) > 1 else earlier.values[0]

    # --- train and record ---------------------------------------------------------------------

    def _train(self, trial: Any, plan: TrialPlan, timing: dict[str, float], start: float) -> float | list[float]:
        folder = self.out_dir / trial_dir_name(trial.number)
        t = time.perf_counter()
        write_trial_files(folder, plan.spec_yaml, plan.compiled.source)
        record_files(trial.set_user_attr, trial_dir_name(trial.number), plan.compiled.source)
        timing["write"], t = time.perf_counter() - t, time.perf_counter()
        model = seeded_model(import_model_class(folder / "model.py"), self.config.seed)
        timing["import"], t = time.perf_counter() - t, time.perf_counter()
        data = self.data.staged(plan.train.image_size)
        timing["stage"] = time.perf_counter() - t
        latency = self._latency(trial, model, data)

        t = time.perf_counter()
        if self.progress is not None:
            self.progress.start_trial(trial.number, plan.train.epochs)
        history = self.trainer(trial, model, data, plan.train, self.config.seed, self._on_epoch(trial, plan, latency))
        timing["train"] = time.perf_counter() - t
        metrics: dict[str, Any] = dict(history[-1].metrics)
        metrics.update(params=plan.ir.params, macs=plan.ir.macs, latency=latency)

        t = time.perf_counter()
        record = {
            "trial": trial.number,
            "arch_hash": plan.ir.arch_hash,
            "metrics": metrics,
            "history": history_rows(history),
            "train": plan.train.key(),
            "timing_s": timing,
            "device": str(data.device),
            "threads": history[-1].threads.chosen if history[-1].threads else None,  # torch threads (CPU)
            "files": {"spec": "spec.yaml", "model": "model.py", "weights": "model.pt"},
        }
        weights = write_trial_result(folder, model, record)
        if self.upload_weights is not None:
            record_weights(trial.set_user_attr, self.upload_weights(trial, weights))
        timing["save"] = time.perf_counter() - t
        timing["total"] = time.perf_counter() - start
        record_result(trial.set_user_attr, metrics, timing, str(data.device))
        record_outcome(trial.set_user_attr, TrialStatus.TRAINED)
        values = [metrics[o.metric] for o in self.config.objectives]
        return values if len(values) > 1 else values[0]

    def _latency(self, trial: Any, model: Any, data: Any) -> float | None:
        import optuna

        limit = self.config.constraints.max_latency_ms
        if not any(o.metric == "latency" for o in self.config.objectives) and limit is None:
            return None
        latency = measure_latency(model.to(data.device), data.input_shape, data.device)
        record_latency(trial.set_user_attr, latency)
        if limit is not None and latency > limit:
            record_outcome(trial.set_user_attr, TrialStatus.INFEASIBLE, f"latency {latency:.3f} ms > max_latency_ms {limit}")
            raise optuna.TrialPruned("infeasible: latency")
        return latency

    def _on_epoch(self, trial: Any, plan: TrialPlan, latency: float | None) -> Callable[[EpochResult], None]:
        import optuna

        first = self.config.objectives[0]
        reports = not self.config.multi_objective and first.metric in SCORE_METRICS
        prunes = self.config.pruner.type != "none"
        # Median/Percentile never prune before their warm-up step: no storage query until then.
        warmup = dict(self.config.pruner.kwargs).get("n_warmup_steps", 0)
        first_prunable = warmup if isinstance(warmup, int) else 0  # an int: checked at load
        stopper = self._stopper(trial, plan, latency)

        def on_epoch(result: EpochResult) -> None:
            if self.progress is not None:
                self.progress.epoch(result.epoch, plan.train.epochs, result.metrics)
            if stopper is not None:
                stopper(result)
            if not reports:
                return
            trial.report(result.metrics[first.metric], result.epoch)
            if prunes and result.epoch >= first_prunable and trial.should_prune():  # a storage query
                reason = f"pruned by {self.config.pruner.type} after epoch {result.epoch}"
                record_outcome(trial.set_user_attr, TrialStatus.PRUNED, reason)
                record_result(trial.set_user_attr, result.metrics, None)
                raise optuna.TrialPruned(f"epoch {result.epoch}")

        return on_epoch

    def _stopper(self, trial: Any, plan: TrialPlan, latency: float | None) -> Callable[[EpochResult], None] | None:
        """The Dominance rule of a multi-objective study (``search/early_stop.py``): records each
        epoch's metrics on the trial, then compares the trial with the study's trials at that
        epoch (one read of the study per epoch, after the warm-up epochs and before the last)."""
        import optuna
        from optuna.trial import TrialState

        if not self.config.multi_objective or self.config.pruner.type != early_stop.NAME:
            return None
        rule = early_stop.Dominance(**dict(self.config.pruner.kwargs))  # type: ignore[arg-type]  # ints: parse_config checks them
        objectives = [(o.metric, o.direction) for o in self.config.objectives]
        epochs: list[dict[str, float]] = []
        live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)

        def stop_if_dominated(result: EpochResult) -> None:
            epochs.append(dict(result.metrics))
            record_epochs(trial.set_user_attr, epochs)
            if len(epochs) <= rule.n_warmup_epochs or len(epochs) >= plan.train.epochs:
                return  # warming up, or the last epoch: nothing left to save
            own = TrialRecord(trial.number, params=plan.ir.params, macs=plan.ir.macs, latency_ms=latency, epoch_metrics=epochs)
            stop = early_stop.decide(rule, objectives, own, trial.study.get_trials(deepcopy=False, states=live))
            if stop is None:
                return
            reason = stop.reason(rule)
            record_outcome(trial.set_user_attr, TrialStatus.PRUNED, reason)
            record_early_stop(trial.set_user_attr, stop.as_attr())
            record_result(trial.set_user_attr, result.metrics, None)
            raise optuna.TrialPruned(reason)

        return stop_if_dominated

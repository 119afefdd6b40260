"""One search: the Optuna study, the objective (sample -> check -> compile -> import -> train), outputs."""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from yaml2torch.errors import SpecError
from yaml2torch.search import space as sp
from yaml2torch.search.config import SCORE_METRICS, SearchConfig, TrainSettings, parse_train
from yaml2torch.search.data import Splits, load_splits
from yaml2torch.spec.yaml_nodes import Node, load_text

# Blocks after which spatial size no longer matters for the min_spatial constraint.
SPATIAL_END_BLOCKS = ("GlobalAvgPool", "Flatten", "nn.AdaptiveAvgPool2d", "nn.Flatten", "Linear")
FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")


class SearchError(Exception):
    """A user error about the study itself (a different space file for an existing study...)."""


class Infeasible(Exception):
    """A sample that breaks a constraint or does not compile; pruned without training."""


@dataclass(frozen=True)
class RunOptions:
    out_dir: Path
    storage: str | None = None  # default: sqlite:///<out_dir>/study.db
    study: str | None = None  # default: the file's study name
    trials: int | None = None  # override the file's budget
    timeout: float | None = None
    device: str | None = None  # auto, cpu, cuda, cuda:1
    epochs: int | None = None  # override train.epochs (quick checks; part of the de-duplication key)
    data_limit: int | None = None  # override data.limit: train on a stratified subset (quick checks)
    resume: bool = False  # require an existing study
    progress: bool = True
    search_model: Callable | None = None  # the Python escape hatch, passed directly
    scale: object | None = None  # scale-out options (yaml2torch.scale): workers, isolation, artifacts

    @property
    def storage_url(self) -> str:
        if self.storage is None and getattr(self.scale, "workers", 1) > 1:
            return f"journal://{(self.out_dir / 'study.log').resolve()}"  # many processes: not SQLite
        return self.storage or f"sqlite:///{(self.out_dir / 'study.db').resolve()}"


class _FlowList(list):
    """A row: dumped on one line, as written by hand ([1, Conv, [16, 3, 1]])."""


class _SpecDumper(yaml.SafeDumper):
    pass


_SpecDumper.add_representer(
    _FlowList, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def dump_spec(spec: dict) -> str:
    """A concrete model spec as YAML: keys in order, one row per line."""
    spec = dict(spec)
    for section in ("backbone", "head"):
        if isinstance(spec.get(section), list):
            spec[section] = [_FlowList(row) if isinstance(row, list) else row for row in spec[section]]
    if isinstance(spec.get("input_size"), list):
        spec["input_size"] = _FlowList(spec["input_size"])
    return yaml.dump(spec, Dumper=_SpecDumper, sort_keys=False, width=200, allow_unicode=True)


def trial_dir_name(number: int) -> str:
    return f"trials/{number:04d}"


def eval_key(arch_hash: str, train: TrainSettings, config: SearchConfig, data) -> str:
    """Architecture + training settings + data + seed: equal keys give equal results."""
    payload = {"arch": arch_hash, "train": train.key(), "data": data.key(), "seed": config.seed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def load_python_function(path: Path, function: str) -> Callable:
    """The user's search_model from a .py file (code the user wrote, imported like a plugin)."""
    spec = importlib.util.spec_from_file_location(
        f"yaml2torch_space_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}", path
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, function, None)):
        raise SearchError(f"{path} has no function {function!r}")
    return getattr(module, function)


def min_spatial(ir) -> int | None:
    """The smallest H or W before global pooling / flattening, or None when unknown."""
    smallest = None
    for layer in ir.layers:
        if layer.block in SPATIAL_END_BLOCKS or not layer.out_shape.is_image:
            break
        h, w = layer.out_shape.spatial
        if h is None or w is None:
            return None
        smallest = min(h, w) if smallest is None else min(smallest, h, w)
    return smallest


@dataclass
class TrialPlan:
    """A sampled trial that passed the checks: what to compile and train."""

    spec_yaml: str
    train: TrainSettings
    compiled: object  # CompiledModel: .ir and .source
    key: str

    @property
    def ir(self):
        return self.compiled.ir


@dataclass
class Search:
    """Per-process state of one search: the config, options and a data cache (no globals)."""

    config: SearchConfig
    options: RunOptions
    _splits: Splits | None = None
    _staged: dict = field(default_factory=dict)
    _python: Callable | None = None
    device: object = None
    progress: object = None
    # (trial, model, data, settings, seed, on_epoch) -> history; None: train_model in this process.
    # The scale-out package sets it to train in a child process with a time limit.
    train_runner: Callable | None = None

    def __post_init__(self) -> None:
        from yaml2torch.search.train import resolve_device

        self.device = resolve_device(self.options.device)
        if self.options.search_model is not None:
            self._python = self.options.search_model
        elif self.config.python is not None:
            self._python = load_python_function(self.config.python.path, self.config.python.function)
        elif self.config.model is None:
            raise SearchError(
                f"{self.config.path}: no model: template, no python: function, and no search_model passed"
            )

    # --- data ---------------------------------------------------------------------------

    @property
    def data_settings(self):
        if self.options.data_limit is None:
            return self.config.data
        return replace(self.config.data, limit=self.options.data_limit)

    @property
    def splits(self) -> Splits:
        if self._splits is None:
            self._splits = load_splits(self.data_settings)
        return self._splits

    def staged(self, image_size: tuple[int, int] | None):
        from yaml2torch.search.train import stage

        if image_size not in self._staged:
            self._staged.clear()  # keep one staged copy (GPU memory)
            self._staged[image_size] = stage(self.splits, image_size, self.device)
        return self._staged[image_size]

    # --- sampling and checks -------------------------------------------------------------

    def sample_model(self, trial, params: sp.ParamSource) -> tuple[Node, str]:
        """The concrete model spec as a located node tree, and the search file it points into."""
        if self._python is not None:
            spec = self._python(trial)
            if not isinstance(spec, dict):
                raise SearchError(f"search_model must return a spec dict, got {type(spec).__name__}")
            text = dump_spec(spec)
            return load_text(text, "<search_model>"), "<search_model>"
        assert self.config.model is not None
        return sp.sample(self.config.model, params), self.config.path

    def plan(self, trial, params: sp.ParamSource) -> TrialPlan:
        """Sample, then lower and check; raise Infeasible with the reason (nothing trained)."""
        from yaml2torch.compiler import compile_spec
        from yaml2torch.spec.model_spec import parse_spec

        model_node, filename = self.sample_model(trial, params)
        train = parse_train(sp.sample(self.config.train, params))
        if self.options.epochs is not None:
            train = replace(train, epochs=self.options.epochs)
        model_node, train = self._fit_to_data(model_node, train)
        spec_yaml = dump_spec(model_node.plain())
        try:
            spec = parse_spec(model_node, filename, self.config.base_dir, spec_yaml)
            # One lowering for the checks and the file: errors keep the search file's locations
            # (they live on the nodes); the generated header names the trial's spec.yaml.
            compiled = compile_spec(replace(spec, path="spec.yaml"))
        except SpecError as exc:
            raise Infeasible(str(exc)) from None
        ir = compiled.ir
        c = self.config.constraints
        out = ir.output_shape
        if math.prod(d or 0 for d in out.dims) != self.splits.num_classes or any(d != 1 for d in out.dims[1:]):
            raise Infeasible(f"output shape {out} does not give {self.splits.num_classes} class scores")
        if c.max_params is not None and ir.params > c.max_params:
            raise Infeasible(f"{ir.params:,} params > max_params {c.max_params:,}")
        if c.max_macs is not None and ir.macs is not None and ir.macs > c.max_macs:
            raise Infeasible(f"{ir.macs:,} MACs > max_macs {c.max_macs:,}")
        smallest = min_spatial(ir)
        if c.min_spatial is not None and smallest is not None and smallest < c.min_spatial:
            raise Infeasible(f"spatial size shrinks to {smallest} < min_spatial {c.min_spatial}")
        return TrialPlan(spec_yaml, train, compiled, eval_key(ir.arch_hash, train, self.config, self.data_settings))

    def _fit_to_data(self, model_node: Node, train: TrainSettings) -> tuple[Node, TrainSettings]:
        """input_channel and input_size come from the data and image_size when the template omits them."""
        fields = dict(model_node.value)  # type: ignore[arg-type]
        key_locs = dict(model_node.key_locs or {})
        channels = self.splits.channels
        if "input_channel" in fields:
            if fields["input_channel"].value != channels:
                raise SpecError(
                    fields["input_channel"].loc,
                    f"input_channel {fields['input_channel'].value} but the data has {channels} channels",
                )
        else:
            fields = {"input_channel": Node(channels, model_node.loc), **fields}
            key_locs["input_channel"] = model_node.loc
        size = train.image_size
        if "input_size" in fields and fields["input_size"].value is not None:
            raw = fields["input_size"].value
            given = (raw, raw) if isinstance(raw, int) else tuple(n.value for n in raw)  # type: ignore[union-attr]
            if size is not None and tuple(given) != tuple(size):
                raise SpecError(
                    fields["input_size"].loc,
                    f"model input_size {list(given)} differs from train image_size {list(size)}",
                )
            train = replace(train, image_size=tuple(given))  # type: ignore[arg-type]
        else:
            size = size or self.splits.size
            fields["input_size"] = Node([Node(size[0], model_node.loc), Node(size[1], model_node.loc)], model_node.loc)
            key_locs["input_size"] = model_node.loc
            train = replace(train, image_size=tuple(size))
        order = ["input_channel", "input_size"] + [k for k in fields if k not in ("input_channel", "input_size")]
        fields = {k: fields[k] for k in order if k in fields}
        return Node(fields, model_node.loc, key_locs), train

    # --- the objective -------------------------------------------------------------------

    def objective(self, trial):
        import optuna

        timing: dict[str, float] = {}
        start = time.perf_counter()
        params = sp.TrialParams(trial)
        try:
            plan = self.plan(trial, params)
        except Infeasible as exc:
            trial.set_user_attr("status", "infeasible")
            trial.set_user_attr("reason", str(exc))
            raise optuna.TrialPruned(f"infeasible: {exc}") from None
        except Exception as exc:  # user code in search_model, a bad train branch: fail this trial only
            trial.set_user_attr("status", "failed")
            trial.set_user_attr(
                "reason",
                str(exc) if isinstance(exc, (SpecError, SearchError)) else f"{type(exc).__name__}: {exc}"[:2000],
            )
            raise
        timing["sample_compile_check"] = time.perf_counter() - start
        ir = plan.ir
        trial.set_user_attr("arch_hash", ir.arch_hash)
        trial.set_user_attr("eval_key", plan.key)
        trial.set_user_attr("spec_yaml", plan.spec_yaml)
        trial.set_user_attr("params", ir.params)
        trial.set_user_attr("macs", ir.macs)
        trial.set_user_attr("train", plan.train.key())

        earlier = self._same_evaluation(trial, plan.key)
        if earlier is not None:
            return self._reuse(trial, earlier)
        try:
            return self._train_trial(trial, plan, timing, start)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("status", "failed")
            trial.set_user_attr("reason", f"{type(exc).__name__}: {exc}"[:2000])
            self._release_memory()
            raise

    def _same_evaluation(self, trial, key: str):
        from optuna.trial import TrialState

        for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if other.number != trial.number and other.user_attrs.get("eval_key") == key:
                return other
        return None

    def _reuse(self, trial, earlier):
        import optuna
        from optuna.trial import TrialState

        source = earlier.user_attrs.get("duplicate_of", earlier.number)
        trial.set_user_attr("duplicate_of", source)
        for name in ("metrics", "model_py", "trial_dir", "latency_ms"):
            if name in earlier.user_attrs:
                trial.set_user_attr(name, earlier.user_attrs[name])
        if earlier.state == TrialState.PRUNED:
            trial.set_user_attr("status", "duplicate")
            trial.set_user_attr("reason", f"same architecture and training as pruned trial {earlier.number}")
            raise optuna.TrialPruned(f"duplicate of pruned trial {earlier.number}")
        trial.set_user_attr("status", "duplicate")
        trial.set_user_attr("reason", f"same architecture and training as trial {source}; not trained again")
        return earlier.values if len(earlier.values) > 1 else earlier.values[0]

    def _train_trial(self, trial, plan: TrialPlan, timing: dict, start: float):
        import optuna
        import torch

        from yaml2torch.cli import write_atomic
        from yaml2torch.search.train import evaluate, import_model_file, measure_latency, seeded_model, train_model

        t = time.perf_counter()
        compiled = plan.compiled
        folder = self.options.out_dir / trial_dir_name(trial.number)
        write_atomic(folder / "spec.yaml", plan.spec_yaml)
        write_atomic(folder / "model.py", compiled.source)
        trial.set_user_attr("trial_dir", trial_dir_name(trial.number))
        trial.set_user_attr("model_py", compiled.source)
        timing["write"] = time.perf_counter() - t

        t = time.perf_counter()
        module_name = f"yaml2torch_trial_{self.config.study}_{trial.number}_{plan.ir.arch_hash[:8]}"
        model_class = import_model_file(folder / "model.py", module_name)
        model = seeded_model(model_class, self.config.seed)
        timing["import"] = time.perf_counter() - t

        t = time.perf_counter()
        data = self.staged(plan.train.image_size)
        timing["stage"] = time.perf_counter() - t

        latency = None
        wants_latency = (
            any(o.metric == "latency" for o in self.config.objectives) or self.config.constraints.max_latency_ms
        )
        if wants_latency:
            latency = measure_latency(model.to(data.device), data.input_shape, data.device)
            trial.set_user_attr("latency_ms", latency)
            limit = self.config.constraints.max_latency_ms
            if limit is not None and latency > limit:
                trial.set_user_attr("status", "infeasible")
                trial.set_user_attr("reason", f"latency {latency:.3f} ms > max_latency_ms {limit}")
                raise optuna.TrialPruned("infeasible: latency")

        first = self.config.objectives[0]
        single = not self.config.multi_objective
        prunes = self.config.pruner.type != "none"

        def on_epoch(result) -> None:
            if self.progress is not None:
                self.progress.epoch(result.epoch, plan.train.epochs, result.metrics)
            if single and first.metric in SCORE_METRICS:
                trial.report(result.metrics[first.metric], result.epoch)
                if prunes and trial.should_prune():  # a storage query: skipped without a pruner
                    timing["train"] = time.perf_counter() - t
                    timing["total"] = time.perf_counter() - start
                    trial.set_user_attr("timing", timing)
                    trial.set_user_attr("status", "pruned")
                    trial.set_user_attr("reason", f"pruned by {self.config.pruner.type} after epoch {result.epoch}")
                    trial.set_user_attr("metrics", result.metrics)
                    raise optuna.TrialPruned(f"epoch {result.epoch}")

        t = time.perf_counter()
        if self.progress is not None:
            self.progress.start_trial(trial.number, plan.train.epochs)
        if self.train_runner is not None:
            history = self.train_runner(trial, model, data, plan.train, self.config.seed, on_epoch)
        else:
            history = train_model(model, data, plan.train, self.config.seed, on_epoch)
        timing["train"] = time.perf_counter() - t
        metrics = dict(history[-1].metrics)
        if not history:
            metrics = evaluate(model, data.val_x, data.val_y, data.num_classes, data.device, plan.train)
        metrics.update(params=plan.ir.params, macs=plan.ir.macs, latency=latency)

        t = time.perf_counter()
        weights = folder / "model.pt"
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        tmp = weights.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        tmp.replace(weights)
        timing["save"] = time.perf_counter() - t
        timing["total"] = time.perf_counter() - start
        record = {
            "trial": trial.number,
            "arch_hash": plan.ir.arch_hash,
            "metrics": metrics,
            "history": [{"epoch": h.epoch, "train_loss": h.train_loss, **h.metrics} for h in history],
            "train": plan.train.key(),
            "normalize": {"mean": list(self.splits.mean), "std": list(self.splits.std)},
            "timing_s": timing,
            "device": str(data.device),
            "files": {"spec": "spec.yaml", "model": "model.py", "weights": "model.pt"},
        }
        write_atomic(folder / "metrics.json", json.dumps(record, indent=2))
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("timing", timing)
        trial.set_user_attr("status", "trained")
        trial.set_user_attr("device", str(data.device))
        values = [metrics[o.metric] for o in self.config.objectives]
        return values if len(values) > 1 else values[0]

    def _release_memory(self) -> None:
        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


# --- the study --------------------------------------------------------------------------------


def make_sampler(config: SearchConfig, seed_offset: int = 0):
    from yaml2torch.search.config import component_class

    cls = component_class("sampler", config.sampler.type)
    kwargs = dict(config.sampler.kwargs)
    if config.sampler.type != "GP" or "seed" in __import__("inspect").signature(cls).parameters:
        kwargs["seed"] = config.seed + seed_offset
    return cls(**kwargs)


def make_pruner(config: SearchConfig):
    from yaml2torch.search.config import component_class

    return component_class("pruner", config.pruner.type)(**dict(config.pruner.kwargs))


def open_study(config: SearchConfig, options: RunOptions, create: bool = True):
    """Create or load the study; a study holds its search file, and a different file is refused."""
    import optuna

    from yaml2torch.scale.storage import make_storage

    options.out_dir.mkdir(parents=True, exist_ok=True)
    name = options.study or config.study
    storage = options.storage_url
    storage_obj = make_storage(storage)  # journal files, PostgreSQL heartbeats and retries
    existing = None
    try:
        existing = optuna.load_study(study_name=name, storage=storage_obj)
    except KeyError:
        if options.resume:
            raise SearchError(f"--resume: no study {name!r} in {storage}") from None
    if existing is not None:
        stored = existing.user_attrs.get("space_sha256")
        if stored is not None and stored != config.text_sha256:
            raise SearchError(
                f"study {name!r} in {storage} was created from a different search file "
                f"({existing.user_attrs.get('space_path')}); use another --study name or --out folder"
            )
        finished = sum(1 for t in existing.get_trials(deepcopy=False) if t.state.name in FINISHED_STATES)
        return optuna.load_study(
            study_name=name, storage=storage_obj, sampler=make_sampler(config, finished), pruner=make_pruner(config)
        )
    study = optuna.create_study(
        study_name=name,
        storage=storage_obj,
        directions=config.directions,
        sampler=make_sampler(config),
        pruner=make_pruner(config),
        load_if_exists=True,
    )
    study.set_user_attr("space_yaml", config.text)
    study.set_user_attr("space_sha256", config.text_sha256)
    study.set_user_attr(
        "space_path", str(Path(config.path).resolve()) if not config.path.startswith("<") else config.path
    )
    study.set_user_attr("objectives", [[o.metric, o.direction] for o in config.objectives])
    study.set_user_attr("out_dir", str(options.out_dir.resolve()))
    # Overrides that change what a trial means; best/report rebuild the same data from them.
    study.set_user_attr("overrides", {"epochs": options.epochs, "data_limit": options.data_limit})
    return study


@dataclass(frozen=True)
class SearchResult:
    study: object
    out_dir: Path
    summary: dict


def run_search(config: SearchConfig, options: RunOptions) -> SearchResult:
    """Run (or resume) a search to its budget, then export best/Pareto files and the test score."""
    import optuna

    from yaml2torch.search.export import export_study
    from yaml2torch.search.progress import SearchProgress

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = Search(config, options)
    search.splits  # noqa: B018 - a missing or unreadable data source fails here, before any study exists
    study = open_study(config, options)
    trials = options.trials if options.trials is not None else config.trials
    timeout = options.timeout if options.timeout is not None else config.timeout
    if options.trials is not None and options.timeout is None:
        timeout = None  # --trials alone replaces the file's budget
    finished = sum(1 for t in study.get_trials(deepcopy=False) if t.state.name in FINISHED_STATES)
    remaining = None if trials is None else max(0, trials - finished)
    with SearchProgress(config, total=trials, done=finished, enabled=options.progress) as progress:
        search.progress = progress
        if remaining is None or remaining > 0:
            from yaml2torch.scale.searching import optimize_search

            # The worker loop (or N worker processes): faults, time limits, retries, weights upload.
            optimize_search(study, search, trials=trials, timeout=timeout, on_trial_done=progress.trial_done)
        summary = export_study(study, config, options.out_dir, search)
        progress.closing_table(study, config, summary)
    return SearchResult(study, options.out_dir, summary)

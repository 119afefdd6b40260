"""The search file: model template, training settings, data, objectives, constraints, budget.

Everything is checked strictly at load time with the YAML location of the offending node.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from yaml2torch.errors import Location, SpecError, suggest
from yaml2torch.search import early_stop
from yaml2torch.search import space as sp
from yaml2torch.spec.model_spec import expect_int, expect_positive_float, expect_str
from yaml2torch.spec.yaml_nodes import Node, load_text, read_text, type_name
from yaml2torch.study_record import study_name_problem

TOP_KEYS = (
    "study",
    "seed",
    "trials",
    "timeout",
    "data",
    "model",
    "python",
    "train",
    "objectives",
    "constraints",
    "pick",
    "sampler",
    "pruner",
    "anchors",
)
METRICS = {  # name -> default direction
    "accuracy": "maximize",
    "f1": "maximize",
    "loss": "minimize",
    "params": "minimize",
    "macs": "minimize",
    "latency": "minimize",
}
SCORE_METRICS = ("accuracy", "f1", "loss")  # measured by training; the rest are static or timed
DATA_SOURCES = ("digits", "folder", "cifar10", "npz")
OPTIMIZERS = {
    "SGD": ("lr", "momentum", "weight_decay", "nesterov", "dampening"),
    "Adam": ("lr", "betas", "weight_decay", "eps", "amsgrad"),
    "AdamW": ("lr", "betas", "weight_decay", "eps", "amsgrad"),
    "RMSprop": ("lr", "alpha", "momentum", "weight_decay", "eps"),
}
SCHEDULERS = ("none", "cosine", "step", "onecycle")
TRAIN_KEYS = (
    "epochs",
    "batch_size",
    "optimizer",
    "scheduler",
    "image_size",
    "augment",
    "label_smoothing",
    "amp",
    "channels_last",
    "compile",
)
AUGMENT_KEYS = ("hflip", "shift")
MAX_IMAGE_SIDE = 1024  # train.image_size per side: staging resizes every image of the data set to it
MAX_SHIFT = 128  # train.augment.shift: each batch is padded by it on every side
# Seeds reach numpy and scikit-learn (random_state < 2**32) with offsets added (a worker's index,
# a resumed study's finished trials, the validation split's + 1): 2**31 - 1 leaves them room.
MAX_SEED = 2**31 - 1
_SEED_WHY = "(numpy and scikit-learn take seeds below 2**32, and workers add offsets)"
SOURCE_CHANNELS = {"digits": 1, "cifar10": 3}  # the sources whose channels are known before loading
SCHEDULER_KEYS = ("type", "step_size", "gamma")
DATA_KEYS = ("source", "path", "val_fraction", "test_fraction", "split_seed", "limit", "channels")
CONSTRAINT_KEYS = ("max_params", "max_macs", "min_spatial", "max_latency_ms")
PICK_KEYS = ("metric", "max_params", "max_macs")
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("TPE", "Random", "NSGAII", "GP", "QMC")
PRUNERS = ("none", "Median", "Percentile", "Hyperband", "SuccessiveHalving", "Patient", "Threshold", early_stop.NAME)
OPTUNA_PRUNERS = PRUNERS[1:-1]  # need trial.report: one objective only


# --- settings dataclasses -------------------------------------------------------------------


@dataclass(frozen=True)
class OptimizerSettings:
    type: str = "Adam"
    lr: float = 1e-3
    kwargs: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 10
    batch_size: int = 64
    optimizer: OptimizerSettings = OptimizerSettings()
    scheduler: str = "cosine"
    step_size: int = 0  # scheduler "step": epochs per decay (0: epochs // 3)
    gamma: float = 0.1
    image_size: tuple[int, int] | None = None
    hflip: bool = False
    shift: int = 0  # random translation by up to this many pixels (pad + crop)
    label_smoothing: float = 0.0
    amp: bool = True  # CUDA only
    channels_last: bool = True  # CUDA only
    compile: bool = False  # torch.compile, CUDA only

    def key(self) -> dict:
        """What makes two trainings of one architecture the same (hashed for de-duplication)."""
        return json.loads(json.dumps(asdict(self), default=list))

    @classmethod
    def from_key(cls, key: Mapping[str, Any]) -> TrainSettings:
        """The settings a trial recorded (``key()``), for training it again."""
        fields = dict(key)
        optimizer = fields.pop("optimizer", None) or {}
        kwargs = tuple((str(k), v) for k, v in optimizer.get("kwargs", ()))
        size = fields.pop("image_size", None)
        return cls(
            **fields,
            optimizer=OptimizerSettings(optimizer.get("type", "Adam"), optimizer.get("lr", 1e-3), kwargs),
            image_size=None if size is None else (int(size[0]), int(size[1])),
        )


@dataclass(frozen=True)
class DataSettings:
    source: str = "digits"
    path: Path | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    split_seed: int = 0
    limit: int | None = None  # keep at most this many samples (stratified), for quick runs
    channels: int | None = None  # image folders: 1 (L) or 3 (RGB)

    def key(self) -> dict:
        return {**asdict(self), "path": str(self.path) if self.path else None}


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str


@dataclass(frozen=True)
class Constraints:
    max_params: int | None = None
    max_macs: int | None = None
    min_spatial: int | None = None
    max_latency_ms: float | None = None


@dataclass(frozen=True)
class PickRule:
    """How one trial is picked from a Pareto set: the best ``metric`` within the budgets."""

    metric: str
    max_params: int | None = None
    max_macs: int | None = None


@dataclass(frozen=True)
class Component:
    """A sampler or pruner: an Optuna class name and its keyword arguments."""

    type: str
    kwargs: tuple[tuple[str, object], ...]
    loc: Location | None


@dataclass(frozen=True)
class PythonRef:
    path: Path
    function: str
    loc: Location


@dataclass(frozen=True)
class SearchConfig:
    path: str
    text: str
    base_dir: Path
    study: str
    seed: int
    trials: int | None
    timeout: float | None
    data: DataSettings
    model: sp.SpaceNode | None  # the model template (None when python: is used)
    model_node: Node | None
    python: PythonRef | None
    train: sp.SpaceNode
    objectives: tuple[Objective, ...]
    constraints: Constraints
    pick: PickRule
    sampler: Component
    pruner: Component

    @property
    def text_sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1


# --- loading --------------------------------------------------------------------------------


def load_config(path: str | Path) -> SearchConfig:
    path = Path(path)
    return parse_config(read_text(path), str(path), path.parent)


def _model_spec_hint(root: Node, fields: Mapping[str, Node]) -> str:
    """For a model spec given where a search file goes (``search resnet18.yaml``): what to run instead."""
    if "model" in fields or "python" in fields or not ("backbone" in fields or "input_channel" in fields):
        return ""
    return (
        f": {root.loc.file} is a model spec, not a search file; use it with 'yaml2torch compile', 'summary' or 'train' "
        "(a search file holds a model template under model:)"
    )


def parse_config(text: str, filename: str = "<search>", base_dir: Path | None = None) -> SearchConfig:
    base_dir = base_dir if base_dir is not None else Path.cwd()
    root = load_text(text, filename)
    if not root.is_map:
        raise SpecError(root.loc, f"a search file must be a mapping, not {type_name(root)}")
    fields = root.mapping()
    for key in fields:
        if key not in TOP_KEYS:
            raise SpecError(
                root.key_loc(key),
                f"unknown top-level key {key!r}"
                + (_model_spec_hint(root, fields) or suggest(key, TOP_KEYS) or f"; expected one of {', '.join(TOP_KEYS)}"),
            )
    if "model" in fields and "python" in fields:
        raise SpecError(
            root.key_loc("python"), "give one of 'model' (a model template) or 'python' (file.py:function), not both"
        )
    # Neither is allowed only for the Python API, which passes search_model to run_search.

    names = sp.new_name_table()
    model = python = model_node = None
    if "model" in fields:
        model_node = fields["model"]
        model = _model_space(model_node, names)
    elif "python" in fields:
        python = _python_ref(fields["python"], base_dir)
    train_node = fields.get("train") or Node({}, root.loc, {})
    if not train_node.is_map:
        raise SpecError(train_node.loc, f"train must be a mapping, not {type_name(train_node)}")
    train = sp.parse_value(train_node, ("train",), names)

    study = Path(filename).stem if filename != "<search>" else "search"
    if "study" in fields:
        study = expect_str(fields["study"], "study")
        problem = study_name_problem(study)
        if problem is not None:
            raise SpecError(fields["study"].loc, f"study {problem} (it names the study's folder)")
    seed = seed_value(fields["seed"], "seed") if "seed" in fields else 0
    trials = expect_int(fields["trials"], "trials", 1) if "trials" in fields else None
    timeout = expect_positive_float(fields["timeout"], "timeout") if "timeout" in fields else None
    if trials is None and timeout is None:
        trials = 20
    objectives = _objectives(fields.get("objectives"), root.loc)
    config = SearchConfig(
        path=filename,
        text=text,
        base_dir=base_dir,
        study=study,
        seed=seed,
        trials=trials,
        timeout=timeout,
        data=_data(fields.get("data"), base_dir, seed),
        model=model,
        model_node=model_node,
        python=python,
        train=train,
        objectives=objectives,
        constraints=_constraints(fields.get("constraints")),
        pick=_pick(fields.get("pick"), objectives),
        sampler=_component(fields.get("sampler"), "sampler", SAMPLERS, "TPE"),
        pruner=_component(
            fields.get("pruner"), "pruner", PRUNERS, "Median" if len(objectives) == 1 else early_stop.NAME
        ),
    )
    _check_pruner(config)
    check_train_space(config)
    check_model_space(config)
    return config


def _check_pruner(config: SearchConfig) -> None:
    kind = config.pruner.type
    if config.multi_objective and kind in OPTUNA_PRUNERS:
        raise SpecError(
            config.pruner.loc,
            f"Optuna's pruners work with one objective only; with several objectives use pruner: {early_stop.NAME} "
            "(the default) or none",
        )
    if not config.multi_objective and kind == early_stop.NAME:
        raise SpecError(
            config.pruner.loc,
            f"the {early_stop.NAME} rule is for several objectives; with one objective use {', '.join(OPTUNA_PRUNERS)} or none",
        )


def _model_space(node: Node, names) -> sp.SpaceNode:
    if not node.is_map:
        raise SpecError(node.loc, f"model must be a mapping (a model spec template), not {type_name(node)}")
    items: list[tuple[str, sp.SpaceNode]] = []
    for key, child in node.mapping().items():
        if key in ("backbone", "head"):
            items.append((key, sp.parse_rows(child, (key,), names) if child.value is not None else sp.Fixed(child)))
        else:
            items.append((key, sp.parse_value(child, (key,), names)))
    return sp.MapSpace(node, tuple(items))


def _python_ref(node: Node, base_dir: Path) -> PythonRef:
    text = expect_str(node, "python")
    file_part, _, function = text.rpartition(":")
    if not file_part.endswith(".py") or not function.isidentifier():
        raise SpecError(node.loc, f"python must look like path/to/file.py:function, got {text!r}")
    path = (base_dir / file_part) if not Path(file_part).is_absolute() else Path(file_part)
    if not path.is_file():
        # Paths are tried relative to the search file, then to the working folder.
        if Path(file_part).is_file():
            path = Path(file_part)
        else:
            raise SpecError(node.loc, f"python file {file_part!r} not found (relative to {base_dir})")
    return PythonRef(path.resolve(), function, node.loc)


def check_train_space(config: SearchConfig) -> None:
    """Parse the training settings of enough walks that every branch has been read once."""
    for k in range(sp.walk_passes(config.train)):
        parse_train(sp.sample(config.train, sp.WalkParams(k)))


def check_model_space(config: SearchConfig) -> None:
    """Every branch of the template, read once along the walks: keys, rows, block names and each
    row's arguments (names, types, activations). A mistake anywhere is a located error at load.

    Lowering errors (shapes, strides) depend on the sample and make a trial infeasible instead.
    """
    from yaml2torch.blocks import Catalogue
    from yaml2torch.blocks.args import bind_args
    from yaml2torch.errors import Diagnostics
    from yaml2torch.ir.lower import find_block
    from yaml2torch.spec.load import parse_spec

    if config.model is None:
        return
    channels = data_channels(config.data)
    for k in range(sp.walk_passes(config.model)):
        node = sp.sample(config.model, sp.WalkParams(k))
        fields = dict(node.mapping())
        if channels is not None and "input_channel" in fields:
            check_channels(fields["input_channel"], channels)
        fields.setdefault("input_channel", Node(1, node.loc))  # filled from the data at run time
        if not fields.get("backbone") or not fields["backbone"].value:
            continue  # every row dropped in this walk: nothing to check
        diagnostics = Diagnostics()
        spec = parse_spec(Node(fields, node.loc, node.key_locs), config.path, config.base_dir, "", diagnostics)
        catalogue = Catalogue.for_modules(spec.modules, spec.rows[0].loc)
        for row in spec.rows:
            block = find_block(row, catalogue)
            bind_args(row.module, block.signature, row.args, row.kwargs, row.kwarg_locs, row.loc, diagnostics)


def check_template_channels(config: SearchConfig, channels: int) -> None:
    """The template's ``input_channel`` (every option of it) against the loaded data's channels:
    for data whose channels only the images tell (``data_channels`` None), once they are loaded."""
    if config.model is None:
        return
    for k in range(sp.walk_passes(config.model)):
        node = sp.sample(config.model, sp.WalkParams(k))
        fields = node.mapping()
        if "input_channel" in fields:
            check_channels(fields["input_channel"], channels)


def data_channels(data: DataSettings) -> int | None:
    """The data's channel count where it is known before loading (digits, CIFAR-10, a folder
    with ``channels:``); None where only the images tell (an .npz, a folder without it)."""
    if data.source == "folder":
        return data.channels
    return SOURCE_CHANNELS.get(data.source)


def check_channels(node: Node, channels: int) -> None:
    """A template's (or spec's) ``input_channel`` against the data's channel count, at its line."""
    if node.value != channels:
        raise SpecError(node.loc, f"input_channel {node.value} but the data has {channels} channels")


# --- sections -------------------------------------------------------------------------------


def seed_value(node: Node, what: str) -> int:
    seed = expect_int(node, what, 0)
    if seed > MAX_SEED:
        raise SpecError(node.loc, f"{what} must be at most {MAX_SEED:,}, got {seed} {_SEED_WHY}")
    return seed


def _bounded_int_option(text: str, low: int, high: int, unit: str = "", why: str = "") -> int:
    """An argparse type's body: ``text`` as an int from ``low`` to ``high`` (``unit``, ``why``: the message's)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be {low} to {high:,}{unit}, got {text!r}{why}")
    return value


def image_size_option(text: str) -> int:
    """``train --image-size``: the rule of ``train.image_size`` (an argparse type)."""
    return _bounded_int_option(text, 1, MAX_IMAGE_SIDE, " pixels a side")


def seed_option(text: str) -> int:
    """``--seed``: the rule of ``seed:`` (an argparse type; it names itself in argparse's messages)."""
    return _bounded_int_option(text, 0, MAX_SEED, why=f" {_SEED_WHY}")


def _keys(node: Node, allowed: tuple[str, ...], what: str) -> dict[str, Node]:
    if not node.is_map:
        raise SpecError(node.loc, f"{what} must be a mapping, not {type_name(node)}")
    for key in node.mapping():
        if key not in allowed:
            raise SpecError(
                node.key_loc(key), f"unknown {what} key {key!r}{suggest(key, allowed)}; allowed: {', '.join(allowed)}"
            )
    return node.mapping()


def _float(node: Node, what: str, low: float | None = None, high: float | None = None) -> float:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(node.loc, f"{what} must be a finite number, not {type_name(node)} ({value!r})")
    if (low is not None and value < low) or (high is not None and value > high):
        raise SpecError(node.loc, f"{what} must be between {low} and {high}, got {value}")
    return float(value)


def _bool(node: Node, what: str) -> bool:
    if not isinstance(node.value, bool):
        raise SpecError(node.loc, f"{what} must be true or false, not {type_name(node)}")
    return node.value


def _size(node: Node, what: str) -> tuple[int, int] | None:
    if node.value is None:
        return None
    if isinstance(node.value, int) and not isinstance(node.value, bool):
        size = _side(node, what)
        return (size, size)
    if node.is_seq and len(node.sequence()) == 2:
        return (_side(node.sequence()[0], what), _side(node.sequence()[1], what))
    raise SpecError(node.loc, f"{what} must be an int or [H, W]")


def _side(node: Node, what: str) -> int:
    side = expect_int(node, what, 1)
    if side > MAX_IMAGE_SIDE:
        raise SpecError(
            node.loc, f"{what} {side} is more than {MAX_IMAGE_SIDE:,} pixels a side (limit {MAX_IMAGE_SIDE:,}; every image is resized to it)"
        )
    return side


def _data(node: Node | None, base_dir: Path, seed: int) -> DataSettings:
    if node is None:
        return DataSettings(split_seed=seed)
    if isinstance(node.value, str):
        node = Node({"source": node}, node.loc, {"source": node.loc})
    fields = _keys(node, DATA_KEYS, "data")
    source = expect_str(fields["source"], "data.source") if "source" in fields else "digits"
    if source not in DATA_SOURCES:
        raise SpecError(
            fields["source"].loc,
            f"unknown data source {source!r}{suggest(source, DATA_SOURCES)}; one of {', '.join(DATA_SOURCES)}",
        )
    path = None
    if source != "digits":
        if "path" not in fields:
            raise SpecError(node.loc, f"data source {source!r} needs a path")
        raw = Path(expect_str(fields["path"], "data.path")).expanduser()
        path = raw if raw.is_absolute() else (base_dir / raw)
    elif "path" in fields:
        raise SpecError(fields["path"].loc, "the digits data set is built in; it takes no path")
    val = _float(fields["val_fraction"], "val_fraction", 0.01, 0.9) if "val_fraction" in fields else 0.2
    test = _float(fields["test_fraction"], "test_fraction", 0.0, 0.9) if "test_fraction" in fields else 0.2
    if val + test >= 0.95:
        raise SpecError(node.loc, "val_fraction + test_fraction leave too little to train on")
    channels = None
    if "channels" in fields:
        channels = expect_int(fields["channels"], "data.channels")
        if channels not in (1, 3):
            raise SpecError(fields["channels"].loc, "data.channels must be 1 or 3")
    return DataSettings(
        source=source,
        path=path,
        val_fraction=val,
        test_fraction=test,
        split_seed=seed_value(fields["split_seed"], "split_seed") if "split_seed" in fields else seed,
        limit=expect_int(fields["limit"], "limit", 10) if "limit" in fields else None,
        channels=channels,
    )


def _objectives(node: Node | None, loc: Location) -> tuple[Objective, ...]:
    if node is None:
        return (Objective("accuracy", "maximize"),)
    pairs: list[tuple[str, Node | None, Node]] = []
    if isinstance(node.value, str):
        pairs.append((node.value, None, node))
    elif node.is_seq:
        for item in node.sequence():
            if item.is_map and len(item.mapping()) == 1:
                ((name, given),) = item.mapping().items()
                pairs.append((name, given, item))
            else:
                pairs.append((expect_str(item, "objective"), None, item))
    elif node.is_map:
        pairs.extend((name, direction, node) for name, direction in node.mapping().items())
    else:
        raise SpecError(node.loc, "objectives must be a metric name, a list, or a mapping {metric: direction}")
    if not pairs:
        raise SpecError(node.loc, "objectives is empty")
    result: list[Objective] = []
    for name, direction_node, where in pairs:
        if name not in METRICS:
            raise SpecError(where.loc, f"unknown metric {name!r}{suggest(name, METRICS)}; one of {', '.join(METRICS)}")
        direction = METRICS[name]
        if direction_node is not None:
            direction = expect_str(direction_node, "direction")
            if direction not in DIRECTIONS:
                raise SpecError(direction_node.loc, f"direction must be maximize or minimize, not {direction!r}")
        if any(o.metric == name for o in result):
            raise SpecError(where.loc, f"metric {name!r} is listed twice")
        result.append(Objective(name, direction))
    if not any(o.metric in SCORE_METRICS for o in result):
        raise SpecError(node.loc, "at least one objective must be measured by training (accuracy, f1 or loss)")
    return tuple(result)


def _constraints(node: Node | None) -> Constraints:
    if node is None or node.value is None:
        return Constraints()
    fields = _keys(node, CONSTRAINT_KEYS, "constraints")
    return Constraints(
        max_params=expect_int(fields["max_params"], "max_params", 1) if "max_params" in fields else None,
        max_macs=expect_int(fields["max_macs"], "max_macs", 1) if "max_macs" in fields else None,
        min_spatial=expect_int(fields["min_spatial"], "min_spatial", 1) if "min_spatial" in fields else None,
        max_latency_ms=expect_positive_float(fields["max_latency_ms"], "max_latency_ms")
        if "max_latency_ms" in fields
        else None,
    )


def _pick(node: Node | None, objectives: tuple[Objective, ...]) -> PickRule:
    default_metric = next(o.metric for o in objectives if o.metric in SCORE_METRICS)
    if node is None or node.value is None:
        return PickRule(default_metric)
    fields = _keys(node, PICK_KEYS, "pick")
    metric = default_metric
    if "metric" in fields:
        metric = expect_str(fields["metric"], "pick.metric")
        if metric not in SCORE_METRICS:
            raise SpecError(fields["metric"].loc, f"pick.metric must be one of {', '.join(SCORE_METRICS)}")
    return PickRule(
        metric,
        expect_int(fields["max_params"], "pick.max_params", 1) if "max_params" in fields else None,
        expect_int(fields["max_macs"], "pick.max_macs", 1) if "max_macs" in fields else None,
    )


def _component(node: Node | None, what: str, types: tuple[str, ...], default: str) -> Component:
    if node is None:
        return Component(default, (), None)
    if isinstance(node.value, str) or node.value is None:
        name = "none" if node.value is None else node.value
        fields: dict[str, Node] = {}
    else:
        if not node.is_map or "type" not in node.mapping():
            raise SpecError(node.loc, f"{what} must be a name or a mapping with 'type' and the {what}'s arguments")
        fields = dict(node.mapping())
        name = expect_str(fields.pop("type"), f"{what} type")
    if name not in types:
        raise SpecError(node.loc, f"unknown {what} {name!r}{suggest(name, types)}; one of {', '.join(types)}")
    if name == "none" and fields:
        raise SpecError(node.loc, f"{what} none takes no arguments")
    kwargs = []
    if fields:
        allowed = _component_arg_types(what, name)
        for key, value in fields.items():
            if key not in allowed:
                raise SpecError(node.key_loc(key), f"{name} has no argument {key!r}{suggest(key, allowed)}")
            kwargs.append((key, _component_value(value, name, key, allowed[key])))
    _check_component(what, name, dict(kwargs), node.loc)
    return Component(name, tuple(kwargs), node.loc)


# Lower bounds of the integer arguments (Optuna checks some, not all: a negative n_startup_trials
# would be taken as is); every other integer must be at least 0.
_COMPONENT_MINIMUM = {
    **early_stop.ARG_MINIMUMS,
    "n_ei_candidates": 1,
    "interval_steps": 1,
    "n_min_trials": 1,
    "min_resource": 1,
    "population_size": 2,
    # Hyperband takes 1 although its brackets then divide by log(1) = 0 in every trial
    "reduction_factor": 2,
}
_COMPONENT_MAXIMUM = early_stop.ARG_MAXIMUMS
_PLAIN_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "None": type(None)}


def _component_value(value: Node, name: str, key: str, types: tuple[str, ...]) -> object:
    """A sampler/pruner argument checked against the type Optuna declares for it (and a range)."""
    plain = value.value
    fits = (
        ("bool" in types and isinstance(plain, bool))
        or (not isinstance(plain, bool) and isinstance(plain, int) and ("int" in types or "float" in types))
        or (isinstance(plain, float) and "float" in types and math.isfinite(plain))
        or (isinstance(plain, str) and "str" in types)
        or (plain is None and "None" in types)
    )
    if not fits:
        words = {"None": "null", "float": "a finite float", "int": "an int", "bool": "a bool", "str": "a string"}
        wanted = " or ".join(words[t] for t in types)
        raise SpecError(value.loc, f"{name} argument {key} must be {wanted}, not {type_name(value)}")
    if isinstance(plain, int) and not isinstance(plain, bool) and "int" in types:
        least = _COMPONENT_MINIMUM.get(key, 0)
        if plain < least:
            raise SpecError(value.loc, f"{name} argument {key} must be at least {least}, got {plain}")
        most = _COMPONENT_MAXIMUM.get(key)
        if most is not None and plain > most:
            raise SpecError(value.loc, f"{name} argument {key} must be at most {most}, got {plain}")
    return plain


def _check_component(what: str, name: str, kwargs: dict[str, object], loc: Location | None) -> None:
    """Build the sampler/pruner once, so the values Optuna itself refuses are refused here, at the file."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental samplers say so on every construction
        try:
            component_class(what, name)(**kwargs)
        except (ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SpecError(loc, f"{what} {name}: {first}") from None


def component_class(what: str, name: str):
    """The class a sampler or pruner name stands for (its signature lists the arguments)."""
    import optuna

    if what == "sampler":
        return {
            "TPE": optuna.samplers.TPESampler,
            "Random": optuna.samplers.RandomSampler,
            "NSGAII": optuna.samplers.NSGAIISampler,
            "GP": optuna.samplers.GPSampler,
            "QMC": optuna.samplers.QMCSampler,
        }[name]
    return {
        "none": optuna.pruners.NopPruner,
        "Median": optuna.pruners.MedianPruner,
        "Percentile": optuna.pruners.PercentilePruner,
        "Hyperband": optuna.pruners.HyperbandPruner,
        "SuccessiveHalving": optuna.pruners.SuccessiveHalvingPruner,
        "Patient": patient_pruner,
        "Threshold": optuna.pruners.ThresholdPruner,
        early_stop.NAME: early_stop.Dominance,  # applied by the trial itself (search/trial.py)
    }[name]


def patient_pruner(patience: int, min_delta: float = 0.0) -> Any:
    """``Patient``: Optuna's PatientPruner around a MedianPruner (a pruner object cannot be written
    in YAML, so the wrapped one is fixed)."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # chosen on purpose
        return optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(), patience, min_delta)


def _component_args(what: str, name: str) -> tuple[str, ...]:
    """The arguments a search file may give a sampler/pruner (the JSON Schema lists them too)."""
    return tuple(_component_arg_types(what, name))


def _component_arg_types(what: str, name: str) -> dict[str, tuple[str, ...]]:
    """The arguments a search file may give a sampler/pruner, with the plain types Optuna declares."""
    params = inspect.signature(component_class(what, name)).parameters
    # The seed comes from the file's top-level seed; callables and objects cannot be written in YAML.
    excluded = {"seed", "self", "constraints_func", "gamma", "weights", "wrapped_pruner", "independent_sampler"}
    found = {}
    for key, param in params.items():
        annotation = (
            param.annotation if isinstance(param.annotation, str) else getattr(param.annotation, "__name__", "")
        )
        types = tuple(part.strip() for part in annotation.split("|"))
        if (
            key not in excluded
            and param.kind is not inspect.Parameter.VAR_KEYWORD
            and all(t in _PLAIN_TYPES for t in types)
        ):
            found[key] = types
    return found


def parse_train(node: Node) -> TrainSettings:
    """Training settings from a sampled (concrete) ``train`` node."""
    fields = _keys(node, TRAIN_KEYS, "train")
    settings: dict[str, object] = {}
    if "epochs" in fields:
        settings["epochs"] = expect_int(fields["epochs"], "epochs", 1)
    if "batch_size" in fields:
        settings["batch_size"] = expect_int(fields["batch_size"], "batch_size", 1)
    if "optimizer" in fields:
        settings["optimizer"] = _optimizer(fields["optimizer"])
    if "scheduler" in fields:
        settings.update(_scheduler(fields["scheduler"]))
    if "image_size" in fields:
        settings["image_size"] = _size(fields["image_size"], "image_size")
    if "augment" in fields and fields["augment"].value is not None:
        augment = _keys(fields["augment"], AUGMENT_KEYS, "augment")
        if "hflip" in augment:
            settings["hflip"] = _bool(augment["hflip"], "hflip")
        if "shift" in augment:
            shift = expect_int(augment["shift"], "shift", 0)
            if shift > MAX_SHIFT:
                raise SpecError(
                    augment["shift"].loc,
                    f"shift {shift} is more than {MAX_SHIFT} pixels (limit {MAX_SHIFT}; each batch is padded by it on every side)",
                )
            settings["shift"] = shift
    if "label_smoothing" in fields:
        settings["label_smoothing"] = _float(fields["label_smoothing"], "label_smoothing", 0.0, 0.5)
    for key in ("amp", "channels_last", "compile"):
        if key in fields:
            settings[key] = _bool(fields[key], key)
    return TrainSettings(**settings)  # type: ignore[arg-type]  # each key was parsed to its field's type


def _optimizer(node: Node) -> OptimizerSettings:
    if isinstance(node.value, str):
        node = Node({"type": node}, node.loc, {"type": node.loc})
    if not node.is_map or "type" not in node.mapping():
        raise SpecError(node.loc, "optimizer must be a name (Adam) or a mapping {type: Adam, lr: 0.001, ...}")
    kind = expect_str(node.mapping()["type"], "optimizer type")
    if kind not in OPTIMIZERS:
        raise SpecError(
            node.mapping()["type"].loc,
            f"unknown optimizer {kind!r}{suggest(kind, OPTIMIZERS)}; one of {', '.join(OPTIMIZERS)}",
        )
    fields = _keys(node, ("type",) + OPTIMIZERS[kind], f"{kind} optimizer")
    lr = _float(fields["lr"], "lr", 0.0, 10.0) if "lr" in fields else (0.01 if kind == "SGD" else 1e-3)
    kwargs: list[tuple[str, object]] = []
    for key, value in fields.items():
        if key in ("type", "lr"):
            continue
        if key == "betas":
            if not value.is_seq or len(value.sequence()) != 2:
                raise SpecError(value.loc, "betas must be [beta1, beta2]")
            kwargs.append((key, tuple(_float(b, "beta", 0.0, 0.99999) for b in value.sequence())))
        elif key in ("nesterov", "amsgrad"):
            kwargs.append((key, _bool(value, key)))
        else:
            kwargs.append((key, _float(value, key, 0.0, 1e3)))
    given = dict(kwargs)
    if given.get("nesterov") and (given.get("momentum", 0.0) <= 0 or given.get("dampening", 0.0) != 0):  # type: ignore[operator]  # floats, parsed above
        raise SpecError(
            fields["nesterov"].loc,
            f"nesterov: true needs momentum > 0 and dampening 0 (torch's SGD refuses it otherwise), "
            f"got momentum {given.get('momentum', 0.0)}, dampening {given.get('dampening', 0.0)}",
        )
    return OptimizerSettings(kind, lr, tuple(kwargs))


def _scheduler(node: Node) -> dict[str, object]:
    if node.value is None:
        return {"scheduler": "none"}
    if isinstance(node.value, str):
        node = Node({"type": node}, node.loc, {"type": node.loc})
    fields = _keys(node, SCHEDULER_KEYS, "scheduler")
    if "type" not in fields:
        raise SpecError(node.loc, "scheduler needs a type")
    kind = expect_str(fields["type"], "scheduler")
    if kind not in SCHEDULERS:
        raise SpecError(
            fields["type"].loc, f"unknown scheduler {kind!r}{suggest(kind, SCHEDULERS)}; one of {', '.join(SCHEDULERS)}"
        )
    result: dict[str, object] = {"scheduler": kind}
    if "step_size" in fields:
        result["step_size"] = expect_int(fields["step_size"], "step_size", 1)
    if "gamma" in fields:
        result["gamma"] = _float(fields["gamma"], "gamma", 0.0, 1.0)
    return result

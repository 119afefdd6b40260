"""JSON Schemas (draft 2020-12) for model specs and search files, generated from the code.

Everything a schema names comes from the code that reads the files, so the two cannot drift:
block names and their arguments from the discovered catalogue (``Arg`` signatures, per dialect),
activations from the fixed table, top-level keys from ``spec.model_spec.TOP_LEVEL_KEYS``,
``spec.ultralytics.KEYS`` and ``blocks.yaml_module.SUB_SPEC_KEYS``, search keys from the constants
of ``search.config``, choice-node keys from ``search.space``. A key without a value schema in the
tables below is still accepted (with any value), so adding a key to the code and regenerating
(``yaml2torch schema model > schemas/model.schema.json``) is all it takes.

Model files come in three dialects, told apart the way ``spec.load`` tells them apart: an
ultralytics model file (``nc:`` or ``scales:``), a ``YamlModule`` sub-spec (``module:``), else a
yaml2torch spec. In a search file the model template is the same schema in which a choice node
(``choice``/``int``/``float``/``per_stage``, and ``cells`` for rows) may stand for any value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from yaml2torch.blocks import builtin_blocks
from yaml2torch.blocks.base import Block
from yaml2torch.blocks.torch_layer import _EXCLUDED_PARAMS as TORCH_EXCLUDED_PARAMS
from yaml2torch.blocks.torch_layer import TorchLayer
from yaml2torch.blocks.yaml_module import SUB_SPEC_KEYS, YamlModule
from yaml2torch.spec import model_spec, ultralytics
from yaml2torch.study_record import MAX_STUDY_NAME
from yaml2torch.tooling.arg_schemas import LITERAL_REF, Schema, arg_schema, integer, shared_defs

DRAFT = "https://json-schema.org/draft/2020-12/schema"
NN_PATTERN = r"^nn\.[A-Za-z_][A-Za-z0-9_]*$"
PLACEHOLDER_PATTERN = r"^arg[0-9]+$"  # YamlModule sub-specs: argN stands for the row's N-th value
PASS = "Pass"  # search templates: a row whose module is Pass is dropped (yaml2torch.search.space.PASS)


@dataclass(frozen=True)
class Flavour:
    """How values are written in one kind of file."""

    name: str  # prefix of its $defs names
    placeholders: Schema | None = None  # strings a row argument may be instead (argN, ultralytics' nc)
    choices: bool = False  # search templates: a choice node may stand for any value
    dialect: str = "yaml2torch"


SPEC = Flavour("spec")
SUB_SPEC = Flavour("sub_spec", {"type": "string", "pattern": PLACEHOLDER_PATTERN})
ULTRALYTICS = Flavour(
    "ultralytics", {"enum": ["nc", *ultralytics._LITERAL_NAMES]}, dialect=ultralytics.DIALECT
)
TEMPLATE = Flavour("template", choices=True)
TEMPLATE_ULTRALYTICS = Flavour("template_ultralytics", ULTRALYTICS.placeholders, True, ultralytics.DIALECT)


@dataclass(frozen=True)
class Defs:
    """The ``$defs`` of one schema, filled while it is generated."""

    table: dict[str, Schema] = field(default_factory=dict)
    by_content: dict[str, str] = field(default_factory=dict)

    def ref(self, name: str) -> Schema:
        return {"$ref": f"#/$defs/{name}"}

    def add(self, name: str, schema: Schema) -> Schema:
        self.table[name] = schema
        return self.ref(name)

    def unique_name(self, hint: str) -> str:
        name, n = hint, 1
        while name in self.table:
            n += 1
            name = f"{hint}_{n}"
        return name


# --- choice nodes (search files) ------------------------------------------------------------


def choice_node_defs(defs: Defs) -> None:
    """``{int: [low, high], step, log, name}`` and the float form (from search.space's keys)."""
    from yaml2torch.search.space import CHOICE_KEYS

    for kind in CHOICE_KEYS[1:]:  # "int", "float"
        bound = integer() if kind == "int" else {"type": "number"}
        defs.add(
            f"{kind}_range",
            {
                "description": f"an Optuna suggest_{kind} over [low, high]",
                "type": "object",
                "required": [kind],
                "properties": {
                    kind: {"type": "array", "prefixItems": [bound, bound], "minItems": 2, "maxItems": 2},
                    "step": {"anyOf": [{"type": "null"}, {**bound, "exclusiveMinimum": 0}]},
                    "log": {"type": "boolean"},
                    "name": {"type": "string", "minLength": 1},
                },
                "additionalProperties": False,
            },
        )


def choosable(defs: Defs, schema: Schema, hint: str) -> Schema:
    """``schema``, or a choice node whose options are ``schema`` (or choices again)."""
    key = json.dumps(schema, sort_keys=True)
    if key in defs.by_content:
        return defs.ref(defs.by_content[key])
    name = defs.unique_name(f"choosable_{hint}")
    defs.by_content[key] = name
    me = defs.ref(name)
    choice = {
        "type": "object",
        "required": ["choice"],
        "properties": {
            "choice": {
                "anyOf": [
                    {"type": "array", "minItems": 1, "items": me},
                    {"type": "object", "minProperties": 1, "additionalProperties": me},
                ]
            },
            "name": {"type": "string", "minLength": 1},
        },
        "additionalProperties": False,
    }
    per_stage = {
        "type": "object",
        "required": ["per_stage"],
        "properties": {"per_stage": {"type": "array", "minItems": 1, "items": me}},
        "additionalProperties": False,
    }
    alternatives = [schema, choice, defs.ref("int_range"), defs.ref("float_range"), per_stage]
    wrapped: Schema = {"anyOf": alternatives}
    if "description" in schema:
        wrapped = {"description": schema["description"], **wrapped}
    defs.add(name, wrapped)
    return me


def slot(defs: Defs, flavour: Flavour, schema: Schema, hint: str) -> Schema:
    """Where a value stands: in a search template, a choice node may stand there instead."""
    return choosable(defs, schema, hint) if flavour.choices else schema


def arg_slot(defs: Defs, flavour: Flavour, schema: Schema, hint: str) -> Schema:
    """A row argument: also a placeholder (argN, ultralytics' nc/None/True/False) where the file has them."""
    if flavour.placeholders is not None:
        wrapped: Schema = {"anyOf": [schema, flavour.placeholders]}
        schema = {"description": schema["description"], **wrapped} if "description" in schema else wrapped
    return slot(defs, flavour, schema, hint)


# --- rows -----------------------------------------------------------------------------------


def block_arg_defs(defs: Defs, flavour: Flavour, name: str, block: type[Block]) -> tuple[Schema, Schema]:
    """$defs for one block's positional args (a list) and kwargs (a mapping); returns their refs."""
    prefix = f"{flavour.name}_{'nn' if name == 'nn.' else name}"
    if issubclass(block, TorchLayer):
        literal = arg_slot(defs, flavour, {"$ref": LITERAL_REF}, "literal")
        args: Schema = {"type": "array", "items": literal}
        kwargs: Schema = {
            "type": "object",
            "additionalProperties": literal,
            "propertyNames": {"not": {"enum": sorted(TORCH_EXCLUDED_PARAMS)}},
        }
    else:
        signature = YamlModule().signature if issubclass(block, YamlModule) else block.signature
        slots = {arg.name: arg_slot(defs, flavour, arg_schema(arg), f"{prefix}_{arg.name}") for arg in signature}
        positional = signature[:1] if issubclass(block, YamlModule) else signature
        args = {"type": "array", "prefixItems": [slots[arg.name] for arg in positional]} if positional else {"type": "array"}
        args["items"] = arg_slot(defs, flavour, {}, "any") if issubclass(block, YamlModule) else False
        kwargs = {
            "type": "object",
            "properties": {key: slots[arg.name] for arg in signature for key in (arg.name, *arg.aliases)},
            "additionalProperties": False,
        }
        if issubclass(block, YamlModule):
            kwargs["patternProperties"] = {PLACEHOLDER_PATTERN: {}}
    doc = f"{name} arguments"
    args_ref = defs.add(f"{prefix}_args", slot(defs, flavour, {"description": doc, "anyOf": [{"type": "null"}, args]}, f"{prefix}_args"))
    kwargs_ref = defs.add(f"{prefix}_kwargs", slot(defs, flavour, {"description": f"{name} kwargs", "anyOf": [{"type": "null"}, kwargs]}, f"{prefix}_kwargs"))
    return args_ref, kwargs_ref


def module_schema(blocks: dict[str, type[Block]], open_blocks: bool, flavour: Flavour) -> Schema:
    if open_blocks:
        return {"description": "a block name (plugins named in modules: add their own)", "type": "string", "minLength": 1}
    names = sorted(name for name in blocks if name != "nn.") + ([PASS] if flavour.choices else [])
    return {"description": "a block name, or nn.<Name> for a torch.nn layer", "anyOf": [{"enum": names}, {"type": "string", "pattern": NN_PATTERN}]}


def block_checks(defs: Defs, flavour: Flavour) -> Schema:
    """For each block: when a row names it, its args and kwargs must fit its signature."""
    name = f"{flavour.name}_block_args"
    if name in defs.table:
        return defs.ref(name)
    short, long = [], []
    for block_name, block in builtin_blocks(flavour.dialect).items():
        args, kwargs = block_arg_defs(defs, flavour, block_name, block)
        is_it = {"type": "string", "pattern": NN_PATTERN} if block_name == "nn." else {"const": block_name}
        short.append({"if": {"prefixItems": [True, is_it]}, "then": {"prefixItems": [True, True, args]}})
        long.append({"if": {"prefixItems": [True, True, is_it]}, "then": {"prefixItems": [True, True, True, args, kwargs]}})
    return defs.add(name, {"if": {"type": "array", "maxItems": 3}, "then": {"allOf": short}, "else": {"allOf": long}})


def row_schema(defs: Defs, flavour: Flavour, open_blocks: bool) -> Schema:
    """``[repeat, Module, args]`` or ``[from, repeat, Module, args, {kwargs}]``, args checked per block."""
    blocks = dict(builtin_blocks(flavour.dialect))
    module = slot(defs, flavour, module_schema(blocks, open_blocks, flavour), "module" + ("_with_plugins" if open_blocks else ""))
    repeat = slot(defs, flavour, {"description": "repeat: how many copies (scaled by depth_multiple)", **integer(1)}, "repeat")
    one_source = integer()
    source = slot(
        defs,
        flavour,
        {"description": "from: -1 is the previous row; an index or a list of them", "anyOf": [one_source, {"type": "array", "minItems": 1, "items": one_source}]},
        "from",
    )
    any_args = slot(defs, flavour, {"anyOf": [{"type": "null"}, {"type": "array"}]}, "any_args")
    any_kwargs = slot(defs, flavour, {"anyOf": [{"type": "null"}, {"type": "object"}]}, "any_kwargs")
    return {
        "description": "a row: [repeat, Module, args] or [from, repeat, Module, args, {kwargs}]",
        "if": {"type": "array", "maxItems": 3},
        "then": {"type": "array", "minItems": 3, "maxItems": 3, "prefixItems": [repeat, module, any_args]},
        "else": {"type": "array", "minItems": 4, "maxItems": 5, "prefixItems": [source, repeat, module, any_args, any_kwargs]},
        "allOf": [block_checks(defs, flavour)],
    }


def rows_ref(defs: Defs, flavour: Flavour, open_blocks: bool = False) -> Schema:
    """A list of rows (backbone, head, module:); search templates also take dropped rows and cells."""
    name = f"{flavour.name}_rows" + ("_with_plugins" if open_blocks else "")
    if name in defs.table:
        return defs.ref(name)
    defs.table[name] = {}  # reserved: cells refer back to the rows
    row = defs.add(f"{flavour.name}_row" + ("_with_plugins" if open_blocks else ""), row_schema(defs, flavour, open_blocks))
    if flavour.choices:
        cells = defs.add(f"{name}_cells", cells_schema(defs, flavour, defs.ref(name)))
        row = choosable(defs, {"anyOf": [row, {"type": "null"}, {"const": PASS}, cells]}, f"{name}_item")
    return defs.add(name, {"description": "a list of rows", "type": "array", "items": row})


def cells_schema(defs: Defs, flavour: Flavour, rows: Schema) -> Schema:
    from yaml2torch.search.space import CELL_KEYS

    values: dict[str, Schema] = {
        "stages": integer(1),
        "repeat": {"anyOf": [integer(1), defs.ref("int_range")]},
        "share": {"type": "boolean"},
        "normal": rows,
        "reduction": rows,
    }
    body = {
        "type": "object",
        "required": ["stages", "repeat", "normal"],
        "properties": {key: values.get(key, {}) for key in CELL_KEYS},
        "additionalProperties": False,
    }
    return {
        "description": "a cell repeated N1 <= N2 <= ... times in stages, with reduction cells between them",
        "type": "object",
        "required": ["cells"],
        "properties": {"cells": body},
        "additionalProperties": False,
    }


# --- model files ----------------------------------------------------------------------------


def _size(maximum: int | None = None) -> Schema:
    side = integer(1) if maximum is None else {**integer(1), "maximum": maximum}
    return {"anyOf": [{"type": "null"}, side, {"type": "array", "prefixItems": [side, side], "minItems": 2, "maxItems": 2}]}


def _positive_number(description: str) -> Schema:
    return {"description": description, "type": "number", "exclusiveMinimum": 0}


def spec_value_schemas() -> dict[str, Schema]:
    """Value schemas of a yaml2torch spec's top-level keys (rows aside); docs/spec.md has the rules."""
    from dataclasses import fields

    norm_keys = [f.name for f in fields(model_spec.NormSpec)]
    module_path = {"type": "string", "pattern": model_spec._MODULE_PATH.pattern}
    return {
        "input_channel": {"description": "input channels (required)", **integer(1)},
        "input_size": {"description": "[H, W], one int for a square input, or null (unknown)", **_size()},
        "depth_multiple": _positive_number("scales every row's repeat"),
        "width_multiple": _positive_number("scales the channels of width-scaled blocks"),
        "channel_divisor": {"description": "scaled channels are rounded to a multiple of this", **integer(1)},
        "channel_rounding": {"enum": list(model_spec.ROUNDINGS)},
        "norm": {
            "description": "BatchNorm eps/momentum of every generated block; null: torch's defaults",
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "properties": {key: {"type": "number"} for key in norm_keys},
                    "additionalProperties": False,
                },
            ],
        },
        "normalize": {
            "description": "input preprocessing inside the model: per-channel mean and std (inputs in [0, 1]); null: none",
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "properties": {
                        "mean": {"type": "array", "items": {"type": "number"}, "minItems": 1},
                        "std": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": 1},
                        "scaled_from": {
                            "description": "the raw pixel maximum the [0, 1] inputs were divided by (16 for digits, 255 for image files); said in the docstring",
                            "anyOf": [{"type": "null"}, {"type": "number", "exclusiveMinimum": 0}],
                        },
                    },
                    "required": ["mean", "std"],
                    "additionalProperties": False,
                },
            ],
        },
        "modules": {"description": "plugin modules (Python import paths; their code runs)", "anyOf": [{"type": "null"}, {"type": "array", "items": module_path}]},
        "custom_module_paths": {"description": "an alias of modules", "anyOf": [{"type": "null"}, {"type": "array", "items": module_path}]},
        "anchors": {"description": "accepted and ignored (a place for YAML anchors)"},
    }


def ultralytics_value_schemas() -> dict[str, Schema]:
    from yaml2torch.blocks.activations import NAMES

    scale = {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}, integer(1)], "minItems": 3, "maxItems": 3}
    return {
        "nc": {"description": "number of classes (--nc overrides it)", **integer(1)},
        "scales": {
            "description": "scale letter -> [depth, width, max_channels]",
            "type": "object",
            "propertyNames": {"enum": list(ultralytics.SCALES)},
            "additionalProperties": scale,
        },
        "depth_multiple": _positive_number("used when there is no scales:"),
        "width_multiple": _positive_number("used when there is no scales:"),
        "activation": {"description": "nn.<Name>() for every Conv with act=True", "type": "string", "pattern": rf"^(torch\.)?nn\.({'|'.join(NAMES)})\(\)$"},
        "channels": {"description": "input channels (default 3)", **integer(1)},
        "input_size": {"description": "yaml2torch's own key: [H, W] for shapes and MACs", **_size()},
        **{key: {"description": "accepted and ignored (a setting of detection heads)"} for key in ultralytics.IGNORED_KEYS},
    }


def keyed_object(
    defs: Defs, flavour: Flavour, keys: tuple[str, ...], values: dict[str, Schema], rows: Schema | None, required: list[str]
) -> Schema:
    """A mapping of exactly ``keys`` (from the code's constants): each value from ``values`` ({} when
    the table has none yet); backbone/head take ``rows`` unless ``rows`` is None (set by the caller)."""
    properties: dict[str, Schema | bool] = {}
    for key in keys:
        if key in ("backbone", "head"):
            properties[key] = True if rows is None else ({"anyOf": [{"type": "null"}, rows]} if key == "head" else rows)
        else:
            properties[key] = slot(defs, flavour, values.get(key, {"description": f"{key} (see the docs)"}), f"{flavour.name}_{key}")
    return {"type": "object", "properties": properties, "additionalProperties": False, "required": required}


def yaml2torch_spec(defs: Defs, flavour: Flavour) -> Schema:
    keys = tuple(dict.fromkeys(model_spec.TOP_LEVEL_KEYS + model_spec.ANCHOR_ONLY_KEYS))
    required = [] if flavour.choices else ["input_channel", "backbone"]
    schema = keyed_object(defs, flavour, keys, spec_value_schemas(), None, required)
    strict, open_rows = rows_ref(defs, flavour), rows_ref(defs, flavour, open_blocks=True)
    with_plugins = {"anyOf": [{"required": ["modules"]}, {"required": ["custom_module_paths"]}]}
    schema["if"] = with_plugins
    schema["then"] = {"properties": {"backbone": open_rows, "head": {"anyOf": [{"type": "null"}, open_rows]}}}
    schema["else"] = {"properties": {"backbone": strict, "head": {"anyOf": [{"type": "null"}, strict]}}}
    schema["description"] = "a yaml2torch model spec (docs/spec.md)"
    return schema


def ultralytics_spec(defs: Defs, flavour: Flavour) -> Schema:
    keys = tuple(dict.fromkeys(ultralytics.KEYS + ultralytics.IGNORED_KEYS))
    schema = keyed_object(defs, flavour, keys, ultralytics_value_schemas(), rows_ref(defs, flavour), ["backbone"])
    schema["description"] = "an ultralytics model file (it has nc: or scales:; docs/origin_formats.md)"
    return schema


def sub_spec(defs: Defs) -> Schema:
    values = {"args": {"description": "defaults of arg0, arg1, ...", "type": "array"}}
    schema = keyed_object(defs, SUB_SPEC, SUB_SPEC_KEYS, values, None, ["module"])
    schema["properties"]["module"] = rows_ref(defs, SUB_SPEC)
    schema["description"] = "a YamlModule sub-spec: module: rows, args: defaults (argN placeholders)"
    return schema


def dialects(defs: Defs, ours: Schema, theirs: Schema, sub: Schema | None) -> Schema:
    """Which dialect a mapping is, decided as spec.load decides it."""
    marker = {"type": "object", "anyOf": [{"required": [key]} for key in ultralytics.MARKER_KEYS]}
    otherwise = ours if sub is None else {"if": {"type": "object", "required": ["module"]}, "then": sub, "else": ours}
    return {"type": "object", "if": marker, "then": theirs, "else": otherwise}


def model_schema() -> Schema:
    """The schema of a model file: a yaml2torch spec, an ultralytics model file or a YamlModule sub-spec."""
    defs = Defs(dict(shared_defs()))
    ours = defs.add("yaml2torch_spec", yaml2torch_spec(defs, SPEC))
    theirs = defs.add("ultralytics_spec", ultralytics_spec(defs, ULTRALYTICS))
    sub = defs.add("sub_spec", sub_spec(defs))
    body = dialects(defs, ours, theirs, sub)
    return {
        "$schema": DRAFT,
        "title": "yaml2torch model spec",
        "description": "A model spec for yaml2torch (generated by `yaml2torch schema model`; docs/tooling.md).",
        **body,
        "$defs": dict(sorted(defs.table.items())),
    }


def template_schema(defs: Defs) -> Schema:
    """A search file's model: template: a model spec in which choice nodes may stand for values."""
    choice_node_defs(defs)
    ours = defs.add("template_spec", yaml2torch_spec(defs, TEMPLATE))
    theirs = defs.add("template_ultralytics_spec", ultralytics_spec(defs, TEMPLATE_ULTRALYTICS))
    return dialects(defs, ours, theirs, None)


# --- search files ---------------------------------------------------------------------------


def _keys_object(keys: tuple[str, ...], values: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    properties = {key: values.get(key, {"description": f"{key} (see docs/search.md)"}) for key in keys}
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def _per_type(types: Mapping[str, tuple[str, ...]]) -> list[Schema]:
    """For ``{type: X, ...}`` mappings: the keys each type takes."""
    return [
        {"if": {"properties": {"type": {"const": name}}, "required": ["type"]}, "then": {"propertyNames": {"enum": ["type", *keys]}}}
        for name, keys in types.items()
    ]


def optimizer_schema(defs: Defs) -> Schema:
    from yaml2torch.search.config import OPTIMIZERS

    def value(key: str) -> Schema:
        if key == "betas":
            beta = slot(defs, TEMPLATE, {"type": "number", "minimum": 0, "maximum": 0.99999}, "beta")
            return {"type": "array", "prefixItems": [beta, beta], "minItems": 2, "maxItems": 2}
        if key in ("nesterov", "amsgrad"):
            return {"type": "boolean"}
        return {"type": "number", "minimum": 0, "maximum": 10.0 if key == "lr" else 1e3}

    keys = tuple(dict.fromkeys(key for keys in OPTIMIZERS.values() for key in keys))
    mapping = _keys_object(("type", *keys), {"type": {"enum": list(OPTIMIZERS)}, **{k: slot(defs, TEMPLATE, value(k), f"optimizer_{k}") for k in keys}}, ("type",))
    mapping["allOf"] = _per_type(OPTIMIZERS)
    return {"description": "an optimizer name, or {type: Adam, lr: 0.001, ...}", "anyOf": [{"enum": list(OPTIMIZERS)}, mapping]}


def train_schema(defs: Defs) -> Schema:
    from yaml2torch.search import config

    def choosable_values(values: dict[str, Schema], hint: str) -> dict[str, Schema]:
        return {key: slot(defs, TEMPLATE, value, f"{hint}_{key}") for key, value in values.items()}

    scheduler = _keys_object(
        config.SCHEDULER_KEYS,
        choosable_values({"type": {"enum": list(config.SCHEDULERS)}, "step_size": integer(1), "gamma": {"type": "number", "minimum": 0, "maximum": 1}}, "scheduler"),
        ("type",),
    )
    augment = _keys_object(config.AUGMENT_KEYS, choosable_values({"hflip": {"type": "boolean"}, "shift": {**integer(0), "maximum": config.MAX_SHIFT}}, "augment"))
    values: dict[str, Schema] = {
        "epochs": integer(1),
        "batch_size": integer(1),
        "optimizer": optimizer_schema(defs),
        "scheduler": {"anyOf": [{"type": "null"}, {"enum": list(config.SCHEDULERS)}, scheduler]},
        "image_size": {"description": "an int or [H, W]: images are resized once", **_size(config.MAX_IMAGE_SIDE)},
        "augment": {"anyOf": [{"type": "null"}, augment]},
        "label_smoothing": {"type": "number", "minimum": 0, "maximum": 0.5},
        **{key: {"type": "boolean", "description": "CUDA only"} for key in ("amp", "channels_last", "compile")},
    }
    keys = config.TRAIN_KEYS
    schema = _keys_object(keys, {key: slot(defs, TEMPLATE, values.get(key, {}), f"train_{key}") for key in keys if key in values})
    schema["description"] = "training settings; any value may be a choice node"
    return schema


def component_schema(what: str, types: tuple[str, ...]) -> Schema:
    """A sampler or pruner: a name, or {type: Name, <arguments of the Optuna class>}."""
    from yaml2torch.search import config

    args = {name: config._component_args(what, name) for name in types if name != "none"}
    mapping = _keys_object(
        ("type", *dict.fromkeys(a for names in args.values() for a in names)),
        {"type": {"enum": list(types)}, **{a: {"$ref": LITERAL_REF} for names in args.values() for a in names}},
        ("type",),
    )
    mapping["allOf"] = _per_type(args)
    if what == "pruner":  # yaml2torch's own rule: its arguments' types are known (search/early_stop.py)
        from yaml2torch.search import early_stop

        own = next(rule for rule in mapping["allOf"] if rule["if"]["properties"]["type"]["const"] == early_stop.NAME)
        own["then"]["properties"] = {
            name: integer(low) | ({"maximum": most} if (most := early_stop.ARG_MAXIMUMS.get(name)) is not None else {})
            for name, low in early_stop.ARG_MINIMUMS.items()
        }
    names: list[Schema] = [{"enum": list(types)}] + ([{"type": "null"}] if "none" in types else [])
    return {"description": f"the {what}: a name or {{type: Name, ...its arguments}}", "anyOf": [*names, mapping]}


def objectives_schema() -> Schema:
    from yaml2torch.search.config import DIRECTIONS, METRICS

    metric = {"enum": list(METRICS)}
    directed = {"type": "object", "propertyNames": metric, "additionalProperties": {"enum": list(DIRECTIONS)}}
    return {
        "description": "a metric, a list of metrics or {metric: direction} mappings, or one mapping",
        "anyOf": [metric, {"type": "array", "minItems": 1, "items": {"anyOf": [metric, {**directed, "minProperties": 1, "maxProperties": 1}]}}, {**directed, "minProperties": 1}],
    }


def search_value_schemas(defs: Defs) -> dict[str, Schema]:
    from yaml2torch.search import config

    data = _keys_object(
        config.DATA_KEYS,
        {
            "source": {"enum": list(config.DATA_SOURCES)},
            "path": {"type": "string"},
            "val_fraction": {"type": "number", "minimum": 0.01, "maximum": 0.9},
            "test_fraction": {"type": "number", "minimum": 0, "maximum": 0.9},
            "split_seed": {**integer(0), "maximum": config.MAX_SEED},
            "limit": integer(10),
            "channels": {"enum": [1, 3]},
        },
    )
    return {
        "study": {
            "description": "the study name (also the output folder's): printable, no '/' or '\\', no leading '.'",
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_STUDY_NAME,
            "pattern": r"^[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]*$",  # and printable: refused at load
        },
        "seed": {**integer(0), "maximum": config.MAX_SEED},
        "trials": integer(1),
        "timeout": {"type": "number", "exclusiveMinimum": 0},
        "data": {"anyOf": [{"enum": list(config.DATA_SOURCES)}, data]},
        "model": template_schema(defs),
        "python": {"description": "path/to/file.py:function (instead of model:)", "type": "string", "pattern": r"\.py:[A-Za-z_][A-Za-z0-9_]*$"},
        "train": train_schema(defs),
        "objectives": objectives_schema(),
        "constraints": {"anyOf": [{"type": "null"}, _keys_object(config.CONSTRAINT_KEYS, {"max_latency_ms": {"type": "number", "exclusiveMinimum": 0}, **{k: integer(1) for k in ("max_params", "max_macs", "min_spatial")}})]},
        "pick": {"anyOf": [{"type": "null"}, _keys_object(config.PICK_KEYS, {"metric": {"enum": list(config.SCORE_METRICS)}, "max_params": integer(1), "max_macs": integer(1)})]},
        "sampler": component_schema("sampler", config.SAMPLERS),
        "pruner": component_schema("pruner", config.PRUNERS),
        "anchors": {"description": "a place for YAML anchors; ignored"},
    }


def pruner_objectives_rules() -> list[Schema]:
    """What the loader checks across keys: Optuna's pruners take one objective, Dominance several
    (a missing ``objectives`` is one: accuracy)."""
    from yaml2torch.search import early_stop
    from yaml2torch.search.config import OPTUNA_PRUNERS

    several = {
        "required": ["objectives"],
        "properties": {"objectives": {"anyOf": [{"type": "array", "minItems": 2}, {"type": "object", "minProperties": 2}]}},
    }

    def pruner_is(names: tuple[str, ...]) -> Schema:
        named = {"enum": list(names)}
        typed = {"type": "object", "required": ["type"], "properties": {"type": named}}
        return {"required": ["pruner"], "properties": {"pruner": {"anyOf": [named, typed]}}}

    return [
        {"if": several, "then": {"not": pruner_is(OPTUNA_PRUNERS)}},
        {"if": {"not": several}, "then": {"not": pruner_is((early_stop.NAME,))}},
    ]


def search_schema() -> Schema:
    """The schema of a search-space file (docs/search.md)."""
    from yaml2torch.search.config import TOP_KEYS

    defs = Defs(dict(shared_defs()))
    body = _keys_object(TOP_KEYS, search_value_schemas(defs))
    body["allOf"] = pruner_objectives_rules()
    return {
        "$schema": DRAFT,
        "title": "yaml2torch search space",
        "description": "A search-space file for `yaml2torch search` (generated by `yaml2torch schema search`; docs/tooling.md).",
        **body,
        "not": {"required": ["model", "python"]},
        "$defs": dict(sorted(defs.table.items())),
    }


SCHEMAS = {"model": model_schema, "search": search_schema}


def schema_text(kind: str) -> str:
    """The committed form of a schema: sorted defs, two-space indent, a final newline."""
    return json.dumps(SCHEMAS[kind](), indent=2, ensure_ascii=False) + "\n"

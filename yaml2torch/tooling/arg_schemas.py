"""One JSON Schema per block argument type (``yaml2torch.blocks.args`` and the blocks' own types).

A type missing here gets ``{}`` (any value) and is listed by ``unknown_arg_types`` (a test keeps it
empty for the built-in catalogue), so a new argument type cannot silently go unchecked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from yaml2torch.blocks._twin_parts import ExpandRatio
from yaml2torch.blocks.activations import NAMES as ACTIVATION_NAMES
from yaml2torch.blocks.args import REQUIRED, Act, Arg, ArgType, Bool, Choice, Float, Int, IntList, IntOrList, Padding
from yaml2torch.blocks.torch_layer import PlainLiteral
from yaml2torch.blocks.ultralytics import IntOrNull
from yaml2torch.blocks.ultralytics_torchvision import Weights
from yaml2torch.blocks.yaml_module import AnyNode, FileName

Schema = dict[str, Any]
ACTIVATION_REF = "#/$defs/activation"
LITERAL_REF = "#/$defs/literal"


def integer(minimum: int | None = None) -> Schema:
    return {"type": "integer"} if minimum is None else {"type": "integer", "minimum": minimum}


def _float(t: Float) -> Schema:
    schema: Schema = {"type": "number"}
    if t.minimum is not None:
        schema["minimum"] = t.minimum
    if t.maximum is not None:
        schema["maximum"] = t.maximum
    return schema


_SCHEMAS: dict[type, Callable[[Any], Schema]] = {
    Int: lambda t: integer(t.minimum),
    Float: _float,
    Bool: lambda t: {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}]},
    Padding: lambda t: {
        "anyOf": [
            {"type": "null"},
            integer(0),
            {"type": "array", "prefixItems": [integer(0)], "minItems": 1, "maxItems": 1},
        ]
    },
    Act: lambda t: {"$ref": ACTIVATION_REF},
    IntList: lambda t: {"type": "array", "items": integer(1), "minItems": 1},
    IntOrList: lambda t: {"anyOf": [{"type": "null"}, integer(t.minimum), {"type": "array", "items": integer(t.minimum)}]},
    Choice: lambda t: {"enum": list(t.choices)},
    ExpandRatio: lambda t: {"type": "number", "exclusiveMinimum": 0},
    PlainLiteral: lambda t: {"$ref": LITERAL_REF},
    FileName: lambda t: {"type": "string", "minLength": 1},
    AnyNode: lambda t: {},
    IntOrNull: lambda t: {"anyOf": [{"type": "null"}, integer(0)]},
    Weights: lambda t: {"anyOf": [{"type": "null"}, {"type": "string"}, {"type": "boolean"}]},
}


def arg_type_schema(arg_type: ArgType) -> Schema:
    make = _SCHEMAS.get(type(arg_type))
    return make(arg_type) if make is not None else {}


def unknown_arg_types(args: list[Arg]) -> set[str]:
    return {type(arg.type).__name__ for arg in args if type(arg.type) not in _SCHEMAS}


def default_text(arg: Arg) -> str:
    """The default as a user writes it in YAML ('' for a required arg)."""
    if arg.default is REQUIRED:
        return ""
    value = arg.default
    name = getattr(value, "name", None)
    if isinstance(name, str) and type(value).__name__ == "Activation":
        return name
    if value is None or type(value).__name__ == "object":  # torch layers: "not given" sentinels
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def default_value(arg: Arg) -> object:
    """The default as a JSON value: null, a bool, a number, a string (activations by name), a
    list; None for a required arg."""
    value = arg.default
    if value is REQUIRED or value is None or type(value).__name__ == "object":
        return None
    name = getattr(value, "name", None)
    if isinstance(name, str) and type(value).__name__ == "Activation":
        return name
    if isinstance(value, tuple):
        return list(value)
    return value


def arg_schema(arg: Arg) -> Schema:
    """The argument's value schema with a description: its type, default and kwarg names."""
    schema = dict(arg_type_schema(arg.type))
    parts = [f"{arg.name}: {arg.type.description}"]
    default = default_text(arg)
    parts.append("required" if arg.default is REQUIRED else f"default {default}")
    if arg.aliases:
        parts.append("kwarg names " + ", ".join((arg.name, *arg.aliases)))
    schema["description"] = "; ".join(parts)
    return schema


def shared_defs() -> dict[str, Schema]:
    """``activation`` (the fixed table, or null) and ``literal`` (what nn.<Name> rows take)."""
    return {
        "activation": {
            "description": "an activation from the fixed table, or null for none",
            "anyOf": [{"type": "null"}, {"enum": list(ACTIVATION_NAMES)}],
        },
        "literal": {
            "description": "a literal: int, float, bool, null, string, or a list of those",
            "anyOf": [
                {"type": ["integer", "number", "boolean", "null", "string"]},
                {"type": "array", "items": {"$ref": LITERAL_REF}},
            ],
        },
    }

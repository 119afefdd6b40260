"""The model spec as frozen dataclasses, loaded strictly from located YAML nodes."""

from __future__ import annotations

import keyword
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

from yaml2torch.errors import Diagnostics, Location, SpecError, suggest
from yaml2torch.spec.yaml_nodes import Node, type_name

ROUNDINGS = ("nearest", "ceil")
TOP_LEVEL_KEYS = (
    "input_channel",
    "input_size",
    "depth_multiple",
    "width_multiple",
    "channel_divisor",
    "channel_rounding",
    "norm",
    "normalize",
    "backbone",
    "head",
    "modules",
    "custom_module_paths",
)
# kindle/YOLO files carry an ``anchors:`` key (detection anchors, or a place to park YAML
# anchors); it is accepted and ignored. Any other unknown key is accepted only when its value
# defines a YAML anchor (``defaults: &conv [16, 3]``), i.e. it exists to be aliased elsewhere.
ANCHOR_ONLY_KEYS = ("anchors",)
# A search file's model template or Python function: a file with one of them is a search file.
SEARCH_FILE_KEYS = ("model", "python")
_MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class NormSpec:
    eps: float = 1e-5
    momentum: float = 0.1


@dataclass(frozen=True)
class InputNormalization:
    """``normalize: {mean: [...], std: [...]}``: the model takes inputs in [0, 1] and normalizes
    them per channel as its first step (the training data's statistics, written by the search).
    ``scaled_from``: the raw pixel maximum the [0, 1] inputs were divided by (16 for digits, 255
    for image files), said in the model's docstring; not part of the architecture."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    scaled_from: float | None = None


@dataclass(frozen=True)
class RowSpec:
    """One row, in either origin form, before lowering."""

    index: int
    sources: tuple[int, ...]  # as written: -1, absolute or negative indices
    repeat: int
    module: str
    args: tuple[Node, ...]
    kwargs: dict[str, Node]
    kwarg_locs: dict[str, Location]  # where each kwarg's key stands
    in_head: bool
    loc: Location
    module_loc: Location
    repeat_loc: Location
    source_loc: Location


@dataclass(frozen=True)
class ModelSpec:
    path: str
    base_dir: Path
    input_channel: int
    input_size: tuple[int, int] | None
    depth_multiple: float
    width_multiple: float
    channel_divisor: int
    channel_rounding: str
    norm: NormSpec
    rows: tuple[RowSpec, ...]
    modules: tuple[str, ...]
    text: str  # the source text, hashed into the provenance header
    module_locs: tuple[Location, ...] = ()  # where each ``modules:`` entry stands
    # ultralytics model files (yaml2torch.spec.ultralytics); the defaults are our own dialect
    dialect: str = "yaml2torch"
    max_channels: int | None = None  # channels are capped at this before width scaling
    scale: str = ""  # the ultralytics scale letter (C3k2 reads it)
    activation: str = ""  # the blocks' default activation ("" = each block's own)
    options: str = ""  # command-line options that shaped the spec (--scale, --nc), for the header
    normalize: InputNormalization | None = None  # input preprocessing inside the model

    def with_input_size(self, size: tuple[int, int]) -> ModelSpec:
        """The spec with ``input_size`` replaced (``summary --input-size H W``)."""
        if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size):
            raise SpecError(None, f"--input-size must be two positive ints H W, got {' '.join(map(str, size))}")
        return replace(self, input_size=(size[0], size[1]))


def parse_model_spec(
    root: Node, filename: str, base_dir: Path, text: str, diagnostics: Diagnostics | None = None
) -> ModelSpec:
    """A yaml2torch model spec (the mapping ``root``); ``yaml2torch.spec.load`` picks the dialect."""
    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    if not root.is_map:
        raise SpecError(root.loc, f"a model spec must be a mapping, not {type_name(root)}")
    fields = root.mapping()
    _check_top_level_keys(root, fields)
    input_channel = expect_int(fields["input_channel"], "input_channel", minimum=1)
    input_size = parse_input_size(fields.get("input_size"))
    depth = expect_positive_float(fields["depth_multiple"], "depth_multiple") if "depth_multiple" in fields else 1.0
    width = expect_positive_float(fields["width_multiple"], "width_multiple") if "width_multiple" in fields else 1.0
    divisor = expect_int(fields["channel_divisor"], "channel_divisor", minimum=1) if "channel_divisor" in fields else 8
    rounding = _rounding(fields.get("channel_rounding"))
    norm = parse_norm(fields["norm"]) if "norm" in fields and fields["norm"].value is not None else NormSpec()
    normalize = None
    if "normalize" in fields and fields["normalize"].value is not None:
        normalize = parse_normalize(fields["normalize"], input_channel)
    rows: list[RowSpec] = []
    for section in ("backbone", "head"):
        if section not in fields or (section == "head" and fields[section].value is None):
            continue
        for row_node in expect_list(fields[section], section):
            rows.append(parse_row(row_node, len(rows), section == "head", diagnostics))
    if not rows:
        raise SpecError(fields["backbone"].loc, "the backbone has no rows")
    modules, module_locs = _modules(fields)
    return ModelSpec(
        path=filename,
        base_dir=base_dir,
        input_channel=input_channel,
        input_size=input_size,
        depth_multiple=depth,
        width_multiple=width,
        channel_divisor=divisor,
        channel_rounding=rounding,
        norm=norm,
        rows=tuple(rows),
        modules=modules,
        text=text,
        module_locs=module_locs,
        normalize=normalize,
    )


def _check_top_level_keys(root: Node, fields: dict[str, Node]) -> None:
    key_locs = root.key_locs or {}
    for key, value in fields.items():
        if key not in TOP_LEVEL_KEYS and key not in ANCHOR_ONLY_KEYS and not value.defines_anchor:
            raise SpecError(
                key_locs[key],
                f"unknown top-level key {key!r}"
                + (
                    _search_file_hint(root, fields)
                    or suggest(key, TOP_LEVEL_KEYS)
                    or f"; expected one of {', '.join(TOP_LEVEL_KEYS)}, or a key whose value defines a YAML anchor"
                ),
            )
    if "modules" in fields and "custom_module_paths" in fields:
        raise SpecError(key_locs["custom_module_paths"], "'custom_module_paths' is an alias of 'modules'; give only one")
    if "input_channel" not in fields:
        raise SpecError(root.loc, "missing required key 'input_channel'")
    if "backbone" not in fields:
        raise SpecError(root.loc, "missing required key 'backbone'")


def _search_file_hint(root: Node, fields: dict[str, Node]) -> str:
    """For a search file given where a model spec goes (``compile digits.yaml``): what to run instead."""
    given = next((key for key in SEARCH_FILE_KEYS if key in fields), None)
    if given is None or "backbone" in fields:
        return ""
    return f": {root.loc.file} is a search file (it has {given}:), not a model spec; run it with 'yaml2torch search {root.loc.file}'"


def _rounding(node: Node | None) -> str:
    if node is None:
        return "nearest"
    rounding = expect_str(node, "channel_rounding")
    if rounding not in ROUNDINGS:
        raise SpecError(node.loc, f"channel_rounding must be one of {', '.join(ROUNDINGS)}{suggest(rounding, ROUNDINGS)}")
    return rounding


def _modules(fields: dict[str, Node]) -> tuple[tuple[str, ...], tuple[Location, ...]]:
    module_key = "modules" if "modules" in fields else "custom_module_paths"
    if module_key not in fields or fields[module_key].value is None:
        return (), ()
    entries = expect_list(fields[module_key], module_key)
    return tuple(expect_module_path(item, module_key) for item in entries), tuple(item.loc for item in entries)


def parse_input_size(node: Node | None) -> tuple[int, int] | None:
    """``input_size: 32`` or ``[H, W]``; absent or null means unknown."""
    if node is None or node.value is None:
        return None
    if isinstance(node.value, int) and not isinstance(node.value, bool):
        size = expect_int(node, "input_size", minimum=1)
        return (size, size)
    items = expect_list(node, "input_size")
    if len(items) != 2:
        raise SpecError(node.loc, f"input_size must be [H, W], got {len(items)} values")
    return (expect_int(items[0], "input_size H", minimum=1), expect_int(items[1], "input_size W", minimum=1))


def parse_norm(node: Node) -> NormSpec:
    if not node.is_map:
        raise SpecError(node.loc, f"norm must be a mapping like {{eps: 0.001, momentum: 0.01}}, not {type_name(node)}")
    values = node.mapping()
    allowed = ("eps", "momentum")
    for key in values:
        if key not in allowed:
            raise SpecError(node.key_loc(key), f"unknown norm key {key!r}{suggest(key, allowed)}; expected eps, momentum")
    eps = expect_float(values["eps"], "norm.eps") if "eps" in values else 1e-5
    momentum = expect_float(values["momentum"], "norm.momentum") if "momentum" in values else 0.1
    if eps <= 0:
        raise SpecError(values["eps"].loc, "norm.eps must be positive")
    if not 0 <= momentum <= 1:
        raise SpecError(values["momentum"].loc, "norm.momentum must be between 0 and 1")
    return NormSpec(eps, momentum)


def parse_normalize(node: Node, channels: int) -> InputNormalization:
    """Per-channel mean and std, one finite number each per input channel (std > 0)."""
    example = "normalize: {mean: [0.5], std: [0.25]}"
    if not node.is_map:
        raise SpecError(node.loc, f"normalize must be a mapping like {example}, not {type_name(node)}")
    values: dict[str, Node] = node.value  # type: ignore[assignment]  # is_map: a dict of nodes
    keys = ("mean", "std", "scaled_from")
    for key in values:
        if key not in keys:
            raise SpecError((node.key_locs or {})[key], f"unknown normalize key {key!r}{suggest(key, keys)}")
    found: dict[str, tuple[float, ...]] = {}
    for key in ("mean", "std"):
        if key not in values:
            raise SpecError(node.loc, f"normalize needs {key!r} ({example})")
        items = expect_list(values[key], f"normalize.{key}")
        if len(items) != channels:
            raise SpecError(values[key].loc, f"normalize.{key} has {len(items)} values; input_channel is {channels}")
        numbers = tuple(expect_float(item, f"normalize.{key}") for item in items)
        for item, number in zip(items, numbers):
            if not math.isfinite(number) or (key == "std" and number <= 0):
                raise SpecError(item.loc, f"normalize.{key} values must be finite{' and positive' if key == 'std' else ''}")
        found[key] = numbers
    scaled = values.get("scaled_from")
    scaled_from = None if scaled is None or scaled.value is None else expect_positive_float(scaled, "normalize.scaled_from")
    return InputNormalization(found["mean"], found["std"], scaled_from)


def parse_row(node: Node, index: int, in_head: bool, diagnostics: Diagnostics) -> RowSpec:
    if not node.is_seq:
        raise SpecError(
            node.loc,
            f"a row must be a list [repeat, Module, args] or [from, repeat, Module, args, {{kwargs}}], not {type_name(node)}",
        )
    items = node.sequence()
    if len(items) == 3:
        source_node = None
        repeat_node, module_node, args_node = items
        kwargs_node = None
    elif len(items) in (4, 5):
        source_node, repeat_node, module_node, args_node = items[:4]
        kwargs_node = items[4] if len(items) == 5 else None
    else:
        raise SpecError(
            node.loc,
            f"a row has 3 elements [repeat, Module, args] or 4-5 [from, repeat, Module, args, {{kwargs}}], got {len(items)}",
        )
    sources: tuple[int, ...] = (-1,)
    if source_node is not None:
        if source_node.is_seq:
            sources = tuple(expect_int(item, "from") for item in source_node.sequence())
            if not sources:
                raise SpecError(source_node.loc, "'from' list is empty")
        else:
            sources = (expect_int(source_node, "from"),)
    repeat = expect_int(repeat_node, "repeat", minimum=1)
    module = expect_str(module_node, "module name")
    args: tuple[Node, ...] = ()
    if args_node.value is not None:
        args = tuple(expect_list(args_node, f"{module} args"))
    kwargs: dict[str, Node] = {}
    kwarg_locs: dict[str, Location] = {}
    if kwargs_node is not None and kwargs_node.value is not None:
        if not kwargs_node.is_map:
            raise SpecError(kwargs_node.loc, f"kwargs must be a mapping, not {type_name(kwargs_node)}")
        kwargs = dict(kwargs_node.mapping())
        kwarg_locs = dict(kwargs_node.key_locs or {})
    return RowSpec(
        index=index,
        sources=sources,
        repeat=repeat,
        module=module,
        args=args,
        kwargs=kwargs,
        kwarg_locs=kwarg_locs,
        in_head=in_head,
        loc=node.loc,
        module_loc=module_node.loc,
        repeat_loc=repeat_node.loc,
        source_loc=source_node.loc if source_node is not None else node.loc,
    )


# --- typed scalar readers -------------------------------------------------------------


def expect_int(node: Node, what: str, minimum: int | None = None) -> int:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(node.loc, f"{what} must be an int, not {type_name(node)} ({value!r})")
    if minimum is not None and value < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise SpecError(node.loc, f"{what} must be {bound}, got {value}")
    return value


def expect_float(node: Node, what: str) -> float:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(node.loc, f"{what} must be a number, not {type_name(node)} ({value!r})")
    if not math.isfinite(value):
        raise SpecError(node.loc, f"{what} must be finite")
    return float(value)


def expect_positive_float(node: Node, what: str) -> float:
    value = expect_float(node, what)
    if value <= 0:
        raise SpecError(node.loc, f"{what} must be positive, got {value}")
    return value


def expect_module_path(node: Node, what: str) -> str:
    """A plugin's import path: dotted identifiers only (no relative or file paths)."""
    path = expect_str(node, what)
    if not _MODULE_PATH.match(path) or any(keyword.iskeyword(part) for part in path.split(".")):
        raise SpecError(node.loc, f"{what} entry {path!r} is not a Python import path like 'my_pkg.blocks'")
    return path


def expect_str(node: Node, what: str) -> str:
    if not isinstance(node.value, str):
        raise SpecError(node.loc, f"{what} must be a string, not {type_name(node)}")
    return node.value


def expect_list(node: Node, what: str) -> list[Node]:
    if not node.is_seq:
        raise SpecError(node.loc, f"{what} must be a list, not {type_name(node)}")
    return node.sequence()

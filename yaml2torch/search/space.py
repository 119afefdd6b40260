"""The search-space language: located YAML with choice nodes -> sampled, still-located values.

A search file is ordinary YAML in which any value may be replaced by a *choice node*, a
mapping with one of the reserved keys below:

- ``{choice: [a, b, c]}``: categorical; options may hold nested choices (conditional).
- ``{choice: {Label: value, ...}}``: named branches; the label is the parameter value.
- ``{int: [low, high], step: 1, log: false}`` and ``{float: [low, high], step: null, log: false}``.
- ``{cells: {...}}`` (rows only): a cell repeated N1 <= N2 <= ... times between reduction cells.
- ``{per_stage: [v1, v2, ...]}`` (inside cells only): the value for the current stage.

Each choice gets an Optuna parameter name from its YAML path (``backbone.2.args.0``,
``train.optimizer.Adam.lr``) unless it carries ``name:``. Sampling returns ``Node`` trees whose
sampled scalars carry the choice node's location, so later checks report the search file's lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from yaml2torch.errors import Location, SpecError, suggest
from yaml2torch.spec.yaml_nodes import Node, type_name

if TYPE_CHECKING:
    import optuna

CHOICE_KEYS = ("choice", "int", "float")
RESERVED_KEYS = CHOICE_KEYS + ("cells", "per_stage")
RANGE_OPTIONS = ("step", "log", "name")  # the other keys of an int/float node (a choice takes name only)
PASS = "Pass"
# Row element roles, for readable parameter names.
ROW_ROLES = {
    3: ("repeat", "module", "args"),
    4: ("from", "repeat", "module", "args"),
    5: ("from", "repeat", "module", "args", "kwargs"),
}
CELL_KEYS = ("stages", "repeat", "normal", "reduction", "share")

Label = str | int | float | bool | None


# --- the parsed space ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fixed:
    """A subtree without choices: sampled as itself."""

    node: Node


@dataclass(frozen=True)
class MapSpace:
    node: Node
    items: tuple[tuple[str, SpaceNode], ...]


@dataclass(frozen=True)
class SeqSpace:
    node: Node
    items: tuple[SpaceNode, ...]


@dataclass(frozen=True)
class RowsSpace:
    """A list of rows (backbone, head, a cell): rows sampled to Pass/null are dropped, cells expand."""

    node: Node
    items: tuple[SpaceNode, ...]


@dataclass(frozen=True)
class Categorical:
    path: tuple[str, ...]
    explicit_name: str | None
    labels: tuple[Label, ...]
    options: tuple[SpaceNode, ...]
    loc: Location


@dataclass(frozen=True)
class IntRange:
    path: tuple[str, ...]
    explicit_name: str | None
    low: int
    high: int
    step: int
    log: bool
    loc: Location


@dataclass(frozen=True)
class FloatRange:
    path: tuple[str, ...]
    explicit_name: str | None
    low: float
    high: float
    step: float | None
    log: bool
    loc: Location


@dataclass(frozen=True)
class PerStage:
    items: tuple[SpaceNode, ...]
    loc: Location


@dataclass(frozen=True)
class Cells:
    path: tuple[str, ...]
    stages: int
    repeat_low: int
    repeat_high: int
    normal: RowsSpace
    reduction: RowsSpace | None
    share: bool
    loc: Location


SpaceNode = Fixed | MapSpace | SeqSpace | RowsSpace | Categorical | IntRange | FloatRange | PerStage | Cells


# --- where sampled values come from -----------------------------------------------------------


class ParamSource(Protocol):
    """An Optuna trial, or a deterministic walker for checking a space without a study."""

    def categorical(self, name: str, labels: tuple[Label, ...]) -> Label: ...

    def integer(self, name: str, low: int, high: int, step: int, log: bool) -> int: ...

    def real(self, name: str, low: float, high: float, step: float | None, log: bool) -> float: ...


@dataclass
class TrialParams:
    """Adapter over an ``optuna.Trial``; a name asked twice in one trial returns one value."""

    trial: optuna.Trial
    values: dict[str, object] = field(default_factory=dict)

    def categorical(self, name: str, labels: tuple[Label, ...]) -> Label:
        if name not in self.values:
            self.values[name] = self.trial.suggest_categorical(name, labels)
        return self.values[name]  # type: ignore[return-value]  # a name always asks for one kind of value

    def integer(self, name: str, low: int, high: int, step: int, log: bool) -> int:
        if name not in self.values:
            self.values[name] = self.trial.suggest_int(name, low, high, step=step, log=log)
        return self.values[name]  # type: ignore[return-value]  # a name always asks for one kind of value

    def real(self, name: str, low: float, high: float, step: float | None, log: bool) -> float:
        if name not in self.values:
            self.values[name] = self.trial.suggest_float(name, low, high, step=step, log=log)
        return self.values[name]  # type: ignore[return-value]  # a name always asks for one kind of value


@dataclass
class WalkParams:
    """Pass ``k`` of a static check: option ``k mod n`` of every choice, alternating low/high."""

    k: int
    values: dict[str, object] = field(default_factory=dict)

    def categorical(self, name: str, labels: tuple[Label, ...]) -> Label:
        return self.values.setdefault(name, labels[self.k % len(labels)])  # type: ignore[return-value]  # as in TrialParams

    def integer(self, name: str, low: int, high: int, step: int, log: bool) -> int:
        return self.values.setdefault(name, low if self.k % 2 == 0 else low + (high - low) // step * step)  # type: ignore[return-value]  # as in TrialParams

    def real(self, name: str, low: float, high: float, step: float | None, log: bool) -> float:
        return self.values.setdefault(name, low if self.k % 2 == 0 else high)  # type: ignore[return-value]  # as in TrialParams


def walk_passes(space: SpaceNode) -> int:
    """How many WalkParams passes visit every option of every categorical at least once."""
    widest = 2
    stack: list[object] = [space]
    while stack:
        item = stack.pop()
        if isinstance(item, Categorical):
            widest = max(widest, len(item.labels))
            stack.extend(item.options)
        elif isinstance(item, (MapSpace,)):
            stack.extend(child for _, child in item.items)
        elif isinstance(item, (SeqSpace, RowsSpace, PerStage)):
            stack.extend(item.items)
        elif isinstance(item, Cells):
            stack.append(item.normal)
            if item.reduction is not None:
                stack.append(item.reduction)
    return widest


# --- parsing ------------------------------------------------------------------------------


@dataclass
class _Names:
    """Explicitly named parameters seen so far: one name must mean one distribution."""

    seen: dict[str, tuple[object, Location]] = field(default_factory=dict)

    def claim(self, name: str, distribution: object, loc: Location) -> None:
        if name in self.seen and self.seen[name][0] != distribution:
            first = self.seen[name][1]
            raise SpecError(loc, f"parameter name {name!r} is already used with a different range (line {first.line})")
        self.seen.setdefault(name, (distribution, loc))


@dataclass(frozen=True)
class _Ctx:
    names: _Names
    stages: int | None = None  # inside a cells node: how many stages (per_stage length)


def parse_value(node: Node, path: tuple[str, ...], names: _Names | None = None, stages: int | None = None) -> SpaceNode:
    """Parse any value of the search file (training settings, model top-level keys, args)."""
    return _value(node, path, _Ctx(names or _Names(), stages))


def parse_rows(node: Node, path: tuple[str, ...], names: _Names | None = None) -> RowsSpace:
    return _rows(node, path, _Ctx(names or _Names()))


def new_name_table() -> _Names:
    return _Names()


def _is_special(node: Node) -> str | None:
    if not node.is_map:
        return None
    keys = [key for key in node.mapping() if key in RESERVED_KEYS]
    if len(keys) > 1:
        raise SpecError(node.key_loc(keys[1]), f"a mapping can hold only one of {', '.join(RESERVED_KEYS)}; found {keys[0]!r} and {keys[1]!r}")
    return keys[0] if keys else None


def _value(node: Node, path: tuple[str, ...], ctx: _Ctx) -> SpaceNode:
    kind = _is_special(node)
    if kind == "cells":
        raise SpecError(node.loc, "'cells' may stand only as a row of backbone, head or a cell")
    if kind == "per_stage":
        return _per_stage(node, path, ctx)
    if kind is not None:
        return _choice(node, kind, path, ctx, _value)
    if node.is_map:
        items = tuple((key, _value(child, path + (key,), ctx)) for key, child in node.mapping().items())
        if all(isinstance(child, Fixed) for _, child in items):
            return Fixed(node)
        return MapSpace(node, items)
    if node.is_seq:
        seq = tuple(_value(child, path + (str(i),), ctx) for i, child in enumerate(node.sequence()))
        if all(isinstance(child, Fixed) for child in seq):
            return Fixed(node)
        return SeqSpace(node, seq)
    return Fixed(node)


def _rows(node: Node, path: tuple[str, ...], ctx: _Ctx) -> RowsSpace:
    if not node.is_seq:
        raise SpecError(node.loc, f"{'.'.join(path) or 'rows'} must be a list of rows, not {type_name(node)}")
    return RowsSpace(node, tuple(_row(child, path + (str(i),), ctx) for i, child in enumerate(node.sequence())))


def _row(node: Node, path: tuple[str, ...], ctx: _Ctx) -> SpaceNode:
    kind = _is_special(node)
    if kind == "cells":
        return _cells(node, path, ctx)
    if kind in CHOICE_KEYS:
        return _choice(node, kind, path, ctx, _row)
    if node.is_seq and len(node.sequence()) in ROW_ROLES:
        roles = ROW_ROLES[len(node.sequence())]
        module = node.sequence()[roles.index("module")].value
        items: list[SpaceNode] = []
        for role, child in zip(roles, node.sequence()):
            if role == "args" and child.is_seq:
                # positional args are named after the block's signature: backbone.3.Conv.c
                names = _arg_names(module)
                args = [_value(v, path + ((names[i],) if i < len(names) else ("args", str(i))), ctx) for i, v in enumerate(child.sequence())]
                items.append(Fixed(child) if all(isinstance(a, Fixed) for a in args) else SeqSpace(child, tuple(args)))
            elif role == "kwargs" and child.is_map and _is_special(child) is None:
                # kwargs are named by their key directly: backbone.3.stride
                kw = tuple((key, _value(v, path + (key,), ctx)) for key, v in child.mapping().items())
                items.append(Fixed(child) if all(isinstance(v, Fixed) for _, v in kw) else MapSpace(child, kw))
            else:
                items.append(_value(child, path + (role,), ctx))
        if all(isinstance(child, Fixed) for child in items):
            return Fixed(node)
        return SeqSpace(node, tuple(items))
    # Pass/null, or a malformed row: the model spec parser reports the latter after sampling.
    return _value(node, path, ctx)


def _arg_names(module: object) -> tuple[str, ...]:
    """The catalogue's argument names of a built-in block ('' when unknown: index names then)."""
    from yaml2torch.blocks import builtin_blocks

    block = builtin_blocks().get(module) if isinstance(module, str) else None
    return tuple(arg.name for arg in block.signature) if block is not None else ()


def _options(node: Node, allowed: tuple[str, ...], kind: str) -> dict[str, Node]:
    fields = node.mapping()
    for key in fields:
        if key not in allowed:
            raise SpecError(node.key_loc(key), f"unknown key {key!r} in a {kind!r} node{suggest(key, allowed)}; allowed: {', '.join(allowed)}")
    return fields


def _name(fields: dict[str, Node]) -> str | None:
    if "name" not in fields:
        return None
    node = fields["name"]
    if not isinstance(node.value, str) or not node.value.strip():
        raise SpecError(node.loc, f"name must be a non-empty string, not {type_name(node)}")
    return node.value


def _bool(node: Node, what: str) -> bool:
    if not isinstance(node.value, bool):
        raise SpecError(node.loc, f"{what} must be true or false, not {type_name(node)}")
    return node.value


def _number(node: Node, what: str, integer: bool) -> float:
    value = node.value
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not isinstance(value, (int, float)):
        raise SpecError(
            node.loc, f"{what} must be {'an int' if integer else 'a number'}, not {type_name(node)}"
            + (f" ({value!r})" if isinstance(value, (str, int, float)) else "")
        )
    if not math.isfinite(value):
        raise SpecError(node.loc, f"{what} must be finite")
    return value


def _choice(node: Node, kind: str, path: tuple[str, ...], ctx: _Ctx, parse_option) -> SpaceNode:
    if kind == "choice":
        fields = _options(node, ("choice", "name"), kind)
        name = _name(fields)
        body = fields["choice"]
        if body.is_seq:
            options_nodes = body.sequence()
            if not options_nodes:
                raise SpecError(body.loc, "a choice needs at least one option")
            labels: list[Label] = []
            options = []
            scalar = all(not (o.is_seq or o.is_map) for o in options_nodes)
            for i, option in enumerate(options_nodes):
                label: Label = option.value if scalar else i  # type: ignore[assignment]  # scalar: not a list or mapping
                if scalar and label in labels and type(labels[labels.index(label)]) is type(label):
                    raise SpecError(option.loc, f"option {label!r} appears twice in this choice")
                labels.append(label)
                options.append(parse_option(option, path + (str(label),), ctx))
        elif body.is_map:
            if not body.value:
                raise SpecError(body.loc, "a choice needs at least one option")
            labels = list(body.mapping())
            options = [parse_option(option, path + (key,), ctx) for key, option in body.mapping().items()]
        else:
            raise SpecError(
                body.loc, f"choice takes a list of options or a mapping of named branches, not {type_name(body)}"
            )
        categorical = Categorical(path, name, tuple(labels), tuple(options), node.loc)
        _claim(ctx, categorical, ("categorical", tuple(labels)))
        return categorical

    integer = kind == "int"
    fields = _options(node, (kind, *RANGE_OPTIONS), kind)
    name = _name(fields)
    bounds = fields[kind]
    if not bounds.is_seq or len(bounds.sequence()) != 2:
        raise SpecError(bounds.loc, f"{kind} takes [low, high], got {type_name(bounds)}")
    low_node, high_node = bounds.sequence()
    low = _number(low_node, "low", integer)
    high = _number(high_node, "high", integer)
    if low > high:
        raise SpecError(bounds.loc, f"low ({low}) is above high ({high})")
    log = _bool(fields["log"], "log") if "log" in fields else False
    step = None
    if "step" in fields and fields["step"].value is not None:
        step = _number(fields["step"], "step", integer)
        if step <= 0:
            raise SpecError(fields["step"].loc, "step must be positive")
        if log and (not integer or step != 1):
            raise SpecError(fields["step"].loc, "step and log: true cannot be combined")
    if log and low <= 0:
        raise SpecError(low_node.loc, f"log: true needs low > 0, got {low}")
    if integer:
        result: IntRange | FloatRange = IntRange(path, name, int(low), int(high), int(step or 1), log, node.loc)
    else:
        if step is not None and abs(round((high - low) / step) * step - (high - low)) > 1e-9 * max(1.0, abs(high)):
            raise SpecError(fields["step"].loc, f"the range {high - low} is not a multiple of step {step}")
        result = FloatRange(path, name, float(low), float(high), None if step is None else float(step), log, node.loc)
    _claim(ctx, result, (kind, low, high, step, log))
    return result


def _claim(ctx: _Ctx, node: Categorical | IntRange | FloatRange, distribution: object) -> None:
    ctx.names.claim(node.explicit_name or ".".join(node.path), distribution, node.loc)


def _per_stage(node: Node, path: tuple[str, ...], ctx: _Ctx) -> SpaceNode:
    fields = _options(node, ("per_stage",), "per_stage")
    body = fields["per_stage"]
    if ctx.stages is None:
        raise SpecError(node.loc, "per_stage may stand only inside a cells node")
    if not body.is_seq or len(body.sequence()) != ctx.stages:
        raise SpecError(body.loc, f"per_stage needs a list of {ctx.stages} values (one per stage)")
    return PerStage(tuple(_value(v, path + (f"stage{i + 1}",), ctx) for i, v in enumerate(body.sequence())), node.loc)


def _cells(node: Node, path: tuple[str, ...], ctx: _Ctx) -> SpaceNode:
    outer = _options(node, ("cells",), "cells")
    body = outer["cells"]
    if not body.is_map:
        raise SpecError(body.loc, f"cells takes a mapping ({', '.join(CELL_KEYS)}), not {type_name(body)}")
    fields = _options(body, CELL_KEYS, "cells")
    if ctx.stages is not None:
        raise SpecError(node.loc, "cells cannot be nested")
    for key in ("stages", "repeat", "normal"):
        if key not in fields:
            raise SpecError(body.loc, f"cells needs {key!r}")
    stages = int(_number(fields["stages"], "stages", True))
    if stages < 1:
        raise SpecError(fields["stages"].loc, "stages must be positive")
    repeat = fields["repeat"]
    high_node = repeat
    if isinstance(repeat.value, int) and not isinstance(repeat.value, bool):
        low = high = repeat.value
    elif _is_special(repeat) == "int":
        bounds = _options(repeat, ("int",), "repeat")["int"]
        if not bounds.is_seq or len(bounds.sequence()) != 2:
            raise SpecError(bounds.loc, "repeat takes {int: [low, high]}")
        low, high = (int(_number(b, "repeat", True)) for b in bounds.sequence())
        high_node = bounds.sequence()[1]
    else:
        raise SpecError(repeat.loc, "repeat must be an int or {int: [low, high]} (N per stage, non-decreasing)")
    if low < 1 or low > high:
        raise SpecError(repeat.loc, f"repeat needs 1 <= low <= high, got [{low}, {high}]")
    _check_cell_rows(fields, stages, high, high_node)
    share = _bool(fields["share"], "share") if "share" in fields else True
    inner = _Ctx(ctx.names, stages)
    normal = _rows(fields["normal"], path + ("normal",), inner)
    reduction = _rows(fields["reduction"], path + ("reduction",), inner) if "reduction" in fields else None
    if low != high:
        ctx.names.claim(".".join(path + ("N1",)), ("int", low, high), repeat.loc)
    return Cells(path, stages, low, high, normal, reduction, share, node.loc)


def _check_cell_rows(fields: dict[str, Node], stages: int, high: int, high_node: Node) -> None:
    """The rows a cells node can expand to, refused at the stages or repeat value when they pass
    the layer limit, before anything is sampled or expanded. Each listed row counts once (a row
    that may be Pass included; the cell counts as at least one row): the limit on the expansion,
    while the model's own layer limit still counts each row's repeat after sampling."""
    from yaml2torch.spec.limits import MAX_LAYERS

    def listed(key: str) -> int:
        node = fields.get(key)
        return len(node.sequence()) if node is not None and node.is_seq else 0

    normal, reduction = max(listed("normal"), 1), listed("reduction")

    def rows(repeat: int) -> int:
        return stages * repeat * normal + (stages - 1) * reduction

    limit = f"(limit {MAX_LAYERS:,} layers after repeats and depth_multiple, sub-specs included)"
    if rows(1) > MAX_LAYERS:
        raise SpecError(
            fields["stages"].loc,
            f"stages {stages} expand the cells to at least {rows(1):,} rows, more than {MAX_LAYERS:,} {limit}",
        )
    if rows(high) > MAX_LAYERS:
        raise SpecError(
            high_node.loc,
            f"repeat {high} in {stages} stages expands the cells to up to {rows(high):,} rows, "
            f"more than {MAX_LAYERS:,} {limit}",
        )


# --- sampling -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sampling:
    params: ParamSource
    stage: int | None = None  # 0-based stage inside a cells node
    stage_tag: tuple[int, str] | None = None  # (path length of the cells node, "stageK") when not shared


def _param_name(node: Categorical | IntRange | FloatRange, s: _Sampling) -> str:
    if node.explicit_name:
        return node.explicit_name
    path = node.path
    if s.stage_tag is not None:
        cut, tag = s.stage_tag
        path = path[:cut] + (tag,) + path[cut:]
    return ".".join(path)


def sample(space: SpaceNode, params: ParamSource) -> Node:
    return _sample(space, _Sampling(params))


def _sample(space: SpaceNode, s: _Sampling) -> Node:
    if isinstance(space, Fixed):
        return space.node
    if isinstance(space, MapSpace):
        return Node({key: _sample(child, s) for key, child in space.items}, space.node.loc, space.node.key_locs)
    if isinstance(space, SeqSpace):
        return Node([_sample(child, s) for child in space.items], space.node.loc)
    if isinstance(space, RowsSpace):
        rows: list[Node] = []
        for item in space.items:
            if isinstance(item, Cells):
                rows.extend(_sample_cells(item, s))
                continue
            row = _sample(item, s)
            if not is_dropped(row):
                rows.append(row)
        return Node(rows, space.node.loc)
    if isinstance(space, Categorical):
        label = s.params.categorical(_param_name(space, s), space.labels)
        return _sample(space.options[space.labels.index(label)], s)
    if isinstance(space, IntRange):
        value = s.params.integer(_param_name(space, s), space.low, space.high, space.step, space.log)
        return Node(int(value), space.loc)
    if isinstance(space, FloatRange):
        real = s.params.real(_param_name(space, s), space.low, space.high, space.step, space.log)
        return Node(float(real), space.loc)
    if isinstance(space, PerStage):
        assert s.stage is not None
        return _sample(space.items[s.stage], s)
    raise TypeError(f"cannot sample {type(space).__name__} here")


def is_dropped(row: Node) -> bool:
    """A row sampled to null or Pass (or a row whose module is Pass) is left out."""
    if row.value is None or row.value == PASS:
        return True
    if row.is_seq and len(row.sequence()) in ROW_ROLES:
        module = row.sequence()[ROW_ROLES[len(row.sequence())].index("module")]
        return module.value == PASS
    return False


def stage_repeats(cells: Cells, params: ParamSource, tag_path: str) -> list[int]:
    """N per stage, non-decreasing: N1 in [low, high], then N_k = min(N_{k-1} + dN_k, high)."""
    if cells.repeat_low == cells.repeat_high:
        return [cells.repeat_low] * cells.stages
    repeats = [params.integer(f"{tag_path}.N1", cells.repeat_low, cells.repeat_high, 1, False)]
    for k in range(2, cells.stages + 1):
        extra = params.integer(f"{tag_path}.dN{k}", 0, cells.repeat_high - cells.repeat_low, 1, False)
        repeats.append(min(repeats[-1] + extra, cells.repeat_high))
    return repeats


def _sample_cells(cells: Cells, s: _Sampling) -> list[Node]:
    rows: list[Node] = []
    repeats = stage_repeats(cells, s.params, ".".join(cells.path))
    cut = len(cells.path)
    for stage, count in enumerate(repeats):
        if stage > 0 and cells.reduction is not None:
            tag = None if cells.share else (cut, f"stage{stage + 1}")
            rows.extend(_sample(cells.reduction, _Sampling(s.params, stage, tag)).sequence())
        tag = None if cells.share else (cut, f"stage{stage + 1}")
        cell = _sample(cells.normal, _Sampling(s.params, stage, tag)).sequence()
        for _ in range(count):
            rows.extend(cell)
    return rows


def plain(node: Node) -> object:
    return node.plain()

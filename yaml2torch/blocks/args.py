"""Typed block arguments: each YAML arg node is checked against its declared type."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from yaml2torch.blocks.activations import Activation, parse_activation
from yaml2torch.errors import Diagnostics, Location, SpecError, suggest
from yaml2torch.spec.yaml_nodes import Node, type_name

REQUIRED = object()


class ArgType:
    """Checks one YAML node and returns the typed value."""

    description = "a value"

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Int(ArgType):
    minimum: int | None = 1

    @property
    def description(self) -> str:  # type: ignore[override]  # a computed class attribute, read the same way
        return "a positive int" if self.minimum == 1 else "an int"

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> int:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(node.loc, f"{label} must be {self.description}, not {type_name(node)} ({value!r})")
        if self.minimum is not None and value < self.minimum:
            what = "positive" if self.minimum == 1 else f">= {self.minimum}"
            raise SpecError(node.loc, f"{label} must be {what}, got {value}")
        return value


@dataclass(frozen=True)
class Float(ArgType):
    minimum: float | None = None
    maximum: float | None = None
    description = "a number"

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> float:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(node.loc, f"{label} must be a number, not {type_name(node)} ({value!r})")
        value = float(value)
        if not math.isfinite(value):
            raise SpecError(node.loc, f"{label} must be finite")
        if self.minimum is not None and value < self.minimum:
            raise SpecError(node.loc, f"{label} must be >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise SpecError(node.loc, f"{label} must be <= {self.maximum}, got {value}")
        return value


@dataclass(frozen=True)
class Bool(ArgType):
    description = "a bool"

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> bool:
        # the origin specs write flags as 0/1 as often as true/false
        if isinstance(node.value, bool):
            return node.value
        if isinstance(node.value, int) and node.value in (0, 1):
            return bool(node.value)
        raise SpecError(node.loc, f"{label} must be a bool (true/false or 0/1), not {type_name(node)} ({node.value!r})")


@dataclass(frozen=True)
class Padding(ArgType):
    """null -> same (k // 2); a bare 0 -> same too (origin quirk, warned); [0] -> a real 0."""

    description = "an int, [int] or null"

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> int | None:
        value = node.value
        if value is None:
            return None
        if isinstance(value, list):
            if len(value) != 1:
                raise SpecError(node.loc, f"{label} as a list must hold one int like [0], got {len(value)} values")
            return Int(minimum=0).parse(value[0], label, diagnostics)
        padding = Int(minimum=0).parse(node, label, diagnostics)
        if padding == 0:
            diagnostics.warn(
                node.loc,
                f"{label} 0 means 'same' padding (as in the origin formats); write [0] for no padding or null for 'same'",
            )
            return None
        return padding


@dataclass(frozen=True)
class Act(ArgType):
    description = "an activation name or null"

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> Activation | None:
        return parse_activation(node, label)


@dataclass(frozen=True)
class IntList(ArgType):
    description = "a list of positive ints"

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> tuple[int, ...]:
        if not node.is_seq or not node.value:
            raise SpecError(node.loc, f"{label} must be a non-empty list of positive ints, not {type_name(node)}")
        return tuple(Int().parse(item, label, diagnostics) for item in node.sequence())


@dataclass(frozen=True)
class IntOrList(ArgType):
    """An int, or a list of ints (for pooling kernels/strides given as pairs)."""

    minimum: int = 1
    description = "an int or a list of ints"

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> int | tuple[int, ...] | None:
        if node.value is None:
            return None
        if node.is_seq:
            return tuple(Int(self.minimum).parse(item, label, diagnostics) for item in node.sequence())
        return Int(self.minimum).parse(node, label, diagnostics)


@dataclass(frozen=True)
class Choice(ArgType):
    choices: tuple[str, ...] = ()

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> str:
        if not isinstance(node.value, str) or node.value not in self.choices:
            shown = node.value if isinstance(node.value, str) else type_name(node)
            raise SpecError(
                node.loc,
                f"{label} must be one of {', '.join(self.choices)}, got {shown!r}"
                + (suggest(node.value, self.choices) if isinstance(node.value, str) else ""),
            )
        return node.value


@dataclass(frozen=True)
class Arg:
    name: str
    type: ArgType
    default: Any = REQUIRED
    aliases: tuple[str, ...] = ()  # kwarg names from kindle/torch that mean this arg
    help: str = ""


@dataclass(frozen=True)
class BoundArgs:
    """Arg values by name, plus where each came from (for later errors)."""

    values: dict[str, Any]
    locs: dict[str, Location] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **changes: Any) -> BoundArgs:
        return BoundArgs({**self.values, **changes}, self.locs)


def bind_args(
    block_name: str,
    signature: tuple[Arg, ...],
    args: tuple[Node, ...],
    kwargs: dict[str, Node],
    kwarg_locs: dict[str, Location],
    row_loc: Location,
    diagnostics: Diagnostics,
) -> BoundArgs:
    """Bind positional args and kwargs to the signature, strictly."""
    if len(args) > len(signature):
        extra = args[len(signature)]
        names = ", ".join(a.name for a in signature) or "none"
        raise SpecError(
            extra.loc,
            f"{block_name} takes at most {len(signature)} args ({names}), got {len(args)}",
        )
    by_name: dict[str, Arg] = {}
    for arg in signature:
        for alias in (arg.name, *arg.aliases):
            by_name[alias] = arg
    values: dict[str, Any] = {}
    locs: dict[str, Location] = {}
    for arg, node in zip(signature, args):
        values[arg.name] = arg.type.parse(node, f"{block_name} arg {arg.name!r}", diagnostics)
        locs[arg.name] = node.loc
    positional = {arg.name: i for i, arg in enumerate(signature[: len(args)])}  # arg name -> its index
    kwarg_keys: dict[str, str] = {}  # arg name -> the kwarg key that set it
    for key, node in kwargs.items():
        key_loc = kwarg_locs.get(key, node.loc)
        if key not in by_name:
            raise SpecError(
                key_loc,
                f"{block_name} has no kwarg {key!r}{suggest(key, by_name)}; it takes {', '.join(sorted(by_name))}",
            )
        arg = by_name[key]
        if arg.name in positional:  # a positional arg and a kwarg for one parameter: the same guess
            raise SpecError(
                key_loc,
                f"{block_name} kwarg {key!r} sets {arg.name!r} again (already set by positional arg "
                f"{positional[arg.name]}); give it once",
            )
        if arg.name in kwarg_keys:  # two spellings of one arg: which one is meant is a guess
            raise SpecError(
                key_loc,
                f"{block_name} kwarg {key!r} sets {arg.name!r} again (already set by kwarg {kwarg_keys[arg.name]!r}); give it once",
            )
        kwarg_keys[arg.name] = key
        values[arg.name] = arg.type.parse(node, f"{block_name} kwarg {key!r}", diagnostics)
        locs[arg.name] = node.loc
    for arg in signature:
        if arg.name not in values:
            if arg.default is REQUIRED:
                raise SpecError(
                    row_loc,
                    f"{block_name} needs arg {arg.name!r} ({arg.type.description}); "
                    f"args are [{', '.join(a.name for a in signature)}]",
                )
            values[arg.name] = arg.default
            locs[arg.name] = row_loc
    return BoundArgs(values, locs)

"""IR dataclasses. Code is rendered from these; nothing here holds raw YAML strings."""

from __future__ import annotations

import keyword
import math
import re
from dataclasses import dataclass
from pathlib import Path

from yaml2torch.errors import Location

LiteralValue = int | float | bool | str | None | tuple
_DOTTED_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def check_identifier(name: str) -> str:
    """Refuse anything but a dotted Python identifier; callees and kwarg names pass here."""
    if not _DOTTED_IDENTIFIER.match(name) or any(keyword.iskeyword(p) for p in name.split(".")):
        raise ValueError(f"not a safe identifier: {name!r}")
    return name


def check_literal(value: object) -> LiteralValue:
    """Accept only plain literals whose repr() is valid, inert Python source."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite floats cannot be rendered as literals")
        return value
    if isinstance(value, (tuple, list)):
        return tuple(check_literal(item) for item in value)
    raise ValueError(f"not a literal: {type(value).__name__}")


@dataclass(frozen=True)
class Literal:
    value: LiteralValue

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_literal(self.value))


@dataclass(frozen=True)
class Call:
    """A constructor call such as ``Conv(3, 16, kernel_size=3)`` or ``nn.ReLU(inplace=True)``."""

    callee: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()

    def __post_init__(self) -> None:
        check_identifier(self.callee)
        for name, _ in self.kwargs:
            check_identifier(name)


Expr = Literal | Call


def as_expr(value: object) -> Expr:
    return value if isinstance(value, (Literal, Call)) else Literal(value)  # type: ignore[arg-type]  # Literal checks it at run time


def call(callee: str, *args: object, **kwargs: object) -> Call:
    return Call(
        callee,
        tuple(as_expr(a) for a in args),
        tuple((k, as_expr(v)) for k, v in kwargs.items()),
    )


@dataclass(frozen=True)
class Shape:
    """Per-sample tensor shape: (C, H, W) with H, W None when unknown, or (features,)."""

    dims: tuple[int | None, ...]

    @property
    def channels(self) -> int:
        return self.dims[0]  # type: ignore[return-value]  # the channel count (or features) is always known

    @property
    def spatial(self) -> tuple[int | None, int | None] | None:
        return (self.dims[1], self.dims[2]) if len(self.dims) == 3 else None

    @property
    def hw(self) -> tuple[int | None, int | None]:
        """(H, W) of an image shape; only where the shape is known to be (C, H, W)."""
        if len(self.dims) != 3:
            raise TypeError(f"expected an image shape (C, H, W), not {self}")
        return self.dims[1], self.dims[2]

    @property
    def is_image(self) -> bool:
        return len(self.dims) == 3

    @property
    def known(self) -> bool:
        return all(d is not None for d in self.dims)

    def __str__(self) -> str:
        text = ", ".join("?" if d is None else str(d) for d in self.dims)
        return f"({text},)" if len(self.dims) == 1 else f"({text})"


@dataclass(frozen=True)
class ModuleInstance:
    """One constructed nn.Module (one repeat of a row) with its analysis."""

    call: Call
    in_shape: Shape
    out_shape: Shape
    params: int
    macs: int | None  # None when the spatial size is unknown
    defines: tuple[ClassSource, ...] = ()  # classes this instance needs (YamlModule, helpers), in order


@dataclass(frozen=True)
class Layer:
    """One spec row after lowering."""

    index: int
    sources: tuple[int, ...]  # absolute row indices; -1 is the model input
    block: str  # the YAML block name, e.g. "Conv" or "nn.BatchNorm2d"
    attr: str  # attribute name in the generated Model
    summary: str  # short, rendered argument text for comments and tables
    modules: tuple[ModuleInstance, ...]
    multi_input: bool
    out_shape: Shape
    loc: Location

    @property
    def params(self) -> int:
        return sum(m.params for m in self.modules)

    @property
    def macs(self) -> int | None:
        values = [m.macs for m in self.modules]
        known = [v for v in values if v is not None]
        return sum(known) if len(known) == len(values) else None


@dataclass(frozen=True)
class ClassSource:
    """The source of one generated helper/block class, in the order it must appear."""

    name: str
    source: str


@dataclass(frozen=True)
class InputFile:
    """A file read to build the model besides the spec (``kind``), and where a spec names it."""

    path: Path
    loc: Location | None
    kind: str  # "YamlModule file" | "plugin module"


@dataclass(frozen=True)
class ModelIR:
    spec_path: str
    spec_sha256: str
    input_shape: Shape
    input_size_known: bool
    bn_eps: float
    bn_momentum: float
    layers: tuple[Layer, ...]
    classes: tuple[ClassSource, ...]
    arch_hash: str
    options: str = ""  # command-line options the spec was compiled with (--scale n --nc 10)
    # (mean, std) per input channel: the model normalizes inputs in [0, 1] first; None: it does not
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    scaled_from: float | None = None  # the raw pixel maximum inputs were divided by (docstring only)
    # the files read to build it besides the spec: YamlModule sub-specs, plugin modules (never replaced by an output)
    inputs: tuple[InputFile, ...] = ()

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int | None:
        values = [layer.macs for layer in self.layers]
        known = [v for v in values if v is not None]
        return sum(known) if len(known) == len(values) else None

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].out_shape

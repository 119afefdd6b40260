"""``nn.<Name>``: any torch.nn layer, passed through (kindle's TorchNNModuleGenerator).

torch is imported here lazily, only for specs that have ``nn.<Name>`` rows. The layer is checked
against torch.nn, its args bound to its own ``__init__`` signature, and its output shape, parameter
count and MACs found by building it on the ``meta`` device (no memory, no weights).
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from yaml2torch.blocks.args import REQUIRED, Arg, ArgType, BoundArgs
from yaml2torch.blocks.base import Block, BuildContext
from yaml2torch.errors import Diagnostics, SpecError, suggest
from yaml2torch.ir.nodes import Call, Literal, ModuleInstance, Shape
from yaml2torch.spec.yaml_nodes import Node, type_name

if TYPE_CHECKING:
    from yaml2torch.spec.model_spec import RowSpec

# Keyword arguments that would tie the standalone file to a machine or need non-literal values.
_EXCLUDED_PARAMS = {"device", "dtype"}
# Probe sizes for inputs whose spatial size is unknown: a dim that differs between the two is unknown.
_PROBE_SIZES = (64, 96)
_NOT_GIVEN = object()


@dataclass(frozen=True)
class PlainLiteral(ArgType):
    """int/float/bool/null/str, or (nested) lists of those; lists become tuples."""

    description = "a literal (int, float, bool, null, string or a list of those)"

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> Any:
        value = node.value
        if isinstance(value, list):
            return tuple(self.parse(item, label, diagnostics) for item in value)
        if isinstance(value, dict):
            raise SpecError(node.loc, f"{label} must be {self.description}, not {type_name(node)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(node.loc, f"{label} must be finite")
        return value


def torch_layer_names() -> list[str]:
    from torch import nn

    return sorted(
        name
        for name, obj in vars(nn).items()
        if isinstance(obj, type) and issubclass(obj, nn.Module) and not name.startswith("_")
    )


def torch_layer_class(name: str, loc: Any) -> type:
    """The torch.nn Module class called ``name``, or a located error with a suggestion."""
    from torch import nn

    layer = getattr(nn, name, None) if name.isidentifier() and not name.startswith("_") else None
    if not (isinstance(layer, type) and issubclass(layer, nn.Module)):
        raise SpecError(loc, f"torch.nn has no layer {name!r}{suggest(name, torch_layer_names())}")
    if issubclass(layer, nn.modules.lazy.LazyModuleMixin):
        eager = name.replace("Lazy", "", 1)
        raise SpecError(loc, f"lazy layers are not supported; use nn.{eager} (the input size is filled in for you)")
    return layer


def takes_input_size(first_param: str) -> bool:
    """kindle's rule, minus its ``inplace`` slip: the input size is prepended for in_* / num_features."""
    return first_param.startswith("in_") or first_param == "num_features"


class TorchLayer(Block):
    """Any ``torch.nn`` layer by name (``nn.Conv2d``, ``nn.ReLU``), its args passed to the layer as written.

    Instances are made per row by ``for_row`` (they know the layer).
    """

    name = "nn."

    origin = "kindle (any torch.nn layer)"
    dialects = ("yaml2torch", "ultralytics")
    torch_class: str  # set per row: nn.<Name>

    def __init__(self, layer_name: str = "", layer: type | None = None, positional: int = 0) -> None:
        self.layer_name = layer_name
        self.layer = layer
        self.torch_class = f"nn.{layer_name}"
        self.positional = positional  # how many args the row gives positionally (rendered positionally)
        params = [] if layer is None else list(inspect.signature(layer.__init__).parameters.values())[1:]  # type: ignore[misc]  # a torch.nn class's own __init__
        params = [
            p
            for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in _EXCLUDED_PARAMS
        ]
        self.prepend_input = bool(params) and takes_input_size(params[0].name)
        if self.prepend_input:
            params = params[1:]
        self.signature = tuple(
            Arg(p.name, PlainLiteral(), _NOT_GIVEN if p.default is not p.empty else REQUIRED) for p in params
        )
        self.defaults = {p.name: p.default for p in params if p.default is not p.empty}

    @classmethod
    def for_row(cls, row: RowSpec) -> TorchLayer:
        layer_name = row.module[len("nn.") :]
        return cls(layer_name, torch_layer_class(layer_name, row.module_loc), len(row.args))

    def generated_name(self) -> str:
        return self.torch_class

    def summary(self, a: BoundArgs) -> str:
        # repr() for strings: a YAML string must stay one inert token in the row comment
        parts = []
        for i, arg in enumerate(self.signature):
            value = a.values[arg.name]
            if value is _NOT_GIVEN:
                continue
            text = repr(value) if isinstance(value, str) else _short(value)
            parts.append(text if i < self.positional else f"{arg.name}={text}")
        return ", ".join(parts)

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        given = {name: value for name, value in a.values.items() if value is not _NOT_GIVEN}
        kwargs = {name: given[name] for name in list(given)[self.positional :]}
        if self.layer_name.startswith("BatchNorm"):
            # the spec's norm: defaults reach every BatchNorm (kept out when they are torch's)
            if "eps" not in given and ctx.bn_eps != self.defaults.get("eps"):
                kwargs["eps"] = ctx.bn_eps
            if "momentum" not in given and ctx.bn_momentum != self.defaults.get("momentum"):
                kwargs["momentum"] = ctx.bn_momentum
        positional = [given[arg.name] for arg in self.signature[: self.positional]]
        if self.prepend_input:
            if x.channels is None:
                raise ctx.fail(
                    f"nn.{self.layer_name} needs its input size, which is unknown here (input {x}); "
                    "set input_size or put GlobalAvgPool before Flatten"
                )
            positional.insert(0, x.channels)
        out, params, macs = self.probe(positional, kwargs, x, ctx)
        call = Call(self.torch_class, tuple(Literal(v) for v in positional), tuple((k, Literal(v)) for k, v in kwargs.items()))
        return ModuleInstance(call, x, out, params, macs)

    def probe(self, args: list[Any], kwargs: dict[str, Any], x: Shape, ctx: BuildContext) -> tuple[Shape, int, int | None]:
        """Build the layer on the meta device and run it: output shape, parameter count, MACs."""
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        shown = f"nn.{self.layer_name}({', '.join([*map(repr, args), *(f'{k}={v!r}' for k, v in kwargs.items())])})"
        try:
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's construction warnings are not the user's spec errors
                module = self.layer(*args, **kwargs)  # type: ignore[misc]  # for_row always sets the layer
        except Exception as exc:  # noqa: BLE001 - any failure is the spec's: report it at the row
            raise ctx.fail(f"{shown} cannot be built: {type(exc).__name__}: {exc}") from None
        module.eval()  # BatchNorm on one sample, Dropout off
        params = sum(p.numel() for p in module.parameters())
        sizes = [x.dims] if x.known else [tuple(size if d is None else d for d in x.dims) for size in _PROBE_SIZES]
        results = []
        for dims in sizes:
            sample = torch.empty((1, *dims), device="meta")  # type: ignore[arg-type]  # probe dims are all ints
            counter = FlopCounterMode(display=False)
            try:
                with counter, torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = module(sample)
            except Exception as exc:  # noqa: BLE001
                raise ctx.fail(f"{shown} fails on input {x}: {type(exc).__name__}: {exc}") from None
            if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[0] != 1:
                raise ctx.fail(f"{shown} must return one tensor with a batch dim; got {type(out).__name__}")
            results.append((tuple(out.shape[1:]), counter.get_total_flops() // 2))
        dims = tuple(d if all(r[0][i] == d for r in results) else None for i, d in enumerate(results[0][0]))
        if any(len(r[0]) != len(dims) for r in results):
            raise ctx.fail(f"{shown} changes its output rank with the input size")
        macs = results[0][1] if all(r[1] == results[0][1] for r in results) else None
        return Shape(dims), params, macs


def _short(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return repr(value)

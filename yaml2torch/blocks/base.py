"""The Block contract: one catalogue entry = args + class source + shape/params/MACs rules.

A block subclass lives in its own module under ``yaml2torch.blocks`` (or in a plugin module)
and is found by discovery, so adding one touches nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from yaml2torch.blocks.args import Arg, BoundArgs
from yaml2torch.errors import Location, SpecError
from yaml2torch.ir.nodes import Call, ModuleInstance, Shape, as_expr

if TYPE_CHECKING:
    from jinja2 import Environment

    from yaml2torch.spec.model_spec import RowSpec


@dataclass(frozen=True)
class BuildContext:
    """What a block may know while building one instance."""

    loc: Location  # the row, for errors
    bn_eps: float
    bn_momentum: float
    make_divisible: Any  # callable(int|float) -> int, with the spec's divisor and rounding
    loader: Any = None  # SubSpecLoader for YamlModule; None elsewhere
    # the row's scaling, for blocks that lower a sub-spec (YamlModule)
    width_multiple: float = 1.0
    channel_divisor: int = 8
    channel_rounding: str = "nearest"
    # ultralytics model files: the scale letter (C3k2 follows it) and the default activation
    scale: str = ""
    default_act: str = ""

    def fail(self, message: str) -> SpecError:
        return SpecError(self.loc, message)


class Block:
    """Base class of catalogue entries. Subclasses set the ClassVars and ``build``."""

    name: ClassVar[str]  # the YAML name
    class_name: ClassVar[str] = ""  # the generated class; defaults to ``name``
    # signature and torch_class: set on the class, except by per-row blocks (TorchLayer, YamlModule)
    signature: tuple[Arg, ...] = ()
    template: ClassVar[str | None] = None  # file under templates/blocks/
    requires: ClassVar[tuple[str, ...]] = ()  # helper templates that must come first
    width_scaled: ClassVar[bool] = False  # arg "c" is width-scaled and rounded
    stride_on: ClassVar[str | None] = None  # "first"/"last": which repeat keeps arg "s"
    multi_input: ClassVar[bool] = False  # forward takes a list of tensors
    dialects: ClassVar[tuple[str, ...]] = ("yaml2torch",)  # the spec dialects whose files may use it
    image_input: ClassVar[bool] = False  # needs a (C, H, W) input; lowering checks it
    torch_class: str | None = None  # rendered as this torch.nn class, no template
    ctor_defaults: ClassVar[dict[str, Any]] = {}  # generated __init__ defaults, omitted when equal
    origin: ClassVar[str] = ""  # where the block comes from (kindle, YOLOv5, torchvision, ...): `yaml2torch blocks`
    twin_of: ClassVar[str] = ""  # the reference class it matches exactly (state_dict by position), if any

    @classmethod
    def for_row(cls, row: RowSpec) -> Block:
        """The block object for one row (``nn.<Name>`` rows need the row's layer name)."""
        return cls()

    def generated_name(self) -> str:
        return self.class_name or self.name

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        """One module instance from bound args and the input shape."""
        raise NotImplementedError

    def build_multi(self, a: BoundArgs, xs: tuple[Shape, ...], ctx: BuildContext) -> ModuleInstance:
        """For ``multi_input`` blocks: one instance from several input shapes."""
        raise NotImplementedError

    def expand(self, a: BoundArgs, repeat: int, x: Shape, ctx: BuildContext) -> list[ModuleInstance]:
        """The instances for ``repeat`` copies; each reads the previous one's output."""
        modules = []
        for i in range(repeat):
            args = a
            if self.stride_on and repeat > 1:
                keeps_stride = i == 0 if self.stride_on == "first" else i == repeat - 1
                if not keeps_stride:
                    args = a.replace(s=1)
            module = self.build(args, x, ctx)
            modules.append(module)
            x = module.out_shape
        return modules

    def summary(self, a: BoundArgs) -> str:
        """Short argument text for comments: the resolved args, trailing defaults dropped."""
        values = [a.values[arg.name] for arg in self.signature]
        while values and _same(self.signature[len(values) - 1].default, values[-1]):
            values.pop()
        return ", ".join(_short(value) for value in values)

    def class_source(self, env: Environment) -> str | None:
        """The generated class; None for blocks rendered as plain ``nn.<Layer>`` calls."""
        if self.template is None:
            return None
        return env.get_template(f"blocks/{self.template}").render(class_name=self.generated_name())

    def instance(self, x: Shape | tuple[Shape, ...], out: Shape, params: int, macs: int | None, *args: Any, **kwargs: Any) -> ModuleInstance:
        """A ModuleInstance whose constructor call omits kwargs equal to ``ctor_defaults``."""
        kept = {k: v for k, v in kwargs.items() if not _same(self.ctor_defaults.get(k, _MISSING), v)}
        ctor = Call(
            self.torch_class or self.generated_name(),
            tuple(as_expr(v) for v in args),
            tuple((k, as_expr(v)) for k, v in kept.items()),
        )
        in_shape = x if isinstance(x, Shape) else x[0]
        return ModuleInstance(ctor, in_shape, out, params, macs)


_MISSING = object()


def _same(default: Any, value: Any) -> bool:
    return type(default) is type(value) and default == value


def _short(value: Any) -> str:
    from yaml2torch.blocks.activations import Activation

    if isinstance(value, Activation):
        return value.name
    if isinstance(value, tuple):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, str):
        return value
    return repr(value)


# --- counting rules shared by blocks ---------------------------------------------------


def conv_out(size: int | None, k: int, s: int, p: int, d: int = 1) -> int | None:
    return None if size is None else (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv2d(
    x: Shape, c_out: int, k: int, s: int = 1, p: int = 0, g: int = 1, bias: bool = False, ctx: BuildContext | None = None
) -> tuple[Shape, int, int | None]:
    """Output shape, params and MACs of one Conv2d on input ``x``."""
    if not x.is_image:
        raise SpecError(ctx.loc if ctx else None, f"a convolution needs a (C, H, W) input, got {x}")
    c_in = x.channels
    if c_in % g or c_out % g:
        raise SpecError(
            ctx.loc if ctx else None, f"groups={g} must divide both input channels {c_in} and output channels {c_out}"
        )
    h, w = x.hw
    out_h, out_w = conv_out(h, k, s, p), conv_out(w, k, s, p)
    for size in (out_h, out_w):
        if size is not None and size < 1:
            raise SpecError(
                ctx.loc if ctx else None,
                f"spatial size shrinks to zero: input {x} with kernel {k}, stride {s}, padding {p} gives {out_h}x{out_w}",
            )
    params = c_out * (c_in // g) * k * k + (c_out if bias else 0)
    macs = None if out_h is None or out_w is None else c_out * (c_in // g) * k * k * out_h * out_w
    return Shape((c_out, out_h, out_w)), params, macs


def bn_params(c: int) -> int:
    return 2 * c


def linear_params(c_in: int, c_out: int, bias: bool = True) -> int:
    return c_in * c_out + (c_out if bias else 0)


def make_divisible(value: float, divisor: int, rounding: str = "nearest") -> int:
    """Channel rounding: torchvision's ``_make_divisible`` (nearest) or kindle's ceil."""
    if rounding == "ceil":
        return int(math.ceil(value / divisor) * divisor)
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new

"""The YOLOv5 family (as kindle ships it): Bottleneck, BottleneckCSP, C3, SPP, SPPF, Focus.

The generated classes follow the YOLOv5 definitions (attribute names ``cv1``, ``cv2``, ``m`` ...)
and build on the ``Conv`` class (Conv2d without bias + BatchNorm2d + activation). One activation
module is passed in and shared by the block's convolutions (so a PReLU counts once per block).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from yaml2torch.blocks.activations import Activation, act_expr, activation
from yaml2torch.blocks.args import Act, Arg, Bool, BoundArgs, Float, Int, IntList
from yaml2torch.blocks.base import Block, BuildContext, bn_params, conv2d
from yaml2torch.blocks.conv import Conv
from yaml2torch.errors import SpecError
from yaml2torch.ir.nodes import ClassSource, ModuleInstance, Shape

_ACT = Arg("act", Act(), activation("ReLU"), aliases=("activation",))


def template_class(template: str, class_name: str) -> ClassSource:
    """One generated class from ``templates/blocks/<template>``."""
    from yaml2torch.render.templates import environment

    return ClassSource(class_name, environment().get_template(f"blocks/{template}").render(class_name=class_name))


def conv_class() -> ClassSource:
    """The ``Conv`` class, byte-identical to the one the Conv block renders (so it is defined once)."""
    return template_class("conv.py.jinja", "Conv")


def with_classes(module: ModuleInstance, *classes: ClassSource) -> ModuleInstance:
    return replace(module, defines=(*module.defines, *classes))


def add_macs(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def act_params(act: Activation | None) -> int:
    return act.params if act is not None else 0


@dataclass(frozen=True)
class Tally:
    """Shape, params and MACs through the block's convolutions (conv/linear MACs only)."""

    shape: Shape
    params: int = 0
    macs: int | None = 0

    def conv(self, ctx: BuildContext, c_out: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1, bn: bool = True) -> Tally:
        padding = k // 2 if p is None else p
        out, params, macs = conv2d(self.shape, c_out, k, s, padding, g, ctx=ctx)
        return Tally(out, self.params + params + (bn_params(c_out) if bn else 0), add_macs(self.macs, macs))

    def join(self, other: Tally, shape: Shape) -> Tally:
        """This branch and a parallel one, concatenated into ``shape``."""
        return Tally(shape, self.params + other.params, add_macs(self.macs, other.macs))

    def plus_params(self, params: int) -> Tally:
        return Tally(self.shape, self.params + params, self.macs)

    def at(self, shape: Shape) -> Tally:
        return Tally(shape, self.params, self.macs)


def with_channels(shape: Shape, channels: int) -> Shape:
    return Shape((channels, *shape.dims[1:]))


def hidden_channels(block: str, c: int, e: float, ctx: BuildContext) -> int:
    hidden = int(c * e)
    if hidden < 1:
        raise ctx.fail(f"{block} expansion {e} on {c} channels gives {hidden} hidden channels; raise c or e")
    return hidden


def bottleneck_tally(x: Tally, c_out: int, hidden: int, g: int, ctx: BuildContext) -> Tally:
    """YOLOv5 Bottleneck: 1x1 conv to ``hidden``, 3x3 conv (groups ``g``) to ``c_out``."""
    return x.conv(ctx, hidden, 1).conv(ctx, c_out, 3, g=g)


_BOTTLENECK_ARGS = (
    Arg("c", Int(), aliases=("out_channels", "channels")),
    Arg("shortcut", Bool(), True),
    Arg("g", Int(), 1, aliases=("groups",)),
    Arg("e", Float(minimum=0.0), 0.5, aliases=("expansion",)),
    _ACT,
)


class Bottleneck(Block):
    """YOLOv5 Bottleneck. ``repeat n`` gives (n-1) blocks in->in, then one in->c (the origin's rule)."""

    name = "Bottleneck"

    origin = "YOLOv5"

    twin_of = "YOLOv5 models.common.Bottleneck"
    image_input = True
    signature = _BOTTLENECK_ARGS
    template = None  # the class comes with each instance (after the Conv class it uses)
    width_scaled = True
    ctor_defaults: ClassVar[dict[str, Any]] = {"shortcut": True, "groups": 1, "expansion": 0.5, "act": None}

    def expand(self, a: BoundArgs, repeat: int, x: Shape, ctx: BuildContext) -> list[ModuleInstance]:
        outputs = [x.channels] * (repeat - 1) + [a.c]
        modules = []
        for c_out in outputs:
            module = self.build(a.replace(c=c_out), x, ctx)
            modules.append(module)
            x = module.out_shape
        return modules

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        hidden = hidden_channels(self.name, a.c, a.e, ctx)
        tally = bottleneck_tally(Tally(x), a.c, hidden, a.g, ctx).plus_params(act_params(a.act))
        module = self.instance(
            x, tally.shape, tally.params, tally.macs,
            x.channels, a.c,
            shortcut=a.shortcut, groups=a.g, expansion=a.e, act=act_expr(a.act),
        )  # fmt: skip
        return with_classes(module, conv_class(), template_class("bottleneck.py.jinja", "Bottleneck"))


class _CSP(Block):
    """BottleneckCSP and C3: repeat is the number of inner bottlenecks (one module)."""

    image_input = True
    signature = _BOTTLENECK_ARGS
    width_scaled = True
    ctor_defaults: ClassVar[dict[str, Any]] = {"n": 1, "shortcut": True, "groups": 1, "expansion": 0.5, "act": None}
    csp_template = ""

    def expand(self, a: BoundArgs, repeat: int, x: Shape, ctx: BuildContext) -> list[ModuleInstance]:
        return [self.build(a.replace(n=repeat), x, ctx)]

    def inner(self, a: BoundArgs, x: Shape, hidden: int, branch: Tally, ctx: BuildContext) -> Tally:
        """The CSP wiring after ``branch`` (cv1 + bottlenecks); ``x`` is the block input."""
        raise NotImplementedError

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        n = a.values.get("n", 1)
        hidden = hidden_channels(self.name, a.c, a.e, ctx)
        branch = Tally(x).conv(ctx, hidden)
        for _ in range(n):
            branch = bottleneck_tally(branch, hidden, hidden, a.g, ctx)
        tally = self.inner(a, x, hidden, branch, ctx).plus_params(act_params(a.act))
        module = self.instance(
            x, tally.shape, tally.params, tally.macs,
            x.channels, a.c,
            n=n, shortcut=a.shortcut, groups=a.g, expansion=a.e, act=act_expr(a.act),
        )  # fmt: skip
        return with_classes(
            module,
            conv_class(),
            template_class("bottleneck.py.jinja", "Bottleneck"),
            template_class(self.csp_template, self.name),
        )


class BottleneckCSP(_CSP):
    """YOLOv5 BottleneckCSP: cv1 -> bottlenecks -> cv3 (plain 1x1) || cv2 (plain 1x1), BN+act, cv4."""

    name = "BottleneckCSP"

    origin = "YOLOv5"

    twin_of = "YOLOv5 models.common.BottleneckCSP"
    csp_template = "bottleneck_csp.py.jinja"

    def inner(self, a: BoundArgs, x: Shape, hidden: int, branch: Tally, ctx: BuildContext) -> Tally:
        y1 = branch.conv(ctx, hidden, bn=False)
        y2 = Tally(x).conv(ctx, hidden, bn=False)
        merged = y1.join(y2, with_channels(y1.shape, 2 * hidden)).plus_params(bn_params(2 * hidden))
        return merged.conv(ctx, a.c)


class C3(_CSP):
    """YOLOv5 C3: cv1 -> bottlenecks || cv2, concatenated, cv3."""

    name = "C3"

    origin = "YOLOv5"

    twin_of = "YOLOv5 models.common.C3"
    csp_template = "c3.py.jinja"

    def inner(self, a: BoundArgs, x: Shape, hidden: int, branch: Tally, ctx: BuildContext) -> Tally:
        y2 = Tally(x).conv(ctx, hidden)
        return branch.join(y2, with_channels(branch.shape, 2 * hidden)).conv(ctx, a.c)


class SPP(Block):
    """YOLOv5 SPP: 1x1 conv to in/2, max-pools (stride 1, same size) concatenated, 1x1 conv to c."""

    name = "SPP"

    origin = "YOLOv5"

    twin_of = "YOLOv5 models.common.SPP"
    image_input = True
    signature = (
        Arg("c", Int(), aliases=("out_channels", "channels")),
        Arg("ks", IntList(), (5, 9, 13), aliases=("k", "kernel_size", "kernel_sizes")),
        _ACT,
    )
    width_scaled = True
    ctor_defaults: ClassVar[dict[str, Any]] = {"kernel_sizes": (5, 9, 13), "act": None}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        for k in a.ks:
            if k % 2 == 0:
                raise SpecError(a.locs["ks"], f"SPP kernel sizes must be odd (a same-size max-pool), got {k}")
        hidden = _half(self.name, x, ctx)
        tally = Tally(x).conv(ctx, hidden)
        tally = tally.at(with_channels(tally.shape, hidden * (len(a.ks) + 1))).conv(ctx, a.c).plus_params(act_params(a.act))
        module = self.instance(x, tally.shape, tally.params, tally.macs, x.channels, a.c, kernel_sizes=a.ks, act=act_expr(a.act))
        return with_classes(module, conv_class(), template_class("spp.py.jinja", self.name))


class SPPF(Block):
    """YOLOv5 SPPF: SPP(k, 2k-1, 3k-2) as three chained k-pools; both convs use ``act``."""

    name = "SPPF"

    origin = "YOLOv5"

    twin_of = "YOLOv5 models.common.SPPF"
    image_input = True
    signature = (
        Arg("c", Int(), aliases=("out_channels", "channels")),
        Arg("k", Int(), 5, aliases=("kernel_size",)),
        _ACT,
    )
    width_scaled = True
    ctor_defaults: ClassVar[dict[str, Any]] = {"kernel_size": 5, "act": None}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        if a.k % 2 == 0:
            raise SpecError(a.locs["k"], f"SPPF kernel size must be odd (a same-size max-pool), got {a.k}")
        hidden = _half(self.name, x, ctx)
        tally = Tally(x).conv(ctx, hidden)
        tally = tally.at(with_channels(tally.shape, hidden * 4)).conv(ctx, a.c).plus_params(act_params(a.act))
        module = self.instance(x, tally.shape, tally.params, tally.macs, x.channels, a.c, kernel_size=a.k, act=act_expr(a.act))
        return with_classes(module, conv_class(), template_class("sppf.py.jinja", self.name))


class Focus(Block):
    """YOLOv5 Focus: space-to-depth (C, H, W) -> (4C, H/2, W/2), then a Conv with the Conv args."""

    name = "Focus"

    origin = "YOLOv5"

    twin_of = "YOLOv5 models.common.Focus"
    image_input = True
    signature = Conv.signature  # "as Conv": the same args, defaults and kwarg names
    width_scaled = True
    stride_on = "last"
    ctor_defaults = Conv.ctor_defaults

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        h, w = x.hw
        if any(size is not None and size % 2 for size in (h, w)):
            raise ctx.fail(f"Focus needs an even height and width (it takes every second pixel), got {x}")
        folded = Shape((4 * x.channels, None if h is None else h // 2, None if w is None else w // 2))
        padding = a.k // 2 if a.p is None else a.p
        tally = Tally(folded).conv(ctx, a.c, a.k, a.s, padding, a.g).plus_params(act_params(a.act))
        module = self.instance(
            x, tally.shape, tally.params, tally.macs,
            x.channels, a.c,
            kernel_size=a.k, stride=a.s, padding=padding, groups=a.g, act=act_expr(a.act),
        )  # fmt: skip
        return with_classes(module, conv_class(), template_class("focus.py.jinja", self.name))


def _half(block: str, x: Shape, ctx: BuildContext) -> int:
    if x.channels < 2:
        raise ctx.fail(f"{block} halves its input channels first and needs at least 2, got {x}")
    return x.channels // 2


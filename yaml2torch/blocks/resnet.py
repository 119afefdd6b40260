"""BasicBlock and ResBottleneck: torchvision's ResNet blocks (stride on the first repeat)."""

from __future__ import annotations

from typing import Any, ClassVar

from yaml2torch.blocks._twin_parts import Tally
from yaml2torch.blocks.args import Arg, BoundArgs, Int
from yaml2torch.blocks.base import Block, BuildContext
from yaml2torch.errors import SpecError
from yaml2torch.ir.nodes import ModuleInstance, Shape


def _shortcut(x: Shape, c_out: int, stride: int, ctx: BuildContext) -> Tally:
    """torchvision's downsample: 1x1 conv + BN when the stride or the width changes."""
    if stride != 1 or x.channels != c_out:
        return Tally(x).conv(ctx, c_out, 1, stride)
    return Tally(x)


class BasicBlock(Block):
    name = "BasicBlock"
    origin = "torchvision"
    twin_of = "torchvision.models.resnet.BasicBlock"
    image_input = True
    signature = (
        Arg("c", Int(), aliases=("out_channels", "channels", "planes")),
        Arg("s", Int(), 1, aliases=("stride",)),
    )
    template = "basic_block.py.jinja"
    width_scaled = True
    stride_on = "first"
    ctor_defaults: ClassVar[dict[str, Any]] = {"stride": 1}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        main = Tally(x).conv(ctx, a.c, 3, a.s).conv(ctx, a.c, 3)
        tally = main.plus(_shortcut(x, a.c, a.s, ctx))
        return self.instance(x, tally.shape, tally.params, tally.macs, x.channels, a.c, stride=a.s)


class ResBottleneck(Block):
    name = "ResBottleneck"
    origin = "torchvision"
    twin_of = "torchvision.models.resnet.Bottleneck"
    image_input = True
    signature = (
        Arg("c", Int(), aliases=("out_channels", "channels")),
        Arg("s", Int(), 1, aliases=("stride",)),
        Arg("groups", Int(), 1, aliases=("g",)),
        Arg("base_width", Int(), 64, aliases=("width_per_group",)),
    )
    template = "res_bottleneck.py.jinja"
    width_scaled = True
    stride_on = "first"
    ctor_defaults: ClassVar[dict[str, Any]] = {"stride": 1, "groups": 1, "base_width": 64}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        if a.c % 4:
            raise SpecError(a.locs["c"], f"ResBottleneck c is 4 x planes, so it must be a multiple of 4, got {a.c}")
        width = int(a.c // 4 * (a.base_width / 64.0)) * a.groups  # torchvision's formula
        if width < 1:
            raise SpecError(a.locs["base_width"], f"ResBottleneck inner width {width} is not positive")
        main = Tally(x).conv(ctx, width).conv(ctx, width, 3, a.s, g=a.groups).conv(ctx, a.c)
        tally = main.plus(_shortcut(x, a.c, a.s, ctx))
        return self.instance(
            x,
            tally.shape,
            tally.params,
            tally.macs,
            x.channels,
            a.c,
            stride=a.s,
            groups=a.groups,
            base_width=a.base_width,
        )

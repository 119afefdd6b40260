"""ShuffleV2: torchvision's ShuffleNetV2 InvertedResidual (branch1 only when strided)."""

from __future__ import annotations

from typing import Any, ClassVar

from yaml2torch.blocks._twin_parts import Tally
from yaml2torch.blocks.args import Arg, BoundArgs, Int
from yaml2torch.blocks.base import Block, BuildContext
from yaml2torch.errors import SpecError
from yaml2torch.ir.nodes import ModuleInstance, Shape


class ShuffleV2(Block):
    name = "ShuffleV2"
    origin = "torchvision"
    twin_of = "torchvision.models.shufflenetv2.InvertedResidual"
    image_input = True
    signature = (
        Arg("c", Int(), aliases=("out_channels", "channels")),
        Arg("s", Int(), 1, aliases=("stride",)),
    )
    template = "shufflenet.py.jinja"
    width_scaled = True
    stride_on = "first"
    ctor_defaults: ClassVar[dict[str, Any]] = {"stride": 1}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        if a.c % 2:
            raise SpecError(a.locs["c"], f"ShuffleV2 splits its output in two halves, so c must be even, got {a.c}")
        if a.s > 3:
            raise SpecError(a.locs["s"], f"ShuffleV2 stride must be 1, 2 or 3 (as in torchvision), got {a.s}")
        if a.s == 1 and x.channels != a.c:
            raise ctx.fail(
                f"ShuffleV2 with stride 1 keeps the channel count: input has {x.channels}, c is {a.c}; "
                "use s=2 to change it"
            )
        half = a.c // 2
        if a.s > 1:
            branch1 = Tally(x).conv(ctx, x.channels, 3, a.s, g=x.channels).conv(ctx, half)
            branch2 = Tally(x).conv(ctx, half)
        else:
            branch1 = Tally(Shape((half, *x.dims[1:])))
            branch2 = Tally(branch1.shape).conv(ctx, half)
        branch2 = branch2.conv(ctx, half, 3, a.s, g=half).conv(ctx, half)
        tally = branch2.plus(branch1, Shape((a.c, *branch2.shape.dims[1:])))
        return self.instance(x, tally.shape, tally.params, tally.macs, x.channels, a.c, stride=a.s)

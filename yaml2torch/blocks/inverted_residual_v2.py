"""InvertedResidualv2: torchvision's MobileNetV2 InvertedResidual (ReLU6)."""

from __future__ import annotations

from typing import Any, ClassVar

from yaml2torch.blocks._twin_parts import ExpandRatio, Tally
from yaml2torch.blocks.args import Arg, BoundArgs, Int
from yaml2torch.blocks.base import Block, BuildContext
from yaml2torch.ir.nodes import ModuleInstance, Shape


class InvertedResidualv2(Block):
    name = "InvertedResidualv2"
    origin = "boostcamp / torchvision"
    twin_of = "torchvision.models.mobilenetv2.InvertedResidual"
    image_input = True
    signature = (
        Arg("c", Int(), aliases=("out_channels", "channels")),
        Arg("t", ExpandRatio(), aliases=("expansion", "expand_ratio")),
        Arg("s", Int(), 1, aliases=("stride",)),
    )
    template = "inverted_residual_v2.py.jinja"
    requires = ("conv_bn_act.py.jinja",)
    width_scaled = True
    stride_on = "first"
    ctor_defaults: ClassVar[dict[str, Any]] = {"stride": 1, "expand_ratio": 1}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        hidden = round(x.channels * a.t)  # torchvision's rule, not make_divisible
        if hidden < 1:
            raise ctx.fail(f"expand ratio {a.t} on {x.channels} input channels gives {hidden} hidden channels")
        tally = Tally(x)
        if a.t != 1:
            tally = tally.conv(ctx, hidden)
        tally = tally.conv(ctx, hidden, 3, a.s, g=hidden).conv(ctx, a.c)
        return self.instance(x, tally.shape, tally.params, tally.macs, x.channels, a.c, stride=a.s, expand_ratio=a.t)

"""MV2Block: kindle's MobileNetV2 block (Conv expand, depthwise Conv, linear 1x1 projection)."""

from __future__ import annotations

from typing import Any, ClassVar

from yaml2torch.blocks._twin_parts import ExpandRatio
from yaml2torch.blocks.activations import act_expr, activation
from yaml2torch.blocks.args import Act, Arg, BoundArgs, Int
from yaml2torch.blocks.base import Block, BuildContext
from yaml2torch.blocks.yolo import Tally, act_params, conv_class, template_class, with_classes
from yaml2torch.ir.nodes import ModuleInstance, Shape


class MV2Block(Block):
    name = "MV2Block"
    origin = "kindle"
    image_input = True
    signature = (
        Arg("c", Int(), aliases=("out_channels", "channels")),
        Arg("s", Int(), 1, aliases=("stride",)),
        Arg("t", ExpandRatio(), 4, aliases=("expand_ratio", "expansion")),
        Arg("act", Act(), activation("ReLU"), aliases=("activation",)),
    )
    template = None  # the class comes with each instance, after the Conv class it uses
    width_scaled = True
    stride_on = "first"
    ctor_defaults: ClassVar[dict[str, Any]] = {"stride": 1, "expand_ratio": 4, "act": None}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        hidden = round(x.channels * a.t)  # kindle's (and torchvision's) rule
        if hidden < 1:
            raise ctx.fail(f"MV2Block expand ratio {a.t} on {x.channels} input channels gives {hidden} hidden channels")
        tally = Tally(x)
        if a.t != 1:
            tally = tally.conv(ctx, hidden)
        tally = tally.conv(ctx, hidden, 3, a.s, g=hidden).conv(ctx, a.c).plus_params(act_params(a.act))
        module = self.instance(
            x, tally.shape, tally.params, tally.macs, x.channels, a.c, stride=a.s, expand_ratio=a.t, act=act_expr(a.act)
        )
        return with_classes(module, conv_class(), template_class("mv2block.py.jinja", self.name))

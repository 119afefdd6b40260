"""MBConv: torchvision's EfficientNet MBConv (stochastic depth left out: identity in eval)."""

from __future__ import annotations

from typing import Any, ClassVar

from yaml2torch.blocks._twin_parts import ExpandRatio, Tally
from yaml2torch.blocks.args import Arg, BoundArgs, Int
from yaml2torch.blocks.base import Block, BuildContext
from yaml2torch.errors import SpecError
from yaml2torch.ir.nodes import ModuleInstance, Shape


class MBConv(Block):
    name = "MBConv"
    origin = "torchvision"
    twin_of = "torchvision.models.efficientnet.MBConv"
    image_input = True
    # [t, c, s, k]: the output channels are arg 1 (the origin read them from the wrong arg)
    signature = (
        Arg("t", ExpandRatio(), aliases=("expansion", "expand_ratio")),
        Arg("c", Int(), aliases=("out_channels", "channels")),
        Arg("s", Int(), 1, aliases=("stride",)),
        Arg("k", Int(), 3, aliases=("kernel_size",)),
    )
    template = "mbconv.py.jinja"
    requires = ("conv_bn_act.py.jinja", "squeeze_excitation.py.jinja")
    width_scaled = True
    stride_on = "first"
    ctor_defaults: ClassVar[dict[str, Any]] = {"kernel_size": 3, "stride": 1, "se_channels": 1}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        if a.k % 2 == 0:
            raise SpecError(a.locs["k"], f"MBConv kernel must be odd for 'same' padding, got {a.k}")
        hidden = ctx.make_divisible(x.channels * a.t)
        se_channels = max(1, x.channels // 4)  # torchvision squeezes from the block's input width
        tally = Tally(x)
        if hidden != x.channels:
            tally = tally.conv(ctx, hidden)
        tally = tally.conv(ctx, hidden, a.k, a.s, g=hidden).squeeze_excitation(ctx, se_channels).conv(ctx, a.c)
        return self.instance(
            x, tally.shape, tally.params, tally.macs,
            x.channels, a.c, hidden,
            kernel_size=a.k, stride=a.s, se_channels=se_channels,
        )  # fmt: skip

"""InvertedResidualv3: torchvision's MobileNetV3 InvertedResidual (kindle's argument order)."""

from __future__ import annotations

from typing import Any, ClassVar

from yaml2torch.blocks._twin_parts import ExpandRatio, Tally
from yaml2torch.blocks.args import Arg, Bool, BoundArgs, Int
from yaml2torch.blocks.base import Block, BuildContext
from yaml2torch.errors import SpecError
from yaml2torch.ir.nodes import ModuleInstance, Shape


class InvertedResidualv3(Block):
    name = "InvertedResidualv3"
    origin = "boostcamp / torchvision"
    twin_of = "torchvision.models.mobilenetv3.InvertedResidual"
    image_input = True
    signature = (
        Arg("k", Int(), aliases=("kernel_size",)),
        Arg("t", ExpandRatio(), aliases=("expansion", "expand_ratio")),
        Arg("c", Int(), aliases=("out_channels", "channels")),
        Arg("use_se", Bool(), False),
        Arg("use_hs", Bool(), False),
        Arg("s", Int(), 1, aliases=("stride",)),
    )
    template = "inverted_residual_v3.py.jinja"
    requires = ("conv_bn_act.py.jinja", "squeeze_excitation.py.jinja")
    width_scaled = True
    stride_on = "first"
    ctor_defaults: ClassVar[dict[str, Any]] = {"kernel_size": 3, "stride": 1, "se_channels": 0, "use_hs": False}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        if a.k % 2 == 0:
            raise SpecError(a.locs["k"], f"InvertedResidualv3 kernel must be odd for 'same' padding, got {a.k}")
        hidden = ctx.make_divisible(x.channels * a.t)
        se_channels = ctx.make_divisible(hidden // 4) if a.use_se else 0
        tally = Tally(x)
        if hidden != x.channels:
            tally = tally.conv(ctx, hidden)
        tally = tally.conv(ctx, hidden, a.k, a.s, g=hidden)
        if se_channels:
            tally = tally.squeeze_excitation(ctx, se_channels)
        tally = tally.conv(ctx, a.c)
        return self.instance(
            x, tally.shape, tally.params, tally.macs,
            x.channels, a.c, hidden,
            kernel_size=a.k, stride=a.s, se_channels=se_channels, use_hs=a.use_hs,
        )  # fmt: skip

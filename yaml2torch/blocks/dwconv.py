"""DWConv: a Conv whose groups are gcd(in, c) (depthwise when in == c), as in the origin formats."""

from __future__ import annotations

import math

from yaml2torch.blocks.activations import activation
from yaml2torch.blocks.args import Act, Arg, BoundArgs, Int, Padding
from yaml2torch.blocks.base import BuildContext
from yaml2torch.blocks.conv import Conv
from yaml2torch.ir.nodes import ModuleInstance, Shape


class DWConv(Conv):
    name = "DWConv"
    origin = "kindle"
    image_input = True
    class_name = "Conv"  # the same Conv2d + BatchNorm2d + activation class, with groups set
    signature = (
        Arg("c", Int(), aliases=("out_channels", "channels")),
        Arg("k", Int(), 1, aliases=("kernel_size",)),
        Arg("s", Int(), 1, aliases=("stride",)),
        Arg("p", Padding(), None, aliases=("padding",)),
        Arg("act", Act(), activation("ReLU"), aliases=("activation",)),
    )

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        return self.conv_instance(a, x, ctx, groups=math.gcd(x.channels, a.c))

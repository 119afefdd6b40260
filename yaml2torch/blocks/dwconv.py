"""DWConv: a Conv whose groups are gcd(in, c) (depthwise when in == c), as in the origin formats."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from yaml2torch.blocks.activations import act_expr, activation
from yaml2torch.blocks.args import Act, Arg, BoundArgs, Int, Padding
from yaml2torch.blocks.base import Block, BuildContext, bn_params, conv2d
from yaml2torch.ir.nodes import ModuleInstance, Shape


class DWConv(Block):
    name = "DWConv"
    class_name = "Conv"  # the same Conv2d + BatchNorm2d + activation class, with groups set
    signature = (
        Arg("c", Int(), aliases=("out_channels", "channels")),
        Arg("k", Int(), 1, aliases=("kernel_size",)),
        Arg("s", Int(), 1, aliases=("stride",)),
        Arg("p", Padding(), None, aliases=("padding",)),
        Arg("act", Act(), activation("ReLU"), aliases=("activation",)),
    )
    template = "conv.py.jinja"
    width_scaled = True
    stride_on = "last"
    ctor_defaults: ClassVar[dict[str, Any]] = {"kernel_size": 1, "stride": 1, "padding": 0, "groups": 1, "act": None}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        if not x.is_image:
            raise ctx.fail(f"DWConv needs a (C, H, W) input, got {x}")
        groups = math.gcd(x.channels, a.c)
        padding = a.k // 2 if a.p is None else a.p
        out, params, macs = conv2d(x, a.c, a.k, a.s, padding, groups, ctx=ctx)
        params += bn_params(a.c) + (a.act.params if a.act else 0)
        return self.instance(
            x, out, params, macs,
            x.channels, a.c,
            kernel_size=a.k, stride=a.s, padding=padding, groups=groups, act=act_expr(a.act),
        )  # fmt: skip

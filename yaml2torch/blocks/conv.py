"""Conv: Conv2d (no bias) + BatchNorm2d + activation; FixedConv is the same, never width-scaled."""

from __future__ import annotations

from typing import Any, ClassVar

from yaml2torch.blocks.activations import act_expr, activation
from yaml2torch.blocks.args import Act, Arg, BoundArgs, Int, Padding
from yaml2torch.blocks.base import Block, BuildContext, bn_params, conv2d
from yaml2torch.ir.nodes import ModuleInstance, Shape


class Conv(Block):
    name = "Conv"
    origin = "kindle"
    signature: tuple[Arg, ...] = (
        Arg("c", Int(), aliases=("out_channels", "channels")),
        Arg("k", Int(), 1, aliases=("kernel_size",)),
        Arg("s", Int(), 1, aliases=("stride",)),
        Arg("p", Padding(), None, aliases=("padding",)),
        Arg("g", Int(), 1, aliases=("groups",)),
        Arg("act", Act(), activation("ReLU"), aliases=("activation",)),
    )
    template: ClassVar[str | None] = "conv.py.jinja"
    width_scaled = True
    stride_on: ClassVar[str | None] = "last"
    ctor_defaults: ClassVar[dict[str, Any]] = {"kernel_size": 1, "stride": 1, "padding": 0, "groups": 1, "act": None}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        return self.conv_instance(a, x, ctx, groups=a.g)

    def conv_instance(self, a: BoundArgs, x: Shape, ctx: BuildContext, groups: int) -> ModuleInstance:
        """One Conv module from args c, k, s, p, act and the given groups (DWConv derives them)."""
        padding = a.k // 2 if a.p is None else a.p
        out, params, macs = conv2d(x, a.c, a.k, a.s, padding, groups, ctx=ctx)
        params += bn_params(a.c) + (a.act.params if a.act else 0)
        return self.instance(
            x, out, params, macs,
            x.channels, a.c,
            kernel_size=a.k, stride=a.s, padding=padding, groups=groups, act=act_expr(a.act),
        )  # fmt: skip


class FixedConv(Conv):
    """A Conv whose channels are never width-scaled (the origin's classifier 1x1)."""

    name = "FixedConv"
    origin = "boostcamp (the origin course's classifier)"
    class_name = "Conv"
    width_scaled = False

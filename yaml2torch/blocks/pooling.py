"""MaxPool / AvgPool (torch's positional order) and GlobalAvgPool, rendered as nn layers."""

from __future__ import annotations

from yaml2torch.blocks.args import Arg, Bool, BoundArgs, Int
from yaml2torch.blocks.base import Block, BuildContext, conv_out
from yaml2torch.ir.nodes import ModuleInstance, Shape

KERNEL_STRIDE_PADDING = (
    Arg("k", Int(), 2, aliases=("kernel_size",)),
    Arg("s", Int(), None, aliases=("stride",)),
    Arg("p", Int(minimum=0), 0, aliases=("padding",)),
)


class _Pool(Block):
    """Arguments in the positional order of the torch class it renders as (kindle passes them so)."""

    image_input = True

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        stride = a.k if a.s is None else a.s
        dilation = a.values.get("dilation", 1)
        if a.p > a.k // 2:
            raise ctx.fail(f"{self.name} padding {a.p} must be at most half the kernel ({a.k // 2})")
        h, w = x.hw
        kernel = dilation * (a.k - 1) + 1  # the window a dilated kernel spans
        sizes = [_pool_out(size, kernel, stride, a.p, a.ceil_mode) for size in (h, w)]
        if any(size is not None and size < 1 for size in sizes):
            raise ctx.fail(f"spatial size shrinks to zero: {self.name} kernel {a.k} stride {stride} on input {x}")
        args = [a.k] + ([stride] if stride != a.k or a.p else []) + ([a.p] if a.p else [])
        return self.instance(x, Shape((x.channels, *sizes)), 0, 0, *args, **self.extras(a, ctx))

    def extras(self, a: BoundArgs, ctx: BuildContext) -> dict[str, object]:
        """The arguments after kernel, stride and padding that differ from torch's defaults."""
        return {"ceil_mode": True} if a.ceil_mode else {}


def _pool_out(size: int | None, k: int, s: int, p: int, ceil_mode: bool) -> int | None:
    if size is None:
        return None
    if not ceil_mode:
        return conv_out(size, k, s, p)
    out = -(-(size + 2 * p - k) // s) + 1
    if (out - 1) * s >= size + p:  # torch drops a last window that starts in the padding
        out -= 1
    return out


class MaxPool(_Pool):
    """``nn.MaxPool2d(kernel_size, stride, padding, dilation, return_indices, ceil_mode)``."""

    name = "MaxPool"
    origin = "kindle"
    torch_class = "nn.MaxPool2d"
    signature = (
        *KERNEL_STRIDE_PADDING,
        Arg("dilation", Int(), 1),
        Arg("return_indices", Bool(), False),
        Arg("ceil_mode", Bool(), False),
    )

    def extras(self, a: BoundArgs, ctx: BuildContext) -> dict[str, object]:
        if a.return_indices:
            raise ctx.fail("MaxPool return_indices would make the layer return a tuple; a model row returns one tensor")
        return {**({"dilation": a.dilation} if a.dilation != 1 else {}), **super().extras(a, ctx)}


class AvgPool(_Pool):
    """``nn.AvgPool2d(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)``."""

    name = "AvgPool"
    origin = "kindle"
    torch_class = "nn.AvgPool2d"
    signature = (
        *KERNEL_STRIDE_PADDING,
        Arg("ceil_mode", Bool(), False),
        Arg("count_include_pad", Bool(), True),
        Arg("divisor_override", Int(), None),
    )

    def extras(self, a: BoundArgs, ctx: BuildContext) -> dict[str, object]:
        extra = super().extras(a, ctx)
        if not a.count_include_pad:
            extra["count_include_pad"] = False
        if a.divisor_override is not None:
            extra["divisor_override"] = a.divisor_override
        return extra


class GlobalAvgPool(Block):
    name = "GlobalAvgPool"
    origin = "kindle"
    image_input = True
    torch_class = "nn.AdaptiveAvgPool2d"

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        return self.instance(x, Shape((x.channels, 1, 1)), 0, 0, 1)

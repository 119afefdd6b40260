"""MaxPool / AvgPool (torch's positional order) and GlobalAvgPool, rendered as nn layers."""

from __future__ import annotations

from yaml2torch.blocks.args import Arg, Bool, BoundArgs, Int
from yaml2torch.blocks.base import Block, BuildContext, conv_out
from yaml2torch.ir.nodes import ModuleInstance, Shape


class _Pool(Block):
    image_input = True
    signature = (
        Arg("k", Int(), 2, aliases=("kernel_size",)),
        Arg("s", Int(), None, aliases=("stride",)),
        Arg("p", Int(minimum=0), 0, aliases=("padding",)),
        Arg("ceil_mode", Bool(), False),
    )

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        stride = a.k if a.s is None else a.s
        if a.p > a.k // 2:
            raise ctx.fail(f"{self.name} padding {a.p} must be at most half the kernel ({a.k // 2})")
        h, w = x.spatial  # type: ignore[misc]
        sizes = [_pool_out(size, a.k, stride, a.p, a.ceil_mode) for size in (h, w)]
        if any(size is not None and size < 1 for size in sizes):
            raise ctx.fail(f"spatial size shrinks to zero: {self.name} kernel {a.k} stride {stride} on input {x}")
        kwargs = {"ceil_mode": True} if a.ceil_mode else {}
        args = [a.k] + ([stride] if stride != a.k or a.p else []) + ([a.p] if a.p else [])
        return self.instance(x, Shape((x.channels, *sizes)), 0, 0, *args, **kwargs)


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
    name = "MaxPool"
    origin = "kindle"
    torch_class = "nn.MaxPool2d"


class AvgPool(_Pool):
    name = "AvgPool"
    origin = "kindle"
    torch_class = "nn.AvgPool2d"


class GlobalAvgPool(Block):
    name = "GlobalAvgPool"
    origin = "kindle"
    image_input = True
    torch_class = "nn.AdaptiveAvgPool2d"

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        return self.instance(x, Shape((x.channels, 1, 1)), 0, 0, 1)

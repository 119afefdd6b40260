"""UpSample: nn.Upsample by a scale factor (default 2) or to a fixed size."""

from __future__ import annotations

import math

from yaml2torch.blocks._twin_parts import ExpandRatio
from yaml2torch.blocks.args import Arg, BoundArgs, Choice, IntOrList
from yaml2torch.blocks.base import Block, BuildContext
from yaml2torch.errors import SpecError
from yaml2torch.ir.nodes import ModuleInstance, Shape

MODES = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")


class UpSample(Block):
    """``[size=null, scale=null, mode=nearest]``: to a size, or by a scale factor; with neither, twice the size (scale 2)."""

    name = "UpSample"

    origin = "kindle"
    image_input = True
    torch_class = "nn.Upsample"
    signature = (
        Arg("size", IntOrList(), None),
        Arg("scale", ExpandRatio(), None, aliases=("scale_factor",)),
        Arg("mode", Choice(MODES), "nearest"),
    )

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        if a.size is not None and a.scale is not None:
            raise SpecError(a.locs["scale"], "UpSample takes a size or a scale, not both; set one to null")
        kwargs: dict[str, object] = {}
        if a.size is not None:
            size = (a.size, a.size) if isinstance(a.size, int) else a.size
            if len(size) != 2:
                raise SpecError(a.locs["size"], f"UpSample size must be an int or [H, W], got {len(size)} values")
            kwargs["size"] = a.size
            out = Shape((x.channels, *size))
        else:
            scale = 2 if a.scale is None else a.scale
            kwargs["scale_factor"] = scale
            h, w = x.hw
            out = Shape((x.channels, *(None if d is None else math.floor(d * scale) for d in (h, w))))
            if any(d is not None and d < 1 for d in out.dims):
                raise ctx.fail(f"UpSample scale {scale} shrinks {x} to {out}")
        if a.mode != "nearest":
            kwargs["mode"] = a.mode
        return self.instance(x, out, 0, 0, **kwargs)

"""Fire: torchvision's SqueezeNet Fire module. Output channels e1x1 + e3x3, never width-scaled."""

from __future__ import annotations

from yaml2torch.blocks._twin_parts import Tally
from yaml2torch.blocks.args import Arg, BoundArgs, Int
from yaml2torch.blocks.base import Block, BuildContext
from yaml2torch.ir.nodes import ModuleInstance, Shape


class Fire(Block):
    name = "Fire"
    origin = "torchvision"
    twin_of = "torchvision.models.squeezenet.Fire"
    image_input = True
    signature = (
        Arg("squeeze", Int(), aliases=("squeeze_planes",)),
        Arg("e1x1", Int(), aliases=("expand1x1_planes",)),
        Arg("e3x3", Int(), aliases=("expand3x3_planes",)),
    )
    template = "fire.py.jinja"

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        squeezed = Tally(x).conv(ctx, a.squeeze, bn=False, bias=True)
        wide = Tally(squeezed.shape).conv(ctx, a.e1x1, bn=False, bias=True)
        spatial = Tally(squeezed.shape).conv(ctx, a.e3x3, 3, bn=False, bias=True)
        out = Shape((a.e1x1 + a.e3x3, *squeezed.shape.dims[1:]))
        tally = squeezed.plus(wide).plus(spatial, out)
        return self.instance(x, tally.shape, tally.params, tally.macs, x.channels, a.squeeze, a.e1x1, a.e3x3)

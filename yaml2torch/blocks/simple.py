"""Parameter-free layers rendered as plain nn calls: Flatten, Dropout, Identity."""

from __future__ import annotations

import math

from yaml2torch.blocks.args import Arg, BoundArgs, Float
from yaml2torch.blocks.base import Block, BuildContext
from yaml2torch.ir.nodes import ModuleInstance, Shape


class Flatten(Block):
    name = "Flatten"
    origin = "kindle"
    torch_class = "nn.Flatten"

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        features = math.prod(dim for dim in x.dims if dim is not None) if x.known else None
        return self.instance(x, Shape((features,)), 0, 0)


class Dropout(Block):
    name = "Dropout"
    origin = "kindle"
    torch_class = "nn.Dropout"
    signature = (Arg("p", Float(minimum=0.0, maximum=1.0), 0.5),)

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        return self.instance(x, x, 0, 0, p=a.p)


class Identity(Block):
    name = "Identity"
    origin = "kindle"
    torch_class = "nn.Identity"

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        return self.instance(x, x, 0, 0)

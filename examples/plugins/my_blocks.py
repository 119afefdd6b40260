"""An example yaml2torch plugin: two blocks defined outside yaml2torch.

A spec uses it with ``modules: [examples.plugins.my_blocks]``: a dotted path that is imported
normally, else looked up from the spec's folder and from the working directory (so it works when
compiling from the repository root). The classes' source is copied into the generated
``model.py``, which then runs without this module.

- ``SEGate [r=4]``: squeeze-and-excitation gate (channels kept), the source comes from the
  ``SEGate`` nn.Module below via ``module_class``.
- ``Mean []``: the element-wise mean of several inputs (a multi-input block), given as ``source``.
"""

from __future__ import annotations

import torch
from torch import nn

from yaml2torch.blocks.args import Arg, BoundArgs, Int
from yaml2torch.blocks.base import BuildContext
from yaml2torch.blocks.plugin import PluginBlock
from yaml2torch.ir.nodes import ModuleInstance, Shape


class SEGate(nn.Module):
    """x * sigmoid(fc2(relu(fc1(avgpool(x))))), with 1x1 convs (bias) as the fc layers."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class SEGateBlock(PluginBlock):
    name = "SEGate"
    module_class = SEGate
    signature = (Arg("r", Int(), 4, aliases=("reduction",)),)

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        if not x.is_image:
            raise ctx.fail(f"SEGate needs a (C, H, W) input, got {x}")
        c = x.channels
        hidden = max(1, c // a.r)
        params = (c * hidden + hidden) + (hidden * c + c)
        macs = 2 * c * hidden  # two 1x1 convs on a 1x1 map
        kwargs = {"reduction": a.r} if a.r != 4 else {}
        return self.instance(x, x, params, macs, c, **kwargs)


class MeanBlock(PluginBlock):
    name = "Mean"
    multi_input = True
    source = '''
class Mean(nn.Module):
    """Element-wise mean of the inputs."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out / len(xs)
'''

    def build_multi(self, a: BoundArgs, xs: tuple[Shape, ...], ctx: BuildContext) -> ModuleInstance:
        if any(x != xs[0] for x in xs):
            raise ctx.fail(f"Mean needs inputs of one shape, got {', '.join(map(str, xs))}")
        return self.instance(xs, xs[0], 0, 0)

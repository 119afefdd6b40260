"""Pieces shared by the torchvision-twin blocks: an expand-ratio arg type and a conv tally.

Not a block module (it defines no Block), so discovery finds nothing here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from yaml2torch.blocks.args import ArgType
from yaml2torch.blocks.base import BuildContext, bn_params, conv2d
from yaml2torch.errors import Diagnostics, SpecError
from yaml2torch.ir.nodes import Shape
from yaml2torch.spec.limits import MAX_PARAMS
from yaml2torch.spec.yaml_nodes import Node, type_name


@dataclass(frozen=True)
class ExpandRatio(ArgType):
    """A positive number; ints stay ints so the generated code reads ``6``, not ``6.0``."""

    description = "a positive number"

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> int | float:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(node.loc, f"{label} must be a positive number, not {type_name(node)} ({value!r})")
        if not math.isfinite(value) or value <= 0:
            raise SpecError(node.loc, f"{label} must be a positive finite number, got {value!r}")
        if value > MAX_PARAMS:  # t hidden channels per input channel: past this no model fits the limit
            raise SpecError(node.loc, f"{label} must be at most {MAX_PARAMS:,} (limit {MAX_PARAMS:,} parameters), got {value!r}")
        return value


def add_macs(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


@dataclass(frozen=True)
class Tally:
    """Running shape, params and MACs through a chain of convolutions."""

    shape: Shape
    params: int = 0
    macs: int | None = 0

    def conv(
        self, ctx: BuildContext, c_out: int, k: int = 1, s: int = 1, g: int = 1, bn: bool = True, bias: bool = False
    ) -> Tally:
        """A Conv2d with symmetric padding (k - 1) // 2, optionally followed by BatchNorm2d."""
        out, params, macs = conv2d(self.shape, c_out, k, s, (k - 1) // 2, g, bias=bias, ctx=ctx)
        return Tally(out, self.params + params + (bn_params(c_out) if bn else 0), add_macs(self.macs, macs))

    def plus(self, other: Tally, shape: Shape | None = None) -> Tally:
        """Add a parallel branch's counts; the shape stays (or becomes ``shape``)."""
        return Tally(shape or self.shape, self.params + other.params, add_macs(self.macs, other.macs))

    def squeeze_excitation(self, ctx: BuildContext, squeeze: int) -> Tally:
        """torchvision's SqueezeExcitation: avgpool, 1x1 conv (bias) down, 1x1 conv (bias) up, gate."""
        channels = self.shape.channels
        pooled = Tally(Shape((channels, 1, 1)))
        se = pooled.conv(ctx, squeeze, bn=False, bias=True).conv(ctx, channels, bn=False, bias=True)
        return self.plus(se)

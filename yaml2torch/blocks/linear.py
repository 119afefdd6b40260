"""Linear: nn.Linear (with bias) + optional activation. Never width-scaled."""

from __future__ import annotations

from typing import Any, ClassVar

from yaml2torch.blocks.activations import act_expr
from yaml2torch.blocks.args import Act, Arg, BoundArgs, Int
from yaml2torch.blocks.base import Block, BuildContext, linear_params
from yaml2torch.ir.nodes import ModuleInstance, Shape


class Linear(Block):
    name = "Linear"
    origin = "kindle"
    signature = (
        Arg("c", Int(), aliases=("out_features", "channels")),
        Arg("act", Act(), None, aliases=("activation",)),
    )
    template = "linear.py.jinja"
    ctor_defaults: ClassVar[dict[str, Any]] = {"act": None}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        if len(x.dims) != 1:
            raise ctx.fail(f"Linear needs a flat (features,) input, got {x}; add Flatten (and GlobalAvgPool) before it")
        if x.dims[0] is None:
            raise ctx.fail("Linear input features are unknown; set input_size or use GlobalAvgPool before Flatten")
        params = linear_params(x.channels, a.c) + (a.act.params if a.act else 0)
        return self.instance(x, Shape((a.c,)), params, x.channels * a.c, x.channels, a.c, act=act_expr(a.act))

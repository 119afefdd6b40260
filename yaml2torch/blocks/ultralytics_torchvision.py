"""ultralytics' ``TorchVision`` row, lowered to our own torchvision twin blocks (no torchvision import).

``[c2, model, weights="DEFAULT", unwrap=true, truncate=2, split=false]``, as ultralytics reads it:
ultralytics builds ``torchvision.models.<model>(weights=...)``, keeps its children
(conv1, bn1, relu, maxpool, layer1-4, avgpool, fc) in an ``nn.Sequential`` and drops the last
``truncate``. For the ResNets this row becomes the same layers from the blocks that
``examples/models/resnet18.yaml`` uses (``Conv`` 7x7 stem with ReLU, ``MaxPool``, ``BasicBlock`` /
``ResBottleneck`` stages, ``GlobalAvgPool``), in torchvision's order, so a state_dict of
ultralytics' model (or torchvision's, less the dropped fc) loads position by position
(``--weights``). ``weights`` names pretrained weights, which do not change the architecture; it
is accepted and ignored (load weights with ``--weights``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from yaml2torch.blocks.activations import activation
from yaml2torch.blocks.args import Arg, ArgType, Bool, BoundArgs, Choice, Int
from yaml2torch.blocks.base import Block, BuildContext
from yaml2torch.blocks.conv import Conv
from yaml2torch.blocks.pooling import GlobalAvgPool, MaxPool
from yaml2torch.blocks.resnet import BasicBlock, ResBottleneck
from yaml2torch.blocks.yolo import template_class, with_classes
from yaml2torch.errors import Diagnostics, SpecError
from yaml2torch.ir.nodes import ModuleInstance, Shape
from yaml2torch.spec.yaml_nodes import Node, type_name

# torchvision name -> (stage block, repeats per stage); stage widths 64-512 (x4 for bottlenecks)
RESNETS = MappingProxyType(
    {
        "resnet18": (BasicBlock, (2, 2, 2, 2)),
        "resnet34": (BasicBlock, (3, 4, 6, 3)),
        "resnet50": (ResBottleneck, (3, 4, 6, 3)),
        "resnet101": (ResBottleneck, (3, 4, 23, 3)),
        "resnet152": (ResBottleneck, (3, 8, 36, 3)),
    }
)
CHILDREN = 10  # conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4, avgpool, fc
TRUNCATE = range(1, 7)  # 0 keeps fc (a Linear on a 4-d tensor); 7+ cut into conv1/bn1/relu


@dataclass(frozen=True)
class Weights(ArgType):
    """torchvision's weights name (``DEFAULT``, ``IMAGENET1K_V1``, ...) or null/false: no effect on the layers."""

    description = "a weights name or null"

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> Any:
        if node.value is None or isinstance(node.value, (str, bool)):
            return node.value
        raise SpecError(node.loc, f"{label} must be {self.description}, not {type_name(node)} ({node.value!r})")


class TorchVision(Block):
    """``[c2, model, weights=DEFAULT, unwrap=true, truncate=2, split=false]``: a torchvision ResNet, truncated."""

    name = "TorchVision"
    origin = "ultralytics"
    twin_of = "ultralytics.nn.modules.TorchVision (resnet18/34/50/101/152)"
    dialects = ("ultralytics",)
    image_input = True
    width_scaled = False  # ultralytics takes c2 as written
    signature = (
        Arg("c", Int(), aliases=("c2",)),
        Arg("model", Choice(tuple(RESNETS))),
        Arg("weights", Weights(), "DEFAULT"),
        Arg("unwrap", Bool(), True),
        Arg("truncate", Int(minimum=0), 2),
        Arg("split", Bool(), False),
    )

    def expand(self, a: BoundArgs, repeat: int, x: Shape, ctx: BuildContext) -> list[ModuleInstance]:
        if repeat != 1:
            raise ctx.fail(f"a TorchVision row builds one model; repeat {repeat} is not supported (only 1)")
        if not a.unwrap:
            raise SpecError(
                a.locs["unwrap"],
                "TorchVision unwrap=false (the whole torchvision model) is not supported; only unwrap=true",
            )
        if a.split:
            raise SpecError(
                a.locs["split"],
                "TorchVision split=true (a list of every child's output) is not supported; only split=false",
            )
        if a.truncate not in TRUNCATE:
            raise SpecError(
                a.locs["truncate"],
                f"TorchVision truncate {a.truncate} is not supported: use {TRUNCATE.start}..{TRUNCATE.stop - 1} "
                "(2 drops avgpool and fc)",
            )
        modules = resnet_children(a.model, CHILDREN - a.truncate, x, ctx)
        out = modules[-1].out_shape
        if a.c != out.channels:
            raise SpecError(
                a.locs["c"],
                f"TorchVision c2 {a.c} does not match {a.model} truncated by {a.truncate}, which gives {out}",
            )
        return modules

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        return self.expand(a, 1, x, ctx)[-1]


def resnet_children(model: str, kept: int, x: Shape, ctx: BuildContext) -> list[ModuleInstance]:
    """The first ``kept`` of torchvision's ResNet children, as our twin blocks (the stem counts 3)."""
    stage, repeats = RESNETS[model]
    conv = Conv().build(BoundArgs({"c": 64, "k": 7, "s": 2, "p": 3, "g": 1, "act": activation("ReLU")}), x, ctx)
    modules = [conv]
    pool = BoundArgs({"k": 3, "s": 2, "p": 1, "dilation": 1, "return_indices": False, "ceil_mode": False})
    modules.append(MaxPool().build(pool, conv.out_shape, ctx))
    expansion = 1 if stage is BasicBlock else 4
    for i, n in enumerate(repeats[: max(kept - 4, 0)]):
        c = 64 * 2**i * expansion
        args = BoundArgs({"c": c, "s": 1 if i == 0 else 2, "groups": 1, "base_width": 64})
        modules.extend(
            with_classes(m, template_class(stage.template or "", stage.name))
            for m in stage().expand(args, n, modules[-1].out_shape, ctx)
        )
    if kept == CHILDREN - 1:
        modules.append(GlobalAvgPool().build(BoundArgs({}), modules[-1].out_shape, ctx))
    modules[0] = with_classes(modules[0], template_class("conv.py.jinja", "Conv"))
    return modules

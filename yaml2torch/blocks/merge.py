"""Concat and Add: the multi-input blocks of ``from`` graphs (forward takes a list of tensors)."""

from __future__ import annotations

from typing import Any, ClassVar

from yaml2torch.blocks.args import Arg, BoundArgs, Int
from yaml2torch.blocks.base import Block, BuildContext
from yaml2torch.errors import SpecError
from yaml2torch.ir.nodes import ModuleInstance, Shape


class Concat(Block):
    """torch.cat along ``dim`` (a tensor dim counting the batch: 1 is channels)."""

    name = "Concat"

    origin = "kindle / YOLOv5"
    dialects = ("yaml2torch", "ultralytics")
    signature = (Arg("dim", Int(minimum=None), 1, aliases=("d", "dimension", "axis")),)
    template = "concat.py.jinja"
    multi_input = True
    ctor_defaults: ClassVar[dict[str, Any]] = {"dim": 1}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        return self.build_multi(a, (x,), ctx)

    def build_multi(self, a: BoundArgs, xs: tuple[Shape, ...], ctx: BuildContext) -> ModuleInstance:
        rank = len(xs[0].dims)
        if any(len(x.dims) != rank for x in xs):
            raise ctx.fail(f"Concat inputs differ in rank: {', '.join(str(x) for x in xs)}")
        dim = a.dim + rank + 1 if a.dim < 0 else a.dim
        if not 1 <= dim <= rank:
            raise SpecError(
                a.locs["dim"], f"Concat dim {a.dim} is out of range for {rank}-d samples (1..{rank}; 0 is the batch)"
            )
        axis = dim - 1
        first = xs[0]
        for i, x in enumerate(xs[1:], 1):
            for d, (size, other) in enumerate(zip(first.dims, x.dims)):
                if d != axis and size is not None and other is not None and size != other:
                    what = "spatial size" if d > 0 else "channels"
                    raise ctx.fail(
                        f"Concat along dim {a.dim} needs equal {what}: input 0 is {first}, input {i} is {x}"
                    )
        sizes = [x.dims[axis] for x in xs]
        joined = None if any(s is None for s in sizes) else sum(sizes)
        dims = list(first.dims)
        dims[axis] = joined
        for d in range(rank):  # a size known on any input is known on the output
            if d != axis and dims[d] is None:
                dims[d] = next((x.dims[d] for x in xs if x.dims[d] is not None), None)
        return self.instance(xs, Shape(tuple(dims)), 0, 0, dim=dim if a.dim >= 0 else a.dim)


class Add(Block):
    """Element-wise sum of same-shaped inputs."""

    name = "Add"

    origin = "kindle"
    template = "add.py.jinja"
    multi_input = True

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        return self.instance(x, x, 0, 0)

    def build_multi(self, a: BoundArgs, xs: tuple[Shape, ...], ctx: BuildContext) -> ModuleInstance:
        first = xs[0]
        for i, x in enumerate(xs[1:], 1):
            if len(x.dims) != len(first.dims) or x.channels != first.channels:
                raise ctx.fail(f"Add needs equal channels: input 0 is {first}, input {i} is {x}")
            for size, other in zip(first.dims[1:], x.dims[1:]):
                if size is not None and other is not None and size != other:
                    raise ctx.fail(f"Add needs equal spatial sizes: input 0 is {first}, input {i} is {x}")
        dims = tuple(
            next((x.dims[d] for x in xs if x.dims[d] is not None), None) for d in range(len(first.dims))
        )
        return self.instance(xs, Shape(dims), 0, 0)

"""Lowering: ModelSpec -> ModelIR (graph resolution, scaling, shapes, params, MACs, hash)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from functools import partial

from yaml2torch.blocks import Catalogue
from yaml2torch.blocks.args import BoundArgs, bind_args
from yaml2torch.blocks.base import Block, BuildContext, make_divisible
from yaml2torch.errors import Diagnostics, Location, SpecError, suggest
from yaml2torch.ir.nodes import Call, ClassSource, Layer, Literal, ModelIR, ModuleInstance, Shape
from yaml2torch.spec.limits import MAX_LAYERS, MAX_PARAMS, LayerBudget, check_params, count_text, times
from yaml2torch.spec.model_spec import ModelSpec, RowSpec

ClassSourceProvider = Callable[[Block], list[ClassSource]]
_HUGE = 10**15  # past this a repeat is refused by its order of magnitude (the exact count is no help)


def snake_case(name: str) -> str:
    name = name.split(".")[-1]
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def resolve_sources(row: RowSpec) -> tuple[int, ...]:
    resolved = []
    for source in row.sources:
        absolute = row.index + source if source < 0 else source
        if source >= 0 and source >= row.index:
            raise SpecError(
                row.source_loc,
                f"'from' {source} points at row {source}, which is not before row {row.index}; rows may only read earlier rows",
            )
        if absolute < -1:
            raise SpecError(
                row.source_loc,
                f"'from' {source} is out of range at row {row.index} (reaches {absolute}; the input is -1 at row 0)",
            )
        if absolute == -1 and row.index > 0 and source != -row.index - 1:
            raise SpecError(row.source_loc, f"'from' {source} is out of range at row {row.index}")
        resolved.append(absolute)
    return tuple(resolved)


def find_block(row: RowSpec, catalogue: Catalogue) -> Block:
    block_cls = catalogue.blocks.get(row.module)
    if block_cls is None and row.module.startswith("nn."):
        block_cls = catalogue.blocks.get("nn.")
    if block_cls is None and row.module in catalogue.refused:
        raise SpecError(row.module_loc, catalogue.refused[row.module])
    if block_cls is None:
        raise SpecError(row.module_loc, f"unknown block {row.module!r}{suggest(row.module, catalogue.blocks)}")
    return block_cls.for_row(row)


def lower(
    spec: ModelSpec,
    catalogue: Catalogue,
    class_sources: ClassSourceProvider,
    diagnostics: Diagnostics | None = None,
    loader: object = None,
) -> ModelIR:
    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    input_shape = Shape((spec.input_channel, *(spec.input_size or (None, None))))
    shapes: dict[int, Shape] = {-1: input_shape}
    layers: list[Layer] = []
    classes: dict[str, ClassSource] = {}
    budget = getattr(loader, "budget", None) or LayerBudget()  # shared with the sub-specs
    params = 0
    for row in spec.rows:
        block = find_block(row, catalogue)
        sources = resolve_sources(row)
        ctx = _build_context(spec, row, loader)
        bound = bind_args(row.module, block.signature, row.args, row.kwargs, row.kwarg_locs, row.loc, diagnostics)
        if block.width_scaled and "c" in bound.values and not row.in_head:
            channels = bound.c if spec.max_channels is None else min(bound.c, spec.max_channels)
            scaled = times(channels, spec.width_multiple)
            if not scaled <= MAX_PARAMS:  # inf too: refused before any int() of it
                raise SpecError(
                    bound.locs.get("c", row.loc),
                    f"{row.module} channels {count_text(channels)} x width_multiple {spec.width_multiple:g} "
                    f"is more than {MAX_PARAMS:,} channels (limit {MAX_PARAMS:,} parameters)",
                )
            bound = bound.replace(c=ctx.make_divisible(scaled))
        modules = _build_row(spec, row, block, bound, tuple(shapes[s] for s in sources), ctx, budget)
        params += sum(module.params for module in modules)
        check_params(params, row.loc)
        for source in class_sources(block):
            classes.setdefault(source.name, source)
        for module in modules:
            for source in getattr(module, "defines", ()):
                classes.setdefault(source.name, source)
        shapes[row.index] = modules[-1].out_shape
        layers.append(
            Layer(
                index=row.index,
                sources=sources,
                block=row.module,
                attr=f"{snake_case(row.module)}_{row.index}",
                summary=block.summary(bound),
                modules=tuple(modules),
                multi_input=block.multi_input,
                out_shape=modules[-1].out_shape,
                loc=row.loc,
            )
        )
    ir = ModelIR(
        spec_path=spec.path,
        spec_sha256=hashlib.sha256(spec.text.encode("utf-8")).hexdigest(),
        input_shape=input_shape,
        input_size_known=spec.input_size is not None,
        bn_eps=spec.norm.eps,
        bn_momentum=spec.norm.momentum,
        layers=tuple(layers),
        classes=tuple(classes.values()),
        arch_hash="",
        options=spec.options,
        normalize=None if spec.normalize is None else (spec.normalize.mean, spec.normalize.std),
        scaled_from=None if spec.normalize is None else spec.normalize.scaled_from,
    )
    return ModelIR(**{**ir.__dict__, "arch_hash": architecture_hash(ir)})


def _build_context(spec: ModelSpec, row: RowSpec, loader: object) -> BuildContext:
    """What a block needs to know of the spec at its row (head rows are not width-scaled)."""
    return BuildContext(
        loc=row.loc,
        bn_eps=spec.norm.eps,
        bn_momentum=spec.norm.momentum,
        make_divisible=partial(
            _checked_divisible,
            loc=row.loc,
            divisor=1 if row.in_head else spec.channel_divisor,
            rounding=spec.channel_rounding,
        ),
        loader=loader,
        width_multiple=1.0 if row.in_head else spec.width_multiple,
        channel_divisor=1 if row.in_head else spec.channel_divisor,
        channel_rounding=spec.channel_rounding,
        scale=spec.scale,
        default_act=spec.activation,
    )


def _checked_divisible(value: float, divisor: int, rounding: str, loc: Location) -> int:
    """``make_divisible`` of a computed channel count, refused at the row past the parameter limit
    (a count that large cannot fit it; an infinite one cannot become an int)."""
    if not value <= MAX_PARAMS:
        raise SpecError(
            loc, f"this row computes {count_text(value)} channels, more than {MAX_PARAMS:,} (limit {MAX_PARAMS:,} parameters)"
        )
    return make_divisible(value, divisor, rounding)


def _build_row(
    spec: ModelSpec,
    row: RowSpec,
    block: Block,
    bound: BoundArgs,
    in_shapes: tuple[Shape, ...],
    ctx: BuildContext,
    budget: LayerBudget,
) -> list[ModuleInstance]:
    """The row's modules (one per repeat, after depth_multiple), its inputs checked, the layer
    budget charged before any is built."""
    repeat = row.repeat
    if repeat > 1 and not row.in_head:
        scaled = times(repeat, spec.depth_multiple)
        if not scaled <= _HUGE:  # inf too: refused before round() of it
            raise SpecError(
                row.repeat_loc,
                f"repeat {count_text(row.repeat)} (x depth_multiple {spec.depth_multiple:g}) is more than "
                f"{MAX_LAYERS:,} layers (limit {MAX_LAYERS:,} layers after repeats and depth_multiple, sub-specs included)",
            )
        repeat = max(round(scaled), 1)
    written = str(row.repeat) if row.repeat <= _HUGE else count_text(row.repeat)
    what = f"repeat {written}" + (f" (x depth_multiple {spec.depth_multiple:g} = {repeat:,})" if repeat != row.repeat else "")
    budget.charge(repeat, row.repeat_loc if row.repeat > 1 else row.loc, what if row.repeat > 1 else "this row")
    if block.multi_input:
        if repeat != 1:
            raise SpecError(row.repeat_loc, f"{row.module} combines inputs and cannot be repeated (repeat {row.repeat})")
        return [block.build_multi(bound, in_shapes, ctx)]
    if len(in_shapes) != 1:
        raise SpecError(
            row.source_loc,
            f"{row.module} takes one input, but 'from' lists {len(in_shapes)}; use Concat or Add to merge",
        )
    if block.image_input and not in_shapes[0].is_image:
        raise SpecError(row.loc, f"{block.name} needs a (C, H, W) input, got {in_shapes[0]}")
    return block.expand(bound, repeat, in_shapes[0], ctx)


def _expr_json(expr: object, class_keys: dict[str, str]) -> object:
    if isinstance(expr, Literal):
        return {"lit": list(expr.value) if isinstance(expr.value, tuple) else expr.value}
    assert isinstance(expr, Call)
    return {
        "call": class_keys.get(expr.callee, expr.callee),
        "args": [_expr_json(a, class_keys) for a in expr.args],
        "kwargs": [[k, _expr_json(v, class_keys)] for k, v in expr.kwargs],
    }


def _class_keys(classes: tuple[ClassSource, ...]) -> dict[str, str]:
    """Each generated class by its body, with comments and (file-derived) class names left out.

    Classes come in dependency order, so names used in a body are already keyed.
    """
    keys: dict[str, str] = {}
    for source in classes:
        body = "\n".join(line for line in source.source.splitlines() if not line.lstrip().startswith("#"))
        for name in sorted({*keys, source.name}, key=len, reverse=True):
            body = re.sub(rf"\b{re.escape(name)}\b", keys.get(name, "_") if name != source.name else "_", body)
        keys[source.name] = "class_" + hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]
    return keys


def architecture_hash(ir: ModelIR) -> str:
    """sha256 of the lowered network: input shape, norm settings, graph and every constructor call.

    Names, comments, locations and the spec's spelling do not enter it (generated classes
    count by their bodies), so two specs that lower to the same network hash the same.
    """
    class_keys = _class_keys(ir.classes)
    canonical = {
        "input": list(ir.input_shape.dims),
        "bn": [ir.bn_eps, ir.bn_momentum],
        "layers": [
            {"from": list(layer.sources), "modules": [_expr_json(m.call, class_keys) for m in layer.modules]}
            for layer in ir.layers
        ],
        "classes": sorted(class_keys.values()),
    }
    if ir.normalize is not None:  # absent from older hashes: specs without it hash as before
        canonical["normalize"] = [list(ir.normalize[0]), list(ir.normalize[1])]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

"""Assemble the model file: header, constants, block classes, the Model class."""

from __future__ import annotations

import builtins
import keyword
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from yaml2torch import __version__
from yaml2torch.blocks.base import Block
from yaml2torch.errors import SpecError, printable
from yaml2torch.ir.nodes import ClassSource, Layer, ModelIR, Shape
from yaml2torch.render.expr import render_expr
from yaml2torch.render.templates import environment


@dataclass(frozen=True)
class LayerView:
    """What the template needs for one row."""

    comment: str
    attr: str
    ctor: str
    forward: str


def format_count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def layer_comment(layer: Layer) -> str:
    repeat = f" x{len(layer.modules)}" if len(layer.modules) > 1 else ""
    args = f" [{layer.summary}]" if layer.summary else ""
    # printable(): a line break in a YAML string must not end the comment and start code
    return printable(f"{layer.index}: {layer.block}{args}{repeat} -> {layer.out_shape}, {format_count(layer.params)} params")


def display_name(file_name: str) -> str:
    """The spec's file name as it may stand in the header comment and the module docstring."""
    return printable(file_name).replace("\\", "\\\\").replace('"', '\\"')


_BUILTIN_NAMES = frozenset(name for name in vars(builtins) if name != "_")  # "_" is set only by the REPL
_RESERVED_NAMES = {"torch", "nn", "BN_EPS", "BN_MOMENTUM", "INPUT_SHAPE", "INPUT_MEAN", "INPUT_STD"}


@dataclass(frozen=True)
class NormalizeView:
    """INPUT_MEAN / INPUT_STD as checked literals (finite floats only)."""

    mean: str
    std: str


def normalize_view(normalize: tuple[tuple[float, ...], tuple[float, ...]] | None) -> NormalizeView | None:
    if normalize is None:
        return None

    def literal(values: tuple[float, ...]) -> str:
        assert all(isinstance(v, float) and math.isfinite(v) for v in values)  # checked when the spec was read
        return "(" + ", ".join(repr(v) for v in values) + ("," if len(values) == 1 else "") + ")"

    return NormalizeView(literal(normalize[0]), literal(normalize[1]))


def check_class_name(class_name: str, classes: tuple[ClassSource, ...]) -> None:
    """The model class name must be an identifier that shadows nothing in the generated file."""
    if not class_name.isidentifier() or keyword.iskeyword(class_name):
        raise SpecError(None, f"class name {class_name!r} is not a Python identifier")
    if unicodedata.normalize("NFKC", class_name) != class_name:  # Python would read another name
        raise SpecError(None, f"class name {class_name!r} reads as {unicodedata.normalize('NFKC', class_name)!r} in Python")
    if class_name in _BUILTIN_NAMES:  # super, int, range ...: the generated file (or its user) needs them
        raise SpecError(None, f"class name {class_name!r} would shadow the Python built-in {class_name!r}; choose another")
    taken = _RESERVED_NAMES | {m for c in classes for m in re.findall(r"^class (\w+)", c.source, re.MULTILINE)}
    if class_name in taken:
        raise SpecError(None, f"class name {class_name!r} clashes with a name the generated file defines or imports")


def layer_ctor(layer: Layer) -> str:
    calls = [render_expr(m.call) for m in layer.modules]
    return calls[0] if len(calls) == 1 else f"nn.Sequential({', '.join(calls)})"


def forward_lines(ir: ModelIR) -> tuple[str, list[LayerView]]:
    """Variable names: ``x`` for a plain chain, ``xN`` for outputs read again later."""
    saved = {
        source
        for layer in ir.layers
        for source in layer.sources
        if source != layer.index - 1 or layer.multi_input and len(layer.sources) > 1
    }
    input_name = "x_in" if -1 in saved else "x"

    def name(index: int) -> str:
        if index == -1:
            return input_name
        return f"x{index}" if index in saved else "x"

    views = []
    for layer in ir.layers:
        inputs = [name(s) for s in layer.sources]
        argument = f"[{', '.join(inputs)}]" if layer.multi_input else inputs[0]
        views.append(
            LayerView(
                comment=layer_comment(layer),
                attr=layer.attr,
                ctor=layer_ctor(layer),
                forward=f"{name(layer.index)} = self.{layer.attr}({argument})",
            )
        )
    return input_name, views


def shape_literal(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape.dims) + ("," if len(shape.dims) == 1 else "") + ")"


def render_model_file(ir: ModelIR, class_name: str = "Model") -> str:
    check_class_name(class_name, ir.classes)
    input_name, views = forward_lines(ir)
    classes_source = "\n\n".join(c.source.strip("\n") for c in ir.classes)
    uses_bn = "BN_EPS" in classes_source or "BN_MOMENTUM" in classes_source
    output_var = views[-1].forward.split(" = ")[0]
    return environment().get_template("model.py.jinja").render(
        version=__version__,
        spec_name=display_name(Path(ir.spec_path).name),
        options=f" {ir.options}" if ir.options else "",
        spec_sha=ir.spec_sha256[:12],
        arch_hash=ir.arch_hash[:12],
        class_name=class_name,
        uses_bn=uses_bn,
        bn_eps=repr(ir.bn_eps),
        bn_momentum=repr(ir.bn_momentum),
        input_shape=shape_literal(ir.input_shape) if ir.input_size_known else None,
        input_desc=", ".join(str(d) if d is not None else ["H", "W"][i - 1] for i, d in enumerate(ir.input_shape.dims)),
        normalize=normalize_view(ir.normalize),
        scaled_from=None if ir.scaled_from is None else f"{ir.scaled_from:g}",
        output_shape=str(ir.output_shape),
        params=format_count(ir.params),
        macs=format_count(ir.macs),
        classes=[c.source.strip("\n") for c in ir.classes],
        layers=views,
        input_name=input_name,
        output_var=output_var,
    )


def block_class_sources(block: Block) -> list[ClassSource]:
    """The helper classes a block needs, then its own class; deduplicated by name later."""
    env = environment()
    sources = [
        ClassSource(template, env.get_template(f"blocks/{template}").render()) for template in block.requires
    ]
    own = block.class_source(env)
    if own:
        sources.append(ClassSource(block.generated_name(), own))
    return sources

"""YamlModule: ``["file.yaml", arg0, ...]``, a kindle sub-spec compiled into its own class.

The sub-spec file (relative to the file that names it) has ``module:`` rows in either row form and
optional ``args:`` defaults; any list item or kwarg value spelt ``argN`` is replaced by the row's
N-th value after the file name (else the N-th default). The rows are lowered like a model whose
input is the row's input (width scaling and norm settings from the parent row; depth 1.0, as kindle
does) and rendered into one class per distinct body, named after the file stem
(``inception.yaml`` -> ``InceptionModule``, then ``InceptionModule2`` ... for other bodies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yaml2torch.blocks.args import Arg, ArgType, Bool, BoundArgs
from yaml2torch.blocks.base import Block, BuildContext
from yaml2torch.errors import Diagnostics, SpecError, printable, suggest
from yaml2torch.ir.nodes import Call, ClassSource, InputFile, ModuleInstance, Shape, check_identifier
from yaml2torch.spec.limits import MAX_INCLUDE_DEPTH
from yaml2torch.spec.yaml_nodes import Node, type_name

if TYPE_CHECKING:
    from yaml2torch.blocks.loader import SubSpecLoader
    from yaml2torch.ir.nodes import ModelIR
    from yaml2torch.spec.model_spec import RowSpec

SUB_SPEC_KEYS = ("args", "module")
_PLACEHOLDER = re.compile(r"^arg(\d+)$")
_UNSET = object()


@dataclass(frozen=True)
class FileName(ArgType):
    description = "a YAML file name (a string)"

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> str:
        if not isinstance(node.value, str) or not node.value:
            raise SpecError(node.loc, f"{label} must be a YAML file name, not {type_name(node)}")
        if "\x00" in node.value:  # no file can have it; pathlib would raise ValueError
            raise SpecError(node.loc, f"{label} {node.value!r} is not a possible file name")
        return node.value


@dataclass(frozen=True)
class AnyNode(ArgType):
    """A sub-spec argument: checked later, where the sub-spec uses it."""

    description = "a value for the sub-spec"

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> Node:
        return node


class YamlModule(Block):
    """A YAML sub-spec file (``module:`` rows, ``args:`` defaults) compiled into its own class.

    One instance per row: ``for_row`` sizes the signature to the row's arguments.
    """

    name = "YamlModule"

    origin = "kindle (a YAML sub-spec)"
    image_input = True

    def __init__(self, n_args: int = 0) -> None:
        self.signature = (
            Arg("file", FileName(), aliases=("path",)),
            *(Arg(f"arg{i}", AnyNode(), _UNSET) for i in range(n_args)),
            Arg("verbose", Bool(), False),  # kindle's printing switch: accepted, no effect here
        )

    @classmethod
    def for_row(cls, row: RowSpec) -> YamlModule:
        numbered = [int(m.group(1)) + 1 for key in row.kwargs if (m := _PLACEHOLDER.match(key))]
        return cls(max([len(row.args) - 1, *numbered, 0]))

    def summary(self, a: BoundArgs) -> str:
        values = [repr(a.file)] + [_plain(a.values[arg.name]) for arg in self.signature[1:-1]]
        return ", ".join(v for v in values if v is not None)

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        loader: SubSpecLoader | None = ctx.loader
        if loader is None:
            raise ctx.fail("YamlModule needs a sub-spec loader (compile through yaml2torch.compiler)")
        file_loc = a.locs["file"]
        if len(loader.including) >= MAX_INCLUDE_DEPTH:
            raise SpecError(
                file_loc,
                f"YamlModule files nest deeper than {MAX_INCLUDE_DEPTH} levels (limit {MAX_INCLUDE_DEPTH}): "
                f"{loader.including[0].name} -> ... -> {loader.including[-1].name} -> {a.file}",
            )
        try:
            path = (loader.base_dir / a.file).resolve()
            path.is_file()
        except OSError as exc:  # e.g. a name too long for the file system
            raise SpecError(file_loc, f"YamlModule file {a.file!r} cannot be opened: {exc.strerror}") from None
        if path in loader.including:
            chain = " -> ".join(p.name for p in (*loader.including, path))
            raise SpecError(file_loc, f"YamlModule {a.file!r} includes itself ({chain})")
        if not path.is_file():
            raise SpecError(file_loc, f"YamlModule file {a.file!r} not found (looked for {path})")
        values = {
            int(arg.name[3:]): a.values[arg.name] for arg in self.signature[1:-1] if a.values[arg.name] is not _UNSET
        }
        if all(path != known.path for known in loader.read):
            loader.read.append(InputFile(path, file_loc, "YamlModule file"))
        try:
            sub_ir = lower_sub_spec(path, values, x, ctx, loader)
        except SpecError as exc:
            if exc.location is not None and exc.location.file != ctx.loc.file and "(in YamlModule at " not in exc.message:
                # the error is inside the sub-spec: say which row brought it in
                raise SpecError(exc.location, f"{exc.message} (in YamlModule at {ctx.loc})") from None
            raise
        source = render_sub_class(sub_ir, path)
        name = class_name_for(path, source, loader)
        own = ClassSource(name, source.replace(_NAME_SLOT, name))
        return ModuleInstance(Call(name), x, sub_ir.output_shape, sub_ir.params, sub_ir.macs, (*sub_ir.classes, own))


def _plain(value: Any) -> str | None:
    if value is _UNSET:
        return None
    plain = value.plain() if isinstance(value, Node) else value
    return repr(plain)


def read_sub_spec(path: Path) -> tuple[Node, str]:
    from yaml2torch.spec.yaml_nodes import load_text, read_text

    text = read_text(path)
    return load_text(text, str(path)), text


def substitute(node: Node, values: dict[int, Node], defaults: list[Node], keep_unset: bool = False) -> Node:
    """``node`` with every ``argN`` string replaced by the row's value N (or default N); one with
    neither is an error, or left as written with ``keep_unset``."""
    if isinstance(node.value, str) and (match := _PLACEHOLDER.match(node.value)):
        index = int(match.group(1))
        if index in values:
            return values[index]
        if index < len(defaults):
            return defaults[index]
        if keep_unset:
            return node
        raise SpecError(
            node.loc,
            f"{node.value} has no value: the YamlModule row gives {len(values)} args and the file's "
            f"args: lists {len(defaults)} defaults",
        )
    if isinstance(node.value, list):
        return Node([substitute(item, values, defaults, keep_unset) for item in node.value], node.loc)
    if isinstance(node.value, dict):
        items = {key: substitute(item, values, defaults, keep_unset) for key, item in node.value.items()}
        return Node(items, node.loc, node.key_locs)
    return node


def _placeholders(node: Node) -> set[int]:
    """The N of every ``argN`` in ``node``: the args a sub-spec's rows read."""
    if isinstance(node.value, str) and (match := _PLACEHOLDER.match(node.value)):
        return {int(match.group(1))}
    if isinstance(node.value, list):
        return set().union(*(_placeholders(item) for item in node.value))
    if isinstance(node.value, dict):
        return set().union(*(_placeholders(item) for item in node.value.values()))
    return set()


def is_sub_spec(root: Node) -> bool:
    """A file read as a YamlModule sub-spec rather than a model spec (``check``, ``textconv``): no
    ``backbone:``, and ``module:`` rows or ``args:`` (the compiler reads a file as a sub-spec only
    through a YamlModule row)."""
    keys = root.mapping() if root.is_map else {}
    return "backbone" not in keys and ("module" in keys or "args" in keys)


def sub_spec_parts(root: Node) -> tuple[list[Node], list[Node]]:
    """A sub-spec's ``args:`` defaults and ``module:`` rows, its keys checked."""
    from yaml2torch.spec.model_spec import expect_list

    if not root.is_map:
        raise SpecError(root.loc, f"a YamlModule file must be a mapping with 'module:' rows, not {type_name(root)}")
    fields = root.mapping()
    for key in fields:
        if key not in SUB_SPEC_KEYS:
            raise SpecError(
                root.key_loc(key),
                f"unknown YamlModule key {key!r}{suggest(key, SUB_SPEC_KEYS)}; a sub-spec has args: and module:",
            )
    if "module" not in fields:
        raise SpecError(root.loc, "a YamlModule file needs 'module:' (its rows)")
    defaults = expect_list(fields["args"], "args") if "args" in fields and fields["args"].value is not None else []
    row_nodes = expect_list(fields["module"], "module")
    if not row_nodes:
        raise SpecError(fields["module"].loc, "the YamlModule file's module: has no rows")
    return defaults, row_nodes


def check_sub_spec(root: Node) -> None:
    """What can be checked of a sub-spec on its own (``yaml2torch check``): its keys, and each row's
    form with every ``argN`` that has a default replaced by it. A row whose from, repeat, module or
    args is an ``argN`` without a default is given by the including row: only its length is checked
    here (the includers are compiled for the rest)."""
    from yaml2torch.spec.model_spec import parse_row

    defaults, row_nodes = sub_spec_parts(root)
    given = dict(enumerate(defaults))
    for index, node in enumerate(row_nodes):
        row = substitute(node, given, [], keep_unset=True)
        if row.is_seq and any(_is_placeholder(item) for item in row.sequence()[:4]):
            if len(row.sequence()) not in (3, 4, 5):
                parse_row(row, index, False, Diagnostics())  # the error for a wrong length
            continue
        parse_row(row, index, False, Diagnostics())


def _is_placeholder(node: Node) -> bool:
    return isinstance(node.value, str) and _PLACEHOLDER.match(node.value) is not None


def lower_sub_spec(path: Path, values: dict[int, Node], x: Shape, ctx: BuildContext, loader: SubSpecLoader) -> ModelIR:
    from yaml2torch.blocks import Catalogue, builtin_blocks
    from yaml2torch.ir.lower import lower
    from yaml2torch.render.model_file import block_class_sources
    from yaml2torch.spec.model_spec import ModelSpec, NormSpec, parse_row

    root, text = read_sub_spec(path)
    defaults, row_nodes = sub_spec_parts(root)
    diagnostics = loader.diagnostics
    takes = max([len(defaults), *(n + 1 for node in row_nodes for n in _placeholders(node))], default=0)
    unused = sorted(n for n in values if n >= takes)
    if unused:  # kindle ignores them too (so not an error), but never without a word
        reads = f"reads {takes} args (arg0 to arg{takes - 1})" if takes else "reads no args"
        diagnostics.warn(
            values[unused[0]].loc,
            f"YamlModule {path.name} {reads}; this row gives {max(values) + 1}, the rest are ignored",
        )
    rows = tuple(parse_row(substitute(node, values, defaults), i, False, diagnostics) for i, node in enumerate(row_nodes))
    spec = ModelSpec(
        path=str(path),
        base_dir=path.parent,
        input_channel=x.channels,
        input_size=x.spatial if x.known else None,  # type: ignore[arg-type]  # known: H and W are ints
        depth_multiple=1.0,
        width_multiple=ctx.width_multiple,
        channel_divisor=ctx.channel_divisor,
        channel_rounding=ctx.channel_rounding,
        norm=NormSpec(ctx.bn_eps, ctx.bn_momentum),
        rows=rows,
        modules=(),
        text=text,
    )
    catalogue = loader.catalogue if loader.catalogue is not None else Catalogue(builtin_blocks())
    return lower(spec, catalogue, block_class_sources, diagnostics, loader.nested(path))


_NAME_SLOT = "__YAML_MODULE_CLASS__"


def render_sub_class(ir: ModelIR, path: Path) -> str:
    """The class source with a name slot; comments carry channels, not spatial sizes, so one body
    serves every input size."""
    from yaml2torch.render.model_file import format_count, forward_lines
    from yaml2torch.render.templates import environment

    input_name, views = forward_lines(ir)
    comments = [
        printable(
            f"{layer.index}: {layer.block}{f' [{layer.summary}]' if layer.summary else ''}"
            f"{f' x{len(layer.modules)}' if len(layer.modules) > 1 else ''}"
            f" -> {layer.out_shape.channels} channels, {format_count(layer.params)} params"
        )
        for layer in ir.layers
    ]
    return environment().get_template("blocks/yaml_module.py.jinja").render(
        class_name=_NAME_SLOT,
        file_comment=printable(repr(path.name)),
        params=format_count(ir.params),
        layers=[{"comment": c, "attr": v.attr, "ctor": v.ctor, "forward": v.forward} for c, v in zip(comments, views)],
        input_name=input_name,
        output_var=views[-1].forward.split(" = ")[0],
    )


def class_name_for(path: Path, source: str, loader: SubSpecLoader) -> str:
    """``<Stem>Module`` for the first body from this file, then ``<Stem>Module2`` ...; deterministic."""
    key = f"{path}\0{source}"
    if key in loader.class_names:
        return loader.class_names[key]
    words = [w for w in re.split(r"[^0-9A-Za-z]+", path.stem) if w]
    base = "".join(w[0].upper() + w[1:] for w in words) or "Sub"
    if base[0].isdigit():
        base = "M" + base
    if not base.endswith(("Module", "Block")) or base in _taken_names(loader):
        base += "Module"
    taken = set(loader.class_names.values()) | _taken_names(loader)
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}{n}"
    loader.class_names[key] = check_identifier(name)
    return name


def _taken_names(loader: SubSpecLoader) -> set[str]:
    """Class names the catalogue's blocks generate (a sub-spec class must not shadow them)."""
    from yaml2torch.blocks import builtin_blocks

    blocks = loader.catalogue.blocks if loader.catalogue is not None else builtin_blocks()
    return {getattr(b, "class_name", "") or b.name for b in blocks.values()} | {"Model"}

"""ultralytics' model files (YOLOv5/v8/11 ``[from, repeats, module, args]`` YAML) as a spec dialect.

The rule: a file with a top-level ``nc:`` or ``scales:`` key is an ultralytics model file (our
own specs have neither). It is read the way ultralytics' ``parse_model`` reads it:

- ``scales: {n: [depth, width, max_channels], ...}`` picks one scale: ``--scale``, else the
  letter in a file name such as ``yolov8n-cls.yaml``, else the first (with a warning);
  without ``scales:``, ``depth_multiple``/``width_multiple`` (default 1.0) apply.
- every row is scaled, head rows too: ``ceil(min(c, max_channels) * width / 8) * 8``;
- an arg that is the string ``nc`` becomes ``nc`` (``--nc`` overrides the file's); the strings
  ``None``/``True``/``False`` become null/true/false (ultralytics runs ``ast.literal_eval`` on
  string args; we map these three names, nothing is ever evaluated). Other strings stay strings.
- the blocks are ultralytics' (``yaml2torch.blocks.ultralytics``): SiLU unless ``activation:``
  says ``nn.<Name>()``, and BatchNorm with torch's defaults, as ultralytics' ClassificationModel
  leaves them (its DetectionModel sets eps 1e-3, momentum 0.03; detection heads are not compiled).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from yaml2torch.errors import Diagnostics, SpecError, suggest
from yaml2torch.spec.model_spec import (
    ModelSpec,
    NormSpec,
    RowSpec,
    expect_int,
    expect_positive_float,
    parse_input_size,
    parse_row,
)
from yaml2torch.spec.yaml_nodes import Node, type_name

DIALECT = "ultralytics"
KEYS = ("nc", "scales", "depth_multiple", "width_multiple", "activation", "channels", "input_size", "backbone", "head")
# Settings of detection heads (not compiled); accepted so a file loads far enough to name its head.
IGNORED_KEYS = ("anchors", "kpt_shape", "reg_max", "end2end", "text_model")
SCALES = ("n", "s", "m", "l", "x")
MARKER_KEYS = ("nc", "scales")  # a spec with either is an ultralytics model file
_SCALE_IN_NAME = re.compile(r"yolo(e-)?v?\d+([nslmx])")  # ultralytics' guess_model_scale
_SCALED_NAME = re.compile(r"(\d+)([nslmx])(.+)?$")  # yolov8n-cls.yaml -> yolov8-cls.yaml
_ACTIVATION = re.compile(r"^(?:torch\.)?nn\.([A-Za-z0-9_]+)\(\)$")
_LITERAL_NAMES = {"None": None, "True": True, "False": False}


@dataclass(frozen=True)
class UltralyticsOptions:
    """Command-line choices for an ultralytics file: ``--scale`` and ``--nc``."""

    scale: str | None = None
    nc: int | None = None

    def flags(self) -> str:
        """The options as they are typed (for the regenerate hint in the file header)."""
        parts = ([f"--scale {self.scale}"] if self.scale else []) + ([f"--nc {self.nc}"] if self.nc else [])
        return " ".join(parts)

    def check(self) -> None:
        if self.scale is not None and self.scale not in SCALES:
            raise SpecError(None, f"--scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        if self.nc is not None and self.nc < 1:
            raise SpecError(None, f"--nc must be a positive int, got {self.nc}")


def is_ultralytics(root: Node) -> bool:
    return root.is_map and any(key in root.mapping() for key in MARKER_KEYS)


def guess_scale(path: str | Path) -> str:
    """The scale letter in a file name (``yolo11s-cls.yaml`` -> ``s``), or ``''``."""
    match = _SCALE_IN_NAME.search(Path(path).stem)
    return match.group(2) if match else ""


def unscaled_path(path: Path) -> Path:
    """Where ultralytics looks when a scaled name does not exist: ``yolov8n-cls.yaml`` -> ``yolov8-cls.yaml``."""
    return path.with_name(_SCALED_NAME.sub(r"\1\3", path.name))


def parse_ultralytics_spec(
    root: Node, filename: str, base_dir: Path, text: str, diagnostics: Diagnostics, options: UltralyticsOptions
) -> ModelSpec:

    options.check()
    fields = root.mapping()
    check_keys(root)
    if "backbone" not in fields:
        raise SpecError(root.loc, "missing required key 'backbone'")
    scale, depth, width, max_channels = pick_scale(root, filename, options, diagnostics)
    nc_node = fields.get("nc")
    nc = options.nc if options.nc is not None else (expect_int(nc_node, "nc", minimum=1) if nc_node else None)
    rows: list[RowSpec] = []
    for section in ("backbone", "head"):
        node = fields.get(section)
        if node is None or node.value is None:
            continue
        if not node.is_seq:
            raise SpecError(node.loc, f"{section} must be a list, not {type_name(node)}")
        for row_node in node.sequence():
            row = parse_row(row_node, len(rows), False, diagnostics)  # ultralytics scales head rows too
            rows.append(replace(row, args=tuple(literal_arg(arg, nc) for arg in row.args)))
    if not rows:
        raise SpecError(fields["backbone"].loc, "the backbone has no rows")
    return ModelSpec(
        path=filename,
        base_dir=base_dir,
        input_channel=expect_int(fields["channels"], "channels", minimum=1) if "channels" in fields else 3,
        input_size=parse_input_size(fields.get("input_size")),
        depth_multiple=depth,
        width_multiple=width,
        channel_divisor=8,
        channel_rounding="ceil",  # ultralytics' make_divisible is ceil(x / 8) * 8
        norm=NormSpec(),
        rows=tuple(rows),
        modules=(),
        text=text,
        dialect=DIALECT,
        max_channels=max_channels,
        scale=scale,
        activation=parse_activation_key(fields.get("activation")),
        options=options.flags(),
    )


def check_keys(root: Node) -> None:
    fields = root.mapping()
    for key, value in fields.items():
        if key not in KEYS and key not in IGNORED_KEYS and not value.defines_anchor:
            raise SpecError(
                root.key_loc(key),
                f"unknown key {key!r} in an ultralytics model file (it has nc: or scales:)"
                + (suggest(key, KEYS) or f"; expected one of {', '.join(KEYS)}"),
            )


def pick_scale(
    root: Node, filename: str, options: UltralyticsOptions, diagnostics: Diagnostics
) -> tuple[str, float, float, int | None]:
    """(scale letter, depth, width, max_channels), as ultralytics' parse_model picks them."""

    fields = root.mapping()
    node = fields.get("scales")
    if node is None or node.value is None:
        if options.scale is not None:
            raise SpecError(None, f"--scale {options.scale}: {filename} has no 'scales:' to pick from")
        depth = expect_positive_float(fields["depth_multiple"], "depth_multiple") if "depth_multiple" in fields else 1.0
        width = expect_positive_float(fields["width_multiple"], "width_multiple") if "width_multiple" in fields else 1.0
        return "", depth, width, None
    if not node.is_map or not node.value:
        raise SpecError(node.loc, f"scales must be a mapping like {{n: [0.33, 0.25, 1024]}}, not {type_name(node)}")
    scales = node.mapping()
    scale = options.scale or guess_scale(filename)
    if not scale:
        scale = next(iter(scales))
        diagnostics.warn(root.key_loc("scales"), f"no scale given (--scale or a name like yolov8n-cls.yaml); using the first, {scale!r}")
    elif scale not in scales:
        source = "--scale" if options.scale else f"the file name {Path(filename).name!r}"
        raise SpecError(root.key_loc("scales"), f"scale {scale!r} (from {source}) is not in scales; this file has {', '.join(scales)}")
    return (scale, *scale_values(scales[scale], scale))


def scale_values(node: Node, scale: str) -> tuple[float, float, int]:

    if not node.is_seq or len(node.sequence()) != 3:
        raise SpecError(node.loc, f"scale {scale!r} must be [depth, width, max_channels], not {type_name(node)}")
    depth, width, channels = node.sequence()
    return (
        expect_positive_float(depth, f"scale {scale!r} depth"),
        expect_positive_float(width, f"scale {scale!r} width"),
        expect_int(channels, f"scale {scale!r} max_channels", minimum=1),
    )


def literal_arg(node: Node, nc: int | None) -> Node:
    """One row arg as ultralytics reads it: ``nc`` -> its value, ``'None'``/``'True'``/``'False'``
    -> null/true/false. Only these names: nothing is evaluated."""
    if not isinstance(node.value, str):
        return node
    if node.value == "nc":
        if nc is None:
            raise SpecError(node.loc, "this row uses nc, but the file sets no 'nc:'; add nc: or pass --nc N")
        return replace(node, value=nc)
    if node.value in _LITERAL_NAMES:
        return replace(node, value=_LITERAL_NAMES[node.value])
    return node


def parse_activation_key(node: Node | None) -> str:
    """``activation: nn.ReLU()`` -> ``'ReLU'`` from the fixed activation table; SiLU when absent."""
    from yaml2torch.blocks.activations import NAMES, activation

    if node is None or node.value is None:
        return "SiLU"
    text = node.value if isinstance(node.value, str) else ""
    match = _ACTIVATION.match(text.strip())
    if not match:
        raise SpecError(node.loc, f"activation must be written nn.<Name>() without arguments, like nn.SiLU(), got {node.value!r}")
    try:
        name = activation(match.group(1)).name
    except KeyError:
        raise SpecError(node.loc, f"unknown activation {match.group(1)!r}{suggest(match.group(1), NAMES)}") from None
    if name == "PReLU":
        # ultralytics sets one instance as Conv's default, so its one slope is shared by the whole
        # model; each block here builds its own: a different model, not a twin.
        raise SpecError(
            node.loc,
            "activation nn.PReLU() is not supported: ultralytics shares its one instance (one slope) "
            "across the model, yaml2torch would give each block its own",
        )
    return name

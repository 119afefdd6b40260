"""Loading a model spec: read the file, parse located YAML, pick the dialect, build ``ModelSpec``.

Two dialects share ``ModelSpec``: yaml2torch's own (``model_spec.parse_model_spec``) and
ultralytics' model files (``ultralytics.parse_ultralytics_spec``, recognised by ``nc:`` or
``scales:``). This module is the one entry point the compiler and the search call.
"""

from __future__ import annotations

from pathlib import Path

from yaml2torch.errors import Diagnostics, SpecError
from yaml2torch.spec.model_spec import ModelSpec, parse_model_spec
from yaml2torch.spec.ultralytics import (
    UltralyticsOptions,
    guess_scale,
    is_ultralytics,
    parse_ultralytics_spec,
    unscaled_path,
)
from yaml2torch.spec.yaml_nodes import Node, load_text, read_text, type_name


def load_spec(
    path: str | Path, diagnostics: Diagnostics | None = None, options: UltralyticsOptions | None = None
) -> ModelSpec:
    """``options`` (``--scale``, ``--nc``) apply to ultralytics model files only."""
    path = Path(path)
    if not path.exists() and guess_scale(path) and unscaled_path(path).is_file():
        # yolov8n-cls.yaml names scale n of yolov8-cls.yaml, as in ultralytics (--scale still wins)
        scale = options.scale if options and options.scale else guess_scale(path)
        options, path = UltralyticsOptions(scale, options.nc if options else None), unscaled_path(path)
    text = read_text(path)
    return parse_spec(load_text(text, str(path)), str(path), path.parent, text, diagnostics, options)


def load_spec_text(
    text: str,
    filename: str = "<spec>",
    base_dir: Path | None = None,
    diagnostics: Diagnostics | None = None,
    options: UltralyticsOptions | None = None,
) -> ModelSpec:
    return parse_spec(load_text(text, filename), filename, base_dir or Path.cwd(), text, diagnostics, options)


def parse_spec(
    root: Node,
    filename: str,
    base_dir: Path,
    text: str,
    diagnostics: Diagnostics | None = None,
    options: UltralyticsOptions | None = None,
) -> ModelSpec:
    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    if not root.is_map:
        raise SpecError(root.loc, f"a model spec must be a mapping, not {type_name(root)}")
    if is_ultralytics(root):
        return parse_ultralytics_spec(root, filename, base_dir, text, diagnostics, options or UltralyticsOptions())
    if options is not None and options.flags():
        raise SpecError(
            None,
            f"{options.flags()} {'apply' if options.scale and options.nc else 'applies'} to ultralytics model files "
            f"(with nc: or scales:); {filename} is a yaml2torch spec",
        )
    return parse_model_spec(root, filename, base_dir, text, diagnostics)

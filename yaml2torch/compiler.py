"""The orchestrator: spec -> IR -> render -> format. Nothing is written here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from yaml2torch.blocks import Catalogue
from yaml2torch.errors import Diagnostics
from yaml2torch.ir.lower import lower
from yaml2torch.ir.nodes import ModelIR
from yaml2torch.spec.load import load_spec, load_spec_text
from yaml2torch.spec.model_spec import ModelSpec
from yaml2torch.spec.ultralytics import UltralyticsOptions


@dataclass(frozen=True)
class CompiledModel:
    ir: ModelIR
    source: str
    warnings: tuple = field(default=())

    @property
    def params(self) -> int:
        return self.ir.params

    @property
    def macs(self) -> int | None:
        return self.ir.macs

    @property
    def arch_hash(self) -> str:
        return self.ir.arch_hash


def analyze(spec: ModelSpec, diagnostics: Diagnostics | None = None) -> ModelIR:
    """Lower a loaded spec to the IR (shapes, params, MACs, hash) without rendering the file."""
    from yaml2torch.blocks.loader import SubSpecLoader
    from yaml2torch.render.model_file import block_class_sources

    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    catalogue = Catalogue.for_modules(
        spec.modules, spec.rows[0].loc, (spec.base_dir, Path.cwd()), spec.module_locs, spec.dialect
    )
    loader = SubSpecLoader(spec.base_dir, diagnostics, catalogue=catalogue)
    return lower(spec, catalogue, block_class_sources, diagnostics, loader)


def compile_spec(spec: ModelSpec, class_name: str = "Model", diagnostics: Diagnostics | None = None) -> CompiledModel:
    from yaml2torch.format import BlackFormatter
    from yaml2torch.render.model_file import render_model_file

    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    ir = analyze(spec, diagnostics)
    source = BlackFormatter().format(render_model_file(ir, class_name))
    return CompiledModel(ir, source, tuple(diagnostics.warnings))


def compile_file(path: str | Path, class_name: str = "Model", options: UltralyticsOptions | None = None) -> CompiledModel:
    """``options``: ``--scale``/``--nc`` for ultralytics model files."""
    diagnostics = Diagnostics()
    return compile_spec(load_spec(path, diagnostics, options), class_name, diagnostics)


def compile_text(text: str, filename: str = "<spec>", class_name: str = "Model", base_dir: Path | None = None) -> CompiledModel:
    diagnostics = Diagnostics()
    return compile_spec(load_spec_text(text, filename, base_dir, diagnostics), class_name, diagnostics)

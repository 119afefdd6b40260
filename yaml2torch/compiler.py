"""The orchestrator: spec -> IR -> render -> format. Nothing is written here.

The IR's ``inputs`` name every file read besides the spec (YamlModule sub-specs, plugin modules);
``CompiledModel.refuse_overwriting_inputs`` refuses an output path that is one of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from yaml2torch.blocks import Catalogue
from yaml2torch.errors import Diagnostics, SpecError, UsageError
from yaml2torch.files import same_file
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

    def refuse_overwriting_inputs(self, outputs: Iterable[Path], option: str = "-o", reader: str | None = None) -> None:
        """Refuse an output that is a file read to build this model besides the spec (a YamlModule
        sub-spec, a plugin module), by any path: at the place the spec names it, or, for a spec
        that is no file of the user's (``reader``, e.g. a stored trial's spec), naming that."""
        outputs = list(outputs)
        for read in self.ir.inputs:
            for output in outputs:
                if not same_file(output, read.path):
                    continue
                if reader is not None:
                    raise UsageError(
                        f"{option} {output} would overwrite the {read.kind} {read.path} that {reader} reads; "
                        "choose another output path"
                    )
                raise SpecError(
                    read.loc,
                    f"{option} {output} would overwrite the {read.kind} {read.path} read here; choose another output path",
                )


def analyze(spec: ModelSpec, diagnostics: Diagnostics | None = None) -> ModelIR:
    """Lower a loaded spec to the IR (shapes, params, MACs, hash) without rendering the file."""
    from yaml2torch.blocks.loader import SubSpecLoader
    from yaml2torch.render.model_file import block_class_sources

    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    catalogue = Catalogue.for_modules(
        spec.modules, spec.rows[0].loc, (spec.base_dir, Path.cwd()), spec.module_locs, spec.dialect
    )
    loader = SubSpecLoader(spec.base_dir, diagnostics, catalogue=catalogue)
    ir = lower(spec, catalogue, block_class_sources, diagnostics, loader)
    return replace(ir, inputs=(*catalogue.files, *loader.read))


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

"""Shared fixtures: compile a spec text, write model.py, import it from that file; run the CLI.

Other test modules may use ``compile_and_import``, ``run_cli``, ``EXAMPLES`` and
``catalogue_sample`` (a small spec that uses one catalogue block).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "examples" / "models"
GENERATED_DIR = ROOT / "generated"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))

_module_counter = itertools.count()


@dataclass(frozen=True)
class CompiledFile:
    """A compiled spec, written to disk and imported from that file."""

    compiled: object  # yaml2torch.compiler.CompiledModel
    path: Path  # the written model.py
    module: ModuleType

    @property
    def source(self) -> str:
        return self.compiled.source  # type: ignore[attr-defined]

    def model(self, class_name: str = "Model"):
        return getattr(self.module, class_name)()


def import_file(path: Path) -> ModuleType:
    """Import a generated file under a fresh module name (no sys.path changes, no caching)."""
    name = f"_y2t_generated_{next(_module_counter)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # torch.jit.script and dataclasses look modules up by name, so register it
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def compile_spec_file(spec_path: Path, out_dir: Path, class_name: str = "Model") -> CompiledFile:
    from yaml2torch.compiler import compile_file

    compiled = compile_file(spec_path, class_name=class_name)
    out = out_dir / f"{spec_path.stem}_model.py"
    out.write_text(compiled.source, encoding="utf-8")
    return CompiledFile(compiled, out, import_file(out))


@pytest.fixture
def compile_and_import(tmp_path: Path) -> Callable[..., CompiledFile]:
    """``compile_and_import(yaml_text, name="spec.yaml", class_name="Model", files={})``.

    Writes the spec (and any extra ``files`` beside it, e.g. YamlModule sub-specs) into
    tmp_path, compiles it from that file, writes model.py and imports it from there.
    """

    def run(text: str, name: str = "spec.yaml", class_name: str = "Model", files: dict[str, str] | None = None):
        for extra, content in (files or {}).items():
            (tmp_path / extra).write_text(textwrap.dedent(content), encoding="utf-8")
        spec_path = tmp_path / name
        spec_path.write_text(textwrap.dedent(text), encoding="utf-8")
        return compile_spec_file(spec_path, tmp_path, class_name)

    return run


@dataclass(frozen=True)
class CliResult:
    status: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``yaml2torch.cli.main(argv)`` in-process and capture its streams."""
    from yaml2torch.cli import main

    def run(*argv: str | Path) -> CliResult:
        capsys.readouterr()
        status = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return CliResult(status, out, err)

    return run


def run_cli_subprocess(*argv: str | Path, cwd: Path | None = None, env: dict | None = None) -> CliResult:
    """The real console entry point in a fresh interpreter (for tracebacks and imports)."""
    result = subprocess.run(
        [sys.executable, "-m", "yaml2torch", *[str(a) for a in argv]],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )
    return CliResult(result.returncode, result.stdout, result.stderr)


# --- one small spec per catalogue block ---------------------------------------------------
#
# Each sample is the rows after a 16-channel stem on a 3x16x16 input; a classifier tail is
# added when the block leaves an image. Blocks read the way their origin/torchvision uses them.

SAMPLE_ROWS: dict[str, str] = {
    "Conv": "- [-1, 1, Conv, [16, 3, 2]]",
    "FixedConv": "- [-1, 1, FixedConv, [10, 1]]",
    "DWConv": "- [-1, 1, DWConv, [16, 3, 2]]",
    "Bottleneck": "- [-1, 2, Bottleneck, [24]]",
    "BottleneckCSP": "- [-1, 2, BottleneckCSP, [24]]",
    "C3": "- [-1, 2, C3, [24]]",
    "SPP": "- [-1, 1, SPP, [24]]",
    "SPPF": "- [-1, 1, SPPF, [24]]",
    "Focus": "- [-1, 1, Focus, [24, 3]]",
    "InvertedResidualv2": "- [-1, 2, InvertedResidualv2, [24, 6, 2]]",
    "MV2Block": "- [-1, 2, MV2Block, [24, 2]]",
    "InvertedResidualv3": "- [-1, 1, InvertedResidualv3, [3, 4, 24, true, true, 2]]",
    "MBConv": "- [-1, 2, MBConv, [4, 24, 2, 3]]",
    "Fire": "- [-1, 1, Fire, [8, 16, 16]]",
    "BasicBlock": "- [-1, 2, BasicBlock, [32, 2]]",
    "ResBottleneck": "- [-1, 2, ResBottleneck, [64, 2]]",
    "ShuffleV2": "- [-1, 1, ShuffleV2, [32, 2]]\n- [-1, 1, ShuffleV2, [32, 1]]",
    "MaxPool": "- [-1, 1, MaxPool, [3, 2, 1]]",
    "AvgPool": "- [-1, 1, AvgPool, [2]]",
    "GlobalAvgPool": "- [-1, 1, GlobalAvgPool, []]",
    "Flatten": "- [-1, 1, Flatten, []]",
    "Linear": "- [-1, 1, GlobalAvgPool, []]\n- [-1, 1, Flatten, []]\n- [-1, 1, Linear, [32, ReLU]]",
    "Dropout": "- [-1, 1, Dropout, [0.1]]",
    "Identity": "- [-1, 1, Identity, []]",
    "Concat": "- [-1, 1, Conv, [8, 3]]\n- [[-1, -2], 1, Concat, [1]]",
    "Add": "- [-1, 1, Conv, [16, 3]]\n- [[-1, -2], 1, Add, []]",
    "UpSample": "- [-1, 1, UpSample, []]\n- [-1, 1, MaxPool, [2]]",
    "nn.": "- [-1, 1, nn.Conv2d, [16, 3, 1, 1], {bias: false}]\n- [-1, 1, nn.BatchNorm2d, []]\n- [-1, 1, nn.ReLU, []]",
    "YamlModule": "- [-1, 1, YamlModule, [sub.yaml, 24]]",
}

# Sub-spec files that a sample needs beside it.
SAMPLE_FILES: dict[str, dict[str, str]] = {
    "YamlModule": {"sub.yaml": """\
            args: [16]
            module:
              - [-1, 1, Conv, [arg0, 3]]
              - [-1, 1, Conv, [arg0, 1]]
            """},
}


def catalogue_names() -> list[str]:
    from yaml2torch.blocks import builtin_blocks

    return sorted(builtin_blocks())


def catalogue_sample(name: str, input_size: int | None = 16) -> str:
    """A small valid spec text that uses block ``name`` (KeyError when no sample is known)."""
    rows = SAMPLE_ROWS[name]
    size = f"input_size: [{input_size}, {input_size}]\n" if input_size else ""
    flat_already = name in ("Flatten", "Linear")
    tail = "" if flat_already else "- [-1, 1, GlobalAvgPool, []]\n- [-1, 1, Flatten, []]\n"
    return (
        f"input_channel: 3\n{size}backbone:\n- [-1, 1, Conv, [16, 3]]\n{rows}\n{tail}"
        "head:\n- [-1, 1, Linear, [10]]\n"
    )

"""Blocks that need a (C, H, W) input say so, at the row, when they get a flat one."""

from __future__ import annotations

from pathlib import Path

import pytest

from yaml2torch.blocks import builtin_blocks
from yaml2torch.compiler import compile_text
from yaml2torch.errors import SpecError

MODULES = Path(__file__).resolve().parent.parent / "examples" / "models" / "modules"

# Valid args for each image block; a new image block must be added here.
ARGS = {
    "DWConv": "[16, 3]",
    "Fire": "[8, 16, 16]",
    "InvertedResidualv2": "[16, 6, 1]",
    "InvertedResidualv3": "[3, 4, 16, true, true, 1]",
    "MBConv": "[4, 16, 1, 3]",
    "MV2Block": "[16]",
    "MaxPool": "[2]",
    "AvgPool": "[2]",
    "GlobalAvgPool": "[]",
    "BasicBlock": "[16]",
    "ResBottleneck": "[64]",
    "ShuffleV2": "[64]",
    "UpSample": "[]",
    "YamlModule": f"['{MODULES / 'residual.yaml'}']",
    "Bottleneck": "[16]",
    "BottleneckCSP": "[16]",
    "C3": "[16]",
    "SPP": "[16]",
    "SPPF": "[16]",
    "Focus": "[16, 3]",
}
IMAGE_BLOCKS = sorted(name for name, block in builtin_blocks().items() if block.image_input)


def test_every_image_block_is_listed():
    assert sorted(ARGS) == IMAGE_BLOCKS


@pytest.mark.parametrize("block", IMAGE_BLOCKS)
def test_flat_input_is_refused_at_the_row(block: str):
    spec = (
        "input_channel: 3\ninput_size: [16, 16]\nbackbone:\n"
        "  - [1, Conv, [16, 3]]\n"
        "  - [1, GlobalAvgPool, []]\n"
        "  - [1, Flatten, []]\n"
        f"  - [1, {block}, {ARGS[block]}]\n"
    )
    with pytest.raises(SpecError) as caught:
        compile_text(spec, "flat.yaml")
    error = caught.value
    assert (error.location.line, error.location.column) == (7, 5)
    assert error.message == f"{block} needs a (C, H, W) input, got (16,)"


@pytest.mark.parametrize("block", IMAGE_BLOCKS)
def test_the_same_rows_compile_on_an_image(block: str):
    """The args above are valid: only the flat input makes the spec wrong."""
    spec = f"input_channel: 64\ninput_size: [16, 16]\nbackbone:\n  - [1, {block}, {ARGS[block]}]\n"
    assert compile_text(spec, "image.yaml").ir.output_shape.is_image

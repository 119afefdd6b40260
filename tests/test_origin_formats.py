"""The origin formats (three-element rows, kindle rows with kwargs and nn.<Name>) build the same
networks their tools build. The parameter counts below are documented facts (issue 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES_DIR, GENERATED_DIR, ROOT, compile_spec_file
from torch.utils.flop_counter import FlopCounterMode

from yaml2torch.compiler import compile_file, compile_text

MY_EXAMPLES = ("lenet", "kindle_cifar", "yolo_style", "yaml_module", "plugin")


def built_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_lenet_three_element_rows_have_16817_parameters(tmp_path: Path) -> None:
    compiled = compile_spec_file(EXAMPLES_DIR / "lenet.yaml", tmp_path)
    assert compiled.compiled.params == 16_817
    model = compiled.model().eval()
    assert built_params(model) == 16_817
    assert tuple(model(torch.randn(2, 3, 28, 28)).shape) == (2, 9)


def test_kindle_cifar_example_has_137862_parameters(tmp_path: Path) -> None:
    compiled = compile_spec_file(EXAMPLES_DIR / "kindle_cifar.yaml", tmp_path)
    assert compiled.compiled.params == 137_862
    model = compiled.model().eval()
    assert built_params(model) == 137_862
    x = torch.randn(1, *compiled.module.INPUT_SHAPE)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        y = model(x)
    assert tuple(y.shape) == (1, 10)
    assert counter.get_total_flops() // 2 == compiled.compiled.macs
    assert "self.conv2d_2 = nn.Conv2d(8, 16, 5, 1, 2, bias=False)" in compiled.source


def test_three_and_four_element_rows_build_the_same_network() -> None:
    three = "input_channel: 3\nbackbone:\n  - [1, Conv, [16, 3, 2]]\n  - [2, DWConv, [16, 3]]\n  - [1, C3, [32]]\n"
    four = "input_channel: 3\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 2, DWConv, [16, 3]]\n  - [-1, 1, C3, [32]]\n"
    assert compile_text(three).arch_hash == compile_text(four).arch_hash


KWARG_EQUIVALENTS = [
    ("[-1, 1, Conv, [16, 3, 2, 1, 2, SiLU]]", "[-1, 1, Conv, [16], {kernel_size: 3, stride: 2, padding: 1, groups: 2, activation: SiLU}]"),
    ("[-1, 1, DWConv, [16, 5, 2, null, Hardswish]]", "[-1, 1, DWConv, [16], {kernel_size: 5, stride: 2, activation: HardSwish}]"),
    ("[-1, 1, Bottleneck, [16, False, 2, 0.25, SiLU]]", "[-1, 1, Bottleneck, [16], {shortcut: False, groups: 2, expansion: 0.25, activation: Swish}]"),
    ("[-1, 3, C3, [16, False, 1, 0.75, ReLU6]]", "[-1, 3, C3, [16], {shortcut: 0, expansion: 0.75, activation: ReLU6}]"),
    ("[-1, 2, BottleneckCSP, [24, True, 2]]", "[-1, 2, BottleneckCSP, [24], {groups: 2}]"),
    ("[-1, 1, SPP, [16, [3, 5], SiLU]]", "[-1, 1, SPP, [16], {kernel_sizes: [3, 5], activation: SiLU}]"),
    ("[-1, 1, SPPF, [16, 3, SiLU]]", "[-1, 1, SPPF, [16], {kernel_size: 3, activation: SiLU}]"),
    ("[-1, 1, Focus, [16, 3, 1, null, 1, SiLU]]", "[-1, 1, Focus, [16], {kernel_size: 3, activation: SiLU}]"),
    ("[-1, 2, MV2Block, [16, 2, 6, ReLU6]]", "[-1, 2, MV2Block, [16], {stride: 2, expand_ratio: 6, activation: ReLU6}]"),
    ("[-1, 1, UpSample, [null, 2, bilinear]]", "[-1, 1, UpSample, [], {scale_factor: 2, mode: bilinear}]"),
]


@pytest.mark.parametrize(("positional", "keywords"), KWARG_EQUIVALENTS)
def test_kindle_keyword_names_read_like_positional_args(positional: str, keywords: str) -> None:
    def hashed(row: str) -> str:
        return compile_text(f"input_channel: 8\ninput_size: [16, 16]\nbackbone:\n  - {row}\n").arch_hash

    assert hashed(positional) == hashed(keywords)


def test_kindle_show_case_style_rows(compile_and_import) -> None:
    # kindle's own test config shape: Identity, repeated Conv, UpSample, from-indices, Concat, DWConv,
    # nn layers with kwargs, a YamlModule with args, Linear with Softmax.
    text = """\
        input_size: [32, 32]
        input_channel: 3
        depth_multiple: 1.0
        width_multiple: 0.5
        backbone:
            [
                [-1, 1, Identity, []],
                [-1, 2, Conv, [16, 3, 1, null]],
                [-1, 1, MaxPool, [2]],
                [-1, 1, UpSample, []],
                [-1, 1, Conv, [16, 3, 2]],
                [-1, 1, Bottleneck, [32, True]],
                [1, 4, Conv, [16, 3, 2]],
                [[-1, 5], 1, Concat, [1]],
                [-1, 3, DWConv, [64, 3, 1]],
                [-1, 1, nn.Upsample, [], {scale_factor: 2.0}],
                [-1, 1, AvgPool, [3, 2, 1]],
                [-1, 1, YamlModule, ["inception_module.yaml", 48, 16]],
                [-1, 1, GlobalAvgPool, []],
                [-1, 1, Flatten, []],
                [-1, 1, Linear, [1024, ReLU]],
                [-1, 1, nn.Linear, [128]],
                [-1, 1, nn.ReLU, []],
                [-1, 1, Linear, [10, Softmax]]
            ]
        """
    inception = """\
        module:
            # [from, repeat, module, args]
            [
                [-1, 1, Conv, [16, 1, 1]],
                [0, 1, Conv, [8, 3, 1]],
                [0, 1, Conv, [8, 5, 1]],
                [0, 1, Conv, [8, 7, 1]],
                [[1, 2, 3], 1, Concat, [1]],
            ]
        """
    compiled = compile_and_import(text, files={"inception_module.yaml": inception})
    model = compiled.model().eval()
    assert built_params(model) == compiled.compiled.params
    y = model(torch.randn(2, 3, 32, 32))
    assert tuple(y.shape) == (2, 10)
    torch.testing.assert_close(y.sum(dim=1), torch.ones(2))
    # kindle passes width_multiple into the sub-spec: three branches of make_divisible(8 * 0.5) = 8
    assert compiled.compiled.ir.layers[11].out_shape.dims == (24, 16, 16)


@pytest.mark.parametrize("stem", MY_EXAMPLES)
def test_golden_file_is_current(stem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # the plugin example imports examples.plugins.my_blocks
    golden = GENERATED_DIR / f"{stem}.py"
    assert golden.read_text(encoding="utf-8") == compile_file(EXAMPLES_DIR / f"{stem}.yaml").source, (
        f"{golden} is stale: run 'yaml2torch compile examples/models/{stem}.yaml -o generated/{stem}.py'"
    )


def test_example_specs_are_exercised() -> None:
    assert {p.stem for p in EXAMPLES_DIR.glob("*.yaml")} >= set(MY_EXAMPLES)

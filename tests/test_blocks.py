"""The YOLO/kindle blocks, nn.<Name> passthrough, YamlModule and plugins, checked against real torch.

Every spec here is compiled, written to tmp_path, imported from that file and run: the analytic
params of each row must equal the built module's numel, the analytic MACs must equal
FlopCounterMode FLOPs / 2 of that row's module on its real input, and every row's output shape
must equal the inferred one.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from yaml2torch.compiler import compile_text
from yaml2torch.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent


def check_rows(compiled, batch: int = 2) -> torch.Tensor:
    """Params, MACs and shapes of every row against the imported model; returns the output."""
    ir = compiled.compiled.ir
    model = compiled.model().eval()
    inputs: dict[str, tuple] = {}
    outputs: dict[str, torch.Tensor] = {}
    hooks = []
    for layer in ir.layers:
        module = getattr(model, layer.attr)
        hooks.append(module.register_forward_pre_hook(lambda m, args, attr=layer.attr: inputs.__setitem__(attr, args)))
        hooks.append(module.register_forward_hook(lambda m, args, out, attr=layer.attr: outputs.__setitem__(attr, out)))
    dims = ir.input_shape.dims
    x = torch.randn(batch, *dims)
    with torch.no_grad():
        y = model(x)
    for hook in hooks:
        hook.remove()
    for layer in ir.layers:
        module = getattr(model, layer.attr)
        where = f"row {layer.index} {layer.block}"
        assert sum(p.numel() for p in module.parameters()) == layer.params, where
        assert tuple(outputs[layer.attr].shape[1:]) == layer.out_shape.dims, where
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            module(*inputs[layer.attr])
        assert layer.macs is not None, where
        assert counter.get_total_flops() // 2 // batch == layer.macs, where
    assert sum(p.numel() for p in model.parameters()) == ir.params
    return y


def spec(rows: str, size: int | None = 16, channels: int = 3, extra: str = "") -> str:
    size_line = f"input_size: [{size}, {size}]\n" if size else ""
    return f"input_channel: {channels}\n{size_line}{extra}backbone:\n" + textwrap.indent(textwrap.dedent(rows), "  ")


def position(text: str, token: str, nth: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the nth occurrence of ``token`` in ``text``."""
    index = -1
    for _ in range(nth):
        index = text.index(token, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def errors(text: str, tmp_path: Path, name: str = "spec.yaml") -> SpecError:
    from yaml2torch.compiler import compile_file

    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        compile_file(path)
    return info.value


# --- every block: analytic counts == built model ------------------------------------------

BLOCK_SPECS = {
    "DWConv": """\
        - [-1, 1, Conv, [16, 3]]
        - [-1, 2, DWConv, [24, 3, 2]]
        - [-1, 1, DWConv, [24, 5, 1, null, SiLU]]
        """,
    "Bottleneck": """\
        - [-1, 1, Conv, [16, 3]]
        - [-1, 3, Bottleneck, [24]]
        - [-1, 1, Bottleneck, [24, False, 2, 1.0, PReLU]]
        """,
    "BottleneckCSP": """\
        - [-1, 1, Conv, [16, 3]]
        - [-1, 2, BottleneckCSP, [32]]
        - [-1, 1, BottleneckCSP, [32, False], {activation: Hardswish, groups: 2}]
        """,
    "C3": """\
        - [-1, 1, Conv, [16, 3]]
        - [-1, 3, C3, [32]]
        - [-1, 1, C3, [16, False, 1, 0.25, SiLU]]
        """,
    "SPP": """\
        - [-1, 1, Conv, [16, 3]]
        - [-1, 1, SPP, [32]]
        - [-1, 1, SPP, [24, [3, 7], SiLU]]
        """,
    "SPPF": """\
        - [-1, 1, Conv, [16, 3]]
        - [-1, 1, SPPF, [32]]
        - [-1, 1, SPPF, [24, 3, PReLU]]
        """,
    "Focus": """\
        - [-1, 1, Focus, [16, 3]]
        - [-1, 2, Focus, [24, 1, 2], {padding: [0]}]
        """,
    "MV2Block": """\
        - [-1, 1, Conv, [16, 3]]
        - [-1, 2, MV2Block, [24, 2]]
        - [-1, 1, MV2Block, [24, 1, 1]]
        - [-1, 1, MV2Block, [32], {expand_ratio: 6, activation: ReLU6}]
        """,
    "Concat": """\
        - [-1, 1, Conv, [16, 3]]
        - [-1, 1, Conv, [8, 3]]
        - [[-1, 0, -1], 1, Concat, [1]]
        - [[0, 1], 1, Concat, [-3]]
        """,
    "Add": """\
        - [-1, 1, Conv, [16, 3]]
        - [-1, 1, Conv, [16, 3]]
        - [[-1, 0, 1], 1, Add, []]
        """,
    "UpSample": """\
        - [-1, 1, Conv, [16, 3, 2]]
        - [-1, 1, UpSample, []]
        - [-1, 1, UpSample, [null, 1.5, bilinear]]
        - [-1, 1, UpSample, [[10, 6]]]
        - [-1, 1, UpSample, [], {scale_factor: 3, mode: nearest-exact}]
        """,
    "nn": """\
        - [-1, 1, nn.Conv2d, [16, 5, 1, 2], {bias: False}]
        - [-1, 1, nn.BatchNorm2d, []]
        - [-1, 2, nn.Conv2d, [16, 3], {padding: same, groups: 4}]
        - [-1, 1, nn.ConvTranspose2d, [8, 2, 2]]
        - [-1, 1, nn.GELU, [], {approximate: tanh}]
        - [-1, 1, nn.AdaptiveAvgPool2d, [[3, 2]]]
        - [-1, 1, nn.Flatten, []]
        - [-1, 1, nn.Linear, [12]]
        - [-1, 1, nn.LayerNorm, [12]]
        """,
}


@pytest.mark.parametrize("name", sorted(BLOCK_SPECS))
def test_block_counts_and_shapes_match_the_built_model(name: str, compile_and_import) -> None:
    compiled = compile_and_import(spec(BLOCK_SPECS[name]))
    y = check_rows(compiled)
    assert tuple(y.shape[1:]) == compiled.compiled.ir.output_shape.dims


@pytest.mark.parametrize("name", sorted(BLOCK_SPECS))
def test_block_is_scriptable_traceable_exportable(name: str, compile_and_import) -> None:
    compiled = compile_and_import(spec(BLOCK_SPECS[name]))
    model = compiled.model().eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(torch.jit.script(model)(x), expected)
        torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), expected)
        torch.testing.assert_close(torch.export.export(model, (x,)).module()(x), expected)


def test_width_and_depth_scaling_reach_the_yolo_blocks(compile_and_import) -> None:
    rows = """\
        - [-1, 1, Conv, [64, 3]]
        - [-1, 9, C3, [128]]
        - [-1, 3, Bottleneck, [64]]
        - [-1, 1, SPPF, [256]]
        """
    compiled = compile_and_import(spec(rows, extra="depth_multiple: 0.33\nwidth_multiple: 0.25\nchannel_rounding: ceil\n"))
    layers = compiled.compiled.ir.layers
    assert [layer.out_shape.channels for layer in layers] == [16, 32, 16, 64]
    assert "n=3" in compiled.source  # round(9 * 0.33) inner bottlenecks, one C3 module
    assert len(layers[2].modules) == 1  # round(3 * 0.33) = 1 Bottleneck
    check_rows(compiled)


def test_bottleneck_repeat_keeps_input_channels_until_the_last(compile_and_import) -> None:
    compiled = compile_and_import(spec("- [-1, 1, Conv, [16, 3]]\n- [-1, 3, Bottleneck, [32]]\n"))
    calls = [m.call for m in compiled.compiled.ir.layers[1].modules]
    assert [(c.args[0].value, c.args[1].value) for c in calls] == [(16, 16), (16, 16), (16, 32)]
    model = compiled.model()
    assert [block.add for block in model.bottleneck_1] == [True, True, False]


def test_unknown_spatial_size_keeps_channels_and_leaves_macs_open(compile_and_import) -> None:
    rows = """\
        - [-1, 1, Focus, [16, 3]]
        - [-1, 1, nn.Conv2d, [24, 3, 2, 1]]
        - [-1, 1, C3, [24]]
        - [-1, 1, nn.AdaptiveAvgPool2d, [2]]
        - [-1, 1, nn.Flatten, []]
        - [-1, 1, nn.Linear, [10]]
        """
    compiled = compile_and_import(spec(rows, size=None))
    layers = compiled.compiled.ir.layers
    assert [layer.out_shape.dims for layer in layers] == [
        (16, None, None), (24, None, None), (24, None, None), (24, 2, 2), (96,), (10,)
    ]
    assert [layer.macs for layer in layers] == [None, None, None, 0, 0, 960]
    assert tuple(compiled.model()(torch.randn(1, 3, 20, 12)).shape) == (1, 10)


# --- reference YOLOv5 definitions (written out here) ---------------------------------------


class RefConv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class RefBottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True, g=1, e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = RefConv(c1, c_, 1, 1)
        self.cv2 = RefConv(c_, c2, 3, 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class RefBottleneckCSP(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = RefConv(c1, c_, 1, 1)
        self.cv2 = nn.Conv2d(c1, c_, 1, 1, bias=False)
        self.cv3 = nn.Conv2d(c_, c_, 1, 1, bias=False)
        self.cv4 = RefConv(2 * c_, c2, 1, 1)
        self.bn = nn.BatchNorm2d(2 * c_)
        self.act = nn.SiLU()
        self.m = nn.Sequential(*(RefBottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)))

    def forward(self, x):
        y1 = self.cv3(self.m(self.cv1(x)))
        y2 = self.cv2(x)
        return self.cv4(self.act(self.bn(torch.cat((y1, y2), 1))))


class RefC3(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = RefConv(c1, c_, 1, 1)
        self.cv2 = RefConv(c1, c_, 1, 1)
        self.cv3 = RefConv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(RefBottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class RefSPP(nn.Module):
    def __init__(self, c1, c2, k=(5, 9, 13)):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = RefConv(c1, c_, 1, 1)
        self.cv2 = RefConv(c_ * (len(k) + 1), c2, 1, 1)
        self.m = nn.ModuleList([nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k])

    def forward(self, x):
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [m(x) for m in self.m], 1))


class RefSPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = RefConv(c1, c_, 1, 1)
        self.cv2 = RefConv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class RefFocus(nn.Module):
    def __init__(self, c1, c2, k=1, s=1, p=None, g=1):
        super().__init__()
        self.conv = RefConv(c1 * 4, c2, k, s, p, g)

    def forward(self, x):
        return self.conv(torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1))


REFERENCES = {
    # row (after a 16-channel SiLU Conv stem) -> the YOLOv5 module it must equal
    "- [-1, 1, Bottleneck, [16, True, 2], {activation: SiLU}]": lambda: RefBottleneck(16, 16, True, 2),
    "- [-1, 1, Bottleneck, [24, True, 1, 0.25], {activation: SiLU}]": lambda: RefBottleneck(16, 24, True, 1, 0.25),
    "- [-1, 3, BottleneckCSP, [32], {activation: SiLU}]": lambda: RefBottleneckCSP(16, 32, 3),
    "- [-1, 2, C3, [32, False], {activation: SiLU}]": lambda: RefC3(16, 32, 2, False),
    "- [-1, 1, C3, [16], {activation: SiLU, expansion: 0.75, groups: 3}]": lambda: RefC3(16, 16, 1, True, 3, 0.75),
    "- [-1, 1, SPP, [32], {activation: SiLU}]": lambda: RefSPP(16, 32),
    "- [-1, 1, SPP, [24, [3, 5]], {activation: SiLU}]": lambda: RefSPP(16, 24, (3, 5)),
    "- [-1, 1, SPPF, [32, 3], {activation: SiLU}]": lambda: RefSPPF(16, 32, 3),
    "- [-1, 1, Focus, [32, 3, 2], {activation: SiLU}]": lambda: RefFocus(16, 32, 3, 2),
}


@pytest.mark.parametrize("row", sorted(REFERENCES))
def test_yolo_blocks_equal_the_yolov5_definitions(row: str, compile_and_import) -> None:
    compiled = compile_and_import(spec(f"- [-1, 1, Conv, [16, 3], {{activation: SiLU}}]\n{row}\n"))
    model = compiled.model().eval()
    generated = getattr(model, compiled.compiled.ir.layers[1].attr)
    reference = REFERENCES[row]().eval()
    assert sum(p.numel() for p in generated.parameters()) == sum(p.numel() for p in reference.parameters())
    ref_state = reference.state_dict()
    gen_state = generated.state_dict()
    assert [(k, v.shape) for k, v in gen_state.items()] == [(k, v.shape) for k, v in ref_state.items()]
    with torch.no_grad():
        for tensor in ref_state.values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor).abs() + 0.1)
    generated.load_state_dict(ref_state)
    x = torch.randn(2, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(generated(x), reference(x))


def test_dwconv_uses_gcd_groups_like_kindle(compile_and_import) -> None:
    compiled = compile_and_import(spec("- [-1, 1, Conv, [16, 3]]\n- [-1, 1, DWConv, [24, 3]]\n- [-1, 1, DWConv, [24, 3]]\n"))
    model = compiled.model()
    assert model.dwconv_1.conv.groups == math.gcd(16, 24) == 8
    assert model.dwconv_2.conv.groups == 24
    assert "class DWConv" not in compiled.source  # it is the Conv class with groups set
    check_rows(compiled)


def test_mv2block_matches_kindle(compile_and_import) -> None:
    compiled = compile_and_import(spec("- [-1, 1, Conv, [16, 3]]\n- [-1, 1, MV2Block, [16, 1, 4]]\n- [-1, 1, MV2Block, [24, 2, 1]]\n"))
    model = compiled.model()
    # kindle: Conv(in, in*t, 1), Conv(hidden, hidden, 3, s, groups=hidden), Conv2d(hidden, out, 1), BN
    first = model.mv2_block_1
    assert first.use_res_connect and len(first.conv) == 4
    assert first.conv[1].conv.groups == 64 and first.conv[2].weight.shape == (16, 64, 1, 1)
    second = model.mv2_block_2
    assert not second.use_res_connect and len(second.conv) == 3  # no expansion at t=1
    assert second.conv[0].conv.stride == (2, 2)


# --- merge blocks and UpSample errors ------------------------------------------------------


def test_concat_spatial_mismatch_names_both_shapes(tmp_path: Path) -> None:
    text = spec("- [-1, 1, Conv, [16, 3]]\n- [-1, 1, Conv, [8, 3, 2]]\n- [[0, 1], 1, Concat, [1]]\n")
    error = errors(text, tmp_path)
    assert (error.location.line, error.location.column) == position(text, "[[0, 1]")
    assert "(16, 16, 16)" in error.message and "(8, 8, 8)" in error.message


def test_add_channel_mismatch_names_both_shapes(tmp_path: Path) -> None:
    error = errors(spec("- [-1, 1, Conv, [16, 3]]\n- [-1, 1, Conv, [24, 3]]\n- [[0, 1], 1, Add, []]\n"), tmp_path)
    assert error.location.line == 6
    assert "(16, 16, 16)" in error.message and "(24, 16, 16)" in error.message


@pytest.mark.parametrize(
    ("rows", "token", "words"),
    [
        ("- [-1, 1, UpSample, [null, 2, trilinaer]]", "trilinaer", ("mode", "nearest", "bilinear")),
        ("- [-1, 1, UpSample, [8, 2]]", "2]]", ("size or a scale",)),
        ("- [-1, 1, SPP, [16, [3, 4]]]", "[3, 4]", ("odd", "4")),
        ("- [-1, 1, SPPF, [16, 2]]", "2]]", ("odd",)),
        ("- [-1, 1, Concat, [4]]", "4]]", ("dim 4", "out of range")),
        ("- [-1, 1, Bottleneck, [16, True, 1, 0.01]]", "[-1", ("hidden channels",)),
        ("- [-1, 1, C3, [16], {expansion: -1}]", "-1}", (">= 0.0",)),
        ("- [-1, 1, MV2Block, [16], {activation: Relu}]", "Relu", ("did you mean 'ReLU'",)),
        ("- [-1, 1, DWConv, [16], {kernal_size: 3}]", "kernal_size", ("did you mean 'kernel_size'",)),
    ],
)
def test_block_argument_errors_are_located(rows: str, token: str, words: tuple, tmp_path: Path) -> None:
    text = spec(rows)
    error = errors(text, tmp_path)
    assert (error.location.line, error.location.column) == position(text, token), error
    for word in words:
        assert word in error.message, error.message


def test_focus_needs_an_even_size(tmp_path: Path) -> None:
    error = errors(spec("- [-1, 1, Focus, [16, 3]]", size=15), tmp_path)
    assert error.location.line == 4 and "even" in error.message and "(3, 15, 15)" in error.message


# --- nn.<Name> --------------------------------------------------------------------------------


def test_nn_layer_renders_as_the_torch_call(compile_and_import) -> None:
    rows = """\
        - [-1, 1, Conv, [16, 3]]
        - [-1, 1, nn.Conv2d, [16, 5, 1, 2], {bias: False}]
        - [-1, 1, nn.BatchNorm2d, []]
        - [-1, 1, nn.ReLU, [true]]
        - [-1, 1, nn.Dropout2d, [], {p: 0.25}]
        """
    compiled = compile_and_import(spec(rows))
    assert "self.conv2d_1 = nn.Conv2d(16, 16, 5, 1, 2, bias=False)" in compiled.source
    assert "nn.BatchNorm2d(16)" in compiled.source
    assert "nn.ReLU(True)" in compiled.source  # inplace is not an in_* parameter: nothing prepended
    assert "nn.Dropout2d(p=0.25)" in compiled.source
    assert "class " not in compiled.source.split("class Model")[1]
    check_rows(compiled)


def test_nn_batchnorm_takes_the_spec_norm_defaults(compile_and_import) -> None:
    compiled = compile_and_import(spec("- [-1, 1, nn.BatchNorm2d, []]\n", extra="norm: {eps: 0.001, momentum: 0.03}\n"))
    assert "nn.BatchNorm2d(3, eps=0.001, momentum=0.03)" in compiled.source
    bn = compiled.model().batch_norm2d_0
    assert (bn.eps, bn.momentum) == (0.001, 0.03)


@pytest.mark.parametrize(
    ("row", "token", "words"),
    [
        ("- [-1, 1, nn.Conv2D, [16, 3]]", "nn.Conv2D", ("torch.nn has no layer 'Conv2D'", "did you mean 'Conv2d'")),
        ("- [-1, 1, nn.functional, []]", "nn.func", ("torch.nn has no layer 'functional'",)),
        ("- [-1, 1, nn.Module, []]", "[-1", ("forward",)),
        ("- [-1, 1, nn.Conv2d, [16, 3], {bais: false}]", "bais", ("no kwarg 'bais'", "did you mean 'bias'")),
        ("- [-1, 1, nn.Conv2d, [16, 3], {device: cuda}]", "device", ("no kwarg 'device'",)),
        ("- [-1, 1, nn.Conv2d, [16, 3], {bias: {a: 1}}]", "{a: 1}", ("must be a literal",)),
        ("- [-1, 1, nn.Conv2d, [16, 3, 1, 'x\\nimport os']]", "[-1", ("Invalid padding string",)),
        ("- [-1, 1, nn.Conv2d, []]", "[-1", ("needs arg 'out_channels'",)),
        ("- [-1, 1, nn.Linear, [4]]", "[-1", ("cannot be built", "fails on input")),
        ("- [-1, 1, nn.Conv2d, [16, 31]]", "[-1", ("fails on input (3, 16, 16)",)),
        ("- [-1, 1, nn.LazyConv2d, [16, 3]]", "nn.Lazy", ("use nn.Conv2d",)),
        ("- [-1, 1, nn.AdaptiveMaxPool2d, [2, true]]", "[-1", ("must return one tensor",)),
    ],
)
def test_nn_layer_errors_are_located(row: str, token: str, words: tuple, tmp_path: Path) -> None:
    text = spec(row)
    error = errors(text, tmp_path)
    assert (error.location.line, error.location.column) == position(text, token), error
    assert any(word in error.message for word in words), error.message
    assert "\n" not in str(error)


def test_compiling_without_nn_rows_never_imports_torch(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    rows = """\
        - [-1, 1, Focus, [16, 3]]
        - [-1, 1, C3, [16]]
        - [[-1, 0], 1, Concat, [1]]
        - [-1, 1, UpSample, []]
        """
    path.write_text(spec(rows), encoding="utf-8")
    nn_path = tmp_path / "nn_spec.yaml"
    nn_path.write_text(spec(BLOCK_SPECS["nn"]), encoding="utf-8")
    # the whole CLI compile path, as a user runs it
    probe = (
        "import sys; from yaml2torch.cli import main; "
        "status = main(['compile', sys.argv[1], '-o', sys.argv[1] + '.py']); print(status, 'torch' in sys.modules)"
    )
    results = [
        subprocess.run([sys.executable, "-c", probe, str(p)], capture_output=True, text=True, timeout=120, check=True).stdout.strip()
        for p in (path, nn_path)
    ]
    assert results == ["0 False", "0 True"]


# --- YamlModule -------------------------------------------------------------------------------

SUB = """\
    args: [16, 8]
    module:
      - [-1, 1, Conv, [arg0, 1]]
      - [0, 1, Conv, [arg1, 3]]
      - [0, 1, DWConv, [arg1, 5]]
      - [[1, 2], 1, Concat, [1]]
    """


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_yaml_module_one_class_per_distinct_body(tmp_path: Path, compile_and_import) -> None:
    write(tmp_path / "blocks" / "branch_block.yaml", SUB)
    rows = """\
        - [-1, 1, Conv, [16, 3]]
        - [-1, 1, YamlModule, [blocks/branch_block.yaml, 32]]
        - [-1, 2, YamlModule, [blocks/branch_block.yaml]]
        - [-1, 1, YamlModule, [blocks/branch_block.yaml, 16, 8]]
        """
    compiled = compile_and_import(spec(rows))
    source = compiled.source
    assert source.count("class BranchBlock(") == 1 and source.count("class BranchBlock2(") == 1
    assert "class BranchBlock3" not in source
    assert "self.yaml_module_1 = BranchBlock()" in source
    assert "self.yaml_module_2 = nn.Sequential(BranchBlock2(), BranchBlock2())" in source
    assert "self.yaml_module_3 = BranchBlock2()" in source  # same args and input: same body, same class
    assert source.index("class Concat(") < source.index("class BranchBlock(")
    check_rows(compiled)
    model = compiled.model()
    assert model.yaml_module_1.conv_0.conv.out_channels == 32
    assert model.yaml_module_1.dwconv_2.conv.groups == 8  # gcd(32, 8)


def test_yaml_module_kwargs_name_args_and_width_scaling_applies(tmp_path: Path, compile_and_import) -> None:
    write(tmp_path / "branch.yaml", SUB)
    rows = "- [-1, 1, YamlModule, [branch.yaml], {arg1: 16}]\n"
    compiled = compile_and_import(spec(rows, extra="width_multiple: 0.5\n"))
    model = compiled.model()
    # arg0 = 16 (default) and arg1 = 16, both width-scaled like kindle: 8 and 8 channels
    assert model.yaml_module_0.conv_0.conv.out_channels == 8
    assert compiled.compiled.ir.output_shape.dims == (16, 16, 16)
    check_rows(compiled)


def test_yaml_module_nests_relative_to_each_file(tmp_path: Path, compile_and_import) -> None:
    write(tmp_path / "parts" / "branch.yaml", SUB)
    write(
        tmp_path / "parts" / "outer.yaml",
        """\
        args: [16]
        module:
          - [-1, 1, YamlModule, [branch.yaml, arg0, 8]]
          - [-1, 1, Conv, [arg0, 1], {activation: null}]
          - [[-1, -3], 1, Add, []]
        """,
    )
    compiled = compile_and_import(spec("- [-1, 1, Conv, [16, 3]]\n- [-1, 1, YamlModule, [parts/outer.yaml]]\n"))
    assert "class Branch(" not in compiled.source and "class BranchModule(" in compiled.source
    assert compiled.source.index("class BranchModule(") < compiled.source.index("class OuterModule(")
    check_rows(compiled)


def test_yaml_module_errors(tmp_path: Path) -> None:
    text = spec("- [-1, 1, YamlModule, [nope.yaml, 16]]")
    missing = errors(text, tmp_path)
    assert (missing.location.file, *position(text, "nope")) == (str(tmp_path / "spec.yaml"), missing.location.line, missing.location.column)
    assert "'nope.yaml' not found" in missing.message

    write(tmp_path / "loop_a.yaml", "module:\n  - [-1, 1, YamlModule, [loop_b.yaml]]\n")
    write(tmp_path / "loop_b.yaml", "module:\n  - [-1, 1, YamlModule, [loop_a.yaml]]\n")
    loop = errors(spec("- [-1, 1, YamlModule, [loop_a.yaml]]"), tmp_path)
    assert "includes itself (loop_a.yaml -> loop_b.yaml -> loop_a.yaml)" in loop.message
    assert loop.location.file == str(tmp_path / "loop_b.yaml")

    write(tmp_path / "few.yaml", "args: [8]\nmodule:\n  - [-1, 1, Conv, [arg0, arg1]]\n")
    few = errors(spec("- [-1, 1, YamlModule, [few.yaml]]"), tmp_path)
    assert (few.location.file, few.location.line, few.location.column) == (str(tmp_path / "few.yaml"), 3, 26)
    assert "arg1 has no value" in few.message and "(in YamlModule at" in few.message

    write(tmp_path / "bad_value.yaml", "args: [8]\nmodule:\n  - [-1, 1, Conv, [arg0]]\n")
    text = spec("- [-1, 1, YamlModule, [bad_value.yaml, -4]]")
    bad = errors(text, tmp_path)
    # the value came from the parent row: the error points there
    assert (bad.location.file, bad.location.line, bad.location.column) == (str(tmp_path / "spec.yaml"), *position(text, "-4"))

    write(tmp_path / "extra_key.yaml", "args: [8]\nmodules:\n  - [-1, 1, Conv, [arg0]]\n")
    extra = errors(spec("- [-1, 1, YamlModule, [extra_key.yaml]]"), tmp_path)
    assert "unknown YamlModule key 'modules'" in extra.message and "did you mean 'module'" in extra.message


# --- plugins ----------------------------------------------------------------------------------

PLUGIN_SPEC = """\
    input_channel: 3
    input_size: [16, 16]
    modules: [my_blocks]
    backbone:
      - [-1, 1, Conv, [16, 3]]
      - [-1, 1, SEGate, [2]]
      - [0, 1, SEGate, []]
      - [[1, 2], 1, Mean, []]
    """


def test_plugin_blocks_compile_and_count(monkeypatch: pytest.MonkeyPatch, compile_and_import) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "plugins"))
    compiled = compile_and_import(PLUGIN_SPEC)
    assert "class SEGate(nn.Module):" in compiled.source and "class Mean(nn.Module):" in compiled.source
    assert "my_blocks" not in compiled.source
    assert "import yaml2torch" not in compiled.source and "from yaml2torch" not in compiled.source
    check_rows(compiled)
    model = compiled.model().eval()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(torch.jit.script(model)(x), model(x))


def test_plugin_model_runs_where_the_plugin_is_not_importable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "plugins"))
    out = tmp_path / "model.py"
    out.write_text(compile_text(textwrap.dedent(PLUGIN_SPEC)).source, encoding="utf-8")
    script = (
        "import importlib.util, sys, torch\n"
        "try:\n    import my_blocks\nexcept ImportError:\n    pass\nelse:\n    sys.exit('plugin importable')\n"
        "spec = importlib.util.spec_from_file_location('model', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['model'] = module; spec.loader.exec_module(module)\n"
        "y = module.Model().eval()(torch.randn(2, 3, 16, 16))\n"
        "print(tuple(y.shape), 'yaml2torch' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-I", "-c", script, str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 16, 16, 16) False"


def test_plugin_with_bad_source_is_refused() -> None:
    from yaml2torch.blocks.plugin import PluginBlock
    from yaml2torch.render.templates import environment

    class Bad(PluginBlock):
        name = "Bad"
        source = "import os\nclass Bad:\n    pass\n"

    with pytest.raises(TypeError, match="exactly one class named Bad"):
        Bad().class_source(environment())


def test_plugin_is_found_beside_the_spec_and_sys_path_is_restored(tmp_path: Path) -> None:
    package = tmp_path / "models" / "y2t_beside_spec"
    package.mkdir(parents=True)
    (package / "blocks_copy.py").write_text((ROOT / "examples" / "plugins" / "my_blocks.py").read_text(), encoding="utf-8")
    spec_path = write(
        tmp_path / "models" / "spec.yaml",
        PLUGIN_SPEC.replace("modules: [my_blocks]", "modules: [y2t_beside_spec.blocks_copy]"),
    )
    before = list(sys.path)
    from yaml2torch.compiler import compile_file

    compiled = compile_file(spec_path)
    assert sys.path == before
    assert "class SEGate(nn.Module):" in compiled.source

    missing = errors(PLUGIN_SPEC.replace("modules: [my_blocks]", "modules: [y2t_nowhere.blocks]"), tmp_path)
    assert "cannot import plugin module 'y2t_nowhere.blocks'" in missing.message


def test_yaml_module_in_the_head_is_not_width_scaled(tmp_path: Path, compile_and_import) -> None:
    write(tmp_path / "tail.yaml", "args: [12]\nmodule:\n  - [-1, 1, Conv, [arg0, 1]]\n")
    rows = "- [-1, 1, YamlModule, [tail.yaml]]\n"
    compiled = compile_and_import(spec(rows) + "head:\n  - [-1, 1, YamlModule, [tail.yaml]]\n")
    # backbone: make_divisible(12) = 16; head: divisor 1, so 12 stays 12
    assert [layer.out_shape.channels for layer in compiled.compiled.ir.layers] == [16, 12]
    check_rows(compiled)


def test_hostile_sub_spec_file_name_stays_inert(tmp_path: Path, compile_and_import) -> None:
    name = 'x"""\nimport os #.yaml'
    (tmp_path / name).write_text("module:\n  - [-1, 1, Conv, [8, 3]]\n", encoding="utf-8")
    compiled = compile_and_import(spec('- [-1, 1, YamlModule, ["x\\"\\"\\"\\nimport os #.yaml"]]\n'))
    assert "class XImportOsModule(nn.Module):" in compiled.source
    assert not any(line.strip().startswith("import os") for line in compiled.source.splitlines())
    check_rows(compiled)


@pytest.mark.parametrize("name", ["MaxPool", "AvgPool"])
def test_pooling_arguments_follow_torchs_positional_order(name):
    """kindle passes pooling args positionally in torch's order: ours must be the same order."""
    import inspect

    from torch import nn

    from yaml2torch.blocks import builtin_blocks

    block = builtin_blocks()[name]
    torch_names = [p for p in inspect.signature(getattr(nn, f"{name}2d").__init__).parameters if p != "self"]
    ours = [arg.aliases[0] if arg.aliases else arg.name for arg in block.signature]
    assert ours == torch_names


@pytest.mark.parametrize(
    ("row", "torch_args"),
    [
        ("[1, MaxPool, [3, 2, 1, 2]]", ("MaxPool2d", (3, 2, 1, 2))),
        ("[1, MaxPool, [3, 2, 0, 1, false, true]]", ("MaxPool2d", (3, 2, 0, 1, False, True))),
        ("[1, AvgPool, [3, 2, 1, true, false]]", ("AvgPool2d", (3, 2, 1, True, False))),
        ("[1, AvgPool, [2, 2, 0, false, true, 3]]", ("AvgPool2d", (2, 2, 0, False, True, 3))),
    ],
)
def test_pooling_rows_build_the_torch_layer_with_the_same_positional_args(row, torch_args):
    from torch import nn

    from yaml2torch.compiler import compile_text

    compiled = compile_text(f"input_channel: 3\ninput_size: [17, 17]\nbackbone:\n  - {row}\n", "pool.yaml")
    namespace: dict = {}
    exec(compile(compiled.source, "pool.py", "exec"), namespace)  # noqa: S102 - our own generated file
    x = torch.rand(2, 3, 17, 17)
    layer = getattr(nn, torch_args[0])(*torch_args[1])
    assert torch.equal(namespace["Model"]()(x), layer(x))
    assert list(compiled.ir.output_shape.dims) == list(layer(x).shape[1:])

"""ultralytics' classifier files compile as they are, to exact twins of ultralytics' own models.

For each shipped classification file at every scale (nc=10): yaml2torch compiles the file from
the installed ultralytics package, the generated model.py is imported from disk, and against
``ultralytics.nn.tasks.ClassificationModel`` built from the same file
- the parameter count is equal (and equal to the analysis),
- the state_dict has ultralytics' shapes in ultralytics' order,
- ultralytics' weights (random BatchNorm statistics) load by position and the eval logits agree
  (max |ours - theirs| / max |theirs| <= 1e-4); MACs equal FlopCounterMode's FLOPs / 2.

ultralytics is a test dependency only (the ``test`` extra); without it these tests are skipped.
"""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import import_file, run_cli_subprocess
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from yaml2torch.compiler import compile_spec
from yaml2torch.errors import SpecError
from yaml2torch.spec.load import load_spec, load_spec_text
from yaml2torch.spec.ultralytics import UltralyticsOptions
from yaml2torch.weights import load_reference_weights

MAX_RELATIVE_ERROR = 1e-4
NC = 10
# The classification files ultralytics ships that yaml2torch compiles (relative to cfg/models).
SUPPORTED = (
    "v8/yolov8-cls.yaml",
    "v8/yolov8-cls-resnet50.yaml",
    "v8/yolov8-cls-resnet101.yaml",
    "11/yolo11-cls.yaml",
    "12/yolo12-cls.yaml",
    "26/yolo26-cls.yaml",
)
SCALES = ("n", "s", "m", "l", "x")
# The counts measured with ultralytics itself (nc=10, scale n).
DOCUMENTED = {"v8/yolov8-cls.yaml": 1_451_098, "11/yolo11-cls.yaml": 1_543_914, "12/yolo12-cls.yaml": 1_731_306}


def ultralytics_models() -> Path:
    ultralytics = pytest.importorskip("ultralytics")
    return Path(ultralytics.__file__).parent / "cfg" / "models"


def reference(path: Path, scale: str, nc: int = NC) -> nn.Module:
    """ultralytics' own ClassificationModel for ``path`` at ``scale`` (offline, from the dict)."""
    import yaml
    from ultralytics.nn.tasks import ClassificationModel

    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg["scale"] = scale
    return ClassificationModel(copy.deepcopy(cfg), nc=nc, verbose=False)


def ours(path: Path, out_dir: Path, scale: str | None, nc: int | None = NC):
    compiled = compile_spec(load_spec(path, options=UltralyticsOptions(scale, nc)))
    out = out_dir / f"{path.stem}_{scale}.py"
    out.write_text(compiled.source, encoding="utf-8")
    return compiled, import_file(out).Model()


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.num_features, generator=generator) * 0.2)


def numel(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def layout(model: nn.Module) -> list[tuple[tuple[int, ...], torch.dtype]]:
    return [(tuple(t.shape), t.dtype) for t in model.state_dict().values()]


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model.eval()(x)
    return out[1] if isinstance(out, tuple) else out  # ultralytics' eval output: (softmax, logits)


def counted_macs(model: nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


def assert_twin(mine: nn.Module, theirs: nn.Module, x: torch.Tensor) -> None:
    assert numel(mine) == numel(theirs)
    assert layout(mine) == layout(theirs)
    assert [(m.eps, m.momentum) for m in mine.modules() if isinstance(m, nn.BatchNorm2d)] == [
        (m.eps, m.momentum) for m in theirs.modules() if isinstance(m, nn.BatchNorm2d)
    ]
    randomize_batchnorm(theirs)
    load_reference_weights(mine, theirs)
    expected, got = logits(theirs, x), logits(mine, x)
    assert got.shape == expected.shape == (x.shape[0], NC)
    assert ((got - expected).abs().max() / expected.abs().max()).item() <= MAX_RELATIVE_ERROR


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", SUPPORTED)
def test_shipped_classifier_is_an_exact_twin(name: str, scale: str, tmp_path: Path) -> None:
    path = ultralytics_models() / name
    torch.manual_seed(0)
    theirs = reference(path, scale)
    compiled, mine = ours(path, tmp_path, scale)
    assert compiled.params == numel(mine) == numel(theirs)
    if scale == "n" and name in DOCUMENTED:
        assert compiled.params == DOCUMENTED[name]
    x = torch.randn(2, 3, 64, 64)
    assert_twin(mine, theirs, x)
    sized = compile_spec(load_spec(path, options=UltralyticsOptions(scale, NC)).with_input_size((64, 64)))
    assert sized.macs == counted_macs(mine, x[:1])


def test_scale_from_the_file_name_as_ultralytics(tmp_path: Path) -> None:
    """``yolov8s-cls.yaml`` (absent) names scale s of ``yolov8-cls.yaml``; a copy under that name works too."""
    source = ultralytics_models() / "v8" / "yolov8-cls.yaml"
    (tmp_path / "yolov8-cls.yaml").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    by_name = compile_spec(load_spec(tmp_path / "yolov8s-cls.yaml", options=UltralyticsOptions(nc=NC)))
    explicit = compile_spec(load_spec(source, options=UltralyticsOptions("s", NC)))
    assert by_name.params == explicit.params == numel(reference(source, "s"))
    (tmp_path / "yolov8m-cls.yaml").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    copied = compile_spec(load_spec(tmp_path / "yolov8m-cls.yaml", options=UltralyticsOptions(nc=NC)))
    assert copied.params == numel(reference(source, "m"))


def test_cli_compiles_a_shipped_file_with_scale_and_nc(tmp_path: Path) -> None:
    source = ultralytics_models() / "v8" / "yolov8-cls.yaml"
    out = tmp_path / "model.py"
    result = run_cli_subprocess("compile", source, "--scale", "n", "--nc", "10", "-o", out, cwd=tmp_path)
    assert result.status == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert "Regenerate with ``yaml2torch compile yolov8-cls.yaml --scale n --nc 10``." in text
    assert "import ultralytics" not in text and "from ultralytics" not in text
    model = import_file(out).Model()
    assert numel(model) == 1_451_098
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 10)  # logits, not a tuple
    summary = run_cli_subprocess("summary", source, "--scale", "n", "--nc", "10", "--json", cwd=tmp_path)
    assert summary.status == 0, summary.stderr
    assert '"params": 1451098' in summary.stdout


def test_weights_option_loads_an_ultralytics_state_dict(tmp_path: Path) -> None:
    source = ultralytics_models() / "11" / "yolo11-cls.yaml"
    theirs = reference(source, "n")
    randomize_batchnorm(theirs)
    torch.save(theirs.state_dict(), tmp_path / "yolo11n-cls.pth")
    out = tmp_path / "model.py"
    args = ("compile", source, "--scale", "n", "--nc", "10", "--weights", tmp_path / "yolo11n-cls.pth", "-o", out)
    result = run_cli_subprocess(*args, cwd=tmp_path)
    assert result.status == 0, result.stderr
    model = import_file(out).Model()
    model.load_state_dict(torch.load(tmp_path / "model.pth", weights_only=True))
    x = torch.randn(1, 3, 64, 64)
    expected = logits(theirs, x)
    assert ((logits(model, x) - expected).abs().max() / expected.abs().max()).item() <= MAX_RELATIVE_ERROR


# --- YOLOv5-style rows: 'None'/'True'/'False' strings, nn.Upsample, Concat, C3, SPPF --------------

YOLOV5_CLASSIFIER = """\
    nc: 7
    scales:
      n: [0.33, 0.25, 1024]
      s: [0.33, 0.50, 1024]
    backbone:
      - [-1, 1, Conv, [64, 6, 2, 2]] # 0
      - [-1, 1, Conv, [128, 3, 2]] # 1
      - [-1, 3, C3, [128]] # 2
      - [-1, 1, Conv, [256, 3, 2]] # 3
      - [-1, 1, C3, [256, 'False']] # 4
      - [-1, 1, SPPF, [256, 5]] # 5
    head:
      - [-1, 1, Conv, [128, 1, 1, None, 1, 1, 'True']] # 6
      - [-1, 1, nn.Upsample, [None, 2, 'nearest']] # 7
      - [[-1, 2], 1, Concat, [1]] # 8
      - [-1, 3, C3, [128, False]] # 9
      - [-1, 1, SPPF, [128, 3, 3, True]] # 10: a YOLO26 SPPF row (cv1 unactivated, shortcut)
      - [-1, 1, Conv, [128, 3, 1, 0, 1, 1, False]] # 11: padding 0 is 0 here
      - [-1, 1, Classify, [nc]]
    """


@pytest.mark.parametrize("scale", ["n", "s"])
def test_yolov5_style_rows_match_ultralytics(scale: str, tmp_path: Path) -> None:
    ultralytics_models()
    path = tmp_path / "yolov5-cls.yaml"
    path.write_text(textwrap.dedent(YOLOV5_CLASSIFIER), encoding="utf-8")
    theirs = reference(path, scale)
    compiled, mine = ours(path, tmp_path, scale)
    assert compiled.params == numel(theirs)
    assert_twin(mine, theirs, torch.randn(2, 3, 64, 64))


def test_string_none_true_false_become_values_and_other_strings_stay() -> None:
    spec = load_spec_text(textwrap.dedent(YOLOV5_CLASSIFIER), "yolov5n-cls.yaml")
    args = {row.index: [a.value for a in row.args] for row in spec.rows}
    assert args[4] == [256, False]
    assert args[6] == [128, 1, 1, None, 1, 1, True]
    assert args[7] == [None, 2, "nearest"]
    assert args[12] == [7]  # nc


def test_nn_upsample_row_renders_with_none(tmp_path: Path) -> None:
    compiled = compile_spec(load_spec_text(textwrap.dedent(YOLOV5_CLASSIFIER), "yolov5n-cls.yaml"))
    assert "nn.Upsample(None, 2, " in compiled.source
    assert "'None'" not in compiled.source and '"None"' not in compiled.source


# --- errors ----------------------------------------------------------------------------------------

DETECT = """\
nc: 80
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - [-1, 1, Conv, [64, 3, 2]]
  - [-1, 1, Conv, [128, 3, 2]]
head:
  - [[0, 1], 1, Detect, [nc]]
"""


def error_of(text: str, name: str = "m.yaml", options: UltralyticsOptions | None = None) -> str:
    with pytest.raises(SpecError) as info:
        compile_spec(load_spec_text(text, name, options=options))
    return str(info.value)


def test_detection_head_is_a_located_error() -> None:
    assert error_of(DETECT) == (
        "m.yaml:8:17: Detect is an ultralytics detection head, which yaml2torch does not compile; "
        "it compiles ultralytics classifiers (head Classify), see docs/origin_formats.md"
    )
    assert error_of(DETECT.replace("Detect", "Segment")).startswith(
        "m.yaml:8:17: Segment is an ultralytics segmentation head"
    )


def test_shipped_detection_file_stops_at_its_head() -> None:
    path = ultralytics_models() / "v8" / "yolov8.yaml"
    with pytest.raises(SpecError, match=r"yolov8\.yaml:\d+:\d+: Detect is an ultralytics detection head"):
        compile_spec(load_spec(path, options=UltralyticsOptions("n")))


def test_bad_scale_is_a_located_error() -> None:
    assert error_of(DETECT, options=UltralyticsOptions("m")) == (
        "m.yaml:2:1: scale 'm' (from --scale) is not in scales; this file has n"
    )
    assert error_of(DETECT, options=UltralyticsOptions("q")) == "--scale must be one of n, s, m, l, x, got 'q'"
    assert error_of(DETECT, "yolov8x.yaml") == (
        "yolov8x.yaml:2:1: scale 'x' (from the file name 'yolov8x.yaml') is not in scales; this file has n"
    )


def test_bad_scale_from_the_cli(tmp_path: Path) -> None:
    spec = tmp_path / "m.yaml"
    spec.write_text(DETECT, encoding="utf-8")
    result = run_cli_subprocess("compile", spec, "--scale", "l", cwd=tmp_path)
    assert result.status == 2
    assert result.stderr.strip() == (
        f"yaml2torch: error: {spec}:2:1: scale 'l' (from --scale) is not in scales; this file has n"
    )


def test_scale_and_nc_on_a_yaml2torch_spec_are_refused() -> None:
    text = "input_channel: 3\nbackbone:\n  - [-1, 1, Conv, [8, 3]]\n"
    assert error_of(text, options=UltralyticsOptions("n", 3)) == (
        "--scale n --nc 3 apply to ultralytics model files (with nc: or scales:); m.yaml is a yaml2torch spec"
    )
    assert error_of(text, options=UltralyticsOptions("n", None)) == (
        "--scale n applies to ultralytics model files (with nc: or scales:); m.yaml is a yaml2torch spec"
    )


def test_ultralytics_file_keys_are_strict() -> None:
    assert error_of("nc: 3\ninput_channel: 3\nbackbone:\n  - [-1, 1, Conv, [8, 3]]\n") == (
        "m.yaml:2:1: unknown key 'input_channel' in an ultralytics model file (it has nc: or scales:) "
        "(did you mean 'channels'?)"
    )
    assert error_of("nc: 3\nfoo: 1\nbackbone:\n  - [-1, 1, Conv, [8, 3]]\n").endswith(
        "; expected one of nc, scales, depth_multiple, width_multiple, activation, channels, input_size, backbone, head"
    )


def test_first_scale_is_used_with_a_warning() -> None:
    from yaml2torch.errors import Diagnostics

    diagnostics = Diagnostics()
    spec = load_spec_text(DETECT, "m.yaml", diagnostics=diagnostics)
    assert spec.scale == "n"
    assert [str(w) for w in diagnostics.warnings] == [
        "m.yaml:2:1: no scale given (--scale or a name like yolov8n-cls.yaml); using the first, 'n'"
    ]


def test_activation_key_and_nc_override(tmp_path: Path) -> None:
    text = "nc: 5\nactivation: nn.ReLU()\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 1, C2f, [16, True]]\nhead:\n  - [-1, 1, Classify, [nc]]\n"
    path = tmp_path / "relu-cls.yaml"
    path.write_text(text, encoding="utf-8")
    theirs = reference(path, "", nc=NC)
    compiled, mine = ours(path, tmp_path, None)
    assert "nn.SiLU" not in compiled.source and "nn.ReLU(inplace=True)" in compiled.source
    assert_twin(mine, theirs, torch.randn(2, 3, 32, 32))
    bad = error_of(text.replace("nn.ReLU()", "nn.LeakyReLU(0.1)"))
    assert bad == "m.yaml:2:13: activation must be written nn.<Name>() without arguments, like nn.SiLU(), got 'nn.LeakyReLU(0.1)'"
    # found by a hostile-input check: accepted, although each block then got its own PReLU
    assert error_of(text.replace("nn.ReLU()", "nn.PReLU()")) == (
        "m.yaml:2:13: activation nn.PReLU() is not supported: ultralytics shares its one instance (one slope) "
        "across the model, yaml2torch would give each block its own"
    )


def test_nc_missing_is_a_located_error() -> None:
    text = "scales:\n  n: [1.0, 1.0, 64]\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\nhead:\n  - [-1, 1, Classify, [nc]]\n"
    assert error_of(text) == "m.yaml:6:24: this row uses nc, but the file sets no 'nc:'; add nc: or pass --nc N"


@pytest.mark.parametrize("scale", ["n", "s"])
def test_the_example_is_an_ultralytics_file_too(scale: str, tmp_path: Path) -> None:
    """examples/models/yolo11n_cls.yaml builds in ultralytics as it is (it ignores input_size)."""
    from conftest import EXAMPLES_DIR

    ultralytics_models()
    path = EXAMPLES_DIR / "yolo11n_cls.yaml"
    theirs = reference(path, scale)
    compiled, mine = ours(path, tmp_path, scale, nc=None)
    assert compiled.params == numel(theirs)
    x = torch.randn(2, 3, 64, 64)
    assert_twin(mine, theirs, x)
    assert compiled.macs == counted_macs(mine, x[:1])


YOLOV5S_CLASSIC = """\
nc: 80 # number of classes
depth_multiple: 0.33 # model depth multiple
width_multiple: 0.50 # layer channel multiple
anchors:
  - [10, 13, 16, 30, 33, 23] # P3/8
  - [30, 61, 62, 45, 59, 119] # P4/16
backbone:
  - [-1, 1, Conv, [64, 6, 2, 2]] # 0-P1/2
  - [-1, 3, C3, [128]]
  - [-1, 1, SPPF, [128, 5]]
head:
  - [-1, 1, nn.Upsample, [None, 2, 'nearest']]
  - [[-1, 1], 1, Concat, [1]]
  - [-1, 3, C3, [128, False]]
  - [[3, 5], 1, Detect, [nc, anchors]]
"""


def test_classic_yolov5s_file_reads_up_to_its_detect_head() -> None:
    """The YOLOv5 repo's layout (anchors:, depth/width multiples) loads; only the head is refused."""
    assert error_of(YOLOV5S_CLASSIC, "yolov5s.yaml").startswith("yolov5s.yaml:15:17: Detect is an ultralytics detection head")
    spec = load_spec_text(YOLOV5S_CLASSIC, "yolov5s.yaml")
    assert (spec.depth_multiple, spec.width_multiple, spec.scale) == (0.33, 0.5, "")
    assert [a.value for a in spec.rows[3].args] == [None, 2, "nearest"]


A2C2F_VARIANTS = """\
nc: 10
scales:
  n: [1.0, 1.0, 1024]
  l: [1.0, 1.0, 1024]
backbone:
  - [-1, 1, Conv, [64, 3, 2]]
  - [-1, 2, A2C2f, [64, False, 1, False, 2.0, 0.5, 1, False]] # C3k stages, no shortcut
  - [-1, 1, A2C2f, [64, True, 2, True, 1.5]] # residual with gamma at scale n, 2 areas
head:
  - [-1, 1, Classify, [nc]]
"""


def test_a2c2f_variants_match_ultralytics(tmp_path: Path) -> None:
    """A2C2f's C3k path (a2 false), residual + mlp_ratio given in the row, and area 2, at scale n."""
    ultralytics_models()
    path = tmp_path / "a2c2f-cls.yaml"
    path.write_text(A2C2F_VARIANTS, encoding="utf-8")
    theirs = reference(path, "n")
    compiled, mine = ours(path, tmp_path, "n")
    assert compiled.params == numel(theirs)
    x = torch.randn(2, 3, 16, 16)
    assert_twin(mine, theirs, x)
    sized = compile_spec(load_spec(path, options=UltralyticsOptions("n", NC)).with_input_size((16, 16)))
    assert sized.macs == counted_macs(mine, x[:1])


def test_a2c2f_errors_are_located() -> None:
    at_l = error_of(A2C2F_VARIANTS, options=UltralyticsOptions("l"))
    assert at_l.startswith("m.yaml:7:35: A2C2f at scale l: ultralytics appends (residual=True, mlp_ratio=1.2)"), at_l
    not_32 = error_of(A2C2F_VARIANTS.replace("[64, True, 2, True, 1.5]", "[48, True, 2]"), options=UltralyticsOptions("n"))
    assert "A2C2f hidden channels int(48 * 0.5) = 24 must be a multiple of 32" in not_32


TORCHVISION_RESNET18 = "11/yolo11-cls-resnet18.yaml"
TORCHVISION_RESNET18_PARAMS = 11_176_512 + 670_730  # resnet18 less avgpool/fc, then Classify (nc=10)


def torchvision_reference(text: str, scale: str = "n") -> nn.Module:
    """ultralytics' model for a TorchVision file, built offline: weights null (they do not change the layers)."""
    import yaml
    from ultralytics.nn.tasks import ClassificationModel

    cfg = yaml.safe_load(text)
    for row in cfg["backbone"]:
        if row[2] == "TorchVision":
            row[3][2] = None
    cfg["scale"] = scale
    return ClassificationModel(cfg, nc=NC, verbose=False)


def test_shipped_torchvision_resnet18_file_is_an_exact_twin(tmp_path: Path) -> None:
    """yolo11-cls-resnet18.yaml: its TorchVision row lowers to our resnet18 twin blocks, no torchvision import."""
    path = ultralytics_models() / TORCHVISION_RESNET18
    torch.manual_seed(0)
    theirs = torchvision_reference(path.read_text(encoding="utf-8"))
    assert numel(torchvision_reference(path.read_text(encoding="utf-8"), "x")) == numel(theirs)  # not scaled
    compiled, mine = ours(path, tmp_path, None)
    imports = [line for line in compiled.source.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in imports if "torchvision" in line] and "torchvision.models" not in compiled.source
    assert compiled.params == numel(mine) == numel(theirs) == TORCHVISION_RESNET18_PARAMS
    x = torch.randn(2, 3, 64, 64)
    assert_twin(mine, theirs, x)
    sized = compile_spec(load_spec(path, options=UltralyticsOptions(nc=NC)).with_input_size((64, 64)))
    assert sized.macs == counted_macs(mine, x[:1])
    torchvision = pytest.importorskip("torchvision")
    resnet18 = torchvision.models.resnet18(weights=None).eval()
    randomize_batchnorm(resnet18)
    load_reference_weights(
        mine.torch_vision_0, {k: v for k, v in resnet18.state_dict().items() if not k.startswith("fc.")}
    )
    with torch.no_grad():
        expected = nn.Sequential(*list(resnet18.children())[:-2])(x)
        assert (
            (mine.torch_vision_0.eval()(x) - expected).abs().max() / expected.abs().max()
        ).item() <= MAX_RELATIVE_ERROR


TORCHVISION_ROW = """\
nc: 10
backbone:
  - [-1, 1, TorchVision, [{args}]]
head:
  - [-1, 1, Classify, [nc]]
"""


@pytest.mark.parametrize(
    "args", ["512, resnet18, DEFAULT, True, 1", "256, resnet34, None, True, 3", "2048, resnet50, IMAGENET1K_V2"]
)
def test_torchvision_rows_match_ultralytics(args: str, tmp_path: Path) -> None:
    ultralytics_models()
    path = tmp_path / "tv-cls.yaml"
    path.write_text(TORCHVISION_ROW.format(args=args), encoding="utf-8")
    torch.manual_seed(0)
    theirs = torchvision_reference(path.read_text(encoding="utf-8"))
    compiled, mine = ours(path, tmp_path, None)
    assert compiled.params == numel(theirs)
    assert_twin(mine, theirs, torch.randn(2, 3, 64, 64))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            "512, vgg16",
            "m.yaml:3:32: TorchVision arg 'model' must be one of resnet18, resnet34, resnet50, resnet101, resnet152, got 'vgg16'",
        ),
        (
            "512, resnet18, DEFAULT, False",
            "m.yaml:3:51: TorchVision unwrap=false (the whole torchvision model) is not supported",
        ),
        (
            "512, resnet18, DEFAULT, True, 2, True",
            "m.yaml:3:60: TorchVision split=true (a list of every child's output) is not supported",
        ),
        ("512, resnet18, DEFAULT, True, 0", "m.yaml:3:57: TorchVision truncate 0 is not supported: use 1..6"),
        ("512, resnet18, 3", "m.yaml:3:42: TorchVision arg 'weights' must be a weights name or null"),
        ("256, resnet18", "m.yaml:3:27: TorchVision c2 256 does not match resnet18 truncated by 2, which gives (512"),
    ],
)
def test_torchvision_row_errors_are_located(args: str, message: str) -> None:
    assert error_of(TORCHVISION_ROW.format(args=args)).startswith(message)

"""Property tests (hypothesis): random valid specs compile, import and run with the inferred
shape, params and MACs; hostile strings in every string position are rejected or inert."""

from __future__ import annotations

import ast
import itertools
from functools import cache
from pathlib import Path

import pytest
import torch
import yaml
from conftest import import_file
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from yaml2torch.errors import SpecError

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_counter = itertools.count()

# --- random valid specs ------------------------------------------------------------------

ACTIVATIONS = ["ReLU", "ReLU6", "SiLU", "Hardswish", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "HardSwish", "Swish", None]


# blocks that keep the size, or stride it like a 'same' 3x3 conv
STRIDED = ("BasicBlock", "ResBottleneck", "InvertedResidualv2", "InvertedResidualv3", "MV2Block", "MBConv")
SAME_OR_STRIDED = (*STRIDED, "Fire", "Bottleneck", "C3", "BottleneckCSP", "SPPF")


def conv_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def repeats_after_depth(repeat: int, depth: float) -> int:
    return repeat if repeat == 1 else max(round(repeat * depth), 1)


@st.composite
def valid_spec_texts(draw: st.DrawFn) -> tuple[str, tuple[int, int]]:
    """A spec from a small grammar over the catalogue; rows that would shrink a side below 1
    are left out, so every drawn spec is valid."""
    h, w = draw(st.integers(4, 24)), draw(st.integers(4, 24))
    width = draw(st.sampled_from([0.25, 0.5, 1.0]))
    depth = draw(st.sampled_from([0.33, 1.0]))
    kindle_form = draw(st.booleans())
    sizes = [h, w]
    # a stem: the YOLO blocks halve their input channels first and need at least 2
    rows: list[list] = [[1, "Conv", [draw(st.integers(8, 16)), 3]]]
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["Conv", "DWConv", "MaxPool", "AvgPool", "Identity", "Dropout", *SAME_OR_STRIDED]))
        repeat = 1
        new = list(sizes)
        if kind in SAME_OR_STRIDED:
            # 'same'-padded odd kernels: a stride s gives (size - 1) // s + 1, on the first repeat
            c, s = draw(st.integers(1, 24)), draw(st.sampled_from([1, 2]))
            repeat = draw(st.integers(1, 2))
            t = draw(st.sampled_from([1, 2, 4]))
            args = {
                "BasicBlock": [c, s],
                "ResBottleneck": [4 * c, s],
                "InvertedResidualv2": [c, t, s],
                "InvertedResidualv3": [draw(st.sampled_from([3, 5])), t, c, draw(st.booleans()), draw(st.booleans()), s],
                "MV2Block": [c, s, t],
                "MBConv": [t, c, s, draw(st.sampled_from([3, 5]))],
                "Fire": [c, draw(st.integers(1, 16)), draw(st.integers(1, 16))],
                "Bottleneck": [c],
                "C3": [c],
                "BottleneckCSP": [c],
                "SPPF": [c],
            }[kind]
            if kind in STRIDED:
                new = [(v - 1) // s + 1 for v in new]
        elif kind in ("Conv", "DWConv"):
            k = draw(st.sampled_from([1, 3, 5]))
            s = draw(st.sampled_from([1, 2]))
            padding = draw(st.sampled_from([None, [0], k // 2 or None]))
            p = k // 2 if padding is None else (padding[0] if isinstance(padding, list) else padding)
            repeat = draw(st.integers(1, 3))
            n = repeats_after_depth(repeat, depth)
            for i in range(n):  # the stride goes on the last repeat
                new = [conv_out(v, k, s if i == n - 1 else 1, p) for v in new]
            c = draw(st.integers(1, 24))
            act = draw(st.sampled_from(ACTIVATIONS))
            args = [c, k, s, padding, 1, act] if kind == "Conv" else [c, k, s, padding, act]
        elif kind in ("MaxPool", "AvgPool"):
            k = draw(st.sampled_from([2, 3]))
            s = draw(st.sampled_from([1, 2]))
            p = draw(st.integers(0, k // 2))
            new = [conv_out(v, k, s, p) for v in new]
            args = [k, s, p]
        elif kind == "Dropout":
            args = [draw(st.sampled_from([0.0, 0.1, 0.5]))]
        else:
            args = []
        if min(new) < 1:
            continue
        sizes = new
        rows.append([repeat, kind, args])
    rows += [[1, "GlobalAvgPool", []], [1, "Flatten", []]]
    if draw(st.booleans()):
        rows.append([1, "Linear", [draw(st.integers(1, 32)), draw(st.sampled_from(ACTIVATIONS))]])
    head = [[1, "Linear", [draw(st.integers(1, 10))]]]
    if kindle_form:
        rows = [[-1, *row] for row in rows]
        head = [[-1, *row] for row in head]
    spec = {
        "input_channel": draw(st.integers(1, 4)),
        "input_size": [h, w],
        "depth_multiple": depth,
        "width_multiple": width,
        "backbone": rows,
        "head": head,
    }
    return yaml.safe_dump(spec, sort_keys=False, default_flow_style=None), (h, w)


@SETTINGS
@given(case=valid_spec_texts(), batch=st.integers(1, 2))
def test_random_valid_specs_compile_import_and_run(case: tuple[str, tuple[int, int]], batch: int, tmp_path: Path) -> None:
    from yaml2torch.compiler import compile_file

    text, (h, w) = case
    folder = tmp_path / f"case{next(_counter)}"
    folder.mkdir()
    spec = folder / "random.yaml"
    spec.write_text(text, encoding="utf-8")
    compiled = compile_file(spec)
    out = folder / "model.py"
    out.write_text(compiled.source, encoding="utf-8")
    module = import_file(out)
    model = module.Model().eval()
    assert module.INPUT_SHAPE == (compiled.ir.input_shape.channels, h, w)
    assert sum(p.numel() for p in model.parameters()) == compiled.params
    x = torch.randn(batch, *module.INPUT_SHAPE)
    with torch.no_grad(), FlopCounterMode(display=False) as flops:
        y = model(x)
    assert tuple(y.shape) == (batch, *compiled.ir.output_shape.dims)
    # MACs count conv and linear multiply-accumulates (bias excluded): FLOPs / 2 per sample
    assert flops.get_total_flops() == 2 * compiled.macs * batch


# --- hostile strings -----------------------------------------------------------------------

MARKER_NAME = "Y2T_PWNED_MARKER"


def payloads(marker: Path) -> list[str]:
    run = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    return [
        run,
        "__import__('os')",
        f'"); {run}; ("',
        f"'); {run}; ('",
        f"); import os; ({run})",
        f"\n{run}\n",
        f"x\r{run}",
        f"x\u2028{run}",
        f'"""\n{run}\n"""',
        f"'''\n{run}\n'''",
        f"\\\n{run}",
        f"\\N{{{run}}}",
        f"{{{{ {run} }}}}",
        f"{{% raw %}}{run}",
        f"# \n{run}",
        "Сonv",  # Cyrillic С
        "Conv\u0301",
        "ReLU\x00",
        "x" * 5000,
        "nn.Conv2d\n" + run,
        "nn.__class__",
        "nn.Module",
        "",
        " ",
        "\t",
    ]


def hostile_strings(marker: Path) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(payloads(marker)), st.text(max_size=40))


BASE_ROWS = [[-1, 1, "Conv", [8, 3]], [-1, 1, "GlobalAvgPool", []], [-1, 1, "Flatten", []], [-1, 1, "Linear", [4]]]


def spec_with(position: str, payload: str) -> dict:
    """A valid spec with ``payload`` placed in one string position."""
    rows = [list(row) for row in BASE_ROWS]
    spec: dict = {"input_channel": 3, "input_size": [8, 8], "backbone": rows}
    if position == "nowhere":
        pass
    elif position == "block name":
        rows[0][2] = payload
    elif position == "nn layer name":
        rows[0] = [-1, 1, f"nn.{payload}", [8, 3]]
    elif position == "activation arg":
        rows[0][3] = [8, 3, 1, None, 1, payload]
    elif position == "activation kwarg":
        rows[0].append({"activation": payload})
    elif position == "kwarg key":
        rows[0].append({payload: 3})
    elif position == "nn kwarg key":
        rows[0] = [-1, 1, "nn.Conv2d", [8, 3], {payload: 1}]
    elif position == "nn kwarg value":
        rows[0] = [-1, 1, "nn.Conv2d", [8, 3], {"padding_mode": payload}]
    elif position == "nn positional string":
        rows[0] = [-1, 1, "nn.Conv2d", [8, 3, 1, payload]]
    elif position == "int arg as string":
        rows[0][3] = [payload, 3]
    elif position == "top-level key":
        spec[payload] = 1
    elif position == "modules":
        spec["modules"] = [payload]
    elif position == "channel_rounding":
        spec["channel_rounding"] = payload
    elif position == "norm key":
        spec["norm"] = {payload: 0.001}
    elif position == "yaml module file":
        rows[0] = [-1, 1, "YamlModule", [payload, 8]]
    elif position == "upsample mode":
        rows.insert(1, [-1, 1, "UpSample", [None, 2, payload]])
    else:
        raise AssertionError(position)
    return spec


STRING_POSITIONS = [
    "block name",
    "nn layer name",
    "activation arg",
    "activation kwarg",
    "kwarg key",
    "nn kwarg key",
    "nn kwarg value",
    "nn positional string",
    "int arg as string",
    "top-level key",
    "modules",
    "channel_rounding",
    "norm key",
    "yaml module file",
    "upsample mode",
]

@cache
def reference_names() -> frozenset[str]:
    """The global names a clean compile of the base spec reads: a hostile one may read no others."""
    from yaml2torch.compiler import compile_text

    tree = ast.parse(compile_text(yaml.safe_dump(spec_with("nowhere", ""))).source)
    return frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load))


def assert_inert(source: str, folder: Path, marker: Path) -> None:
    """The generated file parses, reads no unexpected global names, and runs without the payload."""
    tree = ast.parse(source)
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    assigned = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    args = {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments) for a in [*n.args, *n.kwonlyargs]}
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    unexpected = loaded - defined - assigned - args - reference_names()
    assert not unexpected, unexpected
    assert "__import__" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    path = folder / "model.py"
    path.write_text(source, encoding="utf-8")
    module = import_file(path)
    model = module.Model().eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 8, 8))
    assert not marker.exists()


@pytest.mark.parametrize("position", STRING_POSITIONS)
def test_hostile_strings_are_rejected_or_inert(position: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from yaml2torch.compiler import compile_file

    marker = tmp_path_factory.mktemp("marker") / MARKER_NAME

    @SETTINGS
    @given(payload=hostile_strings(marker))
    def check(payload: str) -> None:
        folder = tmp_path_factory.mktemp("hostile")
        spec_path = folder / "spec.yaml"
        text = yaml.safe_dump(spec_with(position, payload), sort_keys=False, allow_unicode=True, default_flow_style=None)
        spec_path.write_text(text, encoding="utf-8")
        try:
            compiled = compile_file(spec_path)
        except SpecError as error:
            assert error.location is not None and error.location.file == str(spec_path) or position == "yaml module file"
            assert "\n" not in str(error)  # one line on stderr
            assert not marker.exists()
            return
        assert_inert(compiled.source, folder, marker)

    check()


@SETTINGS
@given(name=st.text(min_size=1, max_size=60))
def test_hostile_file_names_are_inert(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from yaml2torch.compiler import compile_file

    assume("/" not in name and "\x00" not in name and name not in (".", ".."))
    assume(len((name + ".yaml").encode("utf-8", "surrogatepass")) < 200)
    assume(not any(0xD800 <= ord(ch) <= 0xDFFF for ch in name))
    folder = tmp_path_factory.mktemp("names")
    marker = folder / MARKER_NAME
    spec_path = folder / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump(spec_with("nowhere", "")), encoding="utf-8")
    source = compile_file(spec_path).source
    assert source.splitlines()[0].startswith("# Generated by yaml2torch")
    assert_inert(source, folder, marker)


@pytest.mark.parametrize("index", range(len(payloads(Path("/m")))))
def test_fixed_payloads_as_file_names_are_inert(index: int, tmp_path: Path) -> None:
    from yaml2torch.compiler import compile_file

    marker = tmp_path / MARKER_NAME
    name = payloads(marker)[index].replace("/", "_").replace("\x00", "_")[:150]
    assume_ok = name not in ("", ".", "..")
    if not assume_ok:
        pytest.skip("not a possible file name")
    spec_path = tmp_path / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump(spec_with("nowhere", "")), encoding="utf-8")
    assert_inert(compile_file(spec_path).source, tmp_path, marker)


@SETTINGS
@given(data=st.data())
def test_hostile_class_names_are_refused_or_inert(data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    from yaml2torch.compiler import compile_text

    folder = tmp_path_factory.mktemp("classname")
    marker = folder / MARKER_NAME
    name = data.draw(st.one_of(st.sampled_from([*payloads(marker), "Ｃonv", "ﬁ", "Model2", "_"]), st.text(max_size=20)))
    text = yaml.safe_dump(spec_with("nowhere", ""))
    try:
        source = compile_text(text, class_name=name).source
    except SpecError as error:
        assert str(error).startswith(f"class name {name!r}")
        assert not marker.exists()
        return
    assert name.isidentifier()
    tree = ast.parse(source)
    assert [n.name for n in tree.body if isinstance(n, ast.ClassDef)][-1] == name
    path = folder / "model.py"
    path.write_text(source, encoding="utf-8")
    assert getattr(import_file(path), name)()(torch.randn(1, 3, 8, 8)).shape == (1, 4)
    assert not marker.exists()


def test_class_name_that_normalizes_onto_a_block_class_is_refused() -> None:
    from yaml2torch.compiler import compile_text

    with pytest.raises(SpecError, match="reads as 'Conv' in Python"):
        compile_text(yaml.safe_dump(spec_with("nowhere", "")), class_name="Ｃonv")


def test_a_hostile_sub_spec_file_name_is_inert(tmp_path: Path) -> None:
    """A YamlModule file whose name is a payload: the file exists, compiles, and stays inert."""
    from yaml2torch.compiler import compile_file

    marker = tmp_path / MARKER_NAME
    name = f"'''\"\"\"\n__import__('pathlib').Path('{marker.name}').touch()\n#.yaml"
    (tmp_path / name).write_text("args: [8]\nmodule:\n  - [-1, 1, Conv, [arg0, 3]]\n", encoding="utf-8")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec_with("yaml module file", name)), encoding="utf-8")
    assert_inert(compile_file(spec_path).source, tmp_path, marker)

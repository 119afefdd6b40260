"""Located YAML loading and strict spec parsing (yaml2torch.spec)."""

from __future__ import annotations

from pathlib import Path

import pytest

from yaml2torch.errors import Diagnostics, Location, SpecError, suggest
from yaml2torch.spec.load import load_spec, load_spec_text
from yaml2torch.spec.yaml_nodes import MAX_NODES, load_text

LENET_THREE_ELEMENT = """\
input_channel: 3
backbone:
  - [1, Conv, [6, 5, 1, [0]]]
  - [1, MaxPool, [2]]
  - [1, Conv, [16, 5, 1, [0]]]
  - [1, MaxPool, [2]]
  - [1, GlobalAvgPool, []]
  - [1, Flatten, []]
  - [1, Linear, [120, ReLU]]
  - [1, Linear, [84, ReLU]]
  - [1, Linear, [9]]
"""


def test_every_node_knows_its_line_and_column() -> None:
    root = load_text("a: 1\nb:\n  - [x, {k: 2.5}]\n", "f.yaml")
    assert root.loc == Location("f.yaml", 1, 1)
    assert root.key_locs == {"a": Location("f.yaml", 1, 1), "b": Location("f.yaml", 2, 1)}
    row = root.value["b"].value[0]
    assert row.loc == Location("f.yaml", 3, 5)
    assert [item.loc.column for item in row.value] == [6, 9]
    kwargs = row.value[1]
    assert kwargs.key_locs == {"k": Location("f.yaml", 3, 10)}
    assert kwargs.value["k"].loc == Location("f.yaml", 3, 13)
    assert root.plain() == {"a": 1, "b": [["x", {"k": 2.5}]]}


def test_yaml_scalars_keep_their_types() -> None:
    root = load_text("i: 3\nf: 0.5\nb: true\nn: null\ns: '3'\ne: 1e-3\n", "f.yaml")
    assert root.plain() == {"i": 3, "f": 0.5, "b": True, "n": None, "s": "3", "e": 0.001}
    assert type(root.value["b"].value) is bool


def test_both_row_forms_read_the_same() -> None:
    three = load_spec_text("input_channel: 3\nbackbone:\n  - [2, Conv, [16, 3]]\n")
    kindle = load_spec_text("input_channel: 3\nbackbone:\n  - [-1, 2, Conv, [16, 3], {stride: 2}]\n")
    (a,), (b,) = three.rows, kindle.rows
    assert (a.sources, a.repeat, a.module, [n.value for n in a.args]) == ((-1,), 2, "Conv", [16, 3])
    assert (b.sources, b.repeat, b.module, [n.value for n in b.args]) == ((-1,), 2, "Conv", [16, 3])
    assert {k: v.value for k, v in b.kwargs.items()} == {"stride": 2}
    assert b.kwarg_locs["stride"] == Location("<spec>", 3, 29)


def test_head_rows_follow_the_backbone() -> None:
    spec = load_spec_text(
        "input_channel: 3\nbackbone:\n  - [1, Conv, [8]]\nhead:\n  - [1, Flatten, []]\n  - [[0], 1, Linear, [4]]\n"
    )
    assert [(r.index, r.module, r.in_head) for r in spec.rows] == [(0, "Conv", False), (1, "Flatten", True), (2, "Linear", True)]
    assert spec.rows[2].sources == (0,)


def test_top_level_defaults() -> None:
    spec = load_spec_text("input_channel: 1\nbackbone:\n  - [1, Conv, [8]]\n")
    assert (spec.input_size, spec.depth_multiple, spec.width_multiple) == (None, 1.0, 1.0)
    assert (spec.channel_divisor, spec.channel_rounding, spec.norm.eps, spec.norm.momentum) == (8, "nearest", 1e-5, 0.1)
    assert spec.modules == ()


def test_top_level_values() -> None:
    spec = load_spec_text(
        "input_channel: 3\ninput_size: [32, 48]\ndepth_multiple: 0.33\nwidth_multiple: 0.25\n"
        "channel_divisor: 4\nchannel_rounding: ceil\nnorm: {eps: 0.001, momentum: 0.01}\n"
        "custom_module_paths: [my_blocks.extra]\nbackbone:\n  - [1, Conv, [8]]\n"
    )
    assert spec.input_size == (32, 48)
    assert (spec.depth_multiple, spec.width_multiple, spec.channel_divisor, spec.channel_rounding) == (0.33, 0.25, 4, "ceil")
    assert (spec.norm.eps, spec.norm.momentum) == (0.001, 0.01)
    assert spec.modules == ("my_blocks.extra",)


def test_square_input_size_from_one_int() -> None:
    assert load_spec_text("input_channel: 3\ninput_size: 64\nbackbone:\n  - [1, Conv, [8]]\n").input_size == (64, 64)


def test_kindle_anchors_key_is_accepted() -> None:
    spec = load_spec_text(
        "input_channel: 3\nanchors:\n  - [10, 13, 16, 30]\nbackbone:\n  - [1, Conv, [8]]\n"
    )
    assert len(spec.rows) == 1


def test_keys_that_only_define_anchors_are_accepted_and_their_aliases_work() -> None:
    spec = load_spec_text(
        "input_channel: 3\nstem_args: &stem [16, 3, 2]\nact: &act {activation: SiLU}\n"
        "backbone:\n  - [-1, 1, Conv, *stem, *act]\n  - [-1, 1, Conv, *stem]\n"
    )
    assert [[n.value for n in row.args] for row in spec.rows] == [[16, 3, 2], [16, 3, 2]]
    assert spec.rows[0].kwargs["activation"].value == "SiLU"


def test_a_key_holding_only_an_alias_is_still_unknown() -> None:
    with pytest.raises(SpecError) as err:
        load_spec_text("input_channel: 3\nstem: &s [16]\nextra: *s\nbackbone:\n  - [1, Conv, *s]\n", "s.yaml")
    assert str(err.value).startswith("s.yaml:3:1: unknown top-level key 'extra'")


def test_modules_alias_conflict() -> None:
    with pytest.raises(SpecError, match="'custom_module_paths' is an alias of 'modules'; give only one"):
        load_spec_text("input_channel: 3\nmodules: [a]\ncustom_module_paths: [b]\nbackbone:\n  - [1, Conv, [8]]\n")


def test_utf8_bom_and_unicode_are_fine(tmp_path: Path) -> None:
    spec = tmp_path / "bom.yaml"
    spec.write_bytes("\ufeff# Größe\ninput_channel: 3\nbackbone:\n  - [1, Conv, [8]]\n".encode())
    assert load_spec(spec).input_channel == 3


def test_alias_bomb_is_stopped_by_counting_nodes() -> None:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 10)}]")
    with pytest.raises(SpecError, match=f"more than {MAX_NODES:,} \\(an alias bomb\\?\\)"):
        load_text("\n".join(lines), "bomb.yaml")


def test_moderate_alias_use_is_fine() -> None:
    root = load_text("a: &a [1, 2, 3]\nb: [*a, *a, *a]\n", "f.yaml")
    assert root.plain() == {"a": [1, 2, 3], "b": [[1, 2, 3]] * 3}
    assert root.value["a"].defines_anchor and not root.value["b"].value[0].defines_anchor


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(SpecError) as err:
        load_text("a: &a [1, *a]\n", "f.yaml")
    assert str(err.value) == "f.yaml:1:4: an alias refers to a value that contains it (a recursive alias)"


def test_long_alias_chains_do_not_hit_the_recursion_limit() -> None:
    lines = ["a0: &a0 [1]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 2000)]
    with pytest.raises(SpecError, match="an alias bomb"):
        load_text("\n".join(lines), "f.yaml")


def test_multiple_documents_are_refused() -> None:
    with pytest.raises(SpecError) as err:
        load_text("a: 1\n---\nb: 2\n", "f.yaml")
    assert str(err.value) == "f.yaml:2:1: YAML syntax error: expected a single document in the stream, but found another document"


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(SpecError) as err:
        load_text("1: a\n", "f.yaml")
    assert str(err.value) == "f.yaml:1:1: mapping keys must be strings, not an int"


def test_warnings_are_collected_not_printed() -> None:
    diagnostics = Diagnostics()
    load_spec_text("input_channel: 3\nbackbone:\n  - [1, Conv, [8]]\n", diagnostics=diagnostics)
    assert diagnostics.warnings == []  # padding warnings come from binding args, at lowering


def test_suggest() -> None:
    assert suggest("Conb", ["Conv", "Linear"]) == " (did you mean 'Conv'?)"
    assert suggest("linear", ["Conv", "Linear"]) == " (did you mean 'Linear'?)"
    assert suggest("zzzz", ["Conv", "Linear"]) == ""


def test_lenet_three_element_rows_have_16817_params() -> None:
    # a documented fact from the issue: the three-element LeNet-style spec has 16,817 parameters
    from yaml2torch.compiler import analyze

    assert analyze(load_spec_text(LENET_THREE_ELEMENT)).params == 16_817


KINDLE_CIFAR = """\
input_size: [32, 32]
input_channel: 3
depth_multiple: 1.0
width_multiple: 1.0
backbone:
  - [-1, 1, Conv, [6, 5, 1, 0], {activation: LeakyReLU}]
  - [-1, 1, MaxPool, [2]]
  - [-1, 1, nn.Conv2d, [16, 5, 1, 2], {bias: False}]
  - [-1, 1, nn.BatchNorm2d, []]
  - [-1, 1, nn.ReLU, []]
  - [-1, 1, MaxPool, [2]]
  - [-1, 1, Flatten, []]
  - [-1, 1, Linear, [120, ReLU]]
  - [-1, 1, Linear, [84, ReLU]]
head:
  - [-1, 1, Linear, [10]]
"""


def test_kindle_cifar_example_has_137862_params() -> None:
    # a documented fact from the issue: kindle's CIFAR example shape has 137,862 parameters
    from yaml2torch.blocks import builtin_blocks
    from yaml2torch.compiler import analyze

    if "nn." not in builtin_blocks():
        pytest.skip("nn.<Name> rows are not in the catalogue yet")
    diagnostics = Diagnostics()
    assert analyze(load_spec_text(KINDLE_CIFAR, diagnostics=diagnostics), diagnostics).params == 137_862
    assert [w.location.line for w in diagnostics.warnings] == [6]  # the bare 0 padding

"""Exact failure messages: every bad spec gives one stderr line naming FILE:LINE:COL, exit 2,
no traceback, and no output file (an existing one is left untouched)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli_subprocess

# name -> (spec text, "LINE:COL: message"). LINE:COL is the YAML node at fault.
CASES: dict[str, tuple[str, str]] = {
    "yaml_syntax": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, [16, 3\n",
        "4:1: YAML syntax error: expected ',' or ']', but got '<stream end>'",
    ),
    "yaml_bad_indentation": (
        "input_channel: 3\n backbone: []\n",
        "2:10: YAML syntax error: mapping values are not allowed here",
    ),
    "bool_is_not_an_int": (
        "input_channel: true\nbackbone:\n  - [1, Conv, [16]]\n",
        "1:16: input_channel must be an int, not a bool (True)",
    ),
    "bool_arg_is_not_an_int": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, [yes]]\n",
        "3:16: Conv arg 'c' must be a positive int, not a bool (True)",
    ),
    "float_kernel": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, [16, 3.5]]\n",
        "3:20: Conv arg 'k' must be a positive int, not a float (3.5)",
    ),
    "string_repeat": (
        "input_channel: 3\nbackbone:\n  - [two, Conv, [16]]\n",
        "3:6: repeat must be an int, not a string ('two')",
    ),
    "too_many_args": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, [16, 3, 1, null, 1, ReLU, 5]]\n",
        "3:41: Conv takes at most 6 args (c, k, s, p, g, act), got 7",
    ),
    "missing_required_arg": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, []]\n",
        "3:5: Conv needs arg 'c' (a positive int); args are [c, k, s, p, g, act]",
    ),
    "row_too_short": (
        "input_channel: 3\nbackbone:\n  - [1, Conv]\n",
        "3:5: a row has 3 elements [repeat, Module, args] or 4-5 [from, repeat, Module, args, {kwargs}], got 2",
    ),
    "row_not_a_list": (
        "input_channel: 3\nbackbone:\n  - Conv\n",
        "3:5: a row must be a list [repeat, Module, args] or [from, repeat, Module, args, {kwargs}], not a string",
    ),
    "args_not_a_list": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, 16]\n",
        "3:15: Conv args must be a list, not an int",
    ),
    "kwargs_not_a_mapping": (
        "input_channel: 3\nbackbone:\n  - [-1, 1, Conv, [16], [3]]\n",
        "3:25: kwargs must be a mapping, not a list",
    ),
    "zero_channels": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, [0]]\n",
        "3:16: Conv arg 'c' must be positive, got 0",
    ),
    "negative_kernel": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, [16, -3]]\n",
        "3:20: Conv arg 'k' must be positive, got -3",
    ),
    "zero_stride": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, [16, 3, 0]]\n",
        "3:23: Conv arg 's' must be positive, got 0",
    ),
    "zero_stride_kwarg": (
        "input_channel: 3\nbackbone:\n  - [-1, 1, Conv, [16, 3], {stride: 0}]\n",
        "3:37: Conv kwarg 'stride' must be positive, got 0",
    ),
    "zero_repeat": (
        "input_channel: 3\nbackbone:\n  - [0, Conv, [8]]\n",
        "3:6: repeat must be positive, got 0",
    ),
    "zero_input_channel": (
        "input_channel: 0\nbackbone:\n  - [1, Conv, [8]]\n",
        "1:16: input_channel must be positive, got 0",
    ),
    "negative_input_size": (
        "input_channel: 3\ninput_size: [32, -32]\nbackbone:\n  - [1, Conv, [8]]\n",
        "2:18: input_size W must be positive, got -32",
    ),
    "input_size_one_value_list": (
        "input_channel: 3\ninput_size: [32]\nbackbone:\n  - [1, Conv, [8]]\n",
        "2:13: input_size must be [H, W], got 1 values",
    ),
    "negative_width_multiple": (
        "input_channel: 3\nwidth_multiple: -0.5\nbackbone:\n  - [1, Conv, [8]]\n",
        "2:17: width_multiple must be positive, got -0.5",
    ),
    "misspelt_top_level_key": (
        "input_channel: 3\nbackbon:\n  - [1, Conv, [8]]\n",
        "2:1: unknown top-level key 'backbon' (did you mean 'backbone'?)",
    ),
    "misspelt_input_channel": (
        "input_channels: 3\nbackbone:\n  - [1, Conv, [8]]\n",
        "1:1: unknown top-level key 'input_channels' (did you mean 'input_channel'?)",
    ),
    "unknown_top_level_key": (
        "input_channel: 3\noptimizer: adam\nbackbone:\n  - [1, Conv, [8]]\n",
        (
            "2:1: unknown top-level key 'optimizer'; expected one of input_channel, input_size, depth_multiple, "
            "width_multiple, channel_divisor, channel_rounding, norm, normalize, backbone, head, modules, custom_module_paths, "
            "or a key whose value defines a YAML anchor"
        ),
    ),
    "unknown_norm_key": (
        "input_channel: 3\nnorm: {epsilon: 0.001}\nbackbone:\n  - [1, Conv, [8]]\n",
        "2:8: unknown norm key 'epsilon' (did you mean 'eps'?); expected eps, momentum",
    ),
    "misspelt_channel_rounding": (
        "input_channel: 3\nchannel_rounding: neerest\nbackbone:\n  - [1, Conv, [8]]\n",
        "2:19: channel_rounding must be one of nearest, ceil (did you mean 'nearest'?)",
    ),
    "missing_input_channel": (
        "backbone:\n  - [1, Conv, [8]]\n",
        "1:1: missing required key 'input_channel'",
    ),
    "empty_backbone": (
        "input_channel: 3\nbackbone: []\n",
        "2:11: the backbone has no rows",
    ),
    "not_a_mapping": (
        "- [1, Conv, [8]]\n",
        "1:1: a model spec must be a mapping, not a list",
    ),
    "empty_file": (
        "# nothing here\n",
        "1:1: the file is empty; expected a mapping",
    ),
    "duplicate_top_level_key": (
        "input_channel: 3\ninput_channel: 3\nbackbone:\n  - [1, Conv, [8]]\n",
        "2:1: duplicate key 'input_channel' (first at line 1)",
    ),
    "duplicate_kwarg": (
        "input_channel: 3\nbackbone:\n  - [-1, 1, Conv, [8], {stride: 1, stride: 2}]\n",
        "3:36: duplicate key 'stride' (first at line 3)",
    ),
    "kwarg_given_twice_by_alias": (
        "input_channel: 3\nbackbone:\n  - [-1, 1, Conv, [8], {k: 3, kernel_size: 5}]\n",
        "3:31: Conv kwarg 'kernel_size' sets 'k' again (already set by kwarg 'k'); give it once",
    ),
    "kwarg_repeats_a_positional_arg": (  # found by a hostile-input check: the kwarg silently won
        "input_channel: 3\nbackbone:\n  - [-1, 1, Conv, [8, 3], {k: 5}]\n",
        "3:28: Conv kwarg 'k' sets 'k' again (already set by positional arg 1); give it once",
    ),
    "torch_kwarg_repeats_a_positional_arg": (
        "input_channel: 3\nbackbone:\n  - [-1, 1, nn.Conv2d, [8, 3], {kernel_size: 5}]\n",
        "3:33: nn.Conv2d kwarg 'kernel_size' sets 'kernel_size' again (already set by positional arg 1); give it once",
    ),
    "from_points_forward": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, [8]]\n  - [5, 1, Conv, [8]]\n",
        "4:6: 'from' 5 points at row 5, which is not before row 1; rows may only read earlier rows",
    ),
    "from_points_at_itself": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, [8]]\n  - [1, 1, Conv, [8]]\n",
        "4:6: 'from' 1 points at row 1, which is not before row 1; rows may only read earlier rows",
    ),
    "from_out_of_range": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, [8]]\n  - [-3, 1, Conv, [8]]\n",
        "4:6: 'from' -3 is out of range at row 1 (reaches -2; the input is -1 at row 0)",
    ),
    "from_not_an_int": (
        "input_channel: 3\nbackbone:\n  - [prev, 1, Conv, [8]]\n",
        "3:6: from must be an int, not a string ('prev')",
    ),
    "two_inputs_to_a_single_input_block": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, [8]]\n  - [[-1, 0], 1, Conv, [8]]\n",
        "4:6: Conv takes one input, but 'from' lists 2; use Concat or Add to merge",
    ),
    "spatial_shrinks_to_zero_conv": (
        "input_channel: 3\ninput_size: [4, 4]\nbackbone:\n  - [1, Conv, [8, 5, 1, [0]]]\n",
        "4:5: spatial size shrinks to zero: input (3, 4, 4) with kernel 5, stride 1, padding 0 gives 0x0",
    ),
    "spatial_shrinks_to_zero_pool": (
        "input_channel: 3\ninput_size: [2, 2]\nbackbone:\n  - [1, MaxPool, [2]]\n  - [1, MaxPool, [2]]\n",
        "5:5: spatial size shrinks to zero: MaxPool kernel 2 stride 2 on input (3, 1, 1)",
    ),
    "unknown_block": (
        "input_channel: 3\nbackbone:\n  - [1, Conb, [8]]\n",
        "3:9: unknown block 'Conb' (did you mean 'Conv'?)",
    ),
    "unknown_block_wrong_case": (
        "input_channel: 3\nbackbone:\n  - [1, conv, [8]]\n",
        "3:9: unknown block 'conv' (did you mean 'Conv'?)",
    ),
    "unknown_activation_arg": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, [8, 3, 1, null, 1, Relu]]\n",
        "3:34: unknown activation 'Relu' (did you mean 'ReLU'?)",
    ),
    "unknown_activation_kwarg": (
        "input_channel: 3\nbackbone:\n  - [-1, 1, Conv, [8, 3], {activation: Hardswsh}]\n",
        "3:40: unknown activation 'Hardswsh' (did you mean 'Hardswish'?)",
    ),
    "unknown_kwarg": (
        "input_channel: 3\nbackbone:\n  - [-1, 1, Conv, [8], {kernal_size: 3}]\n",
        (
            "3:25: Conv has no kwarg 'kernal_size' (did you mean 'kernel_size'?); it takes act, activation, c, "
            "channels, g, groups, k, kernel_size, out_channels, p, padding, s, stride"
        ),
    ),
    "linear_on_an_image": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, [8]]\n  - [1, Linear, [10]]\n",
        "4:5: Linear needs a flat (features,) input, got (8, ?, ?); add Flatten (and GlobalAvgPool) before it",
    ),
    "python_object_apply_tag": (
        'input_channel: !!python/object/apply:os.system ["echo pwned"]\nbackbone:\n  - [1, Conv, [8]]\n',
        (
            "1:16: tag '!!python/object/apply:os.system' is not allowed "
            "(Python object tags are refused: a spec never creates objects)"
        ),
    ),
    "python_object_tag": (
        "input_channel: 3\nbackbone:\n  - [1, !!python/object:collections.OrderedDict {}, [8]]\n",
        (
            "3:9: tag '!!python/object:collections.OrderedDict' is not allowed "
            "(Python object tags are refused: a spec never creates objects)"
        ),
    ),
    "python_name_tag": (
        "input_channel: 3\nbackbone:\n  - [1, !!python/name:os.system '', [8]]\n",
        "3:9: tag '!!python/name:os.system' is not allowed (Python object tags are refused: a spec never creates objects)",
    ),
    "binary_tag": (
        "input_channel: !!binary AAAA\nbackbone:\n  - [1, Conv, [8]]\n",
        "1:16: tag '!!binary' is not allowed (a spec holds only strings, numbers, booleans, null, lists and mappings)",
    ),
    "merge_key": (
        "input_channel: 3\nbase: &b {input_channel: 3}\nother:\n  <<: *b\nbackbone:\n  - [1, Conv, [8]]\n",
        "4:3: merge keys ('<<') are not supported",
    ),
    "nesting_too_deep": (
        "input_channel: " + "[" * 200 + "]" * 200 + "\nbackbone: []\n",
        "1:115: nesting deeper than 100 levels",
    ),
    "int_beyond_digit_limit": (
        "input_channel: " + "7" * 5000 + "\nbackbone:\n  - [1, Conv, [8]]\n",
        "1:16: cannot read int value '77777777777777777777'...",
    ),
    "control_character": (
        'input_channel: 3\nbackbone:\n  - [1, "Co\x01nv", [8]]\n',
        "3:12: YAML error: character U+0001 is not allowed (special characters are not allowed)",
    ),
    "bad_module_path": (
        "input_channel: 3\nmodules: [../plugins/blocks.py]\nbackbone:\n  - [1, Conv, [8]]\n",
        "2:11: modules entry '../plugins/blocks.py' is not a Python import path like 'my_pkg.blocks'",
    ),
    "missing_plugin_module": (
        "input_channel: 3\nmodules: [yaml2torch_no_such_plugin]\nbackbone:\n  - [1, Conv, [8]]\n",
        "2:11: cannot import plugin module 'yaml2torch_no_such_plugin': No module named 'yaml2torch_no_such_plugin'",
    ),
    "plugin_without_blocks": (
        "input_channel: 3\nmodules: [json]\nbackbone:\n  - [1, Conv, [8]]\n",
        "2:11: plugin module 'json' defines no Block subclass",
    ),
    "groups_do_not_divide": (
        "input_channel: 3\nbackbone:\n  - [1, Conv, [8, 3, 1, null, 2]]\n",
        "3:5: groups=2 must divide both input channels 3 and output channels 8",
    ),
    "add_channel_mismatch": (
        (
            "input_channel: 3\nbackbone:\n  - [-1, 1, Conv, [16, 3]]\n  - [-1, 1, Conv, [24, 3]]\n"
            "  - [[-1, -2], 1, Add, []]\n"
        ),
        "5:5: Add needs equal channels: input 0 is (24, ?, ?), input 1 is (16, ?, ?)",
    ),
    "concat_spatial_mismatch": (
        (
            "input_channel: 3\ninput_size: [32, 32]\nbackbone:\n  - [-1, 1, Conv, [16, 3]]\n"
            "  - [-1, 1, Conv, [16, 3, 2]]\n  - [[-1, -2], 1, Concat, [1]]\n"
        ),
        "6:5: Concat along dim 1 needs equal spatial size: input 0 is (16, 16, 16), input 1 is (16, 32, 32)",
    ),
    "missing_sub_spec_file": (
        "input_channel: 3\nbackbone:\n  - [-1, 1, YamlModule, [no_such_block.yaml, 16]]\n",
        "3:26: YamlModule file 'no_such_block.yaml' not found (looked for {dir}/no_such_block.yaml)",
    ),
}


def alias_bomb() -> str:
    """Billion laughs: nine levels of nine aliases, ~387 million strings if expanded."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
        previous = name
    lines += ["input_channel: 3", "backbone: *i"]
    return "\n".join(lines) + "\n"


CASES["alias_bomb"] = (alias_bomb(), "5:4: this value expands to 66,430 nodes through aliases, more than 50,000 (an alias bomb?)")


def compile_fails(run_cli, spec: Path, out: Path, expected: str) -> None:
    result = run_cli("compile", spec, "-o", out)
    assert result.stderr == f"yaml2torch: error: {spec}:{expected}\n"
    assert result.status == 2
    assert result.stdout == ""


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_names_the_node_and_writes_nothing(case: str, tmp_path: Path, run_cli) -> None:
    text, expected = CASES[case]
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    out = tmp_path / "out" / "model.py"
    compile_fails(run_cli, spec, out, expected.replace("{dir}", str(tmp_path.resolve())))
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["spec.yaml"]  # no temp files either


@pytest.mark.parametrize("case", ["yaml_syntax", "unknown_block", "duplicate_top_level_key", "zero_stride"])
def test_error_leaves_an_existing_output_untouched(case: str, tmp_path: Path, run_cli) -> None:
    text, expected = CASES[case]
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    out = tmp_path / "model.py"
    out.write_text("# the previous model\n", encoding="utf-8")
    compile_fails(run_cli, spec, out, expected)
    assert out.read_text(encoding="utf-8") == "# the previous model\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py", "spec.yaml"]


@pytest.mark.parametrize("command", [["summary"], ["summary", "--json"]])
def test_summary_reports_the_same_error(command: list[str], tmp_path: Path, run_cli) -> None:
    text, expected = CASES["unknown_activation_kwarg"]
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    result = run_cli(*command, spec)
    assert (result.status, result.stdout) == (2, "")
    assert result.stderr == f"yaml2torch: error: {spec}:{expected}\n"


def test_non_utf8_input_names_the_bad_byte(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"input_channel: 3\nbackbone:\n  - [1, Conv, [8]]  # caf\xe9\n")
    out = tmp_path / "model.py"
    compile_fails(run_cli, spec, out, "3:26: not valid UTF-8 (byte 0xe9); save the file as UTF-8")
    assert not out.exists()


def test_missing_spec_file(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "nope.yaml"
    out = tmp_path / "model.py"
    compile_fails(run_cli, spec, out, "1:1: file not found")
    assert not out.exists()


def test_python_tag_payload_never_runs(tmp_path: Path, run_cli) -> None:
    marker = tmp_path / "pwned"
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"input_channel: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{marker}']]\n"
        "backbone:\n  - [1, Conv, [8]]\n",
        encoding="utf-8",
    )
    result = run_cli("compile", spec, "-o", tmp_path / "model.py")
    assert result.status == 2
    assert "!!python/object/apply:pathlib.Path.touch" in result.stderr
    assert not marker.exists()


def test_bare_zero_padding_warns_with_the_line(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("input_channel: 3\nbackbone:\n  - [1, Conv, [8, 3, 1, 0]]\n", encoding="utf-8")
    out = tmp_path / "model.py"
    result = run_cli("compile", spec, "-o", out)
    assert result.status == 0
    assert result.stderr == (
        f"yaml2torch: warning: {spec}:3:25: Conv arg 'p' 0 means 'same' padding (as in the origin formats); "
        "write [0] for no padding or null for 'same'\n"
    )
    assert "padding=1" in out.read_text(encoding="utf-8")  # 'same' for k=3


def test_list_zero_padding_is_a_real_zero_without_warning(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("input_channel: 3\ninput_size: [8, 8]\nbackbone:\n  - [1, Conv, [8, 3, 1, [0]]]\n", encoding="utf-8")
    result = run_cli("summary", spec, "--json")
    assert (result.status, result.stderr) == (0, "")
    assert '"output_shape": [\n    8,\n    6,\n    6\n  ]' in result.stdout


@pytest.mark.parametrize("case", ["yaml_syntax", "python_object_apply_tag", "alias_bomb", "unknown_kwarg"])
def test_console_script_prints_one_line_without_traceback(case: str, tmp_path: Path) -> None:
    text, expected = CASES[case]
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    out = tmp_path / "model.py"
    result = run_cli_subprocess("compile", spec, "-o", out)
    assert result.status == 2
    assert result.stderr == f"yaml2torch: error: {spec}:{expected}\n"
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_plugin_that_fails_to_import(tmp_path: Path, run_cli) -> None:
    (tmp_path / "y2t_broken_plugin.py").write_text("raise RuntimeError('broken on import')\n", encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text("input_channel: 3\nmodules: [y2t_broken_plugin]\nbackbone:\n  - [1, Conv, [8]]\n", encoding="utf-8")
    compile_fails(
        run_cli,
        spec,
        tmp_path / "model.py",
        "2:11: plugin module 'y2t_broken_plugin' failed to import: RuntimeError: broken on import",
    )


def test_file_name_with_line_break_stays_on_one_line(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "bad\nname.yaml"
    spec.write_text("input_channel: 3\nbackbone:\n  - [1, Conb, [8]]\n", encoding="utf-8")
    result = run_cli("compile", spec, "-o", tmp_path / "model.py")
    assert result.status == 2
    assert result.stderr.count("\n") == 1
    assert "bad\\nname.yaml:3:9: unknown block 'Conb'" in result.stderr


# --- merge blocks and sub-specs -------------------------------------------------------------


def test_error_in_sub_spec_names_the_sub_spec_file(tmp_path: Path, run_cli) -> None:
    (tmp_path / "sub.yaml").write_text("args: [16]\nmodule:\n  - [-1, 1, Conb, [arg0]]\n", encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text("input_channel: 3\nbackbone:\n  - [-1, 1, YamlModule, [sub.yaml, 16]]\n", encoding="utf-8")
    result = run_cli("compile", spec, "-o", tmp_path / "model.py")
    assert result.status == 2
    assert result.stderr.startswith(f"yaml2torch: error: {tmp_path / 'sub.yaml'}:3:13: unknown block 'Conb'"), result.stderr


def test_every_case_is_distinct() -> None:
    # guards against copy-paste cases that test nothing new
    texts = [text for text, _ in CASES.values()]
    assert len(set(texts)) == len(texts)


@pytest.mark.parametrize(("key", "command"), [("model", "compile"), ("python", "summary")])
def test_a_search_file_given_where_a_model_spec_goes_says_to_run_search(
    key: str, command: str, tmp_path: Path, run_cli
) -> None:
    space = tmp_path / "space.yaml"
    template = "model:\n  backbone: []\n" if key == "model" else "python: space.py:build\n"
    space.write_text(f"trials: 4\nstudy: s\n{template}", encoding="utf-8")
    result = run_cli(command, space)
    assert (result.status, result.stdout) == (2, "")
    assert result.stderr == (
        f"yaml2torch: error: {space}:1:1: unknown top-level key 'trials': {space} is a search file (it has {key}:), "
        f"not a model spec; run it with 'yaml2torch search {space}'\n"
    )


def test_a_model_spec_given_to_search_says_what_to_use_it_with(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text("input_channel: 1\nbackbone:\n  - [1, Conv, [8]]\n", encoding="utf-8")
    result = run_cli("search", spec, "-o", tmp_path / "out")
    assert (result.status, result.stdout) == (2, "")
    assert result.stderr == (
        f"yaml2torch: error: {spec}:1:1: unknown top-level key 'input_channel': {spec} is a model spec, not a search "
        "file; use it with 'yaml2torch compile', 'summary' or 'train' (a search file holds a model template under model:)\n"
    )
    assert not (tmp_path / "out").exists()


def test_an_unknown_search_file_key_lists_the_keys(tmp_path: Path, run_cli) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("study: s\nmodel:\n  backbone: []\noptimiser: sgd\n", encoding="utf-8")
    result = run_cli("search", space, "-o", tmp_path / "out")
    expected = (
        f"yaml2torch: error: {space}:4:1: unknown top-level key 'optimiser'; expected one of study, seed, trials, "
        "timeout, data, model, python, train, objectives, constraints, pick, sampler, pruner, anchors\n"
    )
    assert (result.status, result.stderr) == (2, expected)


def test_yaml_module_args_the_sub_spec_never_reads_are_warned_about(tmp_path: Path, run_cli) -> None:
    """kindle ignores them too, so they compile; but a dropped value is said, at the first one."""
    (tmp_path / "sub.yaml").write_text("args: [16]\nmodule:\n  - [-1, 1, Conv, [arg0, 3]]\n  - [-1, 1, Conv, [arg1, 1]]\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text('input_channel: 3\nbackbone:\n  - [-1, 1, YamlModule, ["sub.yaml", 8, 8, 4, 4]]\n')
    out = tmp_path / "model.py"
    result = run_cli("compile", spec, "-o", out)
    assert result.status == 0 and out.is_file()
    assert result.stderr == (
        f"yaml2torch: warning: {spec}:3:44: YamlModule sub.yaml reads 2 args (arg0 to arg1); "
        "this row gives 4, the rest are ignored\n"
    )
    spec.write_text('input_channel: 3\nbackbone:\n  - [-1, 1, YamlModule, ["sub.yaml", 8, 8]]\n')
    assert run_cli("compile", spec, "-o", out).stderr == ""

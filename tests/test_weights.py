"""Loading torchvision weights by position: the mapping, its errors, and ``compile --weights``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from conftest import EXAMPLES_DIR, import_file, run_cli_subprocess
from test_twins import MAX_RELATIVE_ERROR, randomize_batchnorm, relative_error
from torch import nn

from yaml2torch.compiler import compile_file
from yaml2torch.errors import WeightsError
from yaml2torch.weights import load_torchvision_weights, map_state_dict

V3_SMALL = EXAMPLES_DIR / "mobilenet_v3_small.yaml"


def conv_bn(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, bias=False), nn.BatchNorm2d(c_out))


class Renamed(nn.Module):
    """The same layout as ``conv_bn`` under other names (as a generated twin block has)."""

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, bias=False)
        self.bn = nn.BatchNorm2d(c_out)


def test_map_state_dict_renames_by_position() -> None:
    reference = conv_bn(3, 8, 3).state_dict()
    mapped = map_state_dict(reference, Renamed(3, 8, 3).state_dict())
    assert list(mapped) == [
        "conv.weight",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    ]
    assert all(mine is theirs for mine, theirs in zip(mapped.values(), reference.values()))


def test_shape_mismatch_names_the_position_and_both_keys() -> None:
    with pytest.raises(WeightsError) as caught:
        map_state_dict(conv_bn(3, 8, 3).state_dict(), Renamed(3, 8, 5).state_dict())
    assert str(caught.value) == (
        "state_dict entry 0 does not match: reference '0.weight' has shape (8, 3, 3, 3), "
        "model 'conv.weight' has shape (8, 3, 5, 5)"
    )


def test_length_mismatch_names_the_first_unmatched_entry() -> None:
    longer = nn.Sequential(conv_bn(3, 8, 3), nn.Conv2d(8, 4, 1, bias=False))
    with pytest.raises(
        WeightsError, match=r"reference has 7 entries, model has 6; .* reference '1.weight' at position 6"
    ):
        map_state_dict(longer.state_dict(), Renamed(3, 8, 3).state_dict())
    with pytest.raises(WeightsError, match=r"reference has 6 entries, model has 7; .* model '1.weight' at position 6"):
        map_state_dict(conv_bn(3, 8, 3).state_dict(), longer.state_dict())


@pytest.mark.parametrize("as_state_dict", [False, True])
def test_load_torchvision_weights_from_a_module_or_a_state_dict(as_state_dict: bool) -> None:
    theirs = conv_bn(3, 8, 3)
    randomize_batchnorm(theirs)
    ours = Renamed(3, 8, 3)
    assert load_torchvision_weights(ours, theirs.state_dict() if as_state_dict else theirs) is ours
    for mine, reference in zip(ours.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(mine, reference)


def test_compile_with_weights_end_to_end(tmp_path: Path) -> None:
    """torch.save a torchvision state_dict, run the real CLI, load model.pth into the generated model."""
    theirs = torchvision.models.mobilenet_v3_small(weights=None)
    randomize_batchnorm(theirs, seed=3)
    torch.save(theirs.state_dict(), tmp_path / "tv.pth")
    out = tmp_path / "out" / "model.py"

    result = run_cli_subprocess("compile", V3_SMALL, "-o", out, "--weights", tmp_path / "tv.pth", "--class-name", "Net")

    assert result.status == 0, result.stderr
    assert f"wrote {out} and {out.with_suffix('.pth')}" in result.stderr
    assert out.read_text(encoding="utf-8") == compile_file(V3_SMALL, class_name="Net").source
    assert "import yaml2torch" not in out.read_text(encoding="utf-8")
    assert "from yaml2torch" not in out.read_text(encoding="utf-8")
    ours = import_file(out).Net()
    weights = torch.load(out.with_suffix(".pth"), weights_only=True)
    assert list(weights) == list(ours.state_dict())
    ours.load_state_dict(weights)
    ours.eval()
    theirs.eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert relative_error(ours(x), theirs(x)) <= MAX_RELATIVE_ERROR


def test_weights_that_do_not_fit_are_refused_and_nothing_is_written(tmp_path: Path, run_cli) -> None:
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet18.pth")
    out = tmp_path / "model.py"
    result = run_cli("compile", V3_SMALL, "-o", out, "--weights", tmp_path / "resnet18.pth")
    assert result.status == 2
    assert result.stderr == (
        "yaml2torch: error: state_dict entry 0 does not match: reference 'conv1.weight' has shape (64, 3, 7, 7), "
        "model 'conv_0.conv.weight' has shape (16, 3, 3, 3)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet18.pth"]


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a torch file")


def _a_list(path: Path) -> None:
    torch.save([torch.zeros(1)], path)


class NotATensor:
    """A pickled custom class: refused by weights_only loading, so it never runs."""


def _custom_object(path: Path) -> None:
    torch.save({"x": NotATensor()}, path)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (None, "no such weights file"),
        (_garbage, "cannot read weights"),
        (_custom_object, "cannot read weights: not a torch.save file of plain tensors"),
        (_a_list, "expected a state_dict (a mapping of names to tensors)"),
    ],
)
def test_unreadable_weights_files_are_user_errors(tmp_path: Path, run_cli, write, message: str) -> None:
    weights = tmp_path / "w.pth"
    if write is not None:
        write(weights)
    result = run_cli("compile", V3_SMALL, "-o", tmp_path / "model.py", "--weights", weights)
    assert result.status == 2
    assert result.stderr.startswith(f"yaml2torch: error: {weights}: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "model.py").exists() and not (tmp_path / "model.pth").exists()


def test_weights_need_an_output_file(tmp_path: Path, run_cli) -> None:
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), tmp_path / "tv.pth")
    result = run_cli("compile", V3_SMALL, "--weights", tmp_path / "tv.pth")
    assert result.status == 2
    assert "--weights needs -o" in result.stderr
    assert result.stdout == ""

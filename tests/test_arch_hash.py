"""The canonical architecture hash: equal for specs that lower to the same network, only then."""

from __future__ import annotations

import shutil
from pathlib import Path

from yaml2torch.compiler import compile_file, compile_text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "models"


def arch_hash(text: str) -> str:
    return compile_text(text, "spec.yaml").arch_hash


THREE_ELEMENT = """
input_channel: 3
input_size: [32, 32]
backbone:
  - [1, Conv, [16, 3, 2]]
  - [2, Conv, [32, 3]]
  - [1, GlobalAvgPool, []]
  - [1, Flatten, []]
  - [1, Linear, [10]]
"""

KINDLE_FORM = """
input_channel: 3
input_size: [32, 32]
backbone:
  - [-1, 1, Conv, [16], {kernel_size: 3, stride: 2}]
  - [-1, 2, Conv, [32, 3, 1, null, 1, ReLU]]
  - [-1, 1, GlobalAvgPool, []]
  - [-1, 1, Flatten, []]
head:
  - [-1, 1, Linear, [10, null]]
"""


def test_row_forms_and_spelling_do_not_change_the_hash():
    assert arch_hash(THREE_ELEMENT) == arch_hash(KINDLE_FORM)


def test_width_and_depth_multiples_hash_as_their_result():
    scaled = THREE_ELEMENT.replace("input_channel: 3", "input_channel: 3\nwidth_multiple: 2.0\ndepth_multiple: 0.5")
    halved = THREE_ELEMENT.replace("[16, 3, 2]", "[32, 3, 2]").replace("[2, Conv, [32, 3]]", "[1, Conv, [64, 3]]")
    assert arch_hash(scaled) == arch_hash(halved)


def test_any_network_change_changes_the_hash():
    base = arch_hash(THREE_ELEMENT)
    variants = [
        THREE_ELEMENT.replace("[16, 3, 2]", "[24, 3, 2]"),  # channels
        THREE_ELEMENT.replace("[16, 3, 2]", "[16, 5, 2]"),  # kernel
        THREE_ELEMENT.replace("[2, Conv, [32, 3]]", "[3, Conv, [32, 3]]"),  # depth
        THREE_ELEMENT.replace("[32, 3]]", "[32, 3, 1, null, 1, SiLU]]"),  # activation
        THREE_ELEMENT.replace("input_size: [32, 32]", "input_size: [64, 64]"),  # input
        THREE_ELEMENT.replace("input_channel: 3", "input_channel: 3\nnorm: {eps: 0.001}"),  # BN eps
    ]
    hashes = {arch_hash(text) for text in variants}
    assert base not in hashes
    assert len(hashes) == len(variants)


def test_sub_spec_file_names_do_not_change_the_hash(tmp_path: Path):
    """A YamlModule's generated class is named after its file; the hash counts its body."""
    original = compile_file(EXAMPLES / "yaml_module.yaml")
    renamed_dir = tmp_path / "renamed"
    shutil.copytree(EXAMPLES / "modules", renamed_dir / "parts")
    (renamed_dir / "parts" / "inception.yaml").rename(renamed_dir / "parts" / "other_name.yaml")
    for sub in (renamed_dir / "parts").glob("*.yaml"):
        sub.write_text(sub.read_text().replace("inception.yaml", "other_name.yaml"))
    spec_text = (EXAMPLES / "yaml_module.yaml").read_text()
    spec_text = spec_text.replace("modules/inception.yaml", "parts/other_name.yaml").replace("modules/", "parts/")
    (renamed_dir / "renamed.yaml").write_text(spec_text)
    renamed = compile_file(renamed_dir / "renamed.yaml")
    assert "OtherName" in renamed.source and "OtherName" not in original.source
    assert renamed.arch_hash == original.arch_hash

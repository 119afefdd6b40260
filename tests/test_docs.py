"""The reference in docs/ says what the code does: checked, so it cannot drift."""

from __future__ import annotations

import re

from conftest import ROOT

from yaml2torch.blocks.activations import _ALIASES, _CLASSES


def test_the_activation_table_lists_every_activation_the_code_accepts():
    text = (ROOT / "docs" / "spec.md").read_text()
    listed = re.findall(r"^\| `(\w+)` \| `nn\.\w+\(", text, re.MULTILINE)
    assert listed == list(_CLASSES)
    for alias, target in _ALIASES.items():
        assert f"`{alias}` = `{target}`" in text


def test_nothing_in_the_repository_refers_to_a_file_outside_it():
    paths = [*ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("yaml2torch/**/*.py"), *ROOT.glob("tests/*.py")]
    outside = re.compile("\\.\\./shared|SPEC" + "\\.md")  # split so this test does not find itself
    assert [str(p) for p in paths if outside.search(p.read_text())] == []

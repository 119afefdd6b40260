"""The type check: mypy on the package with the [tool.mypy] settings of pyproject.toml, and every
``# type: ignore[code]`` in the package followed by a short reason."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "yaml2torch"
IGNORE = re.compile(r"#\s*type:\s*ignore")
# the code(s) in brackets, then two spaces and a comment with the reason
IGNORE_WITH_REASON = re.compile(r"# type: ignore\[[a-z0-9-]+(, [a-z0-9-]+)*\]  # \S")


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed (the test extra has it)")
def test_package_type_checks():
    result = subprocess.run(
        [sys.executable, "-m", "mypy"],  # files and settings: [tool.mypy] in pyproject.toml
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"mypy found problems:\n{result.stdout}{result.stderr}"


def test_every_type_ignore_has_a_reason():
    missing = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if IGNORE.search(line) and not IGNORE_WITH_REASON.search(line)
    ]
    assert not missing, "a `# type: ignore[code]` needs a reason after it (`  # why`):\n" + "\n".join(missing)

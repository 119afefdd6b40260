"""Golden files: generated/<stem>.py is the compiled examples/models/<stem>.yaml, byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLES, GENERATED_DIR, ROOT, run_cli_subprocess

REGENERATE_ALL = (
    "for f in examples/models/*.yaml; do .venv/bin/yaml2torch compile \"$f\" -o generated/$(basename \"$f\" .yaml).py; done"
)


def regenerate_hint(spec: Path) -> str:
    return (
        f"regenerate with: .venv/bin/yaml2torch compile {spec.relative_to(ROOT)} -o generated/{spec.stem}.py"
        f"  (all of them: {REGENERATE_ALL})"
    )


def test_there_are_examples() -> None:
    assert EXAMPLES, "examples/models/*.yaml is empty"


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_golden_file_is_fresh(spec: Path) -> None:
    from yaml2torch.compiler import compile_file

    golden = GENERATED_DIR / f"{spec.stem}.py"
    assert golden.is_file(), f"generated/{spec.stem}.py is missing; {regenerate_hint(spec)}"
    expected = compile_file(spec).source
    assert golden.read_bytes() == expected.encode("utf-8"), f"generated/{spec.stem}.py is stale; {regenerate_hint(spec)}"


def test_every_golden_file_has_a_spec() -> None:
    stems = {p.stem for p in EXAMPLES}
    orphans = sorted(p.name for p in GENERATED_DIR.glob("*.py") if p.stem not in stems)
    assert orphans == [], f"generated/ holds files without an examples/models/ spec: {orphans} (delete them)"


def test_check_flag_passes_on_the_fresh_golden_files(run_cli) -> None:
    failures = {}
    for spec in EXAMPLES:
        result = run_cli("compile", spec, "-o", GENERATED_DIR / f"{spec.stem}.py", "--check")
        if result.status != 0:
            failures[spec.stem] = result.stderr
    assert failures == {}


def test_check_flag_from_the_console_script(tmp_path: Path) -> None:
    """A fresh interpreter in another folder agrees with the golden file (exit 0), and --check
    reports a stale copy (exit 1) without rewriting it."""
    spec = EXAMPLES[0]
    golden = GENERATED_DIR / f"{spec.stem}.py"
    fresh = run_cli_subprocess("compile", spec, "-o", golden, "--check", cwd=tmp_path)
    assert (fresh.status, fresh.stdout) == (0, ""), fresh.stderr
    assert all(line.startswith("yaml2torch: warning: ") for line in fresh.stderr.splitlines())

    stale = tmp_path / "stale.py"
    stale.write_bytes(golden.read_bytes().replace(b"super().__init__()", b"super().__init__()  # edited", 1))
    before = stale.read_bytes()
    result = run_cli_subprocess("compile", spec, "-o", stale, "--check", cwd=tmp_path)
    assert result.status == 1
    assert f"{stale} is stale" in result.stderr
    assert stale.read_bytes() == before


def test_check_flag_fails_when_the_output_is_missing(tmp_path: Path, run_cli) -> None:
    result = run_cli("compile", EXAMPLES[0], "-o", tmp_path / "absent.py", "--check")
    assert result.status == 1
    assert not (tmp_path / "absent.py").exists()


def test_check_flag_fails_after_the_spec_changes(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / EXAMPLES[0].name
    shutil.copy(EXAMPLES[0], spec)
    out = tmp_path / "model.py"
    assert run_cli("compile", spec, "-o", out).status == 0
    assert run_cli("compile", spec, "-o", out, "--check").status == 0
    spec.write_text(spec.read_text(encoding="utf-8") + "\n# a comment changes the spec hash\n", encoding="utf-8")
    assert run_cli("compile", spec, "-o", out, "--check").status == 1

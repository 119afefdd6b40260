"""``yaml2torch check`` (the pre-commit hooks) and ``yaml2torch textconv`` (git diff of specs as code).

``check SPEC...`` compiles each spec in memory (every error a compile would give, nothing written);
with ``--fresh`` it also compares the committed model file, by convention ``<stem>.py`` (``.y2t`` dropped) beside the
spec or in ``--out-dir``, and names the command that regenerates a stale or missing one.

``textconv FILE`` prints the generated ``model.py`` of a spec for git's textconv. git hands the
driver a temporary copy (``/tmp/XXXXXX_spec.yaml``) for old versions, so the spec's own folder is
unknown there; YamlModule files are looked up relative to ``--base-dir``, else to the tracked
file of that name in the repository (git runs the driver from the top of the work tree), else
the working directory.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from yaml2torch.errors import UserError

_GIT_TEMP_PREFIX = re.compile(r"^[A-Za-z0-9]{6}_")


@dataclass(frozen=True)
class CheckResult:
    spec: Path
    problem: str  # "" when the spec is fine

    @property
    def ok(self) -> bool:
        return not self.problem


def model_path(spec: Path, out_dir: Path | None) -> Path:
    """``resnet.yaml`` and ``resnet.y2t.yaml`` -> ``resnet.py`` (beside the spec or in ``out_dir``)."""
    stem = spec.stem.removesuffix(".y2t")
    return (out_dir or spec.parent) / f"{stem}.py"


def check_spec(spec: Path, fresh: bool, out_dir: Path | None) -> CheckResult:
    """One spec: compiles? (and with ``fresh``: is its committed model file current?)"""
    from yaml2torch.compiler import compile_file

    try:
        compiled = compile_file(spec)
    except UserError as exc:
        return CheckResult(spec, f"error: {exc}")
    if not fresh:
        return CheckResult(spec, "")
    out = model_path(spec, out_dir)
    current = out.read_text(encoding="utf-8") if out.is_file() else None
    if current == compiled.source:
        return CheckResult(spec, "")
    state = "missing" if current is None else "stale"
    return CheckResult(spec, f"{out} is {state}: run 'yaml2torch compile {spec} -o {out}'")


def original_path(path: Path) -> Path | None:
    """The tracked file a git textconv temp file stands for (unique basename match), if any."""
    if not path.is_absolute() or Path.cwd() in path.resolve().parents:
        return path
    name = _GIT_TEMP_PREFIX.sub("", path.name, count=1)
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    matches = [Path(p) for p in listed.split("\0") if p and Path(p).name == name]
    return matches[0] if len(matches) == 1 else None


def textconv(path: Path, base_dir: Path | None = None) -> str:
    """The generated model.py for a spec file; a spec that does not compile shows as its own text
    followed by the error (so ``git diff`` still shows something useful)."""
    from yaml2torch.compiler import compile_text
    from yaml2torch.spec.yaml_nodes import read_text

    text = read_text(path)
    original = original_path(path)
    shown = original or path
    base = base_dir or (original.parent if original is not None else Path.cwd())
    try:
        return compile_text(text, str(shown), base_dir=base).source
    except UserError as exc:
        return text + ("" if text.endswith("\n") else "\n") + f"# yaml2torch: error: {exc}\n"

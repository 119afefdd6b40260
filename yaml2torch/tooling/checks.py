"""``yaml2torch check`` (the pre-commit hooks).

``check SPEC...`` compiles each spec in memory (every error a compile would give, nothing written);
with ``--fresh`` it also compares the committed model file, by convention ``<stem>.py`` (``.y2t`` dropped) beside the
spec or in ``--out-dir`` (a search's ``best_model.py`` and trial ``model.py`` too: ``model_path``), and names the command that regenerates a stale or missing one.

A YamlModule sub-spec (``module:`` rows, no ``backbone:``) has no model file of its own: it is
checked for what it holds on its own (``check_sub_spec``), then every spec of its git repository
that includes it (directly or through other sub-specs) is checked as if it had been named too;
with ``--fresh``, such an includer's model file must be current, unless it has none (an includer
that was never compiled to a model file is not this hook's to require).

Exit status (``cli.cmd_check``): 0 all fine, 1 a model file stale or missing, 2 an error.
"""

from __future__ import annotations

import os
import stat
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from yaml2torch.errors import SpecError, UserError
from yaml2torch.tooling.repo import Repo, find_repo, shown_path, yaml_module_files

OK, NOTE, STALE, ERROR = "ok", "note", "stale", "error"


@dataclass(frozen=True)
class CheckResult:
    spec: Path
    state: str  # OK, NOTE (fine, with something to say), STALE (or missing) or ERROR
    message: str = ""

    @property
    def line(self) -> str:
        """What the command prints (nothing for OK)."""
        prefix = {OK: "", NOTE: "note: ", STALE: "", ERROR: "error: "}[self.state]
        return f"yaml2torch: {prefix}{self.message}" if self.message else ""


# What a search writes beside its specs (search/export.py, the trial folders): best.yaml ->
# best_model.py, trials/NNNN/spec.yaml -> model.py; used when <stem>.py is not there.
SEARCH_MODEL_FILES = {"best": "best_model.py", "spec": "model.py"}


def model_path(spec: Path, out_dir: Path | None) -> Path:
    """``resnet.yaml`` and ``resnet.y2t.yaml`` -> ``resnet.py`` (beside the spec or in ``out_dir``);
    a search's ``best.yaml`` -> ``best_model.py`` and ``spec.yaml`` -> ``model.py`` when only those exist."""
    stem = spec.stem.removesuffix(".y2t")
    folder = out_dir or spec.parent
    usual = folder / f"{stem}.py"
    searched = folder / SEARCH_MODEL_FILES[stem] if stem in SEARCH_MODEL_FILES else None
    return searched if searched is not None and not usual.exists() and searched.exists() else usual


def check_files(paths: list[Path], fresh: bool, out_dir: Path | None) -> list[CheckResult]:
    """Every named spec or sub-spec, then the specs that include a named sub-spec (each file once)."""
    results = []
    done: set[str] = set()
    includers: dict[str, tuple[Path, Path]] = {}  # includer (real path) -> (includer, the sub-spec)
    finder = _Includers()
    for path in paths:
        key = os.path.realpath(path)
        if key in done:
            continue
        done.add(key)
        sub_spec, result = _read_kind(path)
        if result is None and not sub_spec:
            result = check_spec(path, fresh, out_dir)
        elif result is None:
            result, found = _check_sub_spec(path, finder)
            includers.update({os.path.realpath(spec): (spec, path) for spec in found})
        results.append(result)
    for key, (spec, sub) in includers.items():
        if key not in done:
            done.add(key)
            results.append(check_spec(spec, fresh, out_dir, included=sub))
    return results


def exit_status(results: list[CheckResult]) -> int:
    states = {result.state for result in results}
    return 2 if ERROR in states else 1 if STALE in states else 0


def check_spec(spec: Path, fresh: bool, out_dir: Path | None, included: Path | None = None) -> CheckResult:
    """One spec: compiles? (and with ``fresh``: is its committed model file current?) ``included``:
    the sub-spec it was found through; then a model file that is missing is not required."""
    from yaml2torch.compiler import compile_file

    try:
        compiled = compile_file(spec)
        if not fresh:
            return CheckResult(spec, OK)
        out = model_path(spec, out_dir)
        state = compare_model_file(out, compiled.source, spec)
    except UserError as exc:
        return CheckResult(spec, ERROR, str(exc))
    if state == "fresh" or (state == "missing" and included is not None):
        return CheckResult(spec, OK)
    via = f" ({spec} includes {included})" if included is not None else ""
    return CheckResult(spec, STALE, f"{out} is {state}{via}: run 'yaml2torch compile {spec} -o {out}'")


def compare_model_file(out: Path, source: str, spec: Path) -> str:
    """"fresh", "stale" or "missing"; a model file that is not UTF-8 text is stale (it is not what
    yaml2torch writes). ``UsageError`` (exit 2) for what regenerating would not fix: a folder or a
    FIFO in the model file's place, a file that cannot be read."""
    from yaml2torch.errors import UsageError

    try:
        mode = out.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        raise UsageError(f"{out}: cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{out}: is a folder where the model file of {spec} goes; move it away, or choose --out-dir")
    if not stat.S_ISREG(mode):
        raise UsageError(f"{out}: not a regular file (a FIFO, socket or device) where the model file of {spec} goes")
    try:
        data = out.read_bytes()
    except OSError as exc:
        raise UsageError(f"{out}: cannot read: {exc.strerror or exc}") from None
    return "fresh" if data == source.encode("utf-8") else "stale"


def _read_kind(path: Path) -> tuple[bool, CheckResult | None]:
    """(is it a sub-spec, the error reading it as YAML if any)."""
    from yaml2torch.blocks.yaml_module import is_sub_spec
    from yaml2torch.spec.ultralytics import is_ultralytics
    from yaml2torch.spec.yaml_nodes import load_text, read_text

    try:
        root = load_text(read_text(path), str(path))
    except SpecError as exc:
        return False, CheckResult(path, ERROR, str(exc))
    return is_sub_spec(root) and not is_ultralytics(root), None


def _check_sub_spec(path: Path, finder: _Includers) -> tuple[CheckResult, list[Path]]:
    from yaml2torch.blocks.yaml_module import check_sub_spec
    from yaml2torch.spec.yaml_nodes import load_text, read_text

    try:
        check_sub_spec(load_text(read_text(path), str(path)))
    except SpecError as exc:
        return CheckResult(path, ERROR, str(exc)), []
    found = finder.of(path)
    if found is None:
        note = f"{path} is a YamlModule sub-spec outside a git repository: the specs that include it are not checked"
        return CheckResult(path, NOTE, note), []
    return CheckResult(path, OK), found


class _Includers:
    """Which specs of a repository include a sub-spec, directly or through other sub-specs (every
    tracked *.yaml/*.yml file read once per repository, from the work tree)."""

    def __init__(self) -> None:
        self.graphs: dict[Path, tuple[dict[str, set[str]], set[str]]] = {}

    def of(self, sub: Path) -> list[Path] | None:
        repo = find_repo(sub.resolve().parent)
        if repo is None:
            return None
        if repo.top not in self.graphs:
            self.graphs[repo.top] = _include_graph(repo)
        included_by, specs = self.graphs[repo.top]
        seen, todo, found = set(), [os.path.realpath(sub)], []
        while todo:
            for includer in sorted(included_by.get(todo.pop(), ())):
                if includer not in seen:
                    seen.add(includer)
                    todo.append(includer)
                    if includer in specs:
                        found.append(shown_path(Path(includer)))
        return found


def _include_graph(repo: Repo) -> tuple[dict[str, set[str]], set[str]]:
    """({included file: the files that include it}, the files that are specs), by real paths."""
    from yaml2torch.blocks.yaml_module import is_sub_spec
    from yaml2torch.spec.yaml_nodes import load_text, read_text

    included_by: dict[str, set[str]] = defaultdict(set)
    specs: set[str] = set()
    for name in repo.files:
        path = repo.top / name
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        try:
            text = read_text(path)
            root = load_text(text, str(path)) if "YamlModule" in text else None
        except SpecError:
            continue  # not a spec we can read: it includes nothing we could check
        if root is None:
            continue
        real = os.path.realpath(path)
        if not is_sub_spec(root):
            specs.add(real)
        for file in yaml_module_files(root):
            included_by[os.path.realpath(path.parent / file)].add(real)
    return included_by, specs

"""The package's shape, checked: layers import downward, no import cycles, Optuna's private API in
one module, short functions. Read from the source (every import, lazy ones included)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "yaml2torch"
MAX_FUNCTION_LINES = 80
OPTUNA_PRIVATE = re.compile(
    r"\._storage\b|\._trial_id\b|\._study_id\b|optuna\.storages\._|\b_CachedStorage\b|\._get_stale_trial_ids\b|\._backend\b"
)


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its body."""
    mods = modules()
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_modules():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_nothing_imports_the_command_line():
    importers = [m for m, targets in import_graph().items() if "yaml2torch.cli" in targets and m != "yaml2torch.__main__"]
    assert importers == []


def test_scale_is_a_generic_library_below_the_search():
    graph = import_graph()
    for module, targets in graph.items():
        if module.startswith("yaml2torch.scale"):
            upward = {t for t in targets if t.startswith(("yaml2torch.search", "yaml2torch.cli"))}
            assert not upward, f"{module} imports {upward}"


def test_the_compiler_never_imports_the_search_side():
    compiler = ("yaml2torch.spec", "yaml2torch.ir", "yaml2torch.blocks", "yaml2torch.render", "yaml2torch.format")
    for module, targets in import_graph().items():
        if module.startswith(compiler) or module == "yaml2torch.compiler":
            upward = {t for t in targets if t.startswith(("yaml2torch.search", "yaml2torch.scale", "yaml2torch.cli", "yaml2torch.tooling"))}
            assert not upward, f"{module} imports {upward}"


def test_tooling_is_used_by_the_command_line_only():
    importers = {m for m, targets in import_graph().items() if any(t.startswith("yaml2torch.tooling") for t in targets)}
    assert {m for m in importers if not m.startswith("yaml2torch.tooling")} <= {"yaml2torch.cli"}


def test_optuna_private_api_is_used_in_one_module_only():
    users = {
        name
        for name, path in modules().items()
        if OPTUNA_PRIVATE.search(path.read_text()) and name != "yaml2torch.scale._optuna"
    }
    assert users == set()


def test_functions_stay_readable():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]  # set by the parser
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_every_error_a_user_can_fix_is_a_user_error():
    """Exceptions defined in the package either derive from UserError or are internal control flow."""
    from yaml2torch import errors

    internal = {"Infeasible", "TrialFailed", "TrialTimedOut", "InjectedFault", "StopRequested", "_OutputClosed"}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Diverged")):
                assert path.name == "errors.py", f"{node.name} in {path.name}: user errors live in errors.py"
                assert issubclass(getattr(errors, node.name), errors.UserError)
            elif isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and base.id.endswith(("Exception", "Interrupt", "RuntimeError"))
                for base in node.bases
            ):
                assert node.name in internal, f"{node.name} in {path.name}"

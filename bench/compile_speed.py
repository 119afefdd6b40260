"""Compile time per example spec: in-process (warm) and CLI wall time (a fresh interpreter),
whether the CLI imported torch, and how fast an alias bomb is refused.

    .venv/bin/python bench/compile_speed.py [--repeat N] [SPEC.yaml ...]

Prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine

# Runs the real CLI entry point in a fresh interpreter and reports whether torch got imported.
_CLI_PROBE = """\
import sys, time
start = time.perf_counter()
from yaml2torch.cli import main
status = main(sys.argv[1:])
print(status, "torch" in sys.modules, time.perf_counter() - start)
"""


def alias_bomb() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
    return "\n".join([*lines, "input_channel: 3", "backbone: *i"]) + "\n"


def time_in_process(spec: Path, repeat: int) -> float:
    from yaml2torch.compiler import compile_file

    compile_file(spec)  # warm: imports, templates, black's caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        compile_file(spec)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_cli(spec: Path, out: Path, repeat: int) -> tuple[float, bool]:
    walls, torch_imported = [], False
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", _CLI_PROBE, "compile", str(spec), "-o", str(out)],
            capture_output=True,
            text=True,
            check=True,
        )
        walls.append(time.perf_counter() - start)
        status, imported, _ = result.stdout.split()
        assert status == "0", result.stderr
        torch_imported = imported == "True"
    return statistics.median(walls), torch_imported


def time_alias_bomb(repeat: int) -> float:
    from yaml2torch.errors import SpecError
    from yaml2torch.spec.load import load_spec_text

    text = alias_bomb()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        try:
            load_spec_text(text, "bomb.yaml")
        except SpecError as error:
            assert "alias bomb" in str(error)
        else:
            raise AssertionError("the alias bomb was accepted")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    specs = args.specs or sorted((ROOT / "examples" / "models").glob("*.yaml"))

    print("### Compile time per spec\n")
    print(f"Machine: {machine()}. Median of {args.repeat} runs (CLI: {max(args.repeat // 2, 1)} runs).\n")
    print("| spec | rows | in-process (warm) | CLI wall (fresh python) | CLI imported torch |")
    print("|---|---:|---:|---:|---|")
    from yaml2torch.spec.load import load_spec

    with tempfile.TemporaryDirectory() as folder:
        for spec in specs:
            rows = len(load_spec(spec).rows)
            warm = time_in_process(spec, args.repeat)
            wall, imported = time_cli(spec, Path(folder) / "model.py", max(args.repeat // 2, 1))
            shown = spec.relative_to(ROOT) if spec.is_relative_to(ROOT) else spec
            print(f"| {shown} | {rows} | {warm * 1000:.0f} ms | {wall * 1000:.0f} ms | {'yes' if imported else 'no'} |")
    bomb = time_alias_bomb(args.repeat)
    print(f"\nAlias bomb (9 levels x 9 aliases, ~387M nodes if expanded) refused in {bomb * 1000:.1f} ms (median).")


if __name__ == "__main__":
    main()

"""`summary` (analytic shapes, params, MACs; no weights) against building the torch model and
counting its parameters, for resnet50-sized specs.

    .venv/bin/python bench/summary_speed.py [--repeat N] [SPEC.yaml ...]

Warm: both in one process (torch already imported). Cold: each in a fresh interpreter, the
way a user runs them (`yaml2torch summary --json` against `import torch, model; Model()`).
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
from _common import ROOT, import_source, machine

_BUILD_COLD = """\
import time
start = time.perf_counter()
import torch
import model
params = sum(p.numel() for p in model.Model().parameters())
print(params, time.perf_counter() - start)
"""


def median_time(fn, repeat: int) -> tuple[float, object]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def wide_variant(spec: Path, folder: Path) -> Path:
    """The same spec at width_multiple 2.0 (a wide-ResNet-50-sized network)."""
    text = spec.read_text(encoding="utf-8")
    out = folder / f"{spec.stem}_w2.yaml"
    out.write_text(text + "\nwidth_multiple: 2.0\n" if "width_multiple" not in text else text, encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from yaml2torch.compiler import analyze, compile_file
    from yaml2torch.spec.load import load_spec

    print("### summary vs building the model\n")
    print(f"Machine: {machine()}. Median of {args.repeat} runs (cold: 3 runs).\n")
    print(
        "| spec | params | summary warm | build+count warm | ratio warm | "
        "`summary --json` cold | build+count cold | ratio cold |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        base = args.specs or [ROOT / "examples" / "models" / "resnet50.yaml"]
        specs = [*base, *(wide_variant(s, folder) for s in base if not args.specs)]
        for n, spec in enumerate(specs):
            summary_warm, ir = median_time(lambda spec=spec: analyze(load_spec(spec)), args.repeat)
            source = compile_file(spec).source
            module = import_source(source, f"bench_summary_model_{n}")
            build_warm, params = median_time(
                lambda module=module: sum(p.numel() for p in module.Model().parameters()), args.repeat
            )
            assert params == ir.params, (params, ir.params)

            (folder / "model.py").write_text(source, encoding="utf-8")
            summary_cold, build_cold = [], []
            for _ in range(3):
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "yaml2torch", "summary", "--json", str(spec)],
                    check=True,
                    capture_output=True,
                )
                summary_cold.append(time.perf_counter() - start)
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", _BUILD_COLD], cwd=folder, check=True, capture_output=True)
                build_cold.append(time.perf_counter() - start)
            cold_s, cold_b = statistics.median(summary_cold), statistics.median(build_cold)
            name = spec.relative_to(ROOT) if spec.is_relative_to(ROOT) else f"{spec.name} (resnet50 at width 2.0)"
            print(
                f"| {name} | {ir.params:,} | {summary_warm * 1000:.1f} ms | {build_warm * 1000:.0f} ms | "
                f"{build_warm / summary_warm:.1f}x | {cold_s * 1000:.0f} ms | {cold_b * 1000:.0f} ms | {cold_b / cold_s:.1f}x |"
            )


if __name__ == "__main__":
    main()

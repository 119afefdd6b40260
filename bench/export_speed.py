"""What a search hands over, measured: the exported model on raw images against the study's test
score, ONNX export time, and onnxruntime against eager PyTorch latency.

Part 1 runs a small digits search (raw [0, 1] images in, the model normalizes them itself) and
scores best_model.py + best_model.pt on the raw test split, next to the score the study reported.
Part 2 exports the search's pick and example specs (with random weights) to ONNX and .pt2 and times
batch-1 and batch-8 inference in onnxruntime against eager torch in the same process.
Run: .venv/bin/python bench/export_speed.py [--trials 4] [--epochs 6] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, machine

EXAMPLES = ("kindle_cifar.yaml", "yolo11n_cls.yaml", "mobilenet_v2.yaml", "resnet18.yaml")


def median_ms(call, runs: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def raw_image_accuracy(out: Path, space: Path) -> tuple[float, float]:
    import torch

    from yaml2torch.files import import_model_class, load_state_dict
    from yaml2torch.search.config import load_config
    from yaml2torch.search.data import load_splits

    model = import_model_class(out / "best_model.py")()
    load_state_dict(model, out / "best_model.pt")
    model.eval()
    splits = load_splits(load_config(space).data)
    with torch.no_grad():
        accuracy = float((model(splits.test_x).argmax(1) == splits.test_y).float().mean())
    reported = json.loads((out / "summary.json").read_text())["picked"]["test"]["accuracy"]
    return accuracy, reported


def export_row(spec: Path, weights: Path | None, folder: Path, runs: int) -> str:
    import onnxruntime
    import torch

    from yaml2torch.compiler import compile_file
    from yaml2torch.deploy import export_model
    from yaml2torch.files import import_file, save_state_dict

    compiled = compile_file(spec)
    if weights is None:
        source = folder / f"{spec.stem}.py"
        source.write_text(compiled.source)
        weights = folder / f"{spec.stem}.pt"
        torch.manual_seed(0)
        save_state_dict(import_file(source).Model(), weights)
    started = time.perf_counter()
    export_model(compiled, weights, folder / f"{spec.stem}.onnx")
    onnx_s = time.perf_counter() - started
    started = time.perf_counter()
    export_model(compiled, weights, folder / f"{spec.stem}.pt2")
    pt2_s = time.perf_counter() - started
    from yaml2torch.deploy import load_trained_model

    model = load_trained_model(compiled, weights)
    session = onnxruntime.InferenceSession(str(folder / f"{spec.stem}.onnx"), providers=["CPUExecutionProvider"])
    cells = []
    for batch in (1, 8):
        x = torch.rand(batch, *compiled.ir.input_shape.dims)  # type: ignore[misc]  # export needs a known size
        with torch.no_grad():
            eager = median_ms(lambda x=x: model(x), runs)
        ort = median_ms(lambda x=x: session.run(None, {"input": x.numpy()}), runs)
        cells += [f"{eager:.2f}", f"{ort:.2f}", f"{ort / eager:.2f}"]
    return f"| {spec.name} | {compiled.params:,} | {onnx_s:.1f} | {pt2_s:.1f} | " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    import torch

    from yaml2torch.cli import main as cli

    torch.set_num_threads(1)  # one thread for eager and onnxruntime alike: a fair, steadier comparison
    print(f"machine: {machine()}, torch {torch.__version__}, 1 thread")
    with tempfile.TemporaryDirectory(prefix="yaml2torch-export-bench-") as tmp:
        folder = Path(tmp)
        space = ROOT / "examples" / "search" / "digits.yaml"
        out = folder / "search"
        cli(["search", str(space), "--trials", str(args.trials), "--epochs", str(args.epochs), "--out", str(out), "--quiet"])
        accuracy, reported = raw_image_accuracy(out, space)
        print(f"digits search: best_model.py on raw test images {accuracy:.4f}, study's test score {reported:.4f}")
        print("| spec | params | ONNX export (s) | .pt2 export (s) | eager b1 (ms) | onnxruntime b1 (ms) | ratio | eager b8 (ms) | onnxruntime b8 (ms) | ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(export_row(out / "best.yaml", out / "best_model.pt", folder, args.runs))
        for name in EXAMPLES:
            spec = ROOT / "examples" / "models" / name
            text = spec.read_text()
            if "input_size" not in text:
                continue
            print(export_row(spec, None, folder, args.runs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

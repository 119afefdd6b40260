"""Forward+backward time of generated twins against torchvision, interleaved in one process.

    python bench/forward_speed.py [--rounds 12] [--batch 8] [--size 224]

Both models get the same weights (mapped position by position) and the same input; rounds
alternate A/B so drift (thermal, other load) hits both equally. Reports medians and the
ratio generated / torchvision (target <= 1.02), also as the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
import torchvision
from _common import ROOT, import_source, machine

from yaml2torch.compiler import compile_file
from yaml2torch.weights import load_torchvision_weights

TWINS = {
    "mobilenet_v2": torchvision.models.mobilenet_v2,
    "resnet18": torchvision.models.resnet18,
}


def step_time(model: torch.nn.Module, x: torch.Tensor) -> float:
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    model(x).sum().backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; torch {torch.__version__}, {args.threads} threads")
    print(f"input: batch {args.batch} x 3 x {args.size} x {args.size}, forward+backward, train mode, {args.rounds} rounds")
    for name, factory in TWINS.items():
        torch.manual_seed(0)
        reference = factory(weights=None).train()
        compiled = compile_file(ROOT / "examples" / "models" / f"{name}.yaml")
        generated = import_source(compiled.source, f"bench_{name}").Model().train()
        load_torchvision_weights(generated, reference)
        x = torch.randn(args.batch, 3, args.size, args.size)
        for model in (reference, generated):  # warm-up
            step_time(model, x)
        ref_times, gen_times = [], []
        for i in range(args.rounds):
            pair = ((reference, ref_times), (generated, gen_times))
            for model, times in pair if i % 2 == 0 else pair[::-1]:
                times.append(step_time(model, x))
        ref, gen = statistics.median(ref_times), statistics.median(gen_times)
        # paired: each round's two runs were back to back, so their ratio cancels slow drift
        paired = statistics.median(g / r for g, r in zip(gen_times, ref_times))
        print(
            f"{name:14s} median: torchvision {ref * 1000:7.1f} ms  generated {gen * 1000:7.1f} ms  "
            f"ratio {gen / ref:.3f}   paired ratio {paired:.3f}   min ratio {min(gen_times) / min(ref_times):.3f}"
        )


if __name__ == "__main__":
    main()

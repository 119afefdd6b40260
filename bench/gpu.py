"""CUDA benchmark (self-contained; run on a machine with a GPU):

1. Training throughput (images/s) of the generated mobilenet_v2 and resnet18 (compiled from
   examples/models/*.yaml, imported from their model.py) against torchvision's, in the same
   run, with AMP (bf16 where supported, else fp16 + GradScaler) and channels_last; the ratio.
2. A 3-trial digits search on the GPU (examples/search/digits.yaml, --device cuda).

Run: .venv/bin/python bench/gpu.py [--batch 128] [--steps 30] [--size 224]
Prints one JSON object per measurement, then a summary table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def throughput(model, batch: int, size: int, steps: int, warmup: int = 5) -> float:
    import torch
    import torch.nn.functional as F

    device = torch.device("cuda")
    model = model.to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)

    def step() -> None:
        with torch.autocast("cuda", dtype=dtype):
            loss = F.cross_entropy(model(x).flatten(1).float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description="yaml2torch CUDA benchmark")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("bench/gpu.py needs CUDA; none is available here", file=sys.stderr)
        return 2
    import torchvision

    from yaml2torch.compiler import compile_file
    from yaml2torch.files import import_model_class

    device_name = torch.cuda.get_device_name(0)
    print(json.dumps({"device": device_name, "torch": torch.__version__, "torchvision": torchvision.__version__}))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("mobilenet_v2", "resnet18"):
            compiled = compile_file(ROOT / "examples" / "models" / f"{name}.yaml")
            path = Path(tmp) / f"{name}.py"
            path.write_text(compiled.source)
            generated = import_model_class(path)()
            reference = getattr(torchvision.models, name)()
            # Interleave the two to share thermal and clock conditions; best of two rounds each.
            ours = max(throughput(generated, args.batch, args.size, args.steps) for _ in range(2))
            theirs = max(throughput(reference, args.batch, args.size, args.steps) for _ in range(2))
            row = {
                "model": name,
                "generated_img_s": round(ours, 1),
                "torchvision_img_s": round(theirs, 1),
                "ratio": round(ours / theirs, 3),
                "batch": args.batch,
                "size": args.size,
                "amp": "bf16" if torch.cuda.is_bf16_supported() else "fp16",
                "channels_last": True,
            }
            rows.append(row)
            print(json.dumps(row))
            del generated, reference
            torch.cuda.empty_cache()

    if not args.skip_search:
        from yaml2torch.search.config import load_config
        from yaml2torch.search.run import RunOptions, run_search

        config = load_config(ROOT / "examples" / "search" / "digits.yaml")
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = run_search(config, RunOptions(out_dir=Path(tmp), trials=3, device="cuda", progress=False))
            wall = time.perf_counter() - start
        picked = result.summary["picked"] or {}
        print(
            json.dumps(
                {
                    "search": "digits",
                    "trials": 3,
                    "wall_s": round(wall, 1),
                    "states": result.summary["trials"],
                    "picked": picked.get("number"),
                    "val_accuracy": (picked.get("metrics") or {}).get("accuracy"),
                    "test_accuracy": (picked.get("test") or {}).get("accuracy"),
                    "trained_on": sorted({str(t.user_attrs.get("device")) for t in result.study.trials}),
                }
            )
        )
    print(f"\n{'model':<14}{'generated img/s':>17}{'torchvision img/s':>19}{'ratio':>7}   ({device_name})")
    for row in rows:
        print(f"{row['model']:<14}{row['generated_img_s']:>17}{row['torchvision_img_s']:>19}{row['ratio']:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training and evaluation of one imported model: seeded, CUDA (AMP, channels_last) or CPU."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from yaml2torch.errors import UsageError
from yaml2torch.scale.faults import check_finite_loss
from yaml2torch.search.config import DataSettings, TrainSettings
from yaml2torch.search.data import Splits, load_splits
from yaml2torch.search.threads import ThreadChooser, ThreadVerdict

# Keep a dataset on the GPU when it takes at most this share of the free memory.
GPU_DATA_SHARE = 0.25


@dataclass(frozen=True)
class Staged:
    """Splits resized to the training image size, on the device where they fit."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    device: torch.device

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]  # images: (N, C, H, W)


def resolve_device(name: str | None, option: str = "--device") -> torch.device:
    """The torch device ``name`` (auto: CUDA when present); ``option`` names it in errors."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"{option} {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{option} {name}: CUDA is not available on this machine")
    return device


def resize(x: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    if size is None or tuple(x.shape[2:]) == tuple(size) or len(x) == 0:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=size[0] < x.shape[2])


def stage(splits: Splits, image_size: tuple[int, int] | None, device: torch.device) -> Staged:
    tensors = [resize(splits.train_x, image_size), splits.train_y, resize(splits.val_x, image_size), splits.val_y]
    tensors += [resize(splits.test_x, image_size), splits.test_y]
    target = torch.device("cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if sum(t.numel() * t.element_size() for t in tensors) <= GPU_DATA_SHARE * free:
            target = device
    return Staged(*(t.to(target).contiguous() for t in tensors), num_classes=splits.num_classes, device=device)  # type: ignore[misc, arg-type]  # six tensors, in field order


@dataclass
class DataCache:
    """One process's data: the splits, loaded once, and one staged copy for the current image size."""

    settings: DataSettings
    device: torch.device
    _splits: Splits | None = None
    _staged: dict[tuple[int, int] | None, Staged] = field(default_factory=dict)

    @property
    def splits(self) -> Splits:
        if self._splits is None:
            self._splits = load_splits(self.settings)
        return self._splits

    def staged(self, image_size: tuple[int, int] | None) -> Staged:
        if image_size not in self._staged:
            self._staged.clear()  # keep one staged copy (GPU memory)
            self._staged[image_size] = stage(self.splits, image_size, self.device)
        return self._staged[image_size]


def _augment(x: torch.Tensor, settings: TrainSettings, generator: torch.Generator) -> torch.Tensor:
    if settings.hflip:
        flip = torch.rand(len(x), generator=generator) < 0.5
        x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)
    if settings.shift:
        s = settings.shift
        n, _, h, w = x.shape
        padded = F.pad(x, (s, s, s, s))
        dy = torch.randint(0, 2 * s + 1, (n,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * s + 1, (n,), generator=generator).to(x.device)
        rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
        cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chans, rows, cols]
    return x


def _optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    cls = getattr(torch.optim, settings.optimizer.type)
    return cls(model.parameters(), lr=settings.optimizer.lr, **dict(settings.optimizer.kwargs))


def _scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings, steps_per_epoch: int):
    if settings.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.epochs * steps_per_epoch), True
    if settings.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, settings.optimizer.lr, total_steps=settings.epochs * steps_per_epoch
        )
        return sched, True
    if settings.scheduler == "step":
        step = settings.step_size or max(1, settings.epochs // 3)
        return torch.optim.lr_scheduler.StepLR(optimizer, step, settings.gamma), False
    return None, False


def _amp_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_loss: float
    metrics: dict  # accuracy, f1, loss on the validation split
    threads: ThreadVerdict | None = None  # the CPU training's thread count and probes (None on a GPU)


def train_model(
    model: nn.Module,
    data: Staged,
    settings: TrainSettings,
    seed: int,
    on_epoch: Callable[[EpochResult], None] | None = None,
    threads: ThreadChooser | None = None,
) -> list[EpochResult]:
    """Train in place; calls ``on_epoch`` after each epoch's validation (pruners raise from it).

    On the CPU, ``threads`` sets torch's thread count before each step (see ``threads.py``).
    """
    device = data.device
    cuda = device.type == "cuda"
    model.to(device)
    if cuda and settings.channels_last:
        model.to(memory_format=torch.channels_last)
    runner: nn.Module = torch.compile(model) if (cuda and settings.compile) else model  # type: ignore[assignment]  # compile wraps the module in a module
    optimizer = _optimizer(model, settings)
    n = len(data.train_x)
    steps = max(1, math.ceil(n / settings.batch_size))
    scheduler, per_step = _scheduler(optimizer, settings, steps)
    amp = cuda and settings.amp
    dtype = _amp_dtype(device) if amp else torch.float32
    scaler = torch.amp.GradScaler("cuda") if amp and dtype == torch.float16 else None
    generator = torch.Generator().manual_seed(seed)
    history = []
    if cuda:
        threads = None  # the GPU computes; steps are asynchronous, so timing them means nothing
    for epoch in range(settings.epochs):
        if threads is not None and threads.wants_probe:  # first, and when the load changed
            _probe_threads(threads, model, data, settings)
        model.train()
        order = torch.randperm(n, generator=generator)
        total = torch.zeros((), device=device)
        for start in range(0, n, settings.batch_size):
            index = order[start : start + settings.batch_size]
            if len(index) < 2 and n >= 2:
                continue  # BatchNorm needs more than one sample
            step_started = time.perf_counter()
            x = data.train_x[index.to(data.train_x.device)].to(device, non_blocking=True)
            y = data.train_y[index.to(data.train_y.device)].to(device, non_blocking=True)
            x = _augment(x, settings, generator)
            if cuda and settings.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=amp):
                logits = runner(x).flatten(1)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=settings.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            if scheduler is not None and per_step:
                scheduler.step()
            total += loss.detach() * len(index)
            if threads is not None:
                threads.after_step(time.perf_counter() - step_started)
        if threads is not None:
            threads.end_epoch()
        if scheduler is not None and not per_step:
            scheduler.step()
        train_loss = float(total) / n
        check_finite_loss(train_loss, epoch + 1)
        metrics = evaluate(runner, data.val_x, data.val_y, data.num_classes, device, settings)
        result = EpochResult(epoch + 1, train_loss, metrics, threads.verdict() if threads else None)
        history.append(result)
        if on_epoch is not None:
            on_epoch(result)
    return history


def _probe_threads(threads: ThreadChooser, model: nn.Module, data: Staged, settings: TrainSettings) -> None:
    """Let ``threads`` time steps of a throwaway copy on the first batch; the model, its optimizer
    and every random stream stay as they were, so the training does not depend on the probe."""
    import copy

    probe_model = copy.deepcopy(model)
    optimizer = _optimizer(probe_model, settings)
    x, y = data.train_x[: settings.batch_size], data.train_y[: settings.batch_size]

    def step() -> None:
        loss = F.cross_entropy(probe_model(x).flatten(1), y, label_smoothing=settings.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with torch.random.fork_rng(devices=[]):
        probe_model.train()
        threads.probe(step)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    device: torch.device,
    settings: TrainSettings | None = None,
    batch_size: int = 512,
    per_class: bool = False,
) -> dict:
    """Accuracy, macro-F1 and mean loss; with ``per_class``, also each class's precision, recall
    and F1 and the confusion matrix (rows: true class, columns: predicted)."""
    model.eval()
    cuda = device.type == "cuda"
    amp = cuda and (settings is None or settings.amp)
    channels_last = cuda and (settings is None or settings.channels_last)
    dtype = _amp_dtype(device) if amp else torch.float32
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), device=device)
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device, non_blocking=True)
        yb = y[start : start + batch_size].to(device, non_blocking=True)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            logits = model(xb).flatten(1).float()
        loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        pred = logits.argmax(1)
        confusion += torch.bincount(yb * num_classes + pred, minlength=num_classes**2).view(num_classes, num_classes)
    metrics = metrics_from_confusion(confusion.cpu(), float(loss_sum) / max(1, len(x)))
    if per_class:
        metrics.update(per_class_metrics(confusion.cpu()))
    return metrics


def per_class_metrics(confusion: torch.Tensor) -> dict:
    tp = confusion.diag().double()
    predicted = confusion.sum(0).double()
    actual = confusion.sum(1).double()
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp_min(1), torch.zeros_like(tp))
    f1 = torch.where(
        precision + recall > 0, 2 * precision * recall / (precision + recall).clamp_min(1e-12), torch.zeros_like(tp)
    )
    return {
        "per_class": [
            {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
            for p, r, f, n in zip(precision, recall, f1, actual)
        ],
        "confusion": confusion.tolist(),
    }


def metrics_from_confusion(confusion: torch.Tensor, loss: float) -> dict:
    total = int(confusion.sum())
    correct = int(confusion.diag().sum())
    tp = confusion.diag().double()
    predicted = confusion.sum(0).double()
    actual = confusion.sum(1).double()
    denominator = predicted + actual
    f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp_min(1), torch.zeros_like(tp))
    present = actual > 0  # macro-F1 over classes present in the split (sklearn's labels=present)
    macro_f1 = float(f1[present | (predicted > 0)].mean()) if total else 0.0
    return {"accuracy": correct / total if total else 0.0, "f1": macro_f1, "loss": loss}


@torch.no_grad()
def measure_latency(model: nn.Module, input_shape: tuple[int, ...], device: torch.device, runs: int = 20) -> float:
    """Median milliseconds of one batch-1 forward pass on ``device``."""
    model.eval()
    x = torch.randn(1, *input_shape, device=device)
    for _ in range(3):
        model(x)
    times = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


def seeded_model(model_class: type[nn.Module], seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return model_class()

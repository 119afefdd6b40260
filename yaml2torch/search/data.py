"""Data sources (digits, image folder, CIFAR-10 pickles, .npz) and fixed, seeded splits.

Every loader returns float32 images in [0, 1] as an (N, C, H, W) tensor plus int64 labels.
Splits are stratified and depend only on the split seed, so every trial (and every worker)
trains and validates on the same samples.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from yaml2torch.errors import DataError
from yaml2torch.search.config import DataSettings

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Arrays:
    x: torch.Tensor  # (N, C, H, W) float32 in [0, 1]
    y: torch.Tensor  # (N,) int64
    classes: tuple[str, ...]
    x_test: torch.Tensor | None = None  # a source's own test split (CIFAR-10's test_batch)
    y_test: torch.Tensor | None = None
    scaled_from: float | None = None  # the raw pixel maximum x was divided by (None: taken as given)


@dataclass(frozen=True)
class Splits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, from the training split; written into the model spec
    std: tuple[float, ...]
    scaled_from: float | None = None  # the raw pixel maximum the images were divided by (the spec says it)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return self.train_x.shape[1]

    @property
    def size(self) -> tuple[int, int]:
        return (self.train_x.shape[2], self.train_x.shape[3])


def load_arrays(settings: DataSettings) -> Arrays:
    loaders = {"digits": load_digits, "folder": load_image_folder, "cifar10": load_cifar10, "npz": load_npz}
    return loaders[settings.source](settings)


def load_digits(settings: DataSettings) -> Arrays:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    return Arrays(x, y, tuple(str(i) for i in range(10)), scaled_from=16)


def load_image_folder(settings: DataSettings) -> Arrays:
    """One sub-folder per class; images of differing sizes are resized to the first one's size."""
    root = settings.path
    assert root is not None
    if not root.is_dir():
        raise DataError(root, "image folder not found")
    try:
        from PIL import Image
    except ImportError:
        raise DataError(root, "reading an image folder needs Pillow: pip install pillow") from None
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise DataError(root, "an image folder needs at least two class sub-folders")
    files = [
        (f, label)
        for label, d in enumerate(class_dirs)
        for f in sorted(d.rglob("*"))
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise DataError(root, f"no images ({', '.join(IMAGE_SUFFIXES)}) under the class folders")
    channels = settings.channels
    images = []
    size = None
    for path, _ in files:
        try:
            with Image.open(path) as opened:
                if channels is None:
                    channels = 1 if opened.mode in ("1", "L", "I", "I;16", "F") else 3
                image = opened.convert("L" if channels == 1 else "RGB")
                size = size or image.size
                if image.size != size:
                    image = image.resize(size, Image.BILINEAR)  # type: ignore[attr-defined]  # set at import; Image.Resampling needs Pillow 9.1
                array = np.asarray(image, dtype=np.float32) / 255.0
        except OSError as exc:
            raise DataError(path, f"cannot read image: {exc}") from None
        images.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    x = torch.from_numpy(np.stack(images))
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    return Arrays(x, y, tuple(d.name for d in class_dirs), scaled_from=255)


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            # CIFAR-10's own format is a pickle; only load it from a folder the user named.
            return pickle.load(handle, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise DataError(path, f"cannot read CIFAR-10 batch: {exc}") from None


def load_cifar10(settings: DataSettings) -> Arrays:
    """The python-pickle folder (cifar-10-batches-py): data_batch_1..5 and test_batch."""
    root = settings.path
    assert root is not None
    batches = sorted(root.glob("data_batch_*"))
    if not batches:
        raise DataError(root, "no data_batch_* files: point data.path at cifar-10-batches-py")

    def read(paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for path in paths:
            batch = _unpickle(path)
            if b"data" not in batch or b"labels" not in batch:
                raise DataError(path, "not a CIFAR-10 batch (needs data and labels)")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
        return torch.from_numpy(np.concatenate(xs)).float() / 255.0, torch.from_numpy(np.concatenate(ys))

    x, y = read(batches)
    x_test = y_test = None
    if (root / "test_batch").is_file():
        x_test, y_test = read([root / "test_batch"])
    classes = tuple(str(i) for i in range(10))
    meta = root / "batches.meta"
    if meta.is_file():
        names = _unpickle(meta).get(b"label_names")
        if names and len(names) == 10:
            classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return Arrays(x, y, classes, x_test, y_test, scaled_from=255)


def _npz_images(x: np.ndarray, path: Path) -> torch.Tensor:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    elif x.ndim != 4:
        raise DataError(path, f"x must be (N, H, W), (N, C, H, W) or (N, H, W, C), got shape {x.shape}")
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) / scale)


def load_npz(settings: DataSettings) -> Arrays:
    """Arrays ``x`` and ``y`` (optionally ``x_test``, ``y_test``); uint8 images are scaled to [0, 1]."""
    path = settings.path
    assert path is not None
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot read .npz: {exc}") from None
    with archive:
        for key in ("x", "y"):
            if key not in archive:
                raise DataError(path, f"missing array {key!r} (found {', '.join(archive.files) or 'none'})")
        archive_dtype = archive["x"].dtype
        x = _npz_images(archive["x"], path)
        y_raw = archive["y"]
        if y_raw.ndim != 1 or len(y_raw) != len(x):
            raise DataError(path, f"y must be (N,) labels matching x's {len(x)} samples, got shape {y_raw.shape}")
        labels, y = np.unique(y_raw, return_inverse=True)
        x_test = y_test = None
        if "x_test" in archive and "y_test" in archive:
            x_test = _npz_images(archive["x_test"], path)
            index = {label: i for i, label in enumerate(labels.tolist())}
            y_test = torch.tensor([index[v] for v in archive["y_test"].tolist()], dtype=torch.int64)
    scaled_from = 255 if archive_dtype == np.uint8 else None  # float arrays: the user's own scale
    return Arrays(
        x, torch.from_numpy(y.astype(np.int64)), tuple(str(v) for v in labels.tolist()), x_test, y_test, scaled_from
    )


def _split(indices: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if fraction <= 0:
        return indices, indices[:0]
    try:
        keep, held = train_test_split(indices, test_size=fraction, random_state=seed, stratify=labels)
    except ValueError:  # a class too small to stratify
        keep, held = train_test_split(indices, test_size=fraction, random_state=seed)
    return np.sort(keep), np.sort(held)


def _check_limit(settings: DataSettings, classes: int, in_train: int) -> None:
    """A limit (``--limit``, ``data.limit``) so small that some class has no training sample is refused."""
    if settings.limit is not None and in_train < classes:
        raise DataError(
            settings.path,
            f"limit {settings.limit} leaves training samples of only {in_train} of the {classes} classes "
            f"after the validation and test splits; raise it (to at least {classes * 4}, say)",
        )


def _split_indices(
    y: np.ndarray, settings: DataSettings, own_test: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Train, validation and test indices (test is None when the data has its own test set)."""
    indices = np.arange(len(y))
    if settings.limit is not None and settings.limit < len(y):
        indices, _ = _split(indices, y, 1 - settings.limit / len(y), settings.split_seed)
    if own_test:
        rest, test = indices, None
    else:
        rest, test = _split(indices, y[indices], settings.test_fraction, settings.split_seed)
    val_share = settings.val_fraction / (1 - (0 if test is None else settings.test_fraction))
    train, val = _split(rest, y[rest], val_share, settings.split_seed + 1)
    return train, val, test


def make_splits(arrays: Arrays, settings: DataSettings) -> Splits:
    """Fixed train/val/test splits by ``settings.split_seed``; the per-channel statistics of the train split.

    The images stay in [0, 1]: the statistics go into each model spec (``normalize:``), so the
    model normalizes its own inputs and the exported file needs no preprocessing beside it.
    """
    y = arrays.y.numpy()
    try:
        train, val, test = _split_indices(y, settings, arrays.x_test is not None)
    except ValueError as exc:  # scikit-learn: a split would be empty (anything else is a bug, not few samples)
        if "will be empty" not in str(exc):
            raise
        train = val = np.arange(0)
    if len(train) == 0 or len(val) == 0:
        if settings.limit is not None:
            _check_limit(settings, len(np.unique(y)), 0)
        raise DataError(settings.path, f"too few samples ({len(y)}) for train/val/test splits")
    _check_limit(settings, len(np.unique(y)), len(np.unique(y[train])))
    x_train = arrays.x[train]
    # Rounded to 6 digits: the values written into the spec are exactly the ones the model uses.
    mean = tuple(round(float(v), 6) for v in x_train.mean(dim=(0, 2, 3)))
    std = tuple(round(float(v), 6) for v in x_train.std(dim=(0, 2, 3)).clamp_min(1e-5))
    if test is None:
        test_x, test_y = arrays.x_test, arrays.y_test
    else:
        test_x, test_y = arrays.x[test], arrays.y[test]
    return Splits(
        x_train,
        arrays.y[train],
        arrays.x[val],
        arrays.y[val],
        test_x,  # type: ignore[arg-type]  # the test arrays are given whenever test is None
        test_y,  # type: ignore[arg-type]  # as above
        arrays.classes,
        mean,
        std,
        arrays.scaled_from,
    )


def load_splits(settings: DataSettings) -> Splits:
    arrays = load_arrays(settings)
    if not bool(torch.isfinite(arrays.x).all()):
        raise DataError(settings.path or settings.source, "the images contain NaN or infinite values")
    return make_splits(arrays, settings)

"""Data sources on small data the tests create, and fixed seeded splits."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from yaml2torch.errors import DataError, SpecError
from yaml2torch.search.config import DataSettings, parse_config
from yaml2torch.search.data import load_arrays, load_splits, make_splits


def test_digits_splits_are_fixed_disjoint_stratified_and_raw_with_train_statistics():
    settings = DataSettings(split_seed=0)
    a, b = load_splits(settings), load_splits(settings)
    assert torch.equal(a.val_y, b.val_y) and torch.equal(a.train_x, b.train_x)
    assert a.train_x.shape[1:] == (1, 8, 8) and a.num_classes == 10
    total = len(a.train_y) + len(a.val_y) + len(a.test_y)
    assert total == 1797
    assert abs(len(a.test_y) - 0.2 * 1797) <= 1 and abs(len(a.val_y) - 0.2 * 1797) <= 1
    assert set(torch.bincount(a.test_y).tolist()) <= set(range(33, 39))  # every class ~36
    # Images stay in [0, 1]; the train split's statistics go into the model spec (normalize:).
    assert float(a.train_x.min()) >= 0 and float(a.train_x.max()) <= 1
    assert a.mean == (round(float(a.train_x.mean()), 6),) and a.std == (round(float(a.train_x.std()), 6),)
    other = load_splits(DataSettings(split_seed=1))
    assert not torch.equal(a.test_y, other.test_y) or not torch.equal(a.test_x, other.test_x)


def test_splits_partition_the_indices():
    x = torch.arange(200, dtype=torch.float32).view(200, 1, 1, 1)
    y = torch.arange(200) % 4
    from yaml2torch.search.data import Arrays

    splits = make_splits(
        Arrays(x, y, ("a", "b", "c", "d")), DataSettings(split_seed=5, val_fraction=0.25, test_fraction=0.25)
    )
    ids = lambda t: {round(v) for v in t.flatten().tolist()}  # the images are kept as they are
    train, val, test = ids(splits.train_x), ids(splits.val_x), ids(splits.test_x)
    assert train | val | test == set(range(200))
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(val) == 50 and len(test) == 50


def test_npz_nhwc_uint8_and_own_test_split(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 6, 6, 3), dtype=np.uint8)
    y = np.array(["cat", "dog"] * 20)
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x[:6], y_test=y[:6])
    arrays = load_arrays(DataSettings(source="npz", path=tmp_path / "d.npz"))
    assert arrays.x.shape == (40, 3, 6, 6) and float(arrays.x.max()) <= 1.0
    assert arrays.classes == ("cat", "dog")
    assert torch.allclose(arrays.x[0, :, 1, 2], torch.from_numpy(x[0, 1, 2].astype(np.float32) / 255))
    splits = make_splits(arrays, DataSettings(source="npz", path=tmp_path / "d.npz"))
    assert len(splits.test_y) == 6 and len(splits.train_y) + len(splits.val_y) == 40


def test_npz_errors_name_the_file(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 5, 5)))
    with pytest.raises(DataError, match="missing array 'y'") as info:
        load_arrays(DataSettings(source="npz", path=tmp_path / "d.npz"))
    # The file and the message, without a made-up line and column.
    assert str(info.value).startswith(f"{tmp_path / 'd.npz'}: missing array 'y'")


def test_image_folder_with_pil(tmp_path):
    from PIL import Image

    for label, shade in (("zero", 30), ("one", 220)):
        (tmp_path / label).mkdir()
        for i in range(5):
            size = (8, 8) if i else (10, 7)  # a differing size is resized to the first image's
            Image.new("L", size, color=shade + i).save(tmp_path / label / f"{i}.png")
    arrays = load_arrays(DataSettings(source="folder", path=tmp_path))
    assert arrays.classes == ("one", "zero")
    assert arrays.x.shape[1] == 1 and arrays.x.shape[0] == 10
    assert set(arrays.y.tolist()) == {0, 1}
    first_one = arrays.x[arrays.y == 0][0]
    assert abs(float(first_one.mean()) - 220 / 255) < 0.02


def test_image_folder_needs_two_classes(tmp_path):
    (tmp_path / "only").mkdir()
    with pytest.raises(DataError, match="at least two class sub-folders"):
        load_arrays(DataSettings(source="folder", path=tmp_path))


def test_cifar10_pickle_folder(tmp_path):
    rng = np.random.default_rng(1)
    for name, n in (("data_batch_1", 30), ("data_batch_2", 30), ("test_batch", 12)):
        batch = {
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"labels": list(rng.integers(0, 10, size=n)),
        }
        with open(tmp_path / name, "wb") as handle:
            pickle.dump(batch, handle)
    with open(tmp_path / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, handle)
    arrays = load_arrays(DataSettings(source="cifar10", path=tmp_path))
    assert arrays.x.shape == (60, 3, 32, 32) and arrays.x_test.shape == (12, 3, 32, 32)
    assert arrays.classes[3] == "c3"
    splits = make_splits(arrays, DataSettings(source="cifar10", path=tmp_path, val_fraction=0.2))
    assert len(splits.test_y) == 12 and len(splits.val_y) == 12


def test_data_section_paths_are_relative_to_the_search_file(tmp_path):
    cfg = parse_config("model: {backbone: []}\ndata: {source: npz, path: d.npz}\n", "s.yaml", tmp_path)
    assert cfg.data.path == tmp_path / "d.npz"
    with pytest.raises(SpecError, match="needs a path"):
        parse_config("model: {backbone: []}\ndata: {source: folder}\n", "s.yaml", tmp_path)


def test_digits_has_no_path():
    with pytest.raises(SpecError, match="built in"):
        parse_config("model: {backbone: []}\ndata: {source: digits, path: x}\n", "s.yaml", Path.cwd())

"""Training one architecture: the train command, seeded reproducibility, metrics, divergence."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from yaml2torch.cli import main
from yaml2torch.files import import_model_class
from yaml2torch.search.config import TrainSettings
from yaml2torch.search.train import _augment, metrics_from_confusion

SPEC = """input_channel: 1
backbone:
  - [1, Conv, [8, 3, 1]]
  - [1, MaxPool, [2]]
  - [1, Conv, [16, 3, 1]]
  - [1, GlobalAvgPool, []]
  - [1, Flatten, []]
  - [1, Linear, [10]]
"""


def test_macro_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    pred = np.where(rng.random(300) < 0.7, y, rng.integers(0, 6, 300))  # class 5 only predicted
    confusion = torch.zeros(6, 6, dtype=torch.int64)
    for t, p in zip(y, pred):
        confusion[t, p] += 1
    metrics = metrics_from_confusion(confusion, 0.0)
    assert metrics["accuracy"] == pytest.approx(float((y == pred).mean()))
    assert metrics["f1"] == pytest.approx(f1_score(y, pred, average="macro"))


def test_shift_augmentation_translates_each_sample():
    x = torch.arange(2 * 25, dtype=torch.float32).view(2, 1, 5, 5)
    out = _augment(x, TrainSettings(shift=1), torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(2):
        # each output equals the input moved by at most one pixel (zeros come in at the border)
        matches = [
            torch.equal(out[i, 0, 1:-1, 1:-1], x[i, 0, 1 - dy : 4 - dy, 1 - dx : 4 - dx])
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
        ]
        assert any(matches)


def test_train_command_writes_files_and_is_reproducible_on_cpu(tmp_path, capsys):
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC)
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert (
            main(
                [
                    "train",
                    str(spec),
                    "--data",
                    "digits",
                    "--epochs",
                    "2",
                    "--lr",
                    "0.01",
                    "--image-size",
                    "8",
                    "--device",
                    "cpu",
                    "--threads",  # bit-identical at a fixed count (the measured default may pick another)
                    "1",
                    "-o",
                    str(out),
                    *(["--json"] if name == "a" else []),
                ]
            )
            == 0
        )
        assert {p.name for p in out.iterdir()} >= {"spec.yaml", "model.py", "model.pt", "metrics.json"}
        metrics = json.loads((out / "metrics.json").read_text())
        if name == "a":  # --json: the scores for scripts
            printed = json.loads(capsys.readouterr().out)
            assert printed == {"val": metrics["val"], "test": metrics["test"], "out": str(out)}
        else:  # one line for people
            val, test = metrics["val"], metrics["test"]
            assert capsys.readouterr().out == (
                f"val accuracy {val['accuracy']:.4f}, val f1 {val['f1']:.4f}, "
                f"test accuracy {test['accuracy']:.4f}, test f1 {test['f1']:.4f}; files in {out}\n"
            )
        runs.append((metrics, torch.load(out / "model.pt", weights_only=True)))
        assert len(metrics["history"]) == 2
        assert metrics["val"]["accuracy"] > 0.3  # two epochs learn something on digits
        model = import_model_class(out / "model.py")()
        model.load_state_dict(runs[-1][1])
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert runs[0][0]["val"] == runs[1][0]["val"] and runs[0][0]["test"] == runs[1][0]["test"]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


def test_non_finite_images_are_refused_where_they_enter(tmp_path, capsys):
    x = np.random.default_rng(0).random((40, 8, 8)).astype(np.float32)
    x[:, 2, 2] = np.nan  # every sample: the loss is NaN from the first step
    np.savez(tmp_path / "nan.npz", x=x, y=np.arange(40) % 10)
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC)
    code = main(
        [
            "train",
            str(spec),
            "--data",
            "npz",
            "--data-path",
            str(tmp_path / "nan.npz"),
            "--epochs",
            "1",
            "-o",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err == f"yaml2torch: error: {tmp_path / 'nan.npz'}: the images contain NaN or infinite values\n"
    assert not (tmp_path / "o").exists()


def test_train_rejects_a_channel_mismatch(tmp_path, capsys):
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC.replace("input_channel: 1", "input_channel: 3"))
    assert main(["train", str(spec), "--epochs", "1", "-o", str(tmp_path / "o")]) == 2
    assert "input_channel 3 but the data has 1 channels" in capsys.readouterr().err


def test_train_takes_data_and_settings_from_a_search_file(tmp_path, capsys):
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC)
    search = tmp_path / "s.yaml"
    search.write_text(
        "data: {source: digits, limit: 300}\ntrain: {epochs: 1, batch_size: 32, optimizer: {type: SGD, lr: 0.05}}\n"
    )
    assert main(["train", str(spec), "--config", str(search), "-o", str(tmp_path / "o")]) == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["train"]["epochs"] == 1 and metrics["train"]["optimizer"]["type"] == "SGD"
    assert metrics["data"]["limit"] == 300 and len(metrics["history"]) == 1
    search.write_text("train: {epochs: {int: [1, 2]}}\n")
    capsys.readouterr()
    assert main(["train", str(spec), "--config", str(search), "-o", str(tmp_path / "o2")]) == 2
    assert "the train section has choices" in capsys.readouterr().err


def test_train_from_a_study_names_why_a_trial_has_no_spec(tmp_path, capsys):
    """An infeasible sample is recorded without a spec: training it says which constraint it broke."""
    space = tmp_path / "space.yaml"
    space.write_text(
        textwrap.dedent(
            """\
            study: tight
            seed: 0
            trials: 1
            data: {source: digits, limit: 300}
            sampler: Random
            pruner: none
            constraints: {max_params: 100}
            train: {epochs: 1, optimizer: {type: Adam, lr: 0.01}, scheduler: none}
            model:
              backbone:
                - [1, Conv, [8, 3, 1]]
                - [1, GlobalAvgPool, []]
                - [1, Flatten, []]
                - [1, Linear, [10]]
            """
        )
    )
    out = tmp_path / "out"
    assert main(["search", str(space), "--out", str(out), "--quiet"]) == 1  # no trial completed
    capsys.readouterr()
    assert main(["train", "--from", str(out), "--trial", "0", "-o", str(tmp_path / "t")]) == 2
    assert capsys.readouterr().err == (
        "yaml2torch: error: trial 0 of study 'tight' has no spec to train (infeasible: 178 params > max_params 100)\n"
    )
    assert not (tmp_path / "t").exists()


def test_train_needs_exactly_one_of_a_spec_and_a_stored_study(tmp_path, capsys):
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC)
    for argv, given in ((["-o", str(tmp_path / "o")], "neither"), ([str(spec), "--from", str(tmp_path), "-o", str(tmp_path / "o")], "both")):
        assert main(["train", *argv]) == 2
        assert capsys.readouterr().err == (
            f"yaml2torch: error: train takes a SPEC.yaml or --from OUT_DIR (a stored study); {given} given\n"
        )
    assert not (tmp_path / "o").exists()

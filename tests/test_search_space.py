"""The search-space language: parsing, sampling with real Optuna trials, names, located errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest

from yaml2torch.cli import main
from yaml2torch.errors import SpecError
from yaml2torch.search import space as sp
from yaml2torch.search.config import load_config, parse_config, parse_train
from yaml2torch.search.trial import dump_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "search"


def config(text: str):
    return parse_config(textwrap.dedent(text), "space.yaml", EXAMPLES)


def sampled(cfg, seed: int = 0, n: int = 1):
    """Sample the model and train sections with real trials of a Random-sampler study."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        params = sp.TrialParams(trial)
        model = sp.sample(cfg.model, params).plain()
        train = parse_train(sp.sample(cfg.train, params))
        out.append((trial, model, train))
        study.tell(trial, 0.0)
    return out


BASE = """
model:
  backbone:
    - [1, Conv, [{int: [8, 32], step: 8}, 3, 1]]
    - {choice: {Conv: [1, Conv, [16, {choice: [3, 5]}, 1]], Pass: null}}
    - [1, GlobalAvgPool, []]
    - [1, Flatten, []]
    - [1, Linear, [10]]
train:
  batch_size: {choice: [32, 64]}
  optimizer:
    choice:
      Adam: {type: Adam, lr: {float: [0.001, 0.01], log: true}, betas: [{float: [0.8, 0.95]}, 0.999]}
      SGD: {type: SGD, lr: 0.05, momentum: {float: [0.8, 0.95]}}
"""


def test_sampled_values_respect_ranges_and_names_follow_the_yaml_path():
    cfg = config(BASE)
    seen_branches = set()
    for trial, model, train in sampled(cfg, n=30):
        rows = model["backbone"]
        assert rows[0][2][0] in (8, 16, 24, 32)
        assert trial.params["backbone.0.c"] == rows[0][2][0]
        assert train.batch_size in (32, 64)
        label = trial.params["train.optimizer"]
        seen_branches.add(label)
        assert train.optimizer.type == label
        if label == "Adam":
            assert 0.001 <= train.optimizer.lr <= 0.01
            assert "train.optimizer.Adam.lr" in trial.params
            assert "train.optimizer.SGD.momentum" not in trial.params  # conditional: only its branch
            assert dict(train.optimizer.kwargs)["betas"][1] == 0.999
        else:
            assert train.optimizer.lr == 0.05
            assert 0.8 <= dict(train.optimizer.kwargs)["momentum"] <= 0.95
            assert not any(name.startswith("train.optimizer.Adam") for name in trial.params)
        if trial.params["backbone.1"] == "Pass":
            assert len(rows) == 4  # the row is dropped
            assert "backbone.1.Conv.k" not in trial.params
        else:
            assert len(rows) == 5 and rows[1][2][1] == trial.params["backbone.1.Conv.k"]
    assert seen_branches == {"Adam", "SGD"}


def test_sampled_scalars_keep_the_choice_nodes_location():
    cfg = config(BASE)
    study = optuna.create_study()
    node = sp.sample(cfg.model, sp.TrialParams(study.ask()))
    channel = node.value["backbone"].value[0].value[2].value[0]
    assert (channel.loc.file, channel.loc.line) == ("space.yaml", 4)


def test_cells_repeat_non_decreasing_with_per_stage_values():
    cfg = config("""
        model:
          backbone:
            - [1, Conv, [8, 3, 1]]
            - cells:
                stages: 3
                repeat: {int: [1, 3]}
                normal: [[1, Conv, [{per_stage: [8, 16, 24]}, {choice: [1, 3]}, 1]]]
                reduction: [{choice: {MaxPool: [1, MaxPool, [2]], Pass: null}}]
            - [1, GlobalAvgPool, []]
            - [1, Flatten, []]
            - [1, Linear, [10]]
        """)
    for trial, model, _ in sampled(cfg, seed=3, n=25):
        rows = model["backbone"][1:-3]
        n1 = trial.params["backbone.1.N1"]
        counts = []
        for width in (8, 16, 24):
            counts.append(sum(1 for r in rows if r[1] == "Conv" and r[2][0] == width))
        assert counts[0] == n1
        assert counts == sorted(counts) and all(1 <= c <= 3 for c in counts)
        kernels = {r[2][1] for r in rows if r[1] == "Conv"}
        assert len(kernels) == 1  # share: true -> one cell design for all stages
        pools = sum(1 for r in rows if r[1] == "MaxPool")
        assert pools == (2 if trial.params["backbone.1.reduction.0"] == "MaxPool" else 0)


def test_unshared_cells_sample_each_stage_separately():
    cfg = config("""
        model:
          backbone:
            - cells:
                stages: 2
                repeat: 1
                share: false
                normal: [[1, Conv, [8, {choice: [1, 3, 5]}, 1]]]
            - [1, GlobalAvgPool, []]
            - [1, Flatten, []]
            - [1, Linear, [10]]
        """)
    trial, _, _ = sampled(cfg)[0]
    assert {"backbone.0.stage1.normal.0.k", "backbone.0.stage2.normal.0.k"} <= set(trial.params)


def test_explicit_names_share_one_value():
    cfg = config("""
        model:
          backbone:
            - [1, Conv, [{int: [8, 64], step: 8, name: width}, 3, 1]]
            - [1, Conv, [{int: [8, 64], step: 8, name: width}, 3, 1]]
            - [1, GlobalAvgPool, []]
            - [1, Flatten, []]
            - [1, Linear, [10]]
        """)
    for trial, model, _ in sampled(cfg, n=5):
        assert model["backbone"][0][2][0] == model["backbone"][1][2][0] == trial.params["width"]


def test_dumped_spec_keeps_rows_on_one_line():
    text = dump_spec({"input_channel": 1, "backbone": [[1, "Conv", [8, 3, 1]], [1, "Linear", [10]]]})
    assert "- [1, Conv, [8, 3, 1]]" in text


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("model: {backbone: [[1, Conv, [{int: [8, 4]}]]]}\n", 1, "low (8) is above high (4)"),
        ("model: {backbone: [[1, Conv, [{int: [1, 4], stepp: 2}]]]}\n", 1, "unknown key 'stepp'"),
        (
            "model:\n  backbone:\n    - [1, Conv, [{per_stage: [1, 2]}]]\n",
            3,
            "per_stage may stand only inside a cells node",
        ),
        ("model: {backbone: []}\nsampler: {type: TPEE}\n", 2, "did you mean 'TPE'"),
        ("model: {backbone: []}\nobjectives: [acuracy]\n", 2, "unknown metric 'acuracy'"),
        ("model: {backbone: []}\nmodell: 1\n", 2, "unknown top-level key 'modell'"),
        (
            "model: {backbone: []}\nobjectives: [accuracy, params]\npruner: {type: Median}\n",
            3,
            "pruners work with one objective",
        ),
        (
            "model: {backbone: []}\ntrain:\n  optimizer:\n    choice:\n      A: {type: Adam}\n      B: {type: Adamm}\n",
            6,
            "unknown optimizer 'Adamm'",
        ),
        (
            "model:\n  backbone:\n    - [1, Conv, [{int: [8, 16], name: w}]]\n    - [1, Conv, [{int: [8, 32], name: w}]]\n",
            4,
            "already used with a different range",
        ),
        ("model: {backbone: []}\ntrain: {epochs: 0}\n", 2, "epochs must be positive, got 0"),
        ("model: {backbone: [{choice: []}]}\n", 1, "at least one option"),
        (
            "model:\n  backbone:\n    - {choice: {A: [1, Conv, [8]], B: [1, Convv, [8]]}}\n",
            3,
            "unknown block 'Convv' (did you mean 'Conv'?)",
        ),
        ("model:\n  backbone:\n    - [1, Conv]\n", 3, "a row has 3 elements"),
        ("model: {backbone: [{cells: {stages: 2, normal: []}}]}\n", 1, "cells needs 'repeat'"),
    ],
)
def test_bad_search_files_fail_with_a_location(text, line, message):
    with pytest.raises(SpecError) as info:
        parse_config(text, "bad.yaml", EXAMPLES)
    assert info.value.location is not None and info.value.location.file == "bad.yaml"
    assert info.value.location.line == line
    assert message in info.value.message


def test_cli_reports_a_bad_search_file_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  backbone:\n    - [1, Conv, [{float: [1, 0.5]}]]\n")
    assert main(["search", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"yaml2torch: error: {bad}:3:")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["digits", "boostcamp_tune", "cells", "tune_space"])
def test_shipped_examples_load(name):
    cfg = parse_config((EXAMPLES / f"{name}.yaml").read_text(), f"{name}.yaml", EXAMPLES)
    assert cfg.study == name
    if name == "boostcamp_tune":
        assert [o.metric for o in cfg.objectives] == ["f1", "params"]
        assert cfg.directions == ["maximize", "minimize"]


def test_registering_the_search_commands_imports_neither_torch_nor_optuna():
    import subprocess
    import sys

    code = (
        "import sys, yaml2torch.cli as c; c.build_parser(); import yaml2torch.search; "
        "print('torch' in sys.modules, 'optuna' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_missing_data_fails_before_a_study_is_created(tmp_path, capsys):
    space = tmp_path / "s.yaml"
    space.write_text("data: {source: npz, path: missing.npz}\nmodel: {backbone: [[1, Linear, [10]]]}\n")
    assert main(["search", str(space), "--out", str(tmp_path / "out")]) == 2
    assert "missing.npz" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_file_without_a_model_needs_a_function(tmp_path, capsys):
    space = tmp_path / "s.yaml"
    space.write_text("trials: 1\n")
    assert main(["search", str(space), "--out", str(tmp_path / "out")]) == 2
    assert "the search file has neither model: (a template) nor python: (a function)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("[-1, 1, Conv, [8, 3, 1], {act: {choice: [ReLU, Swsh]}}]", "4:54: unknown activation 'Swsh' (did you mean 'Swish'?)"),
        (
            "[-1, 1, Conv, [8, 3, 1], {actvation: ReLU}]",
            "4:33: Conv has no kwarg 'actvation' (did you mean 'activation'?)",
        ),
        ("[1, {choice: [Conv, Cnov]}, [8, 3, 1]]", "4:27: unknown block 'Cnov' (did you mean 'Conv'?)"),
        ("[1, Conv, [{choice: [8, eight]}, 3, 1]]", "4:31: Conv arg 'c' must be a positive int, not a string ('eight')"),
    ],
)
def test_every_branch_of_the_model_template_is_checked_at_load(row, message, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(
        "data: {source: digits}\nmodel:\n  backbone:\n    - " + row + "\n    - [1, GlobalAvgPool, []]\n"
        "    - [1, Flatten, []]\n    - [1, Linear, [10]]\n"
    )
    with pytest.raises(SpecError) as caught:
        load_config(space)
    assert str(caught.value).startswith(f"{space}:{message}")


@pytest.mark.parametrize(
    ("cells", "at", "message"),
    [
        (
            "{stages: 3, repeat: {int: [1, 1000000]}, normal: [[1, Conv, [8, 3]]]}",
            "4:44",
            "repeat 1000000 in 3 stages expands the cells to up to 3,000,000 rows, more than 2,000",
        ),
        (
            "{stages: 1000000, repeat: 1, normal: [[1, Conv, [8, 3]]]}",
            "4:23",
            "stages 1000000 expand the cells to at least 1,000,000 rows, more than 2,000",
        ),
        (
            "{stages: 2, repeat: 600, normal: [[1, Conv, [8, 3]], [1, Conv, [8, 3]]], reduction: [[1, MaxPool, [2]]]}",
            "4:34",
            "repeat 600 in 2 stages expands the cells to up to 2,401 rows, more than 2,000",
        ),
        ("{stages: {int: [1, 3]}, repeat: 1, normal: [[1, Conv, [8, 3]]]}", "4:23", "stages must be an int, not a mapping"),
    ],
)
def test_cells_that_expand_past_the_layer_limit_are_refused_at_load(cells, at, message, tmp_path, capsys):
    """Found by a hostile-input check: the limit was checked only after expansion (35 s to read, then
    5.6 GB in a trial); a mapping for stages printed its Node repr."""
    space = tmp_path / "space.yaml"
    space.write_text(
        "data: {source: digits, limit: 200}\nmodel:\n  backbone:\n    - cells: " + cells + "\n"
        "    - [1, GlobalAvgPool, []]\n    - [1, Flatten, []]\n    - [1, Linear, [10]]\n"
    )
    assert main(["search", str(space), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    limit = " (limit 2,000 layers after repeats and depth_multiple, sub-specs included)" if "rows" in message else ""
    assert err == f"yaml2torch: error: {space}:{at}: {message}{limit}\n"
    assert not (tmp_path / "out").exists()


TINY = """study: tiny
seed: 0
trials: 2
data: {source: digits, limit: 200}
model:
  backbone:
    - [1, Conv, [8, 3]]
    - [1, GlobalAvgPool, []]
    - [1, Flatten, []]
    - [1, Linear, [10]]
train:
  epochs: 1
  batch_size: 32
  optimizer: {type: Adam, lr: 0.01}
sampler: Random
pruner: none
"""


def refused_search(tmp_path, capsys, text: str) -> str:
    """The search file is refused with one located line before any study or folder exists."""
    space = tmp_path / "space.yaml"
    space.write_text(text)
    assert main(["search", str(space), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"yaml2torch: error: {space}:") and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]
    return err[len(f"yaml2torch: error: {space}:") : -1]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "optimizer: {type: Adam, lr: 0.01}",
            "optimizer: {type: SGD, lr: 0.01, nesterov: true}",
            "14:46: nesterov: true needs momentum > 0 and dampening 0 (torch's SGD refuses it otherwise), got momentum 0.0, dampening 0.0",
        ),
        (
            "optimizer: {type: Adam, lr: 0.01}",
            "optimizer: {type: SGD, lr: 0.01, momentum: {float: [0.0, 0.9]}, nesterov: true}",
            "14:77: nesterov: true needs momentum > 0 and dampening 0 (torch's SGD refuses it otherwise), got momentum 0.0, dampening 0.0",
        ),
        ("  backbone:", "  input_channel: 3\n  backbone:", "6:18: input_channel 3 but the data has 1 channels"),
        ("  backbone:", "  input_channel: {choice: [1, 3]}\n  backbone:", "6:31: input_channel 3 but the data has 1 channels"),
        ("  batch_size: 32", "  batch_size: 32\n  image_size: 100000", "14:15: image_size 100000 is more than 1,024 pixels a side (limit 1,024; every image is resized to it)"),
        ("  batch_size: 32", "  batch_size: 32\n  image_size: [8, 1025]", "14:19: image_size 1025 is more than 1,024 pixels a side (limit 1,024; every image is resized to it)"),
        ("  batch_size: 32", "  batch_size: 32\n  augment: {shift: 1000000}", "14:20: shift 1000000 is more than 128 pixels (limit 128; each batch is padded by it on every side)"),
    ],
)
def test_settings_every_trial_would_fail_on_are_refused_at_load(old, new, message, tmp_path, capsys):
    """Found by a hostile-input check: these passed the file check, then failed (or tried to
    allocate terabytes) in every trial."""
    assert refused_search(tmp_path, capsys, TINY.replace(old, new)) == message


def test_nesterov_with_momentum_and_the_data_channels_load():
    cfg = config(TINY.replace("optimizer: {type: Adam, lr: 0.01}", "optimizer: {type: SGD, lr: 0.01, momentum: 0.9, nesterov: true}").replace("  backbone:", "  input_channel: 1\n  backbone:"))
    assert dict(parse_train(sp.sample(cfg.train, sp.WalkParams(0))).optimizer.kwargs)["nesterov"] is True


def test_a_template_input_size_without_image_size_resizes_the_data():
    """The template's input_size acts as image_size: the trial's data is resized to it and its
    train settings record it (docs/search.md), so best.yaml, the MACs and the training agree."""
    from yaml2torch.search.config import TrainSettings
    from yaml2torch.search.trial import fit_to_data
    from yaml2torch.spec.yaml_nodes import load_text

    node = load_text("input_size: 16\nbackbone: [[1, Conv, [8, 3]]]\n", "t.yaml")
    fitted, train = fit_to_data(node, TrainSettings(), 1, (8, 8))
    assert train.image_size == (16, 16) and fitted.mapping()["input_size"].value == 16
    with pytest.raises(SpecError, match=r"model input_size \[16, 16\] differs from train image_size \[8, 8\]"):
        fit_to_data(node, TrainSettings(image_size=(8, 8)), 1, (8, 8))


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ('"a\\nb"', "1:8: study 'a\\nb' is not a plain name (no '/', leading '.', or control characters) (it names the study's folder)"),
        ('"x\\u202ey"', "1:8: study 'x\\u202ey' is not a plain name (no '/', leading '.', or control characters) (it names the study's folder)"),
        ("a\\b", "1:8: study 'a\\\\b' is not a plain name (no '/', leading '.', or control characters) (it names the study's folder)"),
        ("s" * 101, "1:8: study must be 1 to 100 characters (it names the study's folder)"),
        ("a/b", "1:8: study 'a/b' is not a plain name (no '/', leading '.', or control characters) (it names the study's folder)"),
        ('""', "1:8: study must be 1 to 100 characters (it names the study's folder)"),
    ],
)
def test_the_files_study_name_follows_the_rule_of_study(study, message, tmp_path, capsys):
    """Found by a hostile-input check: study: "a\\nb" made a folder with a newline in its name."""
    assert refused_search(tmp_path, capsys, TINY.replace("study: tiny", f"study: {study}")) == message


def test_the_same_study_rule_refuses_the_option(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text(TINY)
    with pytest.raises(SystemExit) as exited:
        main(["search", str(space), "--study", "x\u202ey", "--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    assert "argument --study: 'x\\u202ey' is not a plain name" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("seed: 0", "seed: 4294967296", "2:7: seed must be at most 2,147,483,647, got 4294967296"),
        ("seed: 0", "seed: 2147483648", "2:7: seed must be at most 2,147,483,647, got 2147483648"),
        ("limit: 200}", "limit: 200, split_seed: 4294967296}", "4:48: split_seed must be at most 2,147,483,647, got 4294967296"),
    ],
)
def test_seeds_past_what_numpy_takes_are_refused_at_load(old, new, message, tmp_path, capsys):
    """Found by a hostile-input check: seed 2**32 passed, then scikit-learn's refusal read as
    'too few samples (1797) for train/val/test splits'."""
    why = " (numpy and scikit-learn take seeds below 2**32, and workers add offsets)"
    assert refused_search(tmp_path, capsys, TINY.replace(old, new)) == message + why


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--seed", "4294967296", "argument --seed: must be 0 to 2,147,483,647, got '4294967296'"),
        ("--image-size", "100000", "argument --image-size: must be 1 to 1,024 pixels a side, got '100000'"),
    ],
)
def test_train_options_follow_the_rules_of_the_search_file(tmp_path, capsys, option, value, message):
    spec = tmp_path / "net.yaml"
    spec.write_text("backbone: [[1, Conv, [8, 3]], [1, GlobalAvgPool, []], [1, Flatten, []], [1, Linear, [10]]]\n")
    with pytest.raises(SystemExit) as exited:
        main(["train", str(spec), option, value, "-o", str(tmp_path / "o")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "o").exists()


def test_a_split_error_that_is_not_an_empty_split_is_not_called_too_few_samples():
    import numpy as np
    import torch

    from yaml2torch.search.config import DataSettings
    from yaml2torch.search.data import Arrays, make_splits

    arrays = Arrays(torch.zeros(100, 1, 4, 4), torch.from_numpy(np.arange(100) % 2), ("a", "b"))
    assert len(make_splits(arrays, DataSettings(split_seed=7)).train_y) == 60
    with pytest.raises(ValueError, match="random_state"):
        make_splits(arrays, DataSettings(split_seed=2**32))


def test_a_template_input_channel_is_checked_against_npz_data_once_it_is_loaded(tmp_path, tmp_path_factory, capsys):
    """An .npz's channels are known only from its arrays: checked once they are loaded, still
    before any study or folder exists (not in every trial)."""
    rng = np.random.default_rng(0)
    data = tmp_path_factory.mktemp("npz") / "d.npz"
    np.savez(data, x=rng.integers(0, 255, (90, 8, 8), dtype=np.uint8), y=np.repeat(np.arange(3), 30))
    text = TINY.replace("{source: digits, limit: 200}", f"{{source: npz, path: {data}}}").replace("[1, Linear, [10]]", "[1, Linear, [3]]")
    assert refused_search(tmp_path, capsys, text.replace("  backbone:", "  input_channel: 3\n  backbone:")) == (
        "6:18: input_channel 3 but the data has 1 channels"
    )

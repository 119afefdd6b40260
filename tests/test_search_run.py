"""Real searches: Optuna studies in journal files and SQLite, generated files imported, real training on digits."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from yaml2torch.cli import main
from yaml2torch.compiler import compile_text
from yaml2torch.files import import_model_class
from yaml2torch.scale.storage import journal_url, make_storage
from yaml2torch.search.config import load_config, parse_config
from yaml2torch.search.run import RunOptions, run_search

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "search"


def load(out: Path, name: str):
    return optuna.load_study(study_name=name, storage=make_storage(journal_url(out / "study.log")))


def write(tmp_path: Path, text: str, base: str | None = None) -> Path:
    """A search file: TINY (or ``base``) followed by ``text``."""
    path = tmp_path / "space.yaml"
    path.write_text((TINY if base is None else base) + textwrap.dedent(text))
    return path


TINY = """
study: tiny
seed: 0
trials: 3
sampler: Random
pruner: none
train: {epochs: 1, batch_size: 128, optimizer: {type: Adam, lr: 0.01}}
"""


@pytest.mark.slow
def test_digits_example_end_to_end_then_resume_best_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "search",
        str(EXAMPLES / "digits.yaml"),
        "--trials",
        "2",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    args += ["--limit", "600"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "study digits" in err and "picked trial" in err  # the closing table
    for name in ("study.log", "best.yaml", "best_model.py", "best_model.pt", "summary.json"):
        assert (out / name).is_file(), name
    study = load(out, "digits")
    assert len(study.trials) == 2
    for trial in study.trials:
        if trial.state.name != "COMPLETE":
            continue
        folder = out / trial.user_attrs["trial_dir"]
        assert {p.name for p in folder.iterdir()} == {"spec.yaml", "model.py", "model.pt", "metrics.json"}
        assert (folder / "spec.yaml").read_text() == trial.user_attrs["spec_yaml"]
        assert (folder / "model.py").read_text() == trial.user_attrs["model_py"]
        # model.py is exactly what `yaml2torch compile spec.yaml` writes
        compiled = compile_text(trial.user_attrs["spec_yaml"], "spec.yaml")
        assert compiled.source == (folder / "model.py").read_text()
        assert compiled.arch_hash == trial.user_attrs["arch_hash"] and compiled.params == trial.user_attrs["params"]
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["metrics"]["accuracy"] == trial.value
        model = import_model_class(folder / "model.py")()
        model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
        assert model.eval()(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    summary = json.loads((out / "summary.json").read_text())
    picked = summary["picked"]
    assert picked["number"] == study.best_trial.number
    assert picked["test"]["samples"] == 120 and 0 <= picked["test"]["accuracy"] <= 1
    assert (out / "best.yaml").read_text() == study.best_trial.user_attrs["spec_yaml"]
    first_values = [t.values for t in study.trials]

    # Running the same command with a larger budget continues the study.
    assert main([*args[:3], "3", *args[4:], "--quiet"]) == 0
    study = load(out, "digits")
    assert len(study.trials) == 3 and [t.values for t in study.trials[:2]] == first_values
    # At its budget, the same command trains nothing more.
    assert main([*args[:3], "3", *args[4:], "--quiet", "--resume"]) == 0
    assert len(load(out, "digits").trials) == 3

    # best: from the storage alone into another folder (weights from the recorded out dir).
    storage = journal_url(out / "study.log")
    capsys.readouterr()
    assert main(["best", "--storage", storage, "--study", "digits", "-o", str(tmp_path / "exported"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["picked"] == load(out, "digits").best_trial.number and printed["test"]["samples"] == 120
    # best_model.py is what `yaml2torch compile best.yaml` makes (header naming best.yaml), the
    # trial's model.py is what it makes from the trial's spec.yaml: the same network.
    exported = tmp_path / "exported"
    assert main(["compile", str(exported / "best.yaml"), "-o", str(exported / "best_model.py"), "--check"]) == 0
    trial_source = load(out, "digits").best_trial.user_attrs["model_py"]
    assert (exported / "best_model.py").read_text().replace("best.yaml", "spec.yaml") == trial_source

    # report: one HTML file with the figures, plotly inline (no network), and the trial table.
    report = tmp_path / "report.html"
    assert main(["report", "--storage", storage, "--study", "digits", "-o", str(report)]) == 0
    html = report.read_text()
    assert "Optimization history: accuracy" in html and "Parameter importances for accuracy" in html
    assert "<script src=" not in html and html.count("<script") >= 3  # plotly.js inline, no network
    trials_table = html.split("<h2>Trials</h2>")[1]
    assert trials_table.count("<tr") == 1 + 3  # header + one row per trial
    assert "Confusion matrix (rows: true class, columns: predicted)" in html  # the picked model's test scores


@pytest.mark.slow
def test_resume_with_a_different_file_is_refused(tmp_path, capsys):
    space = write(
        tmp_path,
        "model: {backbone: [[1, Conv, [8, 3, 1]], [1, GlobalAvgPool, []], [1, Flatten, []], [1, Linear, [10]]]}\n",
    )
    out = tmp_path / "out"
    assert main(["search", str(space), "--trials", "1", "--out", str(out), "--quiet"]) == 0
    space.write_text(space.read_text().replace("[8, 3, 1]", "[16, 3, 1]"))
    assert main(["search", str(space), "--trials", "2", "--out", str(out), "--quiet"]) == 2
    assert "created from a different search file" in capsys.readouterr().err


def test_infeasible_samples_are_pruned_with_the_reason_and_not_trained(tmp_path):
    space = write(
        tmp_path,
        """
        constraints: {max_params: 1000, min_spatial: 2}
        model:
          backbone:
            - [1, Conv, [{choice: [8, 64]}, 3, 1]]
            - [{choice: [1, 3, 4]}, MaxPool, [2]]
            - [1, GlobalAvgPool, []]
            - [1, Flatten, []]
            - [1, Linear, [10]]
        """,
    )
    config = load_config(space)
    result = run_search(config, RunOptions(out_dir=tmp_path / "out", trials=12, progress=False))
    trials = result.study.trials
    reasons = {t.number: t.user_attrs.get("reason", "") for t in trials}
    for trial in trials:
        width, pools = trial.params["backbone.0.c"], trial.params["backbone.1.repeat"]
        if pools == 4:  # 8 -> 0: the compiler's error, located in the search file
            assert trial.state.name == "PRUNED" and "shrinks to zero" in reasons[trial.number]
            assert f"{space}:" in reasons[trial.number]
        elif width == 64:  # params are checked before the spatial size
            assert trial.state.name == "PRUNED" and "> max_params 1,000" in reasons[trial.number]
        elif pools == 3:  # 8 -> 1 < min_spatial
            assert trial.state.name == "PRUNED" and "min_spatial 2" in reasons[trial.number]
        else:
            assert trial.state.name == "COMPLETE"
        if trial.state.name == "PRUNED":
            assert trial.user_attrs["status"] == "infeasible"
            assert not (tmp_path / "out" / "trials" / f"{trial.number:04d}").exists()
            assert not trial.intermediate_values
    assert {t.state.name for t in trials} == {"PRUNED", "COMPLETE"}
    assert result.summary["infeasible"] == sum(1 for t in trials if t.state.name == "PRUNED")


def test_same_architecture_and_training_is_not_trained_again(tmp_path):
    space = write(
        tmp_path,
        """
        model:
          backbone:
            - [1, Conv, [8, 3, 1]]
            - {choice: {A: [1, Identity, []], B: [1, Identity, []]}}
            - [1, GlobalAvgPool, []]
            - [1, Flatten, []]
            - [1, Linear, [10]]
        """,
    )
    storage = f"sqlite:///{tmp_path / 'elsewhere.db'}"  # any Optuna storage URL
    result = run_search(load_config(space), RunOptions(out_dir=tmp_path / "out", storage=storage, progress=False))
    assert (tmp_path / "elsewhere.db").is_file()
    assert not (tmp_path / "out" / "study.db").exists() and not (tmp_path / "out" / "study.log").exists()
    trials = result.study.trials
    assert len({t.user_attrs["arch_hash"] for t in trials}) == 1
    trained = [t for t in trials if "duplicate_of" not in t.user_attrs]
    assert len(trained) == 1 and trained[0].number == 0
    for trial in trials[1:]:
        assert trial.state.name == "COMPLETE" and trial.user_attrs["duplicate_of"] == 0
        assert trial.value == trials[0].value and trial.user_attrs["status"] == "duplicate"
        assert not (tmp_path / "out" / "trials" / f"{trial.number:04d}").exists()


def test_failures_are_recorded_and_the_study_goes_on(tmp_path, monkeypatch):
    # Every training's loss turns NaN after its first epoch: each trial fails with the reason.
    monkeypatch.setenv("YAML2TORCH_INJECT_FAULT", "nan")
    space = write(
        tmp_path,
        """
        data: {source: digits, limit: 120}
        model: {backbone: [[1, Conv, [{choice: [4, 8, 12]}, 3, 1]], [1, GlobalAvgPool, []], [1, Flatten, []], [1, Linear, [10]]]}
        """,
    )
    result = run_search(load_config(space), RunOptions(out_dir=tmp_path / "out", progress=False))
    trials = result.study.trials
    assert len(trials) == 3 and all(t.state.name == "FAIL" for t in trials)
    assert all(t.user_attrs["reason"] == "non-finite loss (nan) at epoch 1" for t in trials)
    assert result.summary["picked"] is None


def test_non_finite_images_are_refused_before_a_study_exists(tmp_path, capsys):
    x = np.random.default_rng(0).random((60, 8, 8)).astype(np.float32)
    x[:, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=np.arange(60) % 3)
    space = write(tmp_path, "data: {source: npz, path: nan.npz}\nmodel: {backbone: [[1, Linear, [3]]]}\n")
    assert main(["search", str(space), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"yaml2torch: error: {tmp_path / 'nan.npz'}: the images contain NaN or infinite values\n"
    assert not (tmp_path / "out").exists()


def test_python_escape_hatch_via_api_with_an_exception_in_one_trial(tmp_path):
    def search_model(trial):
        width = trial.suggest_int("width", 4, 8, step=4)
        if trial.number == 1:
            raise RuntimeError("boom in user code")
        return {
            "backbone": [[1, "Conv", [width, 3, 1]], [1, "GlobalAvgPool", []], [1, "Flatten", []], [1, "Linear", [10]]]
        }

    config = parse_config(TINY, str(EXAMPLES / "x.yaml"), EXAMPLES)  # no model: the function comes from the API
    result = run_search(config, RunOptions(out_dir=tmp_path / "out", progress=False, search_model=search_model))
    states = [t.state.name for t in result.study.trials]
    assert states[1] == "FAIL" and "boom in user code" in result.study.trials[1].user_attrs["reason"]
    assert states.count("COMPLETE") >= 1 and result.summary["picked"] is not None
    assert set(result.study.trials[0].params) == {"width"}


def test_pruner_gets_per_epoch_values(tmp_path):
    space = write(
        tmp_path,
        "model: {backbone: [[1, Conv, [{choice: [4, 8]}, 3, 1]], [1, GlobalAvgPool, []], [1, Flatten, []], [1, Linear, [10]]]}\n",
        TINY.replace("pruner: none", "pruner: {type: Threshold, lower: 0.999}").replace("epochs: 1", "epochs: 3"),
    )
    result = run_search(load_config(space), RunOptions(out_dir=tmp_path / "out", trials=2, progress=False))
    for trial in result.study.trials:
        # no 1-epoch model reaches 99.9%: the threshold pruner stops each after its first epoch
        assert trial.state.name in ("PRUNED", "COMPLETE")
        if trial.user_attrs.get("duplicate_of") is None:
            assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [1]
            assert trial.user_attrs["status"] == "pruned" and "Threshold" in trial.user_attrs["reason"]


@pytest.mark.slow
def test_boostcamp_example_multi_objective_pareto_and_pick(tmp_path):
    out = tmp_path / "bc"
    code = main(
        [
            "search",
            str(EXAMPLES / "boostcamp_tune.yaml"),
            "--trials",
            "4",
            "--epochs",
            "1",
            "--limit",
            "300",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    study = load(out, "boostcamp_tune")
    summary = json.loads((out / "summary.json").read_text())
    front = {t.number for t in study.best_trials}
    assert {p["number"] for p in summary["pareto"]} <= front and summary["pareto"]
    for entry in summary["pareto"]:
        assert (out / entry["file"]).read_text() == study.trials[entry["number"]].user_attrs["spec_yaml"]
    picked = summary["picked"]
    assert picked["number"] in front
    fitting = [p for p in summary["pareto"] if p["params"] <= 100000]
    if fitting:
        assert picked["metrics"]["f1"] == max(p["metrics"]["f1"] for p in fitting)
    assert picked["values"] == [picked["metrics"]["f1"], picked["params"]]
    assert "backbone.1" in study.trials[0].params  # slot 2's block choice
    report = tmp_path / "bc.html"
    assert (
        main(["report", "--storage", str(out), "--study", "boostcamp_tune", "-o", str(report)])
        == 0
    )
    html = report.read_text()
    assert "Pareto front" in html and "Optimization history: params" in html


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cells", "tune_space"])
def test_other_examples_run_with_a_tiny_budget(tmp_path, name):
    out = tmp_path / name
    assert (
        main(
            [
                "search",
                str(EXAMPLES / f"{name}.yaml"),
                "--trials",
                "2",
                "--epochs",
                "1",
                "--limit",
                "300",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["picked"] is not None and (out / "best_model.py").is_file()
    study = load(out, name)
    if name == "cells":
        assert {"backbone.1.N1", "train.optimizer"} <= set(study.trials[0].params)
    else:
        assert "stem/channels" in study.trials[0].params


def test_the_study_file_already_in_out_is_resumed_whatever_workers_says(tmp_path):
    from yaml2torch.search.run import RunOptions

    journal = journal_url(tmp_path / "study.log")
    assert RunOptions(out_dir=tmp_path).storage_url == journal  # one process or several: a journal file
    assert RunOptions(out_dir=tmp_path, workers=2).storage_url == journal
    (tmp_path / "study.db").write_bytes(b"")  # made by an older version (SQLite was its default)
    sqlite = f"sqlite:///{(tmp_path / 'study.db').resolve()}"
    assert RunOptions(out_dir=tmp_path).storage_url == sqlite
    assert RunOptions(out_dir=tmp_path, workers=2).storage_url == sqlite


def test_a_search_where_no_trial_completes_says_so_in_one_line_and_every_reader_agrees(tmp_path: Path) -> None:
    """Every trial infeasible: no traceback from the closing table, the report says why its plots
    are missing, and ``best`` has nothing to export; status 1 (a result, not bad input)."""
    from conftest import ROOT, run_cli_subprocess

    text = (ROOT / "examples" / "search" / "digits.yaml").read_text(encoding="utf-8")
    space = tmp_path / "tiny.yaml"
    space.write_text(text.replace("max_params: 100000", "max_params: 10"), encoding="utf-8")
    out = tmp_path / "out"
    searched = run_cli_subprocess("search", space, "-o", out, "--trials", "2", "--epochs", "1")
    assert searched.status == 1 and "Traceback" not in searched.stderr
    assert searched.stderr.splitlines()[-1] == f"yaml2torch: no trial completed; see {out}/summary.json"
    best = run_cli_subprocess("best", "--storage", out, "-o", tmp_path / "best")
    assert (best.status, best.stderr) == (1, f"yaml2torch: no completed trial to export; see {tmp_path / 'best'}/summary.json\n")
    assert json.loads((tmp_path / "best" / "summary.json").read_text(encoding="utf-8"))["picked"] is None
    report = run_cli_subprocess("report", out)
    assert report.status == 0 and "not available: no trial completed" in (out / "report.html").read_text(encoding="utf-8")


def test_a_search_file_with_nothing_to_build_is_refused_before_any_study_exists(tmp_path: Path) -> None:
    from conftest import run_cli_subprocess

    space = tmp_path / "nomodel.yaml"
    space.write_text("study: x\n", encoding="utf-8")
    result = run_cli_subprocess("search", space, "-o", tmp_path / "out")
    assert (result.status, result.stdout) == (2, "")
    assert result.stderr == (
        f"yaml2torch: error: {space}:1:1: the search file has neither model: (a template) nor python: (a function), "
        "so no trial has anything to build; add one of them (docs/search.md)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nomodel.yaml"]  # no study, no folder


def test_resuming_with_other_epochs_or_limit_is_refused_and_the_same_options_resume(tmp_path: Path) -> None:
    """--epochs and --limit are part of what a trial means; another --limit would also move test
    images into the training split, so a resumed study must keep them."""
    from conftest import ROOT, run_cli_subprocess

    space, out = ROOT / "examples" / "search" / "digits.yaml", tmp_path / "out"
    first = run_cli_subprocess("search", space, "-o", out, "--trials", "1", "--epochs", "1", "--limit", "300", "--quiet")
    assert first.status == 0
    log = (out / "study.log").read_bytes()
    refused = run_cli_subprocess("search", space, "-o", out, "--trials", "2", "--epochs", "1", "--quiet")
    assert (refused.status, refused.stdout) == (2, "")
    assert refused.stderr == (
        "yaml2torch: error: study 'digits' ran its trials with --epochs 1 and --limit 300, this run asks for --epochs 1 "
        "and all the data: its trials would not compare (and another --limit moves test images into training); "
        "resume it with --epochs 1 --limit 300, or use another --out folder or --study name\n"
    )
    assert (out / "study.log").read_bytes() == log  # nothing recorded
    again = run_cli_subprocess("search", space, "-o", out, "--trials", "2", "--epochs", "1", "--limit", "300", "--quiet")
    assert again.status == 0
    finished = optuna.load_study(study_name="digits", storage=make_storage(journal_url(out / "study.log"))).trials
    assert len([t for t in finished if t.state.is_finished()]) == 2

"""What a search hands over runs as shipped: preprocessing inside the model, files that match
``compile --check``, and exports (ONNX, torch.export) that agree with the eager model."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from yaml2torch.cli import main
from yaml2torch.compiler import compile_text
from yaml2torch.files import import_model_class, load_state_dict
from yaml2torch.search.config import load_config
from yaml2torch.search.data import load_splits

NORMALIZED = """\
input_channel: 3
input_size: [16, 16]
normalize: {mean: [0.5, 0.25, 0.125], std: [0.5, 0.25, 2.0]}
backbone:
  - [1, Conv, [8, 3, 1]]
  - [1, GlobalAvgPool, []]
  - [1, Flatten, []]
  - [1, Linear, [3]]
"""


def image_folder(root: Path, per_class: int = 24, size: int = 16) -> Path:
    """Three classes a small CNN can tell apart: a red, a green and a blue square, with noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, channel in (("red", 0), ("green", 1), ("blue", 2)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 90, size=(size, size, 3), dtype=np.uint8)
            top, left = rng.integers(0, size // 2, size=2)
            pixels[top : top + size // 2, left : left + size // 2, channel] = 255
            Image.fromarray(pixels, "RGB").save(root / label / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("deploy")
    image_folder(root / "images")
    space = root / "space.yaml"
    space.write_text(
        textwrap.dedent(
            """\
            study: shapes
            seed: 0
            trials: 2
            data: {source: folder, path: images}
            sampler: Random
            pruner: none
            train: {epochs: 6, batch_size: 16, optimizer: {type: Adam, lr: 0.01}, scheduler: none}
            model:
              backbone:
                - [1, Conv, [{choice: [8, 16]}, 3, 1]]
                - [1, MaxPool, [2]]
                - [1, Conv, [16, 3, 1]]
                - [1, GlobalAvgPool, []]
                - [1, Flatten, []]
                - [1, Linear, [3]]
            """
        )
    )
    out = root / "out"
    assert main(["search", str(space), "--out", str(out), "--quiet"]) == 0
    return space, out


def test_the_exported_model_scores_the_reported_test_accuracy_on_raw_images(searched):
    space, out = searched
    summary = json.loads((out / "summary.json").read_text())
    reported = summary["picked"]["test"]
    assert "normalize: {mean: [" in (out / "best.yaml").read_text()
    assert ", scaled_from: 255}" in (out / "best.yaml").read_text()  # PNG pixels 0-255
    assert "values in [0, 1] (pixel values 0-255 divided by 255).\n" in (out / "best_model.py").read_text()
    model = import_model_class(out / "best_model.py")()
    load_state_dict(model, out / "best_model.pt")
    model.eval()
    splits = load_splits(load_config(space).data)  # the search's own test split, as raw images
    assert float(splits.test_x.min()) >= 0 and float(splits.test_x.max()) <= 1
    with torch.no_grad():
        predicted = model(splits.test_x).argmax(1)
    accuracy = float((predicted == splits.test_y).float().mean())
    assert accuracy == pytest.approx(reported["accuracy"], abs=1e-9)
    assert accuracy > 0.6  # it learned something: the raw images are what it expects
    assert len(reported["per_class"]) == 3 and len(reported["confusion"]) == 3
    assert sum(map(sum, reported["confusion"])) == reported["samples"] == len(splits.test_y)
    assert reported["classes"] == ["blue", "green", "red"]


def test_best_model_and_trial_files_pass_compile_check_and_the_commit_hooks(searched, capsys):
    _, out = searched
    assert main(["compile", str(out / "best.yaml"), "-o", str(out / "best_model.py"), "--check"]) == 0
    specs = [str(out / "best.yaml")]
    for folder in sorted(p for p in (out / "trials").iterdir() if p.is_dir()):
        assert main(["compile", str(folder / "spec.yaml"), "-o", str(folder / "model.py"), "--check"]) == 0
        specs.append(str(folder / "spec.yaml"))
    # Committed search outputs pass the pre-commit hooks as written: fmt's layout, and check
    # --fresh finds best_model.py and model.py under the names the search gives them.
    assert main(["fmt", "--check", *specs]) == 0
    assert main(["check", "--fresh", *specs]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("suffix", [".onnx", ".pt2"])
def test_export_has_a_dynamic_batch_and_matches_the_eager_model(searched, suffix, capsys):
    _, out = searched
    target = out / f"best{suffix}"
    assert main(["export", str(out / "best.yaml"), "--weights", str(out / "best_model.pt"), "-o", str(target)]) == 0
    assert capsys.readouterr().err == f"wrote {target} ({'ONNX' if suffix == '.onnx' else 'torch.export'}, input (N, 3, 16, 16))\n"
    model = import_model_class(out / "best_model.py")()
    load_state_dict(model, out / "best_model.pt")
    model.eval()
    for batch in (1, 5):
        x = torch.rand(batch, 3, 16, 16)
        with torch.no_grad():
            expected = model(x)
        if suffix == ".onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        else:
            got = torch.export.load(str(target)).module()(x).detach()
        assert got.shape == expected.shape == (batch, 3)
        assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_export_failures_are_one_line_and_write_nothing(searched, tmp_path, capsys):
    _, out = searched
    spec, weights = str(out / "best.yaml"), str(out / "best_model.pt")
    cases = [
        ([spec, "--weights", weights, "-o", str(tmp_path / "m.zip")], f"-o {tmp_path / 'm.zip'}: the file name must end in .onnx or .pt2 (the format)"),
        ([spec, "--weights", str(tmp_path / "none.pt"), "-o", str(tmp_path / "m.pt2")], f"{tmp_path / 'none.pt'}: no such weights file"),
        ([spec, "--weights", spec, "-o", str(tmp_path / "m.pt2")], f"{spec}: cannot read weights: not a torch.save file of plain tensors (or it holds other objects, which are never unpickled)"),
    ]
    for args, message in cases:
        assert main(["export", *args]) == 2
        assert capsys.readouterr().err == f"yaml2torch: error: {message}\n"
    no_size = tmp_path / "nosize.yaml"
    no_size.write_text(NORMALIZED.replace("input_size: [16, 16]\n", ""))
    assert main(["export", str(no_size), "--weights", weights, "-o", str(tmp_path / "m.pt2")]) == 2
    assert "export needs the input size; add input_size: [H, W]" in capsys.readouterr().err
    assert not list(tmp_path.glob("m.*"))


def test_a_normalizing_model_takes_inputs_in_0_1_and_says_so():
    compiled = compile_text(NORMALIZED, "net.yaml")
    assert "INPUT_MEAN = (0.5, 0.25, 0.125)\nINPUT_STD = (0.5, 0.25, 2.0)\n" in compiled.source
    assert "Input: a float tensor (N, 3, 16, 16) with values in [0, 1]" in compiled.source
    namespace: dict = {}
    exec(compile(compiled.source, "net.py", "exec"), namespace)  # noqa: S102 - our own generated file
    model = namespace["Model"]().eval()
    assert set(model.state_dict()) == set(namespace["Model"]().state_dict())  # buffers not saved
    assert "input_mean" not in model.state_dict()
    plain = compile_text(NORMALIZED.replace("normalize: {mean: [0.5, 0.25, 0.125], std: [0.5, 0.25, 2.0]}\n", ""), "net.yaml")
    namespace_plain: dict = {}
    exec(compile(plain.source, "plain.py", "exec"), namespace_plain)  # noqa: S102 - our own generated file
    reference = namespace_plain["Model"]().eval()
    reference.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 16, 16)
    mean = torch.tensor([0.5, 0.25, 0.125]).view(1, 3, 1, 1)
    std = torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), reference((x - mean) / std))
    assert plain.arch_hash != compiled.arch_hash  # different functions, different hashes


@pytest.mark.parametrize(
    ("normalize", "message"),
    [
        ("{mean: [0.5, 0.5], std: [1, 1, 1]}", "3:19: normalize.mean has 2 values; input_channel is 3"),
        ("{mean: [0.5, 0.5, 0.5], std: [1, 0, 1]}", "3:45: normalize.std values must be finite and positive"),
        ("{mean: [0.5, 0.5, 0.5]}", "3:12: normalize needs 'std' (normalize: {mean: [0.5], std: [0.25]})"),
        ("{mean: [0, 0, 0], sd: [1, 1, 1]}", "3:30: unknown normalize key 'sd' (did you mean 'std'?)"),
        ("[0.5, 0.25]", "3:12: normalize must be a mapping like normalize: {mean: [0.5], std: [0.25]}, not a list"),
        ("{mean: [0, 0, 0], std: [1, 1, 1], scaled_from: 0}", "3:59: normalize.scaled_from must be positive, got 0.0"),
        ("{mean: [0, 0, 0], std: [1, 1, 1], scaled_from: x}", "3:59: normalize.scaled_from must be a number, not a string ('x')"),
    ],
)
def test_bad_normalize_values_are_located_errors(normalize, message, tmp_path, capsys):
    spec = tmp_path / "net.yaml"
    spec.write_text(NORMALIZED.replace("{mean: [0.5, 0.25, 0.125], std: [0.5, 0.25, 2.0]}", normalize))
    assert main(["compile", str(spec)]) == 2
    assert capsys.readouterr().err == f"yaml2torch: error: {spec}:{message}\n"


def test_report_of_an_output_folder_shows_the_picked_models_test_scores(searched, capsys):
    _, out = searched
    assert main(["report", str(out)]) == 0
    assert capsys.readouterr().err == f"wrote {out / 'report.html'}\n"
    page = (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    test = summary["picked"]["test"]
    assert f"accuracy {test['accuracy']:.4f}, macro F1 {test['f1']:.4f}" in page
    assert "<th>precision</th><th>recall</th><th>F1</th><th>support</th>" in page
    assert "Confusion matrix (rows: true class, columns: predicted)" in page
    assert "2 completed trials: too few for parameter importances to mean anything" in page
    assert "Trained accuracy against params" in page and "Trained accuracy against macs" in page
    # best takes the study file a user sees in the output folder, and --study may be left out.
    capsys.readouterr()
    assert main(["best", "--storage", str(out / "study.log"), "-o", str(out / "again")]) == 0
    assert (out / "again" / "best_model.py").read_text() == (out / "best_model.py").read_text()
    picked = summary["picked"]
    assert capsys.readouterr().out == (  # one line, as the search's closing line
        f"picked trial {picked['number']} ({picked['arch_hash'][:12]}): test accuracy {test['accuracy']:.4f}, "
        f"test f1 {test['f1']:.4f}, params {picked['params']:,}; files in {out / 'again'}\n"
    )


def test_report_without_output_writes_report_html_beside_the_study_file(searched, capsys):
    """However the study is named (--storage folder, its study.log, a journal URL, the file as
    the source), the default report is OUT/report.html, as for ``report OUT``."""
    _, out = searched
    report = out / "report.html"
    for argv in (
        ["--storage", str(out)],
        ["--storage", str(out / "study.log")],
        ["--storage", f"journal://{(out / 'study.log').resolve()}"],
        [str(out / "study.log")],
    ):
        report.unlink(missing_ok=True)
        assert main(["report", *argv]) == 0, argv
        written = capsys.readouterr().err.removeprefix("wrote ").rstrip("\n")
        assert Path(written).resolve() == report.resolve(), argv
        assert "Confusion matrix" in report.read_text()


def test_train_from_a_study_retrains_the_picked_trial_with_its_settings(searched, tmp_path, capsys):
    _, out = searched
    summary = json.loads((out / "summary.json").read_text())
    target = tmp_path / "retrained"
    assert main(["train", "--from", str(out), "--epochs", "1", "--quiet", "-o", str(target)]) == 0
    metrics = json.loads((target / "metrics.json").read_text())
    assert metrics["source"] == f"shapes:trial {summary['picked']['number']}"
    assert metrics["train"]["batch_size"] == 16 and metrics["train"]["epochs"] == 1
    assert (target / "spec.yaml").read_text() == (out / "best.yaml").read_text()
    assert main(["train", "--from", str(out), "--trial", "7", "-o", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.endswith("yaml2torch: error: --trial 7: study 'shapes' has trials 0 to 1\n")


def test_the_course_example_runs_on_an_image_folder(tmp_path):
    """examples/search/course_imagefolder.yaml as shipped: cells, F1 + MACs, conditional optimizer."""
    import shutil

    from conftest import ROOT

    shutil.copy(ROOT / "examples" / "search" / "course_imagefolder.yaml", tmp_path / "course.yaml")
    image_folder(tmp_path / "data" / "images", per_class=12, size=24)
    out = tmp_path / "out"
    args = ["search", str(tmp_path / "course.yaml"), "--trials", "3", "--epochs", "1", "--out", str(out), "--quiet"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objectives"] == [["f1", "maximize"], ["macs", "minimize"]]
    assert summary["trials"] == {"complete": 3} and summary["pareto"]
    for entry in summary["pareto"]:
        yaml_path, py_path = out / entry["file"], out / entry["model"]
        assert main(["compile", str(yaml_path), "-o", str(py_path), "--check"]) == 0
    pareto = [str(out / entry["file"]) for entry in summary["pareto"]]
    assert main(["fmt", "--check", str(out / "best.yaml"), *pareto]) == 0
    assert main(["check", "--fresh", str(out / "best.yaml"), *pareto]) == 0
    assert "normalize: {mean: [" in (out / "best.yaml").read_text()

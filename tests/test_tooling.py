"""Tooling (issue 11): JSON Schemas (golden, validated with jsonschema), the block listing and its
doc, fmt, the pre-commit hooks' command and the git textconv driver, on temporary git repositories."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

jsonschema = pytest.importorskip("jsonschema")

SCHEMAS = {kind: ROOT / "schemas" / f"{kind}.schema.json" for kind in ("model", "search")}
MODEL_FILES = sorted(p for p in (ROOT / "examples").rglob("*.yaml") if "search" not in p.parts)
SEARCH_FILES = sorted((ROOT / "examples" / "search").glob("*.yaml"))
DOC = ROOT / "docs" / "blocks.md"


def regenerate(kind: str) -> str:
    return f"regenerate with: .venv/bin/yaml2torch schema {kind} > schemas/{kind}.schema.json"


def plain_data(path: Path) -> object:
    """The file as the compiler reads it, less keys that only hold a YAML anchor (which the loader
    accepts; JSON Schema sees values, not anchors)."""
    from yaml2torch.spec.yaml_nodes import load_text, read_text

    root = load_text(read_text(path), str(path))
    data = root.plain()
    if isinstance(data, dict):
        for key, node in root.value.items():  # type: ignore[union-attr]
            if node.defines_anchor and key != "anchors":
                data.pop(key)
    return data


def validator(kind: str):
    schema = json.loads(SCHEMAS[kind].read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(kind: str, data: object) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator(kind).iter_errors(data)]


@pytest.mark.parametrize("kind", SCHEMAS)
def test_committed_schema_is_current(kind: str) -> None:
    from yaml2torch.tooling.schema import schema_text

    path = SCHEMAS[kind]
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing; {regenerate(kind)}"
    assert path.read_text(encoding="utf-8") == schema_text(kind), f"{path.relative_to(ROOT)} is stale; {regenerate(kind)}"


def test_block_reference_doc_is_current() -> None:
    from yaml2torch.tooling.block_list import blocks_markdown

    assert DOC.read_text(encoding="utf-8") == blocks_markdown(), (
        "docs/blocks.md is stale; regenerate with: .venv/bin/yaml2torch blocks --markdown > docs/blocks.md"
    )


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_model_file_validates(path: Path) -> None:
    assert errors("model", plain_data(path)) == []


@pytest.mark.parametrize("path", SEARCH_FILES, ids=lambda p: p.name)
def test_every_example_search_file_validates(path: Path) -> None:
    assert errors("search", plain_data(path)) == []


def test_ultralytics_classifier_files_validate() -> None:
    """The ultralytics model files docs/origin_formats.md says compile."""
    ultralytics = pytest.importorskip("ultralytics")
    cfg = Path(ultralytics.__file__).parent / "cfg" / "models"
    names = ("v8/yolov8-cls.yaml", "v8/yolov8-cls-resnet50.yaml", "v8/yolov8-cls-resnet101.yaml", "11/yolo11-cls.yaml", "26/yolo26-cls.yaml")
    found = [cfg / name for name in names if (cfg / name).is_file()]
    assert found
    for path in found:
        assert errors("model", plain_data(path)) == [], path


def lenet() -> dict:
    return plain_data(ROOT / "examples" / "models" / "lenet.yaml")  # type: ignore[return-value]


@pytest.mark.parametrize(
    "mistake",
    ["misspelt top-level key", "misspelt block", "string for a number", "unknown kwarg", "too many args", "unknown activation"],
)
def test_typical_model_mistakes_are_flagged(mistake: str) -> None:
    data = lenet()
    rows = data["backbone"]
    if mistake == "misspelt top-level key":
        data["input_chanel"] = data.pop("input_channel")
    elif mistake == "misspelt block":
        rows[0][1] = "Conb"
    elif mistake == "string for a number":
        rows[0][2][0] = "six"
    elif mistake == "unknown kwarg":
        rows[0] = [-1, *rows[0], {"strid": 2}]
    elif mistake == "too many args":
        rows[1][2] = [2, 2, 0, False, 7]
    else:
        rows[-2][2][1] = "Relu"
    assert errors("model", data) != []


def test_ultralytics_mistakes_are_flagged() -> None:
    data = plain_data(ROOT / "examples" / "models" / "yolo11n_cls.yaml")
    assert errors("model", data) == []
    data["head"][0][3] = ["nc", "one"]  # type: ignore[index]
    assert errors("model", data) != []
    data = plain_data(ROOT / "examples" / "models" / "yolo11n_cls.yaml")
    data["scale"] = data.pop("scales")  # type: ignore[union-attr]  # no marker left: read as our spec
    assert errors("model", data) != []


@pytest.mark.parametrize("mistake", ["misspelt top-level key", "misspelt train key", "misspelt block", "string for a number", "bad choice key", "bad sampler arg"])
def test_typical_search_mistakes_are_flagged(mistake: str) -> None:
    data: dict = plain_data(ROOT / "examples" / "search" / "digits.yaml")  # type: ignore[assignment]
    rows = data["model"]["backbone"]
    if mistake == "misspelt top-level key":
        data["objective"] = data.pop("objectives")
    elif mistake == "misspelt train key":
        data["train"]["epoch"] = 3
    elif mistake == "misspelt block":
        rows[0][1] = "Conb"
    elif mistake == "string for a number":
        data["train"]["epochs"] = "ten"
    elif mistake == "bad choice key":
        rows[0][2][0] = {"int": [8, 32], "stepp": 8}
    else:
        data["sampler"]["n_startup"] = 3
    assert errors("search", data) != []


def test_choice_nodes_stand_wherever_a_value_may() -> None:
    data: dict = plain_data(ROOT / "examples" / "search" / "digits.yaml")  # type: ignore[assignment]
    data["model"]["width_multiple"] = {"choice": [0.5, 1.0]}
    data["model"]["backbone"][0] = [1, {"choice": ["Conv", "DWConv"]}, [16, {"choice": [3, 5]}], ]
    data["model"]["backbone"][2] = {"choice": {"Max": [1, "MaxPool", [2]], "Pass": None}}
    data["train"]["optimizer"] = {"choice": {"A": {"type": "Adam", "lr": {"float": [0.001, 0.1], "log": True}}, "S": "SGD"}}
    assert errors("search", data) == []


def test_every_arg_type_of_the_catalogue_has_a_schema() -> None:
    from yaml2torch.blocks import builtin_blocks
    from yaml2torch.tooling.arg_schemas import unknown_arg_types

    args = [arg for dialect in ("yaml2torch", "ultralytics") for block in builtin_blocks(dialect).values() for arg in block.signature]
    assert unknown_arg_types(args) == set()


def test_blocks_listing(run_cli) -> None:
    from yaml2torch.blocks import builtin_blocks

    result = run_cli("blocks", "--json")
    assert result.status == 0
    listed = json.loads(result.stdout)
    names = {(b["name"], b["dialect"]) for b in listed}
    assert {(n, "yaml2torch") for n in builtin_blocks()} <= names
    assert ("C3k2", "ultralytics") in names
    assert all(b["origin"] for b in listed), [b["name"] for b in listed if not b["origin"]]
    conv = next(b for b in listed if b["name"] == "Conv" and b["dialect"] == "yaml2torch")
    assert conv["args"][0] == {"name": "c", "type": "a positive int", "default": None, "kwargs": ["c", "out_channels", "channels"]}
    assert next(b for b in listed if b["name"] == "ResBottleneck")["twin_of"] == "torchvision.models.resnet.Bottleneck"
    table = run_cli("blocks")
    assert table.status == 0 and "InvertedResidualv3" in table.stdout


# --- fmt ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", MODEL_FILES + SEARCH_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_fmt_on_every_example(path: Path) -> None:
    """Idempotent, same meaning, every comment kept; or refused in one line when ruamel.yaml would
    drop a comment (never a silent loss)."""
    from yaml2torch.errors import SpecError
    from yaml2torch.spec.yaml_nodes import load_text
    from yaml2torch.tooling.fmt import comments_of, format_text

    text = path.read_text(encoding="utf-8")
    try:
        once = format_text(text, str(path))
    except SpecError as exc:
        assert "would lose or change the comment" in str(exc)
        return
    assert format_text(once, str(path)) == once
    assert load_text(once, "a").plain() == load_text(text, "b").plain()
    assert comments_of(once) == comments_of(text)


def test_fmt_rewrites_to_the_canonical_layout(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "# header\nbackbone: [[-1, 1, Conv, [8, 3], {activation: SiLU}],  # first\n  [-1, 1, Flatten, []]]\n"
        "input_channel: 3   # rgb\nhead:\n  - - -1\n    - 1\n    - Linear\n    - [10]\n",
        encoding="utf-8",
    )
    assert run_cli("fmt", "--check", spec).status == 1
    assert run_cli("fmt", spec).status == 0
    assert spec.read_text(encoding="utf-8") == (
        "# header\ninput_channel: 3   # rgb\nbackbone:\n  - [-1, 1, Conv, [8, 3], {activation: SiLU}]  # first\n"
        "  - [-1, 1, Flatten, []]\nhead:\n  - [-1, 1, Linear, [10]]\n"
    )
    assert run_cli("fmt", "--check", spec).status == 0


def test_fmt_refuses_what_is_not_a_spec(tmp_path: Path, run_cli) -> None:
    other = tmp_path / "ci.yaml"
    other.write_text("jobs: {build: {runs-on: ubuntu}}\n", encoding="utf-8")
    result = run_cli("fmt", other)
    assert result.status == 2
    assert result.stderr.startswith("yaml2torch: error: ") and result.stderr.count("\n") == 1
    assert "not a model spec or search file" in result.stderr
    assert other.read_text(encoding="utf-8") == "jobs: {build: {runs-on: ubuntu}}\n"


def test_fmt_never_evaluates_anything(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("input_channel: 3\nbackbone: [[-1, 1, !!python/object/apply:os.system [echo hi], []]]\n", encoding="utf-8")
    result = run_cli("fmt", spec)
    assert result.status == 2 and "tag" in result.stderr


# --- pre-commit hooks and textconv on temporary git repositories --------------------------------


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo.parent)}
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def new_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q")
    git(path, "config", "user.name", "Test")
    git(path, "config", "user.email", "test@example.com")
    return path


def hook_command(hook_id: str) -> list[str]:
    """A hook's entry from .pre-commit-hooks.yaml, run with this interpreter's yaml2torch."""
    import yaml

    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))}
    assert hooks[hook_id]["language"] == "python"
    entry = hooks[hook_id]["entry"].split()
    assert entry[0] == "yaml2torch"
    return [sys.executable, "-m", "yaml2torch", *entry[1:]]


def run_hook(repo: Path, hook_id: str) -> subprocess.CompletedProcess:
    """As pre-commit runs it: the entry plus the staged files its `files:` pattern matches."""
    import re

    import yaml

    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))}
    files = [f for f in git(repo, "diff", "--cached", "--name-only").split() if re.search(hooks[hook_id]["files"], f)]
    assert files
    return subprocess.run([*hook_command(hook_id), *files], cwd=repo, capture_output=True, text=True, timeout=300, check=False)


def test_pre_commit_hooks_on_a_git_repository(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    spec = repo / "lenet.y2t.yaml"
    shutil.copy(ROOT / "examples" / "models" / "lenet.yaml", spec)
    git(repo, "add", spec.name)
    stale = run_hook(repo, "yaml2torch-fresh")
    assert stale.returncode == 1 and "lenet.py is missing: run 'yaml2torch compile lenet.y2t.yaml -o lenet.py'" in stale.stderr
    assert run_hook(repo, "yaml2torch-check").returncode == 0  # it compiles; writes nothing
    assert not (repo / "lenet.py").exists()

    subprocess.run([sys.executable, "-m", "yaml2torch", "compile", spec.name, "-o", "lenet.py"], cwd=repo, check=True, capture_output=True)
    git(repo, "add", "lenet.py")
    assert run_hook(repo, "yaml2torch-fresh").returncode == 0
    spec.write_text(spec.read_text(encoding="utf-8").replace("[1, Linear, [9]]", "[1, Linear, [10]]"), encoding="utf-8")
    git(repo, "add", spec.name)
    result = run_hook(repo, "yaml2torch-fresh")
    assert result.returncode == 1 and "lenet.py is stale" in result.stderr

    spec.write_text(spec.read_text(encoding="utf-8").replace("Linear, [10]", "Linaer, [10]"), encoding="utf-8")
    git(repo, "add", spec.name)
    broken = run_hook(repo, "yaml2torch-check")
    assert broken.returncode == 1 and "unknown block 'Linaer'" in broken.stderr


def test_textconv_makes_git_diff_show_generated_code(tmp_path: Path) -> None:
    """A spec in a subfolder that uses a YamlModule file relative to itself: git hands the driver
    a temporary copy for the old side; the driver finds the sub-spec through the tracked file."""
    repo = new_repo(tmp_path / "repo")
    models = repo / "models"
    (models / "modules").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "models" / "yaml_module.yaml", models / "net.yaml")
    for sub in ("inception.yaml", "residual.yaml"):
        shutil.copy(ROOT / "examples" / "models" / "modules" / sub, models / "modules" / sub)
    (repo / ".gitattributes").write_text("models/*.yaml diff=yaml2torch\n", encoding="utf-8")
    git(repo, "config", "diff.yaml2torch.textconv", f"{sys.executable} -m yaml2torch textconv")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "net")
    spec = models / "net.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("[-1, 1, Conv, [64, 3, 2]]", "[-1, 1, Conv, [96, 3, 2]]"), encoding="utf-8")

    diff = git(repo, "diff")
    assert "yaml2torch: error" not in diff
    assert "-        self.l4 = Conv(" in diff or "InceptionModule" in diff, diff[:2000]
    assert any(line.startswith("+") and "96" in line for line in diff.splitlines())
    assert "[-1, 1, Conv, [96, 3, 2]]" not in diff  # the generated code is diffed, not the YAML

    git(repo, "commit", "-qam", "wider")
    log = git(repo, "log", "-p", "-1")
    assert "class Model(nn.Module)" in log or "96" in log
    assert "yaml2torch: error" not in log


def test_textconv_without_a_repository_uses_base_dir(tmp_path: Path, run_cli) -> None:
    temp_copy = tmp_path / "Ab3dE9_yaml_module.yaml"
    shutil.copy(ROOT / "examples" / "models" / "yaml_module.yaml", temp_copy)
    result = run_cli("textconv", temp_copy, "--base-dir", ROOT / "examples" / "models")
    assert result.status == 0 and "class InceptionModule" in result.stdout


def test_textconv_shows_a_broken_spec_as_text_and_error(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("input_channel: 3\nbackbone: [[1, Conb, []]]\n", encoding="utf-8")
    result = run_cli("textconv", spec)
    assert result.status == 0
    assert result.stdout.startswith("input_channel: 3\n") and "# yaml2torch: error:" in result.stdout

"""Tooling (issue 11): JSON Schemas (golden, validated with jsonschema), the block listing and its
doc, fmt, the pre-commit hooks' command and the git textconv driver, on temporary git repositories."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from yaml2torch.errors import SpecError
from yaml2torch.search.config import parse_config

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


@pytest.mark.parametrize(
    "objectives, pruner, valid",
    [
        (["f1", "macs"], {"type": "Median"}, False),
        (["f1", "macs"], "Hyperband", False),
        (["f1", "macs"], {"type": "Dominance", "min_dominators": 2}, True),
        (["f1", "macs"], {"type": "Dominance", "min_percent": 100}, True),
        (["f1", "macs"], {"type": "Dominance", "min_percent": 101}, False),
        (["f1", "macs"], "none", True),
        ({"f1": "maximize", "macs": "minimize"}, "Median", False),
        (["accuracy"], "Dominance", False),
        ("accuracy", {"type": "Dominance"}, False),
        (None, "Dominance", False),  # no objectives: accuracy alone
        (None, "Median", True),
    ],
)
def test_the_pruner_must_suit_the_number_of_objectives(objectives: object, pruner: object, valid: bool) -> None:
    data: dict = plain_data(ROOT / "examples" / "search" / "digits.yaml")  # type: ignore[assignment]
    data.pop("objectives", None)
    if objectives is not None:
        data["objectives"] = objectives
    data["pruner"] = pruner
    assert (errors("search", data) == []) == valid
    text = yaml.safe_dump(data, sort_keys=False)
    try:  # the loader agrees
        parse_config(text, "s.yaml", ROOT / "examples" / "search")
    except SpecError:
        assert not valid
    else:
        assert valid


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
    assert conv["args"][0] == {
        "name": "c", "type": "a positive int", "required": True, "default": None, "kwargs": ["c", "out_channels", "channels"]
    }
    args = {(b["name"], a["name"]): a for b in listed if b["dialect"] == "yaml2torch" for a in b["args"]}
    assert (args["Conv", "k"]["required"], args["Conv", "k"]["default"]) == (False, 1)  # JSON values, not strings
    assert (args["Dropout", "p"]["default"], args["SPP", "ks"]["default"]) == (0.5, [5, 9, 13])
    assert (args["UpSample", "scale"]["required"], args["UpSample", "scale"]["default"]) == (False, None)  # a None default
    assert args["Conv", "act"]["default"] == "ReLU" and args["Focus", "act"]["required"] is False  # an activation by name
    assert next(b for b in listed if b["name"] == "ResBottleneck")["twin_of"] == "torchvision.models.resnet.Bottleneck"
    table = run_cli("blocks")
    assert table.status == 0 and "InvertedResidualv3" in table.stdout


def test_block_summaries_agree_with_the_defaults() -> None:
    """A summary that spells the signature (``[c, k=1, ...]``) gives each default as the code does,
    and the reference names no internals."""
    from yaml2torch.tooling.block_list import all_blocks

    spelt = 0
    for info in all_blocks():
        match = re.match(r"``\[(.*?)\]``", info.summary)
        args = {arg.name: arg for arg in info.args}
        for part in match.group(1).split(", ") if match else []:
            name, _, default = part.partition("=")
            if name in args:
                spelt += 1
                assert (args[name].required, args[name].default_text) == (not default, default), (info.name, part)
    assert spelt > 20
    assert "for_row" not in DOC.read_text(encoding="utf-8")
    assert "`[size=null, scale=null, mode=nearest]`" in DOC.read_text(encoding="utf-8")


# --- fmt ----------------------------------------------------------------------------------------

# The ultralytics model files yaml2torch compiles (tests/test_ultralytics.py), relative to cfg/models.
ULTRALYTICS_FILES = (
    "v8/yolov8-cls.yaml",
    "v8/yolov8-cls-resnet50.yaml",
    "v8/yolov8-cls-resnet101.yaml",
    "11/yolo11-cls.yaml",
    "11/yolo11-cls-resnet18.yaml",
    "12/yolo12-cls.yaml",
    "26/yolo26-cls.yaml",
)


def comment_neighbours(text: str) -> tuple[list[str], dict[tuple[str, str], list[str]]]:
    """The docs' rule, stated apart from fmt's code: (the file's header: the comments above the
    first content line up to the last blank line among them, or all of them when there is none;
    {(where, content line): comments}), where a comment that ends a line is "on" its content and
    any other is "above" the next content line (lines of brackets only skipped; "- " and a
    trailing "," ignored, so a row reads the same in either layout)."""
    header: list[str] = []
    found: dict[tuple[str, str], list[str]] = {}
    pending: list[str] = []  # comments and blank lines ("") since the last content line
    for line in text.splitlines():
        hashes = [i for i, ch in enumerate(line) if ch == "#" and (i == 0 or line[i - 1] in " \t")]
        content = (line[: hashes[0]] if hashes else line).strip().removeprefix("- ").removesuffix(",").strip()
        comment = line[hashes[0] :].rstrip() if hashes else ""
        if not content.strip("[]{} "):
            pending.append(comment)
            continue
        if not found and not header:
            cut = max((n for n, c in enumerate(pending) if not c), default=len(pending) - 1)
            header, pending = [c for c in pending[: cut + 1] if c], pending[cut + 1 :]
        found.setdefault(("above", content), []).extend(c for c in pending if c)
        found.setdefault(("on", content), []).extend([comment] if comment else [])
        pending = []
    found.setdefault(("above", "<end>"), []).extend(c for c in pending if c)
    return header, {key: value for key, value in found.items() if value}


def generated(text: str, path: Path, options=None) -> str:
    from yaml2torch.compiler import compile_spec
    from yaml2torch.spec.load import load_spec_text

    source = compile_spec(load_spec_text(text, str(path), path.parent, options=options)).source
    return re.sub(r"\(sha256 [0-9a-f]+\)", "(sha256 ...)", source, count=1)  # the hash of the spec's text


def search_config(text: str, path: Path) -> tuple:
    """What a search file asks for: its settings and, for each walk over the model and training
    spaces, the parameters asked for (in order) and the values they give."""
    from yaml2torch.search import space as sp
    from yaml2torch.search.config import parse_config

    class Recording(sp.WalkParams):
        asked: list[str]

        def categorical(self, name, labels):
            self.asked.append(name)
            return super().categorical(name, labels)

        def integer(self, name, low, high, step, log):
            self.asked.append(name)
            return super().integer(name, low, high, step, log)

        def real(self, name, low, high, step, log):
            self.asked.append(name)
            return super().real(name, low, high, step, log)

    config = parse_config(text, str(path), path.parent)
    walks = []
    for space in (config.model, config.train):
        for k in range(sp.walk_passes(space) if space is not None else 0):
            params = Recording(k)
            params.asked = []
            walks.append((sp.plain(sp.sample(space, params)), params.asked))
    python = (config.python.path, config.python.function) if config.python else None
    settings = (config.study, config.seed, config.trials, config.timeout, config.data.key(), config.objectives)
    components = [(c.type, c.kwargs) for c in (config.sampler, config.pruner)]
    return settings, config.constraints, config.pick, components, python, walks


def check_fmt(source: Path, copy: Path, run_cli) -> str:
    """fmt FILE (the real command, on a copy): exit 0, idempotent byte for byte, every comment
    kept beside the same content line, the same data. Returns the formatted text."""
    from yaml2torch.spec.yaml_nodes import load_text
    from yaml2torch.tooling.fmt import comments_of

    text = source.read_text(encoding="utf-8")
    copy.write_text(text, encoding="utf-8")
    result = run_cli("fmt", copy)
    assert result.status == 0, result.stderr
    once = copy.read_text(encoding="utf-8")
    assert run_cli("fmt", "--check", copy).status == 0
    assert run_cli("fmt", copy).status == 0 and copy.read_text(encoding="utf-8") == once
    header, neighbours = comment_neighbours(text)
    assert sorted(header + [c for found in neighbours.values() for c in found]) == sorted(comments_of(text))  # both scans agree
    assert comment_neighbours(once) == (header, neighbours)
    assert sorted(comments_of(once)) == sorted(comments_of(text))
    assert load_text(once, "a").plain() == load_text(text, "b").plain()
    return once


@pytest.mark.parametrize("path", MODEL_FILES + SEARCH_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_fmt_on_every_example(path: Path, tmp_path: Path, run_cli) -> None:
    """Every example: formatted, idempotent, comments kept beside their content; a model file
    compiles to the same code (a sub-spec: its includer does), a search file asks for the same
    parameters in the same order and gives the same models and settings."""
    text = path.read_text(encoding="utf-8")
    once = check_fmt(path, tmp_path / path.name, run_cli)
    if "search" in path.parts:
        assert search_config(once, path) == search_config(text, path)
    elif "modules" in path.parts:
        models = tmp_path / "models"
        shutil.copytree(path.parent.parent, models)
        (models / "modules" / path.name).write_text(once, encoding="utf-8")
        includer = path.parent.parent / "yaml_module.yaml"
        assert f"modules/{path.name}" in includer.read_text(encoding="utf-8")
        assert generated(includer.read_text(), models / includer.name) == generated(includer.read_text(), includer)
    else:
        assert generated(once, path) == generated(text, path)


@pytest.mark.parametrize("name", ULTRALYTICS_FILES)
def test_fmt_on_the_ultralytics_files(name: str, tmp_path: Path, run_cli) -> None:
    from yaml2torch.spec.ultralytics import UltralyticsOptions

    path = Path(pytest.importorskip("ultralytics").__file__).parent / "cfg" / "models" / name
    once = check_fmt(path, tmp_path / path.name, run_cli)
    text = path.read_text(encoding="utf-8")
    options = UltralyticsOptions("n" if "scales:" in text else None, 10)
    assert generated(once, path, options) == generated(text, path, options)


def test_fmt_rewrites_to_the_canonical_layout(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "# header\nbackbone: [[-1, 1, Conv, [8, 3], {activation: SiLU}],  # first\n  [-1, 1, Flatten, []]]\n"
        "input_channel: 3   # rgb\nhead:\n  - - -1\n    - 1\n    - Linear\n    - [10]\n",
        encoding="utf-8",
    )
    assert run_cli("fmt", "--check", spec).status == 1
    assert spec.read_text(encoding="utf-8").startswith("# header\nbackbone: [[")  # --check writes nothing
    assert run_cli("fmt", spec).status == 0
    assert spec.read_text(encoding="utf-8") == (
        "# header\ninput_channel: 3   # rgb\nbackbone:\n  - [-1, 1, Conv, [8, 3], {activation: SiLU}]   # first\n"
        "  - [-1, 1, Flatten, []]\nhead:\n  - [-1, 1, Linear, [10]]\n"
    )
    assert run_cli("fmt", "--check", spec).status == 0


def test_fmt_moves_comments_inside_a_row_above_it(tmp_path: Path, run_cli) -> None:
    """A row written over several lines becomes one line: the comments inside it go, in order, on
    their own lines right above it; the comment after its end stays at the end of its line."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "input_channel: 3\nbackbone:\n  - - -1   # from\n    - 1\n    - Conv   # the block\n    - [8, 3]\n"
        "  - [-1, 1,   # inside a flow row\n     Flatten, []]   # after it\n"
        "  # - [-1, 1, Dropout, [0.5]]   a row commented out, last in the list\n"
        "head: [[-1, 1, Linear, [10]]]\n",
        encoding="utf-8",
    )
    assert run_cli("fmt", spec).status == 0
    assert spec.read_text(encoding="utf-8") == (
        "input_channel: 3\nbackbone:\n  # from\n  # the block\n  - [-1, 1, Conv, [8, 3]]\n"
        "  # inside a flow row\n  - [-1, 1, Flatten, []]  # after it\n"
        "  # - [-1, 1, Dropout, [0.5]]   a row commented out, last in the list\n"
        "head:\n  - [-1, 1, Linear, [10]]\n"
    )


def test_fmt_orders_the_keys_of_a_search_file_at_every_level(tmp_path: Path, run_cli) -> None:
    """Sections in the order of search/config.py's constants, an optimizer's arguments in the
    order of its type's, a sampler's type first; but a mapping whose new order would change the
    order parameters are sampled in (Optuna's seeded samplers draw in that order) keeps its own."""
    search = tmp_path / "s.yaml"
    search.write_text(
        "objectives: [accuracy]\ndata: {limit: 100, source: digits}   # small\n"
        "train:\n  image_size: 16\n  optimizer: {betas: [0.9, 0.99], lr: 0.01, type: Adam}\n  epochs: 2\n"
        "sampler: {n_startup_trials: 2, type: TPE}\n"
        "model:\n  width_multiple: {choice: [0.5, 1.0]}\n  depth_multiple: {choice: [0.5, 1.0]}\n"
        "  backbone: [[1, Conv, [{int: [8, 16], step: 8}, 3, 1]], [1, Flatten, []]]\n  head: [[1, Linear, [10]]]\n",
        encoding="utf-8",
    )
    before = search_config(search.read_text(encoding="utf-8"), search)
    assert run_cli("fmt", search).status == 0
    assert search.read_text(encoding="utf-8") == (
        "data: {source: digits, limit: 100}   # small\n"
        "model:\n  width_multiple: {choice: [0.5, 1.0]}\n  depth_multiple: {choice: [0.5, 1.0]}\n"
        "  backbone:\n    - [1, Conv, [{int: [8, 16], step: 8}, 3, 1]]\n    - [1, Flatten, []]\n"
        "  head:\n    - [1, Linear, [10]]\n"
        "train:\n  epochs: 2\n  optimizer: {type: Adam, lr: 0.01, betas: [0.9, 0.99]}\n  image_size: 16\n"
        "objectives: [accuracy]\nsampler: {type: TPE, n_startup_trials: 2}\n"
    )
    assert search_config(search.read_text(encoding="utf-8"), search) == before


def test_fmt_puts_anchors_before_their_aliases(tmp_path: Path, run_cli) -> None:
    """Keys holding anchors come first (as written) when the canonical order would put an alias
    before its anchor."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "input_size: 32\n# parked anchors\nanchors: {c: &c 8}\nbackbone: [[-1, 1, Conv, [*c, 3]]]\ninput_channel: 3\n",
        encoding="utf-8",
    )
    assert run_cli("fmt", spec).status == 0
    assert spec.read_text(encoding="utf-8") == (  # the constants' order would put anchors: last
        "# parked anchors\nanchors: {c: &c 8}\ninput_channel: 3\ninput_size: 32\nbackbone:\n  - [-1, 1, Conv, [*c, 3]]\n"
    )


def test_fmt_refuses_what_it_cannot_write_back(tmp_path: Path, run_cli) -> None:
    """A scalar over several lines cannot be written on a row's line unchanged: refused at its
    place in one line, the file left as it is."""
    spec = tmp_path / "spec.yaml"
    text = "input_channel: 3\nbackbone:\n  - [-1, 1, Conv, [8, 3], {activation: \"Si\n      LU\"}]\n"
    spec.write_text(text, encoding="utf-8")
    result = run_cli("fmt", spec)
    assert result.status == 2
    assert result.stderr == f"yaml2torch: error: {spec}:3:40: fmt does not rewrite a value written over several lines; write it on one line\n"
    assert spec.read_text(encoding="utf-8") == text


def test_fmt_refuses_what_is_not_a_spec(tmp_path: Path, run_cli) -> None:
    other = tmp_path / "ci.yaml"
    other.write_text("jobs: {build: {runs-on: ubuntu}}\n", encoding="utf-8")
    result = run_cli("fmt", other)
    assert result.status == 2
    assert result.stderr.startswith(f"yaml2torch: error: {other}:1:1: ") and result.stderr.count("\n") == 1
    assert "not a model spec or search file" in result.stderr
    assert other.read_text(encoding="utf-8") == "jobs: {build: {runs-on: ubuntu}}\n"


def test_fmt_never_evaluates_anything(tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("input_channel: 3\nbackbone: [[-1, 1, !!python/object/apply:os.system [echo hi], []]]\n", encoding="utf-8")
    result = run_cli("fmt", spec)
    assert result.status == 2 and "tag" in result.stderr


def test_fmt_on_a_folder(tmp_path: Path, run_cli) -> None:
    """A folder: every spec or search *.yaml/*.yml under it (hidden folders aside); other YAML
    files are left alone; one bad spec and nothing is written."""
    folder = tmp_path / "specs"
    shutil.copytree(ROOT / "examples", folder)
    (folder / "ci.yml").write_text("jobs: {build: {runs-on: ubuntu}}\n", encoding="utf-8")
    (folder / "models" / "unformatted.yaml").write_text(UNFORMATTED, encoding="utf-8")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "broken.yaml").write_text("backbone: [\n", encoding="utf-8")
    texts = {p: p.read_text(encoding="utf-8") for p in folder.rglob("*.y*ml")}
    check = run_cli("fmt", "--check", folder)
    assert check.status == 1 and "would reformat" in check.stderr
    assert {p: p.read_text(encoding="utf-8") for p in texts} == texts
    (folder / "models" / "broken.yaml").write_text("backbone: [\n", encoding="utf-8")
    assert run_cli("fmt", folder).status == 2
    assert {p: p.read_text(encoding="utf-8") for p in texts} == texts
    (folder / "models" / "broken.yaml").unlink()
    assert run_cli("fmt", folder).status == 0
    assert run_cli("fmt", "--check", folder).status == 0
    assert (folder / "ci.yml").read_text(encoding="utf-8") == texts[folder / "ci.yml"]
    missing = run_cli("fmt", tmp_path / "absent")
    assert (missing.status, missing.stderr) == (2, f"yaml2torch: error: {tmp_path / 'absent'}: no such file or folder\n")


# YAML files a folder may hold that are not specs: each left alone with a note, never an error.
NOT_SPECS: dict[str, bytes] = {
    "workflow.yml": b"on: [push]\njobs:\n  build: {runs-on: ubuntu-latest}\n",  # `on` is read as a bool key
    "mkdocs.yml": b"markdown_extensions:\n  - emoji: {emoji_index: !!python/name:material.extensions.emoji.twemoji}\n",
    "gitlab-ci.yml": b"test:\n  script: [!reference [.setup, script], make]\n",
    "k8s.yaml": b"kind: Service\n---\nkind: Deployment\n",
    "chart.yaml": b"metadata:\n  labels: {{ include \"app.labels\" . | nindent 4 }}\n",
    "empty.yaml": b"",
    "dup.yaml": b"name: a\nname: b\n",
    "latin1.yaml": b"# caf\xe9\nname: a\n",
}


def test_fmt_on_a_folder_leaves_other_yaml_files_alone_with_a_note(tmp_path: Path, run_cli) -> None:
    """Given a folder, a YAML file that is not a spec (no top-level backbone:, module:, model: or
    python: key, even when it cannot be read as YAML) is left alone with a note; one that looks
    like a spec and fails is an error. Named one by one, each is an error."""
    folder = tmp_path / "repo"
    folder.mkdir()
    for name, data in NOT_SPECS.items():
        (folder / name).write_bytes(data)
    spec = folder / "net.yaml"
    spec.write_text("backbone: [[-1, 1, Conv, [8, 3]]]\ninput_channel: 3\n", encoding="utf-8")
    result = run_cli("fmt", folder)
    assert result.status == 0, result.stderr
    notes = result.stderr.splitlines()
    assert sorted(line.split(":")[2].strip().rsplit("/", 1)[-1] for line in notes if line.startswith("yaml2torch: note: ")) == sorted(
        NOT_SPECS
    )
    assert notes[-1] == f"reformatted {spec}" and len(notes) == len(NOT_SPECS) + 1
    assert {name: (folder / name).read_bytes() for name in NOT_SPECS} == NOT_SPECS
    assert spec.read_text(encoding="utf-8") == "input_channel: 3\nbackbone:\n  - [-1, 1, Conv, [8, 3]]\n"
    for name in NOT_SPECS:
        named = run_cli("fmt", folder / name)
        assert named.status == 2 and named.stderr.startswith(f"yaml2torch: error: {folder / name}") and named.stderr.count("\n") == 1
    for broken in (b"backbone: [\n", b"model: {a: 1}\nmodel: {a: 2}\n", b"# \xe9\nbackbone: []\n", b"python: !!python/name:os.system\n"):
        (folder / "broken.yaml").write_bytes(broken)
        result = run_cli("fmt", "--check", folder)
        assert result.status == 2 and result.stderr.startswith(f"yaml2torch: error: {folder / 'broken.yaml'}:"), (broken, result.stderr)


def test_fmt_on_what_is_not_a_regular_file(tmp_path: Path, run_cli) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    result = run_cli("fmt", fifo)
    assert (result.status, result.stderr) == (
        2, f"yaml2torch: error: {fifo}: not a regular file (a FIFO, socket or device); fmt rewrites regular files only\n"
    )
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "gone.yaml")
    result = run_cli("fmt", tmp_path / "dangling.yaml")
    assert (result.status, result.stderr) == (2, f"yaml2torch: error: {tmp_path / 'dangling.yaml'}: a symbolic link to a missing file\n")


def test_fmt_keeps_the_order_of_comments_at_the_end_of_a_block(tmp_path: Path, run_cli) -> None:
    """Comments after a block's last entry keep their order, whatever their indentation: once one
    goes to an outer block, the ones after it follow it there."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("input_channel: 3\nbackbone:\n  - [1, Conv, [8, 3]]  #c1\n  #c2\n#c3\n   #c4\n", encoding="utf-8")
    assert run_cli("fmt", spec).status == 0
    assert spec.read_text(encoding="utf-8") == "input_channel: 3\nbackbone:\n  - [1, Conv, [8, 3]]  #c1\n  #c2\n#c3\n#c4\n"
    spec.write_text("input_channel: 3\nbackbone:\n  - [1, Conv, [8, 3]]\n    #c2\n  #c3\n    #c4\nhead: []\n", encoding="utf-8")
    assert run_cli("fmt", spec).status == 0
    assert comments_in_order(spec) == ["#c2", "#c3", "#c4"]
    assert run_cli("fmt", "--check", spec).status == 0


def comments_in_order(path: Path) -> list[str]:
    from yaml2torch.tooling.fmt import comments_of

    return comments_of(path.read_text(encoding="utf-8"))


def test_fmt_keeps_the_line_ending_of_the_file(tmp_path: Path, run_cli) -> None:
    """CRLF in, CRLF out (the ending of the file's first line); --check passes on a formatted CRLF file."""
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"# header\r\nbackbone: [[-1, 1, Conv, [8, 3]]]  # c\r\ninput_channel: 3\r\n")
    assert run_cli("fmt", "--check", spec).status == 1
    assert run_cli("fmt", spec).status == 0
    assert spec.read_bytes() == b"# header\r\ninput_channel: 3\r\nbackbone:\r\n  - [-1, 1, Conv, [8, 3]]   # c\r\n"
    assert run_cli("fmt", "--check", spec).status == 0
    lf = tmp_path / "lf.yaml"
    lf.write_bytes(spec.read_bytes().replace(b"\r\n", b"\n"))
    assert run_cli("fmt", "--check", lf).status == 0


UNFORMATTED = "backbone: [[-1, 1, Conv, [8, 3]]]\ninput_channel: 3\n"
FORMATTED = "input_channel: 3\nbackbone:\n  - [-1, 1, Conv, [8, 3]]\n"


def test_fmt_writes_through_symbolic_and_hard_links(tmp_path: Path, run_cli) -> None:
    """A symbolic link stays a link and its target is formatted; a file with several hard links is
    rewritten in place, so every name shows the new text; a file reached by several names is
    formatted once; no temporary file is left."""
    real = tmp_path / "real.yaml"
    real.write_text(UNFORMATTED, encoding="utf-8")
    link = tmp_path / "link.yaml"
    link.symlink_to(real.name)
    result = run_cli("fmt", link)
    assert (result.status, result.stderr) == (0, f"reformatted {link}\n")
    assert link.is_symlink() and os.readlink(link) == real.name and real.read_text(encoding="utf-8") == FORMATTED

    real.write_text(UNFORMATTED, encoding="utf-8")
    real.chmod(0o640)
    hard = tmp_path / "hard.yaml"
    os.link(real, hard)
    inode = real.stat().st_ino
    result = run_cli("fmt", tmp_path)  # real, hard and link: one file, formatted once
    assert result.status == 0 and result.stderr.count("reformatted") == 1, result.stderr
    assert real.stat().st_ino == hard.stat().st_ino == inode and real.stat().st_nlink == 2
    assert hard.read_text(encoding="utf-8") == FORMATTED and real.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.yaml", "link.yaml", "real.yaml"]


@pytest.fixture
def immutable(tmp_path: Path):
    """``immutable(path)``: makes a file that even root cannot write (chattr +i); undone after the test."""
    made: list[Path] = []

    def make(path: Path) -> None:
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False).returncode != 0:
            pytest.skip("needs chattr +i (an immutable file) on this file system")
        made.append(path)

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)


def test_fmt_writes_nothing_when_a_file_cannot_be_written(tmp_path: Path, run_cli, immutable) -> None:
    """Every target is checked before any is written: one that cannot be written stops fmt with
    one line, and the others stay as they were."""
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    for path in (first, second):
        path.write_text(UNFORMATTED, encoding="utf-8")
    immutable(second)
    result = run_cli("fmt", first, second)
    assert result.status == 2
    assert re.fullmatch(rf"yaml2torch: error: {re.escape(str(second))}: cannot write: [^\n]+\n", result.stderr), result.stderr
    assert first.read_text(encoding="utf-8") == second.read_text(encoding="utf-8") == UNFORMATTED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml", "b.yaml"]


def test_fmt_names_the_files_written_before_a_write_that_fails(tmp_path: Path) -> None:
    """A write that fails midway (here: over the file size limit, RLIMIT_FSIZE) names the files
    already written; the failed one is left as it was, with no temporary file."""
    import resource
    import signal

    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(UNFORMATTED, encoding="utf-8")
    rows = "".join(f"  [-1, 1, Conv, [8, 3]],  # row {i}\n" for i in range(400))
    second.write_text(f"backbone: [\n{rows}]\ninput_channel: 3\n", encoding="utf-8")
    before = second.read_bytes()
    limit = 8192
    assert len(before) > limit

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-B", "-m", "yaml2torch", "fmt", str(first), str(second)],
        capture_output=True, text=True, timeout=120, check=False, preexec_fn=small_files, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"reformatted {first}",
        f"yaml2torch: error: {second}: cannot write: File too large; already written: {first}",
    ]
    assert first.read_text(encoding="utf-8") == FORMATTED and second.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml", "b.yaml"]


def test_every_example_is_in_the_canonical_layout(run_cli) -> None:
    """The examples are what fmt writes (after editing one: yaml2torch fmt examples/, then
    regenerate generated/ as tests/test_golden.py says)."""
    result = run_cli("fmt", "--check", ROOT / "examples")
    assert result.status == 0, result.stderr


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


def hooks() -> dict[str, dict]:
    import yaml

    return {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))}


def hook_command(hook_id: str) -> list[str]:
    """A hook's entry from .pre-commit-hooks.yaml, run with this interpreter's yaml2torch."""
    hook = hooks()[hook_id]
    assert hook["language"] == ("system" if hook_id.endswith("-system") else "python")
    entry = hook["entry"].split()
    assert entry[0] == "yaml2torch"
    return [sys.executable, "-m", "yaml2torch", *entry[1:]]


def run_hook(repo: Path, hook_id: str, files: str | None = None) -> subprocess.CompletedProcess:
    """As pre-commit runs it: the entry plus the staged files its `files:` pattern (or the one a
    user's config sets) matches."""
    pattern = files or hooks()[hook_id]["files"]
    staged = [f for f in git(repo, "diff", "--cached", "--name-only").split() if re.search(pattern, f)]
    assert staged
    return subprocess.run([*hook_command(hook_id), *staged], cwd=repo, capture_output=True, text=True, timeout=300, check=False)


def test_every_hook_has_a_system_twin() -> None:
    """`language: python` hooks install yaml2torch and torch; each has a `-system` twin that runs
    the yaml2torch on PATH, the same command on the same files."""
    listed = hooks()
    python = {hook_id: hook for hook_id, hook in listed.items() if hook["language"] == "python"}
    assert set(python) == {"yaml2torch-fresh", "yaml2torch-check", "yaml2torch-fmt"}
    for hook_id, hook in python.items():
        twin = listed[f"{hook_id}-system"]
        assert twin["language"] == "system" and (twin["entry"], twin["files"]) == (hook["entry"], hook["files"])
    assert len(listed) == 2 * len(python)


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
    broken = run_hook(repo, "yaml2torch-check-system")
    assert broken.returncode == 2 and "unknown block 'Linaer'" in broken.stderr  # 2: an error; 1: stale


def make_yaml_module_repo(path: Path, name: str = "net.yaml") -> Path:
    """A repository with models/NAME including models/modules/{inception,residual}.yaml (the
    example, residual including inception), committed."""
    repo = new_repo(path)
    models = repo / "models"
    (models / "modules").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "models" / "yaml_module.yaml", models / name)
    for sub in ("inception.yaml", "residual.yaml"):
        shutil.copy(ROOT / "examples" / "models" / "modules" / sub, models / "modules" / sub)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "net")
    return repo


def test_fresh_hook_checks_the_specs_that_include_a_changed_sub_spec(tmp_path: Path) -> None:
    """Only a sub-spec is staged: the hook checks it, then the specs of the repository that include
    it (here through another sub-spec), whose model files are stale."""
    repo = make_yaml_module_repo(tmp_path / "repo", "net.y2t.yaml")
    subprocess.run([sys.executable, "-m", "yaml2torch", "compile", "models/net.y2t.yaml", "-o", "models/net.py"], cwd=repo, check=True)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "model file")
    inception = repo / "models" / "modules" / "inception.yaml"
    inception.write_text(inception.read_text(encoding="utf-8").replace("[arg1, 5, 1]", "[arg1, 7, 1]"), encoding="utf-8")
    git(repo, "add", ".")
    pattern = r"^models/.*\.ya?ml$"  # a user's `files:` that takes in the sub-specs
    assert git(repo, "diff", "--cached", "--name-only").split() == ["models/modules/inception.yaml"]
    stale = run_hook(repo, "yaml2torch-fresh", pattern)
    assert stale.returncode == 1, stale.stderr
    assert stale.stderr == (
        "yaml2torch: models/net.py is stale (models/net.y2t.yaml includes models/modules/inception.yaml): "
        "run 'yaml2torch compile models/net.y2t.yaml -o models/net.py'\n"
    )
    assert run_hook(repo, "yaml2torch-check", pattern).returncode == 0
    subprocess.run([sys.executable, "-m", "yaml2torch", "compile", "models/net.y2t.yaml", "-o", "models/net.py"], cwd=repo, check=True)
    assert run_hook(repo, "yaml2torch-fresh", pattern).returncode == 0

    inception.write_text(inception.read_text(encoding="utf-8").replace("Conv", "Conb", 1), encoding="utf-8")
    git(repo, "add", ".")
    broken = run_hook(repo, "yaml2torch-check", pattern)
    assert broken.returncode == 2 and broken.stderr.startswith("yaml2torch: error: ") and broken.stderr.count("\n") == 1
    assert "models/modules/inception.yaml:" in broken.stderr and "unknown block 'Conb'" in broken.stderr


def test_check_on_a_sub_spec(tmp_path: Path, run_cli) -> None:
    """A sub-spec on its own: its keys and rows are checked (args without a default are the
    includer's); outside a repository a note says its includers are not checked."""
    sub = tmp_path / "block.yaml"
    sub.write_text("args: [16]\nmodule:\n  - [-1, arg1, Conv, [arg0, 3]]\n  - [-1, 1, Conv, [arg0, 1]]\n", encoding="utf-8")
    result = run_cli("check", "--fresh", sub)
    assert (result.status, result.stderr) == (
        0, f"yaml2torch: note: {sub} is a YamlModule sub-spec outside a git repository: the specs that include it are not checked\n"
    )
    sub.write_text("args: [16]\nmodul:\n  - [-1, 1, Conv, [arg0, 3]]\n", encoding="utf-8")
    result = run_cli("check", sub, ROOT / "examples" / "models" / "modules" / "residual.yaml")
    assert (result.status, result.stderr) == (2, f"yaml2torch: error: {sub}:2:1: unknown YamlModule key 'modul' (did you mean 'module'?); a sub-spec has args: and module:\n")
    sub.write_text("module:\n  - [-1, 1, Conv, [8, 3], {}, 7]\n", encoding="utf-8")
    result = run_cli("check", sub)
    assert result.status == 2 and "a row has 3 elements" in result.stderr


def test_check_fresh_exit_status_and_model_files_in_the_way(tmp_path: Path, run_cli) -> None:
    """0 fresh, 1 stale or missing (a model file that is not UTF-8 is stale), 2 an error: a spec
    that does not compile, a folder or a FIFO where the model file goes (regenerating would not fix it)."""
    spec = tmp_path / "n.yaml"
    shutil.copy(ROOT / "examples" / "models" / "lenet.yaml", spec)
    out = tmp_path / "n.py"
    assert run_cli("check", "--fresh", spec).status == 1
    assert run_cli("compile", spec, "-o", out).status == 0
    assert run_cli("check", "--fresh", spec).status == 0
    out.write_bytes(b"# caf\xe9\n")
    result = run_cli("check", "--fresh", spec)
    assert (result.status, result.stderr) == (1, f"yaml2torch: {out} is stale: run 'yaml2torch compile {spec} -o {out}'\n")
    out.unlink()
    out.mkdir()
    result = run_cli("check", "--fresh", spec)
    assert (result.status, result.stderr) == (
        2, f"yaml2torch: error: {out}: is a folder where the model file of {spec} goes; move it away, or choose --out-dir\n"
    )
    out.rmdir()
    os.mkfifo(out)
    result = run_cli("check", "--fresh", spec)
    assert result.status == 2 and "not a regular file" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("input_channel: 3\nbackbone: [[1, Conb, []]]\n", encoding="utf-8")
    result = run_cli("check", bad, spec)
    assert (result.status, result.stderr.splitlines()) == (2, [f"yaml2torch: error: {bad}:2:16: unknown block 'Conb' (did you mean 'Conv'?)"])


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
    for odd in (tmp_path / "absent.yaml", tmp_path / "pipe.yaml", tmp_path):
        if odd.name == "pipe.yaml":
            os.mkfifo(odd)
        result = run_cli("textconv", odd)
        assert result.status == 0 and result.stdout.startswith(f"# yaml2torch: error: {odd}") and result.stdout.count("\n") == 1


def textconv_repo(path: Path, name: str = "net.yaml") -> Path:
    """make_yaml_module_repo with every *.yaml diffed through `yaml2torch textconv`."""
    repo = make_yaml_module_repo(path, name)
    (repo / ".gitattributes").write_text("*.yaml diff=yaml2torch\n", encoding="utf-8")
    git(repo, "config", "diff.yaml2torch.textconv", f"{sys.executable} -m yaml2torch textconv")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "textconv")
    return repo


def test_textconv_never_makes_git_fail(tmp_path: Path) -> None:
    """A committed file that is not UTF-8, one over the size limit, one whose YamlModule file is
    missing: git show and git log -p still succeed, each file shown as its text and one error line."""
    repo = textconv_repo(tmp_path / "repo")
    (repo / "latin1.yaml").write_bytes(b"# caf\xe9\ninput_channel: 3\nbackbone: [[1, Conv, [8, 3]]]\n")
    lenet = (ROOT / "examples" / "models" / "lenet.yaml").read_text(encoding="utf-8")
    (repo / "big.yaml").write_text(lenet + ("# padding\n" * 110_000), encoding="utf-8")
    shutil.copy(ROOT / "examples" / "models" / "yaml_module.yaml", repo / "orphan.yaml")  # no modules/ beside it
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "odd files")
    for command in (["show", "HEAD"], ["log", "-p"]):
        shown = git(repo, *command)
        assert "+# caf\ufffd\n" in shown and "+# yaml2torch: error: latin1.yaml:1:6: not valid UTF-8 (byte 0xe9)" in shown
        assert "+# yaml2torch: error: big.yaml:1:1: the file is larger than 1,000,000 bytes" in shown
        assert "+# yaml2torch: error: orphan.yaml:" in shown and "YamlModule file 'modules/inception.yaml' not found" in shown
        assert "+input_channel: 3\n" in shown  # the text itself, before the error line
    assert "Traceback" not in git(repo, "log", "-p")


def test_textconv_finds_the_folder_of_a_renamed_spec(tmp_path: Path) -> None:
    """After `git mv`, older commits' versions of a spec still find their YamlModule files (the one
    folder that holds them all); a sub-spec's own diff is its YAML."""
    repo = textconv_repo(tmp_path / "repo")
    spec = repo / "models" / "net.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("[-1, 1, Conv, [64, 3, 2]]", "[-1, 1, Conv, [96, 3, 2]]"), encoding="utf-8")
    git(repo, "commit", "-qam", "wider")
    git(repo, "mv", "models/net.yaml", "models/net2.yaml")
    residual = repo / "models" / "modules" / "residual.yaml"
    residual.write_text(residual.read_text(encoding="utf-8").replace("{activation: null}", "{activation: ReLU}"), encoding="utf-8")
    git(repo, "commit", "-qam", "renamed")
    log = git(repo, "log", "-p")
    assert "yaml2torch: error" not in log
    assert log.count("class InceptionModule") >= 2 and any(line.startswith("+") and "96" in line for line in log.splitlines())
    assert any(line.startswith("+") and "{activation: ReLU}" in line for line in log.splitlines())  # a sub-spec's diff: its YAML


@pytest.mark.parametrize("name", ["net.yaml", "resnet_ym.yaml", "yolov8_cls.yaml"])
def test_textconv_on_the_temporary_names_of_every_git(tmp_path: Path, name: str) -> None:
    """git >= 2.37 copies a committed version to $TMPDIR/git-blob-XXXXXX/NAME, older gits to
    $TMPDIR/XXXXXX_NAME: both find the tracked spec, and a name that only looks like a prefix
    (resnet_ym.yaml) keeps it."""
    import tempfile

    from yaml2torch.tooling.repo import find_repo
    from yaml2torch.tooling.textconv import tracked_name

    repo = textconv_repo(tmp_path / "repo", name)
    found = find_repo(repo)
    assert found is not None
    temp = Path(tempfile.gettempdir())
    assert tracked_name(temp / f"Qw3rT7_{name}", found) == name
    assert tracked_name(temp / name, found) == name
    assert tracked_name(temp / "git-blob-Qw3rT7" / f"Ab12cd_{name}", found) == f"Ab12cd_{name}"
    copies = [temp / f"Qw3rT7_{name}", Path(tempfile.mkdtemp(prefix="git-blob-", dir=tmp_path)) / name]
    copies[1] = copies[1].parent.rename(copies[1].parent.with_name("git-blob-Zx9Yw8")) / name
    try:
        for copy in copies:
            shutil.copy(repo / "models" / name, copy)
            result = subprocess.run(
                [sys.executable, "-m", "yaml2torch", "textconv", str(copy)], cwd=repo, capture_output=True, text=True, timeout=120, check=False
            )
            assert result.returncode == 0 and "class InceptionModule" in result.stdout, result.stdout[-500:]
            assert f"from {name} " in result.stdout.splitlines()[0]
    finally:
        copies[0].unlink(missing_ok=True)

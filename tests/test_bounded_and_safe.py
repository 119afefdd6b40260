"""Issue 10: bounded work, nothing of the user's destroyed, every bad value refused where it enters.

Each limit of ``yaml2torch.spec.limits`` is refused with a located one-line error naming it (the
timing of these refusals belongs in bench/, not here); ``-o`` never replaces an input; a storage
file that cannot hold a study is refused; a folder that cannot be written stops the command with
one line and leaves the study resumable; and every command answers bad input with one line.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import random
import sqlite3
from pathlib import Path

import optuna
import pytest
from conftest import ROOT
from optuna.storages.journal import JournalFileBackend

from yaml2torch.cli import main
from yaml2torch.errors import CannotWrite
from yaml2torch.files import write_atomic
from yaml2torch.scale.storage import journal_url, make_storage
from yaml2torch.spec.limits import MAX_FILE_BYTES, MAX_INCLUDE_DEPTH, MAX_LAYERS, MAX_NODES, MAX_PARAMS

HEAD = "input_channel: 3\ninput_size: [8, 8]\nbackbone:\n"
SPACE = """study: tiny
seed: 0
trials: 1
sampler: Random
pruner: none
data: {limit: 200}
train: {epochs: 1, batch_size: 64, optimizer: {type: Adam, lr: 0.01}}
model: {backbone: [[1, Conv, [4, 3, 1]], [1, GlobalAvgPool, []], [1, Flatten, []], [1, Linear, [10]]]}
"""


def one_line_error(result, expected: str | None = None) -> str:
    """The result is one ``yaml2torch: error:`` line, exit 2, no traceback; the message."""
    assert result.status == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("yaml2torch: error: "), result.stderr
    message = lines[0][len("yaml2torch: error: ") :]
    if expected is not None:
        assert message == expected
    return message


def spec_file(tmp_path: Path, rows: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(HEAD + rows)
    return path


# --- bounded work -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["compile", "summary"])
def test_a_million_repeats_are_refused_before_they_are_built(tmp_path, run_cli, command) -> None:
    spec = spec_file(tmp_path, "  - [1000000, Conv, [16, 3, 1]]\n")
    one_line_error(
        run_cli(command, spec),
        f"{spec}:4:6: repeat 1000000 brings the model to 1,000,000 layers, more than {MAX_LAYERS:,} "
        f"(limit {MAX_LAYERS:,} layers after repeats and depth_multiple, sub-specs included)",
    )


def test_the_layer_limit_counts_depth_multiple_and_sub_specs(tmp_path, run_cli) -> None:
    spec = tmp_path / "deep.yaml"
    spec.write_text("depth_multiple: 0.5\n" + HEAD + "  - [10000, Conv, [8, 3, 1]]\n")
    assert "repeat 10000 (x depth_multiple 0.5 = 5,000) brings the model to 5,000 layers" in one_line_error(
        run_cli("summary", spec)
    )
    (tmp_path / "sub.yaml").write_text("module:\n  - [300, Conv, [8, 3, 1]]\n")
    spec = spec_file(tmp_path, "  - [10, YamlModule, [sub.yaml]]\n", "uses_sub.yaml")
    message = one_line_error(run_cli("summary", spec))
    assert message.startswith(f"{tmp_path / 'sub.yaml'}:2:6: repeat 300 brings the model to 2,1")
    assert message.endswith(f"(in YamlModule at {spec}:4:5)")


def test_a_large_file_without_aliases_is_refused_for_its_size_not_as_an_alias_bomb(tmp_path, run_cli) -> None:
    spec = spec_file(tmp_path, "".join("  - [1, Identity, []]\n" for _ in range(100_000)))
    assert spec.stat().st_size > MAX_FILE_BYTES
    one_line_error(
        run_cli("compile", spec),
        f"{spec}:1:1: the file is larger than {MAX_FILE_BYTES:,} bytes (limit {MAX_FILE_BYTES:,} bytes)",
    )
    spec = spec_file(tmp_path, "".join("  - [1, Identity, []]\n" for _ in range(20_000)), "rows.yaml")
    assert spec.stat().st_size < MAX_FILE_BYTES
    message = one_line_error(run_cli("summary", spec))
    assert message.endswith(
        f"the file holds more than {MAX_NODES:,} YAML values (limit {MAX_NODES:,}); a spec is refused before it is parsed in full"
    )
    assert "alias" not in message


def test_a_50_megabyte_file_is_not_read(tmp_path, run_cli) -> None:
    spec = tmp_path / "huge.yaml"
    with spec.open("wb") as handle:
        handle.truncate(50_000_000)  # sparse: costs no disk
    for command in ("compile", "summary", "train"):
        argv = [command, spec] + (["-o", tmp_path / "out"] if command == "train" else [])
        assert "the file is larger than" in one_line_error(run_cli(*argv))
    space = tmp_path / "space.yaml"
    os.link(spec, space)
    assert "the file is larger than" in one_line_error(run_cli("search", space, "--out", tmp_path / "s"))


def test_a_fifo_or_device_is_not_read_as_a_spec(tmp_path, run_cli) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    one_line_error(
        run_cli("compile", fifo),
        f"{fifo}:1:1: is not a regular file (a FIFO or a device?); yaml2torch reads only files",
    )
    assert "is not a regular file" in one_line_error(run_cli("summary", "/dev/zero"))


def test_a_yaml_module_chain_300_deep_is_refused_at_the_include_limit(tmp_path, run_cli) -> None:
    for i in range(300):
        (tmp_path / f"m{i}.yaml").write_text(f"module:\n  - [1, YamlModule, [m{i + 1}.yaml]]\n")
    (tmp_path / "m300.yaml").write_text("module:\n  - [1, Conv, [8]]\n")
    spec = spec_file(tmp_path, "  - [1, YamlModule, [m0.yaml]]\n")
    depth = MAX_INCLUDE_DEPTH
    one_line_error(
        run_cli("compile", spec),
        f"{tmp_path / f'm{depth - 1}.yaml'}:2:22: YamlModule files nest deeper than {depth} levels (limit {depth}): "
        f"m0.yaml -> ... -> m{depth - 1}.yaml -> m{depth}.yaml (in YamlModule at {tmp_path / f'm{depth - 2}.yaml'}:2:5)",
    )


def test_parameters_beyond_the_limit_are_refused_from_the_analytic_count(tmp_path, run_cli) -> None:
    spec = spec_file(tmp_path, "  - [1, Flatten, []]\n  - [1, Linear, [100000]]\n  - [1, Linear, [200000]]\n")
    one_line_error(
        run_cli("summary", spec),
        f"{spec}:6:5: the model reaches 20,019,500,000 parameters at this row, more than {MAX_PARAMS:,} (limit {MAX_PARAMS:,})",
    )


LAYER_LIMIT = f"(limit {MAX_LAYERS:,} layers after repeats and depth_multiple, sub-specs included)"
PARAM_LIMIT = f"(limit {MAX_PARAMS:,} parameters)"
BIG = "1" + "0" * 400  # an int beyond a float's range


@pytest.mark.parametrize(
    "head, row, at, message",
    [
        ("width_multiple: 1e308\n", "[1, Conv, [6, 3, 1]]", "5:16", f"Conv channels 6 x width_multiple 1e+308 is more than {MAX_PARAMS:,} channels {PARAM_LIMIT}"),
        ("", f"[1, Conv, [{BIG}, 3, 1]]", "4:16", f"Conv channels about 10^400 x width_multiple 1 is more than {MAX_PARAMS:,} channels {PARAM_LIMIT}"),
        ("depth_multiple: 1e308\n", "[2, Conv, [6, 3, 1]]", "5:6", f"repeat 2 (x depth_multiple 1e+308) is more than {MAX_LAYERS:,} layers {LAYER_LIMIT}"),
        ("depth_multiple: 0.5\n", f"[{BIG}, Conv, [6, 3, 1]]", "5:6", f"repeat about 10^400 (x depth_multiple 0.5) is more than {MAX_LAYERS:,} layers {LAYER_LIMIT}"),
        ("", "[1, MBConv, [1e308, 16, 1, 3]]", "4:18", f"MBConv arg 't' must be at most {MAX_PARAMS:,} {PARAM_LIMIT}, got 1e+308"),
    ],
)
def test_huge_multiples_channels_and_repeats_are_refused_before_int_conversion(tmp_path, run_cli, head, row, at, message) -> None:
    """Found by a hostile-input check: these ended in an OverflowError traceback (int(inf), round(inf),
    or an int beyond a float's range multiplied by a multiple)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(head + HEAD + f"  - {row}\n  - [1, Flatten, []]\n")
    one_line_error(run_cli("summary", spec), f"{spec}:{at}: {message}")


@pytest.mark.parametrize(
    "text, at, message",
    [
        ("scales: {n: [1e308, 1e308, 1024]}\n", "4:20", f"Conv channels 64 x width_multiple 1e+308 is more than {MAX_PARAMS:,} channels {PARAM_LIMIT}"),
        ("depth_multiple: 1e308\n", "4:10", f"repeat 3 (x depth_multiple 1e+308) is more than {MAX_LAYERS:,} layers {LAYER_LIMIT}"),
        ("width_multiple: 1e308\n", "4:20", f"Conv channels 64 x width_multiple 1e+308 is more than {MAX_PARAMS:,} channels {PARAM_LIMIT}"),
    ],
)
def test_huge_ultralytics_scales_are_refused_located(tmp_path, run_cli, text, at, message) -> None:
    spec = tmp_path / "yolov8-cls.yaml"
    spec.write_text("nc: 10\n" + text + "backbone:\n  - [-1, 3, Conv, [64, 3]]\nhead:\n  - [-1, 1, Classify, [nc]]\n")
    one_line_error(run_cli("summary", spec), f"{spec}:{at}: {message}")


# --- -o never replaces an input -----------------------------------------------------------------


def test_compile_refuses_an_output_that_is_its_input_by_any_path(tmp_path, run_cli) -> None:
    spec = spec_file(tmp_path, "  - [1, Conv, [8]]\n")
    text = spec.read_text()
    (tmp_path / "link.yaml").symlink_to(spec)
    os.link(spec, tmp_path / "hard.yaml")
    for output in (spec, tmp_path / "link.yaml", tmp_path / "hard.yaml", tmp_path / "." / "spec.yaml"):
        one_line_error(
            run_cli("compile", spec, "-o", output),
            f"-o {output} would overwrite the input {spec}; choose another output path",
        )
    weights = tmp_path / "model.pth"
    weights.write_bytes(b"weights")
    message = one_line_error(run_cli("compile", spec, "--weights", weights, "-o", tmp_path / "model.py"))
    assert message == f"-o {weights} would overwrite the input {weights}; choose another output path"
    assert spec.read_text() == text and weights.read_bytes() == b"weights"
    assert not (tmp_path / "model.py").exists()


def test_report_best_and_train_refuse_to_overwrite_their_inputs(tmp_path, run_cli) -> None:
    db = tmp_path / "study.db"
    optuna.create_study(study_name="s", storage=f"sqlite:///{db}")
    before = db.read_bytes()
    url = f"sqlite:///{db}"
    assert "would overwrite the input" in one_line_error(run_cli("report", "--storage", url, "--study", "s", "-o", db))
    assert "would overwrite the input" in one_line_error(run_cli("best", "--storage", url, "--study", "s", "-o", db))
    assert db.read_bytes() == before
    folder = tmp_path / "trial"
    folder.mkdir()
    spec = spec_file(folder, "  - [1, Conv, [8]]\n")
    one_line_error(
        run_cli("train", spec, "-o", folder),
        f"-o {folder / 'spec.yaml'} would overwrite the input {spec}; choose another output path",
    )


def sub_spec_project(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """spec.yaml with a YamlModule row (sub.yaml, which includes inner.yaml) and a plugin module
    found beside the spec (a fresh module name: imports are cached per process)."""
    (tmp_path / "sub.yaml").write_text("module:\n  - [1, YamlModule, [inner.yaml]]\n")
    (tmp_path / "inner.yaml").write_text("module:\n  - [1, Conv, [8, 3]]\n")
    plugin = tmp_path / f"y2t_guard_{os.getpid()}_{tmp_path.name.replace('-', '_')}.py"
    plugin.write_text((ROOT / "examples" / "plugins" / "my_blocks.py").read_text())
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"modules: [{plugin.stem}]\n" + HEAD + "  - [1, YamlModule, [sub.yaml]]\n")
    return spec, tmp_path / "sub.yaml", tmp_path / "inner.yaml", plugin


def test_compile_never_overwrites_a_sub_spec_or_plugin_module_it_read(tmp_path, run_cli) -> None:
    spec, sub, inner, plugin = sub_spec_project(tmp_path)
    texts = {path: path.read_text() for path in (spec, sub, inner, plugin)}
    (tmp_path / "link.yaml").symlink_to(sub)
    cases = [
        (sub, f"{spec}:5:22", "YamlModule file", sub),
        (tmp_path / "link.yaml", f"{spec}:5:22", "YamlModule file", sub),
        (tmp_path / "." / "inner.yaml", f"{sub}:2:22", "YamlModule file", inner),
        (plugin, f"{spec}:1:11", "plugin module", plugin),
    ]
    for output, location, kind, path in cases:
        one_line_error(
            run_cli("compile", spec, "-o", output),
            f"{location}: -o {output} would overwrite the {kind} {path} read here; choose another output path",
        )
    assert {path: path.read_text() for path in texts} == texts
    assert run_cli("compile", spec, "-o", tmp_path / "model.py").status == 0  # any other path is written
    assert run_cli("compile", spec, "-o", sub, "--check").status == 1  # --check writes nothing: no refusal


def test_train_and_best_never_overwrite_a_sub_spec(tmp_path, run_cli) -> None:
    rows = "  - [1, GlobalAvgPool, []]\n  - [1, Flatten, []]\n  - [1, Linear, [10]]\n"
    (tmp_path / "trained").mkdir()
    trained_sub = tmp_path / "trained" / "spec.yaml"
    trained_sub.write_text("module:\n  - [1, Conv, [4, 3]]\n")
    spec = tmp_path / "digits.yaml"
    spec.write_text("input_channel: 1\nbackbone:\n  - [1, YamlModule, [trained/spec.yaml]]\n" + rows)
    one_line_error(
        run_cli("train", spec, "--epochs", "1", "--quiet", "-o", tmp_path / "trained"),
        f"{spec}:3:22: -o {trained_sub} would overwrite the YamlModule file {trained_sub} read here; "
        "choose another output path",
    )
    assert sorted(p.name for p in (tmp_path / "trained").iterdir()) == ["spec.yaml"]
    assert trained_sub.read_text() == "module:\n  - [1, Conv, [4, 3]]\n"
    (tmp_path / "exported").mkdir()
    sub = tmp_path / "exported" / "best.yaml"
    sub.write_text("module:\n  - [1, Conv, [4, 3]]\n")
    space = tmp_path / "space.yaml"
    space.write_text(SPACE.replace("model: {backbone: [[1, Conv, [4, 3, 1]]", "model: {backbone: [[1, YamlModule, [exported/best.yaml]]"))
    out = tmp_path / "out"
    assert run_cli("search", space, "--out", out, "--quiet", "--device", "cpu").status == 0
    one_line_error(
        run_cli("best", "--storage", out, "-o", tmp_path / "exported"),
        f"-o {sub} would overwrite the YamlModule file {sub} that the spec of trial 0 reads; choose another output path",
    )
    assert sub.read_text() == "module:\n  - [1, Conv, [4, 3]]\n"
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == ["best.yaml"]


# --- storage ------------------------------------------------------------------------------------


def storage_cases(tmp_path: Path) -> dict[str, tuple[str, str]]:
    (tmp_path / "empty.db").touch()
    (tmp_path / "text.db").write_text("not a database\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "garbage").write_text("neither a folder nor a study file\n")
    connection = sqlite3.connect(tmp_path / "other.db")
    connection.execute("CREATE TABLE accounts (id)")
    connection.commit()
    connection.close()
    (tmp_path / "cut.db").write_bytes((tmp_path / "other.db").read_bytes()[:200])
    t = tmp_path
    return {
        "empty": (
            f"sqlite:///{t}/empty.db",
            f"{t}/empty.db is empty (0 bytes), not a study database (truncated?); restore it",  # not "start a new study": reading
        ),
        "text": (
            f"sqlite:///{t}/text.db",
            f"{t}/text.db is not a SQLite database; pass the study's database",
        ),
        "folder": (f"sqlite:///{t}/folder", f"{t}/folder is a folder; name a file in it (e.g. {t}/folder/study.db)"),
        "missing_folder": (
            f"sqlite:///{t}/missing/study.db",
            f"the folder {t}/missing does not exist; create it or choose another path",
        ),
        "other_database": (
            f"sqlite:///{t}/other.db",
            f"{t}/other.db is the SQLite database of something else (tables accounts); yaml2torch will not add its tables to it: choose another file",
        ),
        "damaged": (f"sqlite:///{t}/cut.db", f"{t}/cut.db is a damaged SQLite database"),
        "unknown_scheme": (
            "foo://bar",
            "storage 'foo://bar': Can't load plugin: sqlalchemy.dialects:foo; expected sqlite:///path/study.db",
        ),
        "not_a_url": (f"{t}/garbage", f"storage '{t}/garbage' is neither a database URL"),
        "missing": (f"{t}/nonexist", f"{t}/nonexist: no such folder or file"),  # a mistyped output folder
    }


@pytest.mark.parametrize(
    "case",
    ["empty", "text", "folder", "missing_folder", "other_database", "damaged", "unknown_scheme", "not_a_url", "missing"],
)
def test_storage_that_cannot_hold_a_study_is_refused_with_what_to_do(tmp_path, run_cli, case) -> None:
    url, expected = storage_cases(tmp_path)[case]
    for argv in (("report", "-o", tmp_path / "r.html"), ("best", "-o", tmp_path / "best"), ("worker",)):
        message = one_line_error(run_cli(argv[0], "--storage", url, "--study", "s", *argv[1:]))
        assert expected in message, message
        assert "start a new study" not in message  # these commands read a study; moving the file away gives none
    assert not (tmp_path / "r.html").exists()
    assert not (tmp_path / "other.db").exists() or sqlite3.connect(tmp_path / "other.db").execute(
        "SELECT count(*) FROM sqlite_master WHERE name = 'studies'"
    ).fetchone() == (0,)


def test_search_refuses_an_empty_database_and_a_foreign_study(tmp_path, run_cli) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "out"
    out.mkdir()
    (out / "study.db").touch()
    assert "is empty (0 bytes)" in one_line_error(run_cli("search", space, "--out", out, "--quiet"))
    (out / "study.db").unlink()
    foreign = optuna.create_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    foreign.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    assert one_line_error(run_cli("search", space, "--out", out, "--quiet")).endswith(
        "was not made by yaml2torch (no search file recorded); use another --study name or --storage"
    )


def test_a_new_study_never_overwrites_another_studys_trial_folders(tmp_path, run_cli) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "out"
    (out / "trials" / "0000").mkdir(parents=True)
    (out / "trials" / "0000" / "model.pt").write_bytes(b"old weights")
    message = one_line_error(run_cli("search", space, "--out", out, "--quiet"))
    assert message == (
        f"{out / 'trials'} already holds trial folders (0000) of another study, and the new study 'tiny' would "
        "overwrite them; use another --out folder, or move them away"
    )
    assert (out / "trials" / "0000" / "model.pt").read_bytes() == b"old weights"


NOT_A_JOURNAL = {
    "random bytes": random.Random(0).randbytes(5000),
    "text": b"hello\nthis is a log of something else\n",
    "one line without a newline": b"a single line that Optuna would skip as a cut-off record",
}


@pytest.mark.parametrize("content", sorted(NOT_A_JOURNAL))
def test_a_file_that_is_no_journal_is_named_as_such_by_every_command(tmp_path, run_cli, content) -> None:
    log = tmp_path / "study.log"
    log.write_bytes(NOT_A_JOURNAL[content])
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    expected = (
        f"storage {log}: {log} is not an Optuna journal file (it does not start with a journal record); "
        "pass the study's journal file"
    )
    for argv in (
        ("report", "--storage", log, "--study", "s", "-o", tmp_path / "r.html"),
        ("best", "--storage", log, "--study", "s", "-o", tmp_path / "best"),
        ("worker", "--storage", log, "--study", "s"),
    ):
        one_line_error(run_cli(*argv), expected)
    # Only search would start a new study if the file were moved away.
    search = ("search", space, "--storage", log, "--out", tmp_path / "out", "--quiet")
    one_line_error(run_cli(*search), expected + ", or move this file away to start a new study")
    assert log.read_bytes() == NOT_A_JOURNAL[content]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml", "study.log"]


def reading_commands(out: Path, tmp_path: Path) -> list[tuple[object, ...]]:
    """Every command that reads the study of an output folder, given the folder."""
    return [
        ("best", "--storage", out, "-o", tmp_path / "best"),
        ("report", out),
        ("report", "--storage", out),
        ("worker", "--storage", out, "--quiet"),
        ("train", "--from", out, "-o", tmp_path / "train", "--quiet"),
    ]


def test_an_empty_study_log_is_a_new_study_for_search_and_no_study_for_the_readers(tmp_path, run_cli) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "study.log").touch()
    expected = f"{out / 'study.log'}: the storage holds no studies; give the output folder or storage URL of a search's study"
    for argv in reading_commands(out, tmp_path):  # not "give --study NAME": there is none to name
        one_line_error(run_cli(*argv), expected)
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    assert run_cli("search", space, "--out", out, "--quiet", "--device", "cpu").status == 0


def test_a_folder_named_study_log_is_named_as_such_with_advice_that_helps(tmp_path, run_cli) -> None:
    out = tmp_path / "out"
    (out / "study.log").mkdir(parents=True)
    expected = f"{out}: no study here: {out / 'study.log'} is a folder, not a study file; give the output folder or storage URL that holds the study"
    for argv in reading_commands(out, tmp_path):
        one_line_error(run_cli(*argv), expected)
    one_line_error(
        run_cli("best", "--storage", out / "study.log", "-o", tmp_path / "best"),
        f"{out / 'study.log'} is a folder, not a study file; give the output folder or storage URL that holds the study",
    )
    # search was given no --storage: "name a file in it" would mean one; the folder is in the way.
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    one_line_error(
        run_cli("search", space, "--out", out, "--quiet"),
        f"{out / 'study.log'} is a folder, not a study file (search keeps its journal there); move it away, or use another --out",
    )
    assert sorted(p.name for p in out.iterdir()) == ["study.log"] and not list((out / "study.log").iterdir())


def test_a_study_log_of_garbage_in_the_output_folder_is_no_study_for_any_command(tmp_path, run_cli) -> None:
    out = tmp_path / "out"
    out.mkdir()
    log = out / "study.log"
    log.write_bytes(NOT_A_JOURNAL["random bytes"])
    not_a_journal = f"{log} is not an Optuna journal file (it does not start with a journal record); pass the study's journal file"
    for argv in reading_commands(out, tmp_path):
        one_line_error(run_cli(*argv), f"storage {log}: {not_a_journal}")
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    one_line_error(
        run_cli("search", space, "--out", out, "--quiet"),
        f"storage {journal_url(log)}: {not_a_journal}, or move this file away to start a new study",
    )
    assert log.read_bytes() == NOT_A_JOURNAL["random bytes"] and sorted(p.name for p in out.iterdir()) == ["study.log"]


def test_a_journal_cut_mid_record_is_read_and_resumed_and_a_damaged_line_is_one_line(tmp_path, run_cli) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE.replace("[4, 3, 1]", "[{choice: [4, 5, 6, 7, 8, 9, 10, 11, 12]}, 3, 1]"))
    out = tmp_path / "out"
    log = out / "study.log"
    quick = ("--out", out, "--storage", log, "--quiet", "--device", "cpu")
    assert run_cli("search", space, *quick).status == 0
    whole = log.read_bytes()
    last = whole.splitlines(keepends=True)[-1]
    log.write_bytes(whole[: len(whole) - len(last) // 2])  # a crash in the middle of writing the last record
    result = run_cli("report", out, "-o", tmp_path / "r.html")  # Optuna skips the cut record
    assert (result.status, result.stderr) == (0, f"wrote {tmp_path / 'r.html'}\n")
    result = run_cli("search", space, *quick, "--trials", "2", "--resume")
    assert result.status == 0 and "Traceback" not in result.stderr
    partial = len(last) - len(last) // 2
    assert result.stderr.startswith(f"yaml2torch: warning: {log} ended in a partial record ({partial} bytes: ")
    data = log.read_bytes()
    assert data.endswith(b"\n") and all(isinstance(json.loads(line), dict) for line in data.splitlines())
    study = optuna.load_study(study_name="tiny", storage=optuna.storages.JournalStorage(JournalFileBackend(str(log))))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    lines = data.splitlines(keepends=True)
    log.write_bytes(b"".join([*lines[:3], b"not a record\n", *lines[3:]]))
    expected = (
        f"journal {log} is damaged: line 4 is not a journal record (Expecting value: line 1 column 1 (char 0)); "
        "restore the file from a copy"
    )
    for argv in (("report", out, "-o", tmp_path / "r.html"), ("best", "--storage", log, "-o", tmp_path / "b"), ("worker", "--storage", log)):
        one_line_error(run_cli(*argv), expected)
    one_line_error(run_cli("search", space, *quick, "--trials", "3"), expected + ", or move this file away to start a new study")


@pytest.mark.parametrize("url", ["foo://bar", "mysql://user@localhost/db", "/proc/self/study.log"])
def test_search_with_an_unusable_storage_leaves_no_folder_it_made(tmp_path, run_cli, url) -> None:
    if url.startswith("mysql") and importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("a MySQL driver is installed here: the URL would be tried")
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    assert url in one_line_error(run_cli("search", space, "--storage", url, "--out", tmp_path / "new" / "out", "--quiet"))
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    one_line_error(run_cli("search", space, "--storage", url, "--out", existing, "--quiet"))
    assert existing.is_dir() and list(existing.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--devices", "cpu,bogus", "--workers", "2"), "--devices entry 'bogus': expected auto, cpu, cuda or cuda:N"),
        (("--artifacts", "/proc/self/artifacts"), "cannot create the artifact folder /proc/self/artifacts: No such file or directory"),
    ],
)
def test_search_with_a_bad_worker_device_or_artifact_folder_makes_no_study(tmp_path, run_cli, options, message) -> None:
    """Refused once, before the study: not by each worker after it, leaving a study that ran nothing."""
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "out"
    assert one_line_error(run_cli("search", space, "--out", out, "--quiet", *options)) == message
    assert not out.exists()


# --- cannot write -------------------------------------------------------------------------------


def test_write_atomic_on_a_full_disk_raises_cannot_write_and_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    # No real full disk without mounting one; the OS boundary (the write call) is simulated here.
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, fd: int, mode: str) -> None:
            self.handle = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", FullDisk)
    with pytest.raises(CannotWrite, match=r"model.pt: cannot write: No space left on device"):
        write_atomic(tmp_path / "model.pt", b"x" * 100)
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_that_cannot_be_written_stops_search_with_one_line(tmp_path, run_cli) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    (tmp_path / "file").write_text("")
    message = one_line_error(run_cli("search", space, "--out", tmp_path / "file" / "out", "--quiet"))
    assert message.startswith(f"cannot create the output folder {tmp_path / 'file' / 'out'}: ")
    # --out naming an existing file: said as such, not "File exists".
    message = one_line_error(run_cli("search", space, "--out", tmp_path / "file", "--quiet"))
    assert message == f"{tmp_path / 'file'} is a file; --out names the output folder"


@pytest.mark.slow
def test_a_trial_that_cannot_write_its_files_stops_the_search_and_the_study_resumes(tmp_path, run_cli) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE.replace("[4, 3, 1]", "[{choice: [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]}, 3, 1]"))
    out = tmp_path / "out"
    assert run_cli("search", space, "--out", out, "--quiet", "--device", "cpu").status == 0
    (out / "trials" / "0001").write_text("in the way")  # a file where the trial's folder goes
    result = run_cli("search", space, "--trials", "2", "--out", out, "--quiet", "--device", "cpu")
    assert result.status == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"yaml2torch: error: {out / 'trials' / '0001' / 'spec.yaml'}: cannot write: Not a directory"
    )
    assert not [p for p in out.rglob("*.tmp")]
    study = optuna.load_study(study_name="tiny", storage=make_storage(journal_url(out / "study.log")))
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and "Not a directory" in failed[0].user_attrs["reason"]
    (out / "trials" / "0001").unlink()
    assert run_cli("search", space, "--trials", "2", "--out", out, "--quiet", "--device", "cpu").status == 0
    study = optuna.load_study(study_name="tiny", storage=make_storage(journal_url(out / "study.log")))
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 2 and failed[0].params in [t.params for t in done]


@pytest.mark.parametrize(
    "line, column, message",
    [
        ("sampler: {type: TPE, n_startup_trials: -1}", 40, "TPE argument n_startup_trials must be at least 0, got -1"),
        ("sampler: {type: TPE, n_startup_trials: abc}", 40, "TPE argument n_startup_trials must be an int, not a string"),
        ("sampler: {type: TPE, consider_prior: 1}", 38, "TPE argument consider_prior must be a bool or null, not an int"),
        ("sampler: {type: TPE, prior_weight: .nan}", 36, "TPE argument prior_weight must be a finite float or null, not a float"),
        ("sampler: {type: NSGAII, population_size: 1}", 42, "NSGAII argument population_size must be at least 2, got 1"),
        ("sampler: {type: NSGAII, crossover_prob: 2.0}", 10, "sampler NSGAII: `crossover_prob` must be a float value within the range [0.0, 1.0]."),
        ("sampler: {type: QMC, qmc_type: nope}", 10, "sampler QMC: The `qmc_type='nope'` is invalid. Choose either `halton` or `sobol`."),
        ("pruner: {type: Median, n_warmup_steps: x}", 40, "Median argument n_warmup_steps must be an int, not a string"),
        ("pruner: {type: Percentile, percentile: 150}", 9, "pruner Percentile: Percentile must be between 0 and 100 inclusive, but got percentile=150."),
        ("pruner: {type: SuccessiveHalving, reduction_factor: 1}", 53, "SuccessiveHalving argument reduction_factor must be at least 2, got 1"),
        ("pruner: {type: Hyperband, reduction_factor: 1}", 45, "Hyperband argument reduction_factor must be at least 2, got 1"),
        ("pruner: {type: Threshold}", 9, "pruner Threshold: Either lower or upper must be specified."),
        ("pruner: {type: Patient}", 9, "pruner Patient: patient_pruner() missing 1 required positional argument: 'patience'"),
    ],
)
def test_sampler_and_pruner_arguments_of_the_wrong_type_or_range_are_one_located_line(
    tmp_path, run_cli, line, column, message
) -> None:
    key = line.split(":")[0]
    space = tmp_path / "space.yaml"
    space.write_text("".join(row for row in SPACE.splitlines(keepends=True) if not row.startswith(key)) + line + "\n")
    one_line_error(run_cli("search", space, "--out", tmp_path / "out", "--quiet"), f"{space}:8:{column}: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]


# --- every command, bad inputs: one line, exit 2, nothing written ---------------------------------


def bad_invocations(t: Path) -> list[list[str]]:
    """Each command with values that are wrong where they enter (options as in YAML, files, storage)."""
    spec = spec_file(t, "  - [1, Conv, [8]]\n  - [1, GlobalAvgPool, []]\n  - [1, Flatten, []]\n  - [1, Linear, [10]]\n")
    space = t / "space.yaml"
    space.write_text(SPACE)
    db = f"sqlite:///{t}/missing/study.db"
    out = str(t / "out")
    runs: list[list[str]] = []
    for value in ("0", "-1", "x", "nan"):
        runs += [["search", str(space), f"--{option}", value, "--out", out] for option in ("trials", "epochs", "limit")]
        runs += [["search", str(space), f"--{option}", value, "--out", out] for option in ("timeout", "time-limit")]
        runs += [["train", str(spec), f"--{option}", value, "-o", out] for option in ("epochs", "batch-size", "lr")]
    for name in ("a/b", "..", "../x", ".hidden", "x\ny", "s" * 101, "s" * 300, ""):
        runs += [
            ["search", str(space), "--study", name, "--out", out],
            ["best", "--storage", db, "--study", name, "-o", out],
        ]
    (t / "text.db").write_text("not a database\n")
    (t / "garbage.log").write_bytes(random.Random(1).randbytes(3000))
    (t / "garbage.pth").write_bytes(random.Random(2).randbytes(3000))
    for url in (f"sqlite:///{t}/missing/study.db", f"sqlite:///{t}", f"sqlite:///{t}/text.db", "foo://bar", str(t / "garbage.log")):
        runs += [["search", str(space), "--storage", url, "--out", out], ["report", "--storage", url, "-o", str(t / "r.html")]]
    if importlib.util.find_spec("MySQLdb") is None:  # without the driver: refused at once, not tried
        runs += [["search", str(space), "--storage", "mysql://user@localhost/db", "--out", out]]
    for name in ("super", "int", "range", "class", "Conv"):
        runs += [["compile", str(spec), "--class-name", name, "-o", str(t / "m.py")]]
    runs += [
        ["compile", str(spec), "--weights", str(t / "garbage.pth"), "-o", str(t / "m.py")],
        ["search", str(space), "--device", "bogus", "--out", out],
        ["search", str(space), "--limit", "3", "--out", out],
        ["search", str(space), "--limit", "1", "--out", out],
        ["train", str(spec), "--device", "bogus", "-o", out],
        ["compile", str(t / "missing.yaml"), "-o", out],
        ["compile", str(spec), "-o", str(spec)],
        ["compile", str(spec), "-o", "/dev/null"],
        ["compile", str(spec), "-o", str(t)],
        ["summary", "/dev/zero"],
        ["summary", str(t)],
        ["diff", str(spec), str(t / "missing.yaml")],
        ["search", str(t / "missing.yaml"), "--out", out],
        ["search", str(space), "--storage", "garbage", "--out", out],
        ["search", str(space), "--storage", db, "--out", out],
        ["worker", "--storage", db, "--study", "s"],
        ["worker", "--storage", str(t / "none.log"), "--study", "s"],
        ["best", "--storage", "foo://bar", "--study", "s", "-o", out],
        ["report", "--storage", db, "--study", "s", "-o", str(t / "r.html")],
        ["report", "--storage", "garbage", "--study", "s", "-o", "/dev/null"],
        ["train", str(spec), "-o", "/dev/null/x"],
        ["nosuchcommand"],
    ]
    return runs


def test_every_command_answers_bad_input_with_one_line(tmp_path, capsys) -> None:
    from conftest import CliResult

    for argv in bad_invocations(tmp_path):
        before = sorted(p.name for p in tmp_path.iterdir())
        capsys.readouterr()
        try:
            status = main(argv)
        except SystemExit as exit_:  # argparse errors: our one-line _Parser.error
            status = exit_.code
        out, err = capsys.readouterr()
        assert err.count("\n") == 1, (argv, err)
        one_line_error(CliResult(status, out, err))
        assert sorted(p.name for p in tmp_path.iterdir()) == before, argv

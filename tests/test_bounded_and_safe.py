"""Issue 10: bounded work, nothing of the user's destroyed, every bad value refused where it enters.

Each limit of ``yaml2torch.spec.limits`` is refused with a located one-line error naming it (the
timing of these refusals belongs in bench/, not here); ``-o`` never replaces an input; a storage
file that cannot hold a study is refused; a folder that cannot be written stops the command with
one line and leaves the study resumable; and every command answers bad input with one line.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import optuna
import pytest

from yaml2torch.cli import main
from yaml2torch.errors import CannotWrite
from yaml2torch.files import write_atomic
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


# --- storage ------------------------------------------------------------------------------------


def storage_cases(tmp_path: Path) -> dict[str, tuple[str, str]]:
    (tmp_path / "empty.db").touch()
    (tmp_path / "text.db").write_text("not a database\n")
    (tmp_path / "folder").mkdir()
    connection = sqlite3.connect(tmp_path / "other.db")
    connection.execute("CREATE TABLE accounts (id)")
    connection.commit()
    connection.close()
    (tmp_path / "cut.db").write_bytes((tmp_path / "other.db").read_bytes()[:200])
    t = tmp_path
    return {
        "empty": (
            f"sqlite:///{t}/empty.db",
            f"{t}/empty.db is empty (0 bytes), not a study database (truncated?); restore it, or move it away to start a new study",
        ),
        "text": (
            f"sqlite:///{t}/text.db",
            f"{t}/text.db is not a SQLite database; pass the study's database, or move this file away to start a new study",
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
        "not_a_url": ("garbage", "storage 'garbage' is neither a database URL"),
    }


@pytest.mark.parametrize(
    "case", ["empty", "text", "folder", "missing_folder", "other_database", "damaged", "unknown_scheme", "not_a_url"]
)
def test_storage_that_cannot_hold_a_study_is_refused_with_what_to_do(tmp_path, run_cli, case) -> None:
    url, expected = storage_cases(tmp_path)[case]
    for argv in (("report", "-o", tmp_path / "r.html"), ("best", "-o", tmp_path / "best"), ("worker",)):
        message = one_line_error(run_cli(argv[0], "--storage", url, "--study", "s", *argv[1:]))
        assert expected in message, message
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
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and "Not a directory" in failed[0].user_attrs["reason"]
    (out / "trials" / "0001").unlink()
    assert run_cli("search", space, "--trials", "2", "--out", out, "--quiet", "--device", "cpu").status == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 2 and failed[0].params in [t.params for t in done]


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
    for name in ("a/b", "..", ".hidden", "x\ny", "s" * 101, ""):
        runs += [
            ["search", str(space), "--study", name, "--out", out],
            ["best", "--storage", db, "--study", name, "-o", out],
        ]
    runs += [
        ["search", str(space), "--device", "bogus", "--out", out],
        ["search", str(space), "--limit", "3", "--out", out],
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

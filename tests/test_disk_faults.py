"""Issue 10, for real: a full disk and a read-only folder, on a small tmpfs mounted for each test.

Mounting needs root (and a system that allows it): otherwise every test here is skipped, saying
why. Each command that meets the disk ends in one line ``yaml2torch: error: cannot write ...``
with exit 2 and no traceback, leaves no temporary file and nothing half-written (an output file is
absent or as it was; a study database passes SQLite's integrity check; a journal holds whole
records only), and once there is room again (or in a bigger folder) the same command continues
the study. Searches that leave a trial RUNNING behind run in a subprocess, as a user runs them, so
that the resume finds its worker dead and retries it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from conftest import CliResult, run_cli_subprocess

from yaml2torch.scale.storage import journal_url, make_storage

pytestmark = pytest.mark.mounts

SPEC = "input_channel: 3\ninput_size: [8, 8]\nbackbone:\n  - [1, Conv, [8]]\n  - [1, GlobalAvgPool, []]\n  - [1, Flatten, []]\n  - [1, Linear, [10]]\n"
SPACE = """study: tiny
seed: 0
trials: 1
sampler: Random
pruner: none
data: {limit: 200}
train: {epochs: 1, batch_size: 64, optimizer: {type: Adam, lr: 0.01}}
model: {backbone: [[1, Conv, [{choice: [4, 5, 6, 7, 8, 9, 10, 11, 12]}, 3, 1]], [1, GlobalAvgPool, []], [1, Flatten, []], [1, Linear, [10]]]}
"""
QUICK = ("--quiet", "--device", "cpu")


class SmallDisk:
    """A 1 MiB tmpfs at ``path``: fill it up, free it, make it read-only and writable again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        """Take every free byte (a write that no longer fits ends it)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (65536, 4096, 1):
                try:
                    while os.write(fd, b"\0" * size):
                        pass
                except OSError:
                    pass
        finally:
            os.close(fd)
        assert shutil.disk_usage(self.path).free == 0

    def free(self) -> None:
        self.filler.unlink()

    def remount(self, mode: str) -> None:
        command = ["mount", "-o", f"remount,{mode}", str(self.path)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr

    def leftovers(self) -> list[Path]:
        """Temporary or partial files left anywhere on the disk."""
        return [p for p in self.path.rglob("*") if p.name.endswith((".tmp", ".partial", ".lock"))]


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point = tmp_path / "disk"
    point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield SmallDisk(point)
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def ends_in_one_error(result: CliResult, start: str) -> str:
    """Exit 2, no traceback, the last line ``yaml2torch: error: START...`` and the only error; that message.

    A file says ``PATH: cannot write: REASON``; the study storage ``cannot write the study storage ...``.
    """
    assert result.status == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert all(line.startswith("yaml2torch: ") for line in lines), result.stderr
    assert lines[-1].startswith(f"yaml2torch: error: {start}"), result.stderr
    assert "cannot write" in lines[-1], result.stderr
    assert sum(line.startswith("yaml2torch: error: ") for line in lines) == 1
    return lines[-1]


def sqlite_intact(db: Path) -> None:
    connection = sqlite3.connect(db)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        connection.close()


def journal_intact(log: Path) -> None:
    data = log.read_bytes()
    assert data.endswith(b"\n")
    assert all(isinstance(json.loads(line), dict) for line in data.splitlines())


def trials(storage: str | optuna.storages.BaseStorage) -> dict[str, int]:
    study = optuna.load_study(study_name="tiny", storage=make_storage(storage) if isinstance(storage, str) else storage)
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


# --- compile --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_compile_onto_a_full_or_read_only_disk_writes_nothing(disk: SmallDisk, tmp_path: Path, run_cli, fault) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    kept = disk.path / "kept.py"
    kept.write_text("# the model file of yesterday\n")
    if fault == "full":
        disk.fill()
    else:
        disk.remount("ro")
    reason = "No space left on device" if fault == "full" else "Read-only file system"
    for output in (disk.path / "model.py", kept):
        message = ends_in_one_error(run_cli("compile", spec, "-o", output), f"{output}: cannot write: ")
        assert message == f"yaml2torch: error: {output}: cannot write: {reason}"
    assert not (disk.path / "model.py").exists()
    assert kept.read_text() == "# the model file of yesterday\n"
    assert disk.leftovers() == []


# --- search ---------------------------------------------------------------------------------------


@pytest.fixture
def space(tmp_path: Path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


@pytest.mark.parametrize("storage", ["journal (the default)", "sqlite"])
def test_a_new_search_on_a_full_disk_leaves_nothing_and_runs_once_there_is_room(
    disk: SmallDisk, space, run_cli, storage: str
) -> None:
    out = disk.path / "out"
    url = f"sqlite:///{out / 'study.db'}" if storage == "sqlite" else journal_url(out / "study.log")
    chosen = ("--storage", url) if storage == "sqlite" else ()
    disk.fill()
    result = run_cli("search", space, "--out", out, *chosen, *QUICK)
    if storage == "sqlite":
        message = ends_in_one_error(result, "cannot write the study storage ")
        assert message.endswith("database or disk is full; free space (or make it writable) and run the same command again")
    else:  # an empty journal file fits; the first write that does not is the trials folder's marker
        message = ends_in_one_error(result, f"{out / 'trials' / '.yaml2torch-study'}: ")
        assert message.endswith(": cannot write: No space left on device")
    assert not out.exists()  # not an empty folder, nor an empty study file that the next run would refuse
    disk.free()
    assert run_cli("search", space, "--out", out, *chosen, *QUICK).status == 0
    assert trials(url) == {"COMPLETE": 1}


@pytest.mark.slow
def test_a_search_whose_disk_fills_stops_with_one_line_and_resumes(disk: SmallDisk, space) -> None:
    out = disk.path / "out"
    url = f"sqlite:///{out / 'study.db'}"
    assert run_cli_subprocess("search", space, "--out", out, "--storage", url, *QUICK).status == 0
    disk.fill()
    ends_in_one_error(run_cli_subprocess("search", space, "--out", out, "--storage", url, "--trials", "3", *QUICK), "")
    assert disk.leftovers() == []
    sqlite_intact(out / "study.db")
    assert trials(url) == {"COMPLETE": 1}
    disk.free()
    assert run_cli_subprocess("search", space, "--out", out, "--storage", url, "--trials", "3", "--resume", *QUICK).status == 0
    assert trials(url).get("COMPLETE") == 3
    sqlite_intact(out / "study.db")


@pytest.mark.slow
def test_a_journal_on_a_full_disk_keeps_whole_records_and_resumes_in_a_bigger_folder(
    disk: SmallDisk, space, tmp_path: Path
) -> None:
    out = disk.path / "out"
    assert run_cli_subprocess("search", space, "--out", out, "--storage", out / "study.log", *QUICK).status == 0
    disk.fill()
    result = run_cli_subprocess("search", space, "--out", out, "--storage", out / "study.log", "--trials", "3", *QUICK)
    ends_in_one_error(result, "")
    assert disk.leftovers() == []
    journal_intact(out / "study.log")
    bigger = tmp_path / "bigger"
    shutil.copytree(out, bigger)
    log = bigger / "study.log"
    result = run_cli_subprocess("search", space, "--out", bigger, "--storage", log, "--trials", "3", "--resume", *QUICK)
    assert result.status == 0, result.stderr
    journal_intact(log)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(log)))
    assert trials(storage).get("COMPLETE") == 3


def test_trial_files_that_meet_a_full_disk_stop_the_search_and_the_trial_is_retried(
    disk: SmallDisk, space, tmp_path: Path, run_cli
) -> None:
    out, url = disk.path / "out", f"sqlite:///{tmp_path / 'study.db'}"
    assert run_cli("search", space, "--out", out, "--storage", url, *QUICK).status == 0
    disk.fill()
    result = run_cli("search", space, "--out", out, "--storage", url, "--trials", "2", *QUICK)
    message = ends_in_one_error(result, f"{out / 'trials' / '0001'}/")
    assert message.endswith(": cannot write: No space left on device")
    assert "trial 1's parameters are queued again" in result.stderr
    assert disk.leftovers() == []
    assert [p.name for p in (out / "trials" / "0001").iterdir()] == []  # its first file did not fit
    assert trials(url) == {"COMPLETE": 1, "FAIL": 1, "WAITING": 1}
    disk.free()
    assert run_cli("search", space, "--out", out, "--storage", url, "--trials", "2", "--resume", *QUICK).status == 0
    assert trials(url) == {"COMPLETE": 2, "FAIL": 1}


def test_artifacts_on_a_full_disk_leave_no_partial_weights_and_the_trial_is_retried(
    disk: SmallDisk, space, tmp_path: Path, run_cli
) -> None:
    out, artifacts = tmp_path / "out", disk.path / "artifacts"
    artifacts.mkdir()
    disk.fill()
    result = run_cli("search", space, "--out", out, "--artifacts", artifacts, *QUICK)
    assert ends_in_one_error(result, f"{artifacts}/").endswith(": cannot write: No space left on device")
    assert list(artifacts.iterdir()) == []  # no 0-byte weights named as an artifact
    url = journal_url(out / "study.log")
    assert trials(url) == {"FAIL": 1, "WAITING": 1}
    disk.free()
    assert run_cli("search", space, "--out", out, "--artifacts", artifacts, "--resume", *QUICK).status == 0
    assert trials(url) == {"COMPLETE": 1, "FAIL": 1}
    assert len(list(artifacts.iterdir())) == 1


@pytest.mark.parametrize("storage", ["journal (the default)", "sqlite"])
def test_a_read_only_output_folder_stops_search_with_one_line_and_the_study_resumes(
    disk: SmallDisk, space, run_cli, storage: str
) -> None:
    out = disk.path / "out"
    study_file = out / ("study.db" if storage == "sqlite" else "study.log")
    url = f"sqlite:///{study_file}" if storage == "sqlite" else journal_url(study_file)
    chosen = ("--storage", url) if storage == "sqlite" else ()
    # in a subprocess: a database this process still held open for writing would block the remount
    assert run_cli_subprocess("search", space, "--out", out, *chosen, *QUICK).status == 0
    before = study_file.read_bytes()
    disk.remount("ro")
    message = ends_in_one_error(run_cli("search", space, "--out", out, *chosen, "--trials", "2", *QUICK), "")
    assert ("attempt to write a readonly database" if storage == "sqlite" else "Read-only file system") in message
    assert study_file.read_bytes() == before
    assert "wrote" in run_cli("report", out, "-o", disk.path.parent / "report.html").stderr  # reading still works
    disk.remount("rw")
    assert run_cli("search", space, "--out", out, *chosen, "--trials", "2", "--resume", *QUICK).status == 0
    assert trials(url) == {"COMPLETE": 2}
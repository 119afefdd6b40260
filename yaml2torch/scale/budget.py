"""An exact study-wide trial budget, however many workers share the study, on any storage.

Optuna creates a trial on every ``ask()``, so workers that finish together each start one
more (``MaxTrialsCallback`` overshoots by up to one trial per worker). Here a worker starts a
trial only under the study's lock: it counts the study's trials and asks only while fewer than
the budget are counted. The lock is held for the count and the ask (milliseconds), never while
a trial runs, and the operating system or the database drops it when its holder dies:

- journal file or SQLite: ``flock`` on ``.<file>.yaml2torch-lock`` beside it (local disks and NFSv4);
- PostgreSQL: a session advisory lock (``pg_advisory_lock``) keyed by the study name;
- MySQL: ``GET_LOCK`` named after the study.

Queued trials (retries, ``enqueue_trial``) are popped by the same ``ask()``, which claims a
WAITING trial atomically, so no trial is claimed twice.

**What counts.** Every trial of the study counts, except a failed trial whose parameters were
queued again: its retry counts instead. A study with budget N therefore ends with exactly N
counted trials, plus one FAIL entry for each failure that was retried (a worker killed mid-trial,
an interrupted trial, a trial lost to a storage outage). A retry that fails again is not queued
a second time and counts as a failed trial.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from yaml2torch.errors import UsageError
from yaml2torch.scale.storage import classify_storage
from yaml2torch.study_record import TrialRecord

LOCK_SUFFIX = ".yaml2torch-lock"  # a hidden file beside the study file: .<name>.yaml2torch-lock


def retried_numbers(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of failed trials whose parameters were queued again."""
    numbers: set[int] = set()
    for trial in trials:
        record = TrialRecord.of(trial)
        if record.retry_of is not None:
            numbers.add(int(record.retry_of))
        numbers.update(record.retry_history)
    return numbers


def counted_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials the budget counts: all but failures that were retried (see the module docstring)."""
    retried = retried_numbers(trials)
    return [t for t in trials if not (t.state == TrialState.FAIL and t.number in retried)]


def may_start(trials: Sequence[FrozenTrial], total: int | None) -> bool:
    if any(t.state == TrialState.WAITING for t in trials):
        return True  # queued work (retries, enqueued trials) is already counted: always taken
    return total is None or len(counted_trials(trials)) < total


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _lock_file(study_file: Path) -> Path:
    return study_file.with_name(f".{study_file.name}{LOCK_SUFFIX}")


def _lock_key(study_name: str) -> int:
    digest = hashlib.sha256(f"yaml2torch-budget:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class StudyLock:
    """The study's budget lock (see the module docstring); a context manager, reusable."""

    def __init__(self, url: str, study_name: str) -> None:
        self._url = url
        self._study_name = study_name
        self._engine: Any = None
        kind = classify_storage(url)
        self._file: Path | None = None
        if kind.kind == "journal":
            self._file = _lock_file(Path(kind.location))
        elif kind.kind == "sqlite":
            database = kind.location.split(":///", 1)[-1] if ":///" in kind.location else ""
            if database in ("", ":memory:"):
                raise UsageError(f"{url}: an in-memory SQLite database cannot be shared by workers")
            self._file = _lock_file(Path(database))

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._file is not None:
            with _file_lock(self._file):
                yield
            return
        with self._database_lock():
            yield

    @contextlib.contextmanager
    def _database_lock(self) -> Iterator[None]:
        import sqlalchemy

        if self._engine is None:
            self._engine = sqlalchemy.create_engine(self._url, pool_pre_ping=True, pool_size=1)
        dialect = self._engine.dialect.name
        with self._engine.connect() as connection:
            if dialect == "postgresql":
                key = {"key": _lock_key(self._study_name)}
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), key)
                unlock: tuple[str, dict[str, Any]] = ("SELECT pg_advisory_unlock(:key)", key)
            elif dialect in ("mysql", "mariadb"):
                name = {"name": f"yaml2torch:{_lock_key(self._study_name)}"}
                connection.execute(sqlalchemy.text("SELECT GET_LOCK(:name, -1)"), name)
                unlock = ("SELECT RELEASE_LOCK(:name)", name)
            else:
                raise UsageError(f"{self._url}: no study lock for the {dialect} dialect (use PostgreSQL or MySQL)")
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text(unlock[0]), unlock[1])
                connection.commit()


def start_trial(
    study: optuna.Study,
    total: int | None,
    lock: StudyLock | None,
    on_created: Callable[[optuna.Trial], None] | None = None,
) -> optuna.Trial | None:
    """Claim a queued trial or start a new one while the budget allows; None when it is spent.

    Without a lock (one process, an in-memory study) the count is still exact for this process.
    ``on_created`` hears of the trial at once, so a stop raised before this returns can record it.
    """
    with lock.held() if lock is not None else contextlib.nullcontext():
        if total is not None and not may_start(study.get_trials(deepcopy=False), total):
            return None
        trial = study.ask()
        if on_created is not None:
            on_created(trial)
        return trial

"""Storage URLs -> Optuna storages, artifact stores, and retries when the database blinks.

Accepted storage forms:

- ``sqlite:///path/study.db``: one process (or a few, lightly); no heartbeats.
- ``journal:///abs/path/study.log`` or any path ending in ``.log``/``.journal``: Optuna's
  journal file, safe for many processes on one machine (and on NFS); the default for
  ``--workers N``. No heartbeats: stale trials are found by ``yaml2torch.scale.stale``.
- ``postgresql://user@host:port/db`` (and ``mysql://``): many machines. Heartbeats are on,
  so a killed worker's trial is failed after the grace period and its parameters retried once.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import optuna

from yaml2torch.errors import UsageError
from yaml2torch.scale.defaults import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL

JOURNAL_SCHEME = "journal://"
JOURNAL_SUFFIXES = (".log", ".journal")

T = TypeVar("T")


@dataclass(frozen=True)
class StorageKind:
    """What a storage URL names, without opening it."""

    kind: str  # "sqlite" | "journal" | "rdb"
    location: str  # the URL for RDB/SQLite, the file path for a journal

    @property
    def has_heartbeats(self) -> bool:
        return self.kind == "rdb"


def classify_storage(url: str) -> StorageKind:
    if url.startswith(JOURNAL_SCHEME):
        path = url[len(JOURNAL_SCHEME) :]
        if not path:
            raise UsageError(f"storage {url!r}: journal URL needs a file path (journal:///abs/path/study.log)")
        return StorageKind("journal", path)
    if "://" not in url:
        if url.endswith(JOURNAL_SUFFIXES):
            return StorageKind("journal", url)
        raise UsageError(
            f"storage {url!r} is neither a database URL (sqlite:///..., postgresql://...) "
            f"nor a journal file (journal:///path or a path ending in {' or '.join(JOURNAL_SUFFIXES)})"
        )
    if url.startswith("sqlite:"):
        return StorageKind("sqlite", url)
    return StorageKind("rdb", url)


def journal_url(path: Path) -> str:
    """The storage URL of a journal file (an absolute path, so workers elsewhere agree)."""
    return f"{JOURNAL_SCHEME}{Path(path).resolve()}"


def make_storage(
    url: str,
    *,
    heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL,
    grace_period: int = DEFAULT_GRACE_PERIOD,
) -> optuna.storages.BaseStorage:
    """Open the storage a URL names (see the module docstring for the forms)."""
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    kind = classify_storage(url)
    if kind.kind == "journal":
        path = Path(kind.location)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if kind.kind == "sqlite":
        # A busy timeout so a second local process waits for the lock instead of failing.
        return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})

    def open_rdb() -> RDBStorage:
        with warnings.catch_warnings():
            # heartbeat_interval is marked experimental; we rely on it on purpose.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
            )

    # Workers opening a fresh database at the same moment race to create Optuna's tables
    # (CREATE TYPE ... already exists); the losers simply open it again.
    for attempt in range(10):
        try:
            return open_rdb()
        except Exception as exc:  # re-raised unless it is the schema race
            if attempt == 9 or not _is_schema_race(exc):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _is_schema_race(exc: BaseException | None) -> bool:
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    while exc is not None:
        if isinstance(exc, (IntegrityError, ProgrammingError)) and "already exists" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def is_transient_storage_error(exc: BaseException) -> bool:
    """Errors that mean "the database is away for a moment": connection refused, dropped, restarting."""
    try:
        from sqlalchemy.exc import DBAPIError, OperationalError, PendingRollbackError
    except ImportError:  # pragma: no cover - sqlalchemy ships with optuna
        return False
    # PendingRollbackError: a session whose connection died mid-transaction (reset, then retry).
    if isinstance(exc, (OperationalError, PendingRollbackError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # Optuna wraps some SQLAlchemy errors in StorageInternalError; look at the cause.
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, optuna.exceptions.StorageInternalError) and cause is not None:
        return is_transient_storage_error(cause)
    return isinstance(exc, (ConnectionError, TimeoutError))


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff for storage retries: first, first*2, ... capped, for at most `total` seconds."""

    first: float = 0.5
    cap: float = 8.0
    total: float = 120.0

    def delays(self):
        waited, delay = 0.0, self.first
        while waited < self.total:
            yield delay
            waited += delay
            delay = min(delay * 2, self.cap)


def with_storage_retries(
    call: Callable[[], T],
    *,
    what: str,
    backoff: Backoff = Backoff(),
    say: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True),
    reset: Callable[[], None] | None = None,
) -> T:
    """Run ``call``; while it fails with a transient storage error, wait and try again (and say so).

    ``reset`` (e.g. ``storage.remove_session``) drops a database session spoiled by the failure.
    """
    delays = backoff.delays()
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_transient_storage_error(exc):
                raise
            if reset is not None:
                try:
                    reset()
                except Exception:  # noqa: BLE001, S110 - the retry below reports what still fails
                    pass
            delay = next(delays, None)
            if delay is None:
                say(f"yaml2torch: storage still unreachable while {what}; giving up")
                raise
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            say(f"yaml2torch: storage unreachable while {what} ({first_line}); retrying in {delay:.1f}s")
            time.sleep(delay)


# --- artifacts: files (weights) stored beside the study -----------------------------------------


def make_artifact_store(location: str | Path) -> optuna.artifacts.FileSystemArtifactStore:
    """A folder artifact store (created when missing). Other Optuna stores can be passed directly."""
    from optuna.artifacts import FileSystemArtifactStore

    folder = Path(location)
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(folder))


def upload_file(trial: optuna.Trial, path: Path, artifact_store: Any) -> str:
    """Upload a trial's file to the artifact store; the artifact id (record it on the trial)."""
    from optuna.artifacts import upload_artifact

    return upload_artifact(
        artifact_store=artifact_store, file_path=str(path), study_or_trial=trial, mimetype="application/octet-stream"
    )


def download_file(artifact_store: Any, artifact_id: str, destination: Path) -> Path:
    """Fetch an artifact into ``destination`` atomically (a partial download never has its name)."""
    from optuna.artifacts import download_artifact

    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        download_artifact(artifact_store=artifact_store, file_path=str(partial), artifact_id=artifact_id)
        partial.replace(destination)
    finally:
        partial.unlink(missing_ok=True)
    return destination

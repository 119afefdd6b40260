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

import errno
import os
import shutil
import stat
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import optuna
from optuna.artifacts import FileSystemArtifactStore

from yaml2torch.errors import CannotWrite, StorageUnreachable, StudyError, UsageError
from yaml2torch.scale.defaults import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL

JOURNAL_SCHEME = "journal://"
JOURNAL_SUFFIXES = (".log", ".journal")
SQLITE_PREFIX = "sqlite:///"
SQLITE_HEADER = b"SQLite format 3\x00"
URL_FORMS = "sqlite:///path/study.db, postgresql://user@host/db, mysql://..., or a journal file"

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


def storage_file(url: str) -> Path | None:
    """The local file a SQLite or journal URL names; None for a database server or in-memory SQLite."""
    try:
        kind = classify_storage(url)
    except UsageError:
        return None
    if kind.kind == "journal":
        return Path(kind.location)
    if kind.kind == "sqlite" and url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX) :].split("?", 1)[0]
        return Path(path) if path and path != ":memory:" else None
    return None


START_ANEW = ", or move this file away to start a new study"


def start_anew(new_study: bool) -> str:
    """The advice to move a bad study file away: true only for a command that would then start a
    new study there (search); one that reads a study (best, report, worker) would find none."""
    return START_ANEW if new_study else ""


def check_storage_file(url: str, *, new_study: bool = True) -> None:
    """Refuse, with what to do, a local storage file that cannot hold a study: a missing folder
    (SQLite), a folder or device, an empty or non-SQLite file where a SQLite database should be.
    ``new_study``: whether the command may start a new study there (see ``start_anew``)."""
    path, kind = storage_file(url), classify_storage(url).kind
    if path is None:
        return
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if kind == "sqlite" and not path.parent.is_dir():
            raise UsageError(f"storage {url}: the folder {path.parent} does not exist; create it or choose another path") from None
        return
    except (OSError, ValueError) as exc:
        raise UsageError(f"storage {url}: cannot use {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if stat.S_ISDIR(mode):
        example = path / ("study.db" if kind == "sqlite" else "study.log")
        raise UsageError(f"storage {url}: {path} is a folder; name a file in it (e.g. {example})")
    if not stat.S_ISREG(mode):
        raise UsageError(f"storage {url}: {path} is not a regular file")
    if kind == "sqlite":
        _check_sqlite_header(url, path, new_study)
    elif kind == "journal":
        _check_journal_header(url, path, new_study)


def _check_journal_header(url: str, path: Path, new_study: bool) -> None:
    """A journal starts with a record (or is empty: Optuna creates it so); anything else is refused
    here, since Optuna skips a last line it cannot read and would report "no such study"."""
    from yaml2torch.scale.journal import RECORD_PREFIX

    try:
        with path.open("rb") as handle:
            head = handle.read(len(RECORD_PREFIX))
    except OSError as exc:
        raise UsageError(f"storage {url}: cannot read {path}: {exc.strerror or exc}") from None
    if not RECORD_PREFIX.startswith(head):
        raise StudyError(
            f"storage {url}: {path} is not an Optuna journal file (it does not start with a journal record); "
            f"pass the study's journal file{start_anew(new_study)}"
        )


def _check_sqlite_header(url: str, path: Path, new_study: bool) -> None:
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise UsageError(f"storage {url}: cannot read {path}: {exc.strerror or exc}") from None
    if not header:
        raise StudyError(
            f"storage {url}: {path} is empty (0 bytes), not a study database (truncated?); "
            f"restore it{start_anew(new_study)}"
        )
    if header != SQLITE_HEADER:
        raise StudyError(
            f"storage {url}: {path} is not a SQLite database; pass the study's database{start_anew(new_study)}"
        )
    tables = _sqlite_tables(url, path, new_study)
    if tables and "studies" not in tables:
        raise StudyError(
            f"storage {url}: {path} is the SQLite database of something else (tables {', '.join(sorted(tables)[:3])}); "
            "yaml2torch will not add its tables to it: choose another file"
        )


def _sqlite_tables(url: str, path: Path, new_study: bool) -> set[str]:
    import sqlite3

    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        finally:
            connection.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            return {"studies"}  # another process is writing it: Optuna's busy timeout deals with that
        raise StudyError(f"storage {url}: SQLite cannot read {path} ({exc}); is it damaged?") from None
    except sqlite3.DatabaseError as exc:
        raise StudyError(f"storage {url}: {path} is a damaged SQLite database ({exc}); restore it{start_anew(new_study)}") from None
    return {name for (name,) in rows}


def journal_url(path: Path) -> str:
    """The storage URL of a journal file (an absolute path, so workers elsewhere agree)."""
    return f"{JOURNAL_SCHEME}{Path(path).resolve()}"


def make_storage(
    url: str,
    *,
    heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL,
    grace_period: int = DEFAULT_GRACE_PERIOD,
    new_study: bool = True,
) -> optuna.storages.BaseStorage:
    """Open the storage a URL names (see the module docstring for the forms). ``new_study``: the
    command may start a new study there (see ``start_anew``)."""
    from optuna.storages import JournalStorage, RDBStorage

    from yaml2torch.scale.journal import JournalFile

    kind = classify_storage(url)
    check_storage_file(url, new_study=new_study)
    if kind.kind == "journal":
        path = Path(kind.location)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"storage {url}: cannot create the folder {path.parent}: {exc.strerror or exc}") from None
        try:
            backend = JournalFile(str(path), start_anew=start_anew(new_study))  # creates the file
        except OSError as exc:
            if (cannot_write := as_cannot_write(exc, f"creating the journal {path}")) is not None:
                raise cannot_write from None  # a full or read-only disk: the usual advice
            raise UsageError(f"storage {url}: cannot create {path}: {exc.strerror or exc}") from None
        return JournalStorage(backend)
    if kind.kind == "sqlite":
        # A busy timeout so a second local process waits for the lock instead of failing.
        return _refuse_bad_url(url, lambda: RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}))

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
            return _refuse_bad_url(url, open_rdb)
        except Exception as exc:  # re-raised unless it is the schema race
            if attempt == 9 or not _is_schema_race(exc):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _refuse_bad_url(url: str, open_storage: Callable[[], T]) -> T:
    """``open_storage()``, with the errors that no retry can fix as one line: an unknown scheme or
    a missing driver (UsageError), a file SQLite cannot open or read (StudyError)."""
    from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError

    try:
        return open_storage()
    except ImportError as exc:
        raise UsageError(_missing_driver(url, exc) or f"storage {url!r}: {_first_line(exc)}; expected {URL_FORMS}") from None
    except ArgumentError as exc:
        raise UsageError(f"storage {url!r}: {_first_line(exc)}; expected {URL_FORMS}") from None
    except DatabaseError as exc:
        if (cannot_write := as_cannot_write(exc, "opening it", f"the study storage {url}")) is not None:
            raise cannot_write from None
        if url.startswith("sqlite:") and not (isinstance(exc, OperationalError) and "locked" in str(exc)):
            raise StudyError(f"storage {url}: SQLite cannot use it ({_first_line(exc.orig or exc)})") from None
        raise


def _missing_driver(url: str, exc: BaseException | None) -> str | None:
    """What to install when the database driver of ``url`` is missing (Optuna only says "Failed
    to import DB access module"), or None when ``exc`` is not about a missing module."""
    while not (isinstance(exc, ModuleNotFoundError) and exc.name):
        if exc is None:
            return None
        exc = exc.__cause__ or exc.__context__
    missing = f"No module named {exc.name.split('.')[0]!r}"
    if url.startswith("postgresql"):
        return f"storage {url!r}: the PostgreSQL driver is not installed ({missing}); pip install 'yaml2torch[postgres]'"
    return f"storage {url!r}: its database driver is not installed ({missing}); install the driver SQLAlchemy names for this URL"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_schema_race(exc: BaseException | None) -> bool:
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    while exc is not None:
        if isinstance(exc, (IntegrityError, ProgrammingError)) and "already exists" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# SQLite's words for "this file cannot be written": no retry fixes a full disk or a read-only file.
_CANNOT_WRITE = ("database or disk is full", "readonly database", "read-only file system", "no space left")
_CANNOT_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}


def is_cannot_write_error(exc: BaseException) -> bool:
    """The storage (or the disk under it) cannot be written: disk full, read-only. Not transient."""
    return _cannot_write_cause(exc) is not None


def _cannot_write_cause(exc: BaseException | None) -> BaseException | None:
    """The innermost exception in ``exc``'s chain that says the disk cannot be written, or None."""
    found = None
    while exc is not None:
        by_errno = isinstance(exc, OSError) and exc.errno in _CANNOT_WRITE_ERRNOS
        if by_errno or any(words in str(exc).lower() for words in _CANNOT_WRITE):
            found = exc
        exc = exc.__cause__ or exc.__context__
    return found


def as_cannot_write(exc: BaseException, what: str = "", where: str = "the study storage") -> CannotWrite | None:
    """``exc`` as one line when it means the disk cannot be written (else None): ``PATH: cannot
    write: REASON`` for a file, else the storage's own words (SQLite's "database or disk is full")."""
    if isinstance(exc, CannotWrite):
        return exc
    cause = _cannot_write_cause(exc)
    if cause is None:
        return None
    if isinstance(cause, OSError) and cause.filename:
        return CannotWrite(f"{cause.filename}: cannot write: {cause.strerror}")
    reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else _first_line(cause)
    while_ = f" while {what}" if what else ""
    return CannotWrite(
        f"cannot write {where}{while_}: {reason}; free space (or make it writable) and run the same command again"
    )


def is_transient_storage_error(exc: BaseException) -> bool:
    """Errors that mean "the database is away for a moment": connection refused, dropped, restarting.

    A full disk or a read-only database is not one of them (``is_cannot_write_error``)."""
    if is_cannot_write_error(exc):
        return False
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
            if (cannot_write := as_cannot_write(exc, what)) is not None:
                raise cannot_write from None  # disk full, read-only: no retry fixes it
            if not is_transient_storage_error(exc):
                raise
            if reset is not None:
                try:
                    reset()
                except Exception:  # noqa: BLE001, S110 - the retry below reports what still fails
                    pass
            delay = next(delays, None)
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if delay is None:
                raise StorageUnreachable(
                    f"storage unreachable while {what} ({first_line}); gave up after {backoff.total:g}s of retries"
                ) from exc
            say(f"yaml2torch: storage unreachable while {what} ({first_line}); retrying in {delay:.1f}s")
            time.sleep(delay)


# --- artifacts: files (weights) stored beside the study -----------------------------------------


def make_artifact_store(location: str | Path) -> FileSystemArtifactStore:
    """A folder artifact store (created when missing). Other Optuna stores can be passed directly."""
    folder = Path(location)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CannotWrite(f"cannot create the artifact folder {folder}: {exc.strerror or exc}") from None
    return ArtifactFolder(folder)


class ArtifactFolder(FileSystemArtifactStore):
    """Optuna's folder store, whose files are whole or absent: written to a temporary file and
    renamed, so a full or read-only disk leaves no partial artifact (``CannotWrite``)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.folder = folder

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        if not artifact_id or Path(artifact_id).name != artifact_id or artifact_id.startswith("."):
            raise ValueError(f"Invalid artifact_id: {artifact_id}")  # as Optuna's store says it
        path = self.folder / artifact_id
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{artifact_id}.", suffix=".tmp", dir=self.folder)
        except OSError as exc:
            raise CannotWrite(f"{path}: cannot write: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "wb") as handle:
                shutil.copyfileobj(content_body, handle)
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise CannotWrite(f"{path}: cannot write: {exc.strerror or exc}") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


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

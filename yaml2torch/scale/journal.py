"""Optuna's journal file (one JSON record a line), kept whole through a full disk or a crash.

Optuna's ``JournalFileBackend`` appends a batch of records with one buffered write. When the disk
fills part-way (or the process dies mid-write) the file ends in a partial line; Optuna skips such
a last line when reading, but the next append glues its record onto it, and from then on the
journal cannot be read past that line. ``JournalFile`` reads with Optuna's code and appends the
same records under the same lock (``JournalFileSymlinkLock``, so plain Optuna processes can share
the file), but:

- an append that fails (disk full, read-only) is cut off again: the file is as it was before;
- a partial last line that a crash left behind is cut off before the next append (with a warning);
- a record that is not a journal record stops the reading with one line (``StudyError``) instead
  of a traceback, or a ``KeyError`` that would read as "no such study".
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Generator
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from yaml2torch.errors import StudyError

RECORD_PREFIX = b'{"op_code":'  # how Optuna's JournalStorage writes every record (tests pin it)
_CHUNK = 1 << 16


def _warn(message: str) -> None:
    print(f"yaml2torch: warning: {message}", file=sys.stderr, flush=True)


class JournalFile(JournalFileBackend):
    """A journal file backend whose appends are whole or absent (see the module docstring)."""

    def __init__(self, path: str, warn: Callable[[str], None] = _warn, start_anew: str = "") -> None:
        self._append_lock = JournalFileSymlinkLock(path)
        super().__init__(path, lock_obj=self._append_lock)
        self.path = path
        self._say = warn
        self._start_anew = start_anew  # what the damage message adds (storage.start_anew)

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        line = log_number_from  # one record a line: the lines read so far
        try:
            for log in super().read_logs(log_number_from):
                if not isinstance(log, dict) or "op_code" not in log:
                    raise StudyError(self._damaged(line + 1, f"it holds a {type(log).__name__}"))
                line += 1
                yield log
        except (ValueError, TypeError) as exc:  # a line that is not JSON (or not UTF-8)
            raise StudyError(self._damaged(line + 1, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)) from None

    def _damaged(self, line: int, detail: str) -> str:
        return (
            f"journal {self.path} is damaged: line {line} is not a journal record ({detail}); "
            f"restore the file from a copy{self._start_anew}"
        )

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
        self._append_lock.acquire()
        try:
            append_whole(self.path, data, self._say)
        finally:
            self._append_lock.release()


def append_whole(path: str, data: bytes, warn: Callable[[str], None] = _warn) -> None:
    """Append ``data`` (whole lines) to ``path``, the caller holding the journal's lock: the file
    ends with all of it or none of it. A partial last line already there is cut off first."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        start = whole_lines_end(fd, end)
        if start != end:
            os.ftruncate(fd, start)
            warn(
                f"{path} ended in a partial record ({end - start} bytes: a write cut short by a crash or a "
                "full disk); Optuna ignores it, and it was cut off before appending"
            )
        try:
            written = 0
            while written < len(data):
                written += os.pwrite(fd, data[written:], start + written)
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):  # if even this fails, readers still skip a partial last line
                os.ftruncate(fd, start)  # nothing half-written stays
            raise
    finally:
        os.close(fd)


def whole_lines_end(fd: int, end: int) -> int:
    """The offset just past the last newline before ``end`` (0 when there is none)."""
    position = end
    while position > 0:
        start = max(0, position - _CHUNK)
        chunk = os.pread(fd, position - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0

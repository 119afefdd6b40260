"""The one error hierarchy, and located warnings.

``UserError`` is everything a user can fix; the command line prints it as one line and exits 2.
Any other exception is a bug and keeps its traceback. Spec errors name FILE:LINE:COL of the
YAML node at fault; data, usage and study errors name what they are about, never a made-up line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Location:
    """A 1-based position in a source file."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{printable(self.file)}:{self.line}:{self.column}"


def printable(text: str) -> str:
    """``text`` with line breaks and other control characters escaped, so a message stays one line."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit status 2."""

    def __str__(self) -> str:
        return printable(super().__str__())


class UsageError(UserError):
    """A bad option value or combination, or a missing or unwritable file."""


class CannotWrite(UsageError):
    """A file cannot be written here (disk full, read-only, a folder or device in the way).

    Not the fault of one trial: a worker that meets it stops at once instead of failing every
    trial after it (the trial is queued again, so the study stays resumable)."""


class DataError(UserError):
    """A data source that cannot be read or does not fit (``path: message``)."""

    def __init__(self, path: object | None, message: str) -> None:
        super().__init__(f"{path}: {message}" if path is not None else message)
        self.path = path


class StudyError(UserError):
    """A stored study that cannot be used as asked (missing, foreign, another search file)."""


class StorageUnreachable(UserError):
    """The study's database stayed unreachable through every retry (check the URL, the server)."""


class WeightsError(UserError):
    """Reference weights that do not fit the compiled model, or cannot be read."""


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite (lower the learning rate, or check the data)."""

    def __init__(self, value: float, epoch: int) -> None:
        super().__init__(f"non-finite loss ({value}) at epoch {epoch}")
        self.value = value
        self.epoch = epoch


class SpecError(UserError):
    """A mistake in a spec, at a YAML node's location."""

    def __init__(self, location: Location | None, message: str) -> None:
        super().__init__(message)
        self.location = location
        self.message = message

    def __str__(self) -> str:
        message = printable(self.message)
        return f"{self.location}: {message}" if self.location else message


@dataclass(frozen=True)
class SpecWarning:
    location: Location | None
    message: str

    def __str__(self) -> str:
        message = printable(self.message)
        return f"{self.location}: {message}" if self.location else message


@dataclass
class Diagnostics:
    """Warnings collected while loading and lowering one spec (passed along, never global)."""

    warnings: list[SpecWarning] = field(default_factory=list)

    def warn(self, location: Location | None, message: str) -> None:
        self.warnings.append(SpecWarning(location, message))


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest choice, or ''."""
    choices = list(choices)
    lower = {c.lower(): c for c in choices}
    if word.lower() in lower and lower[word.lower()] != word:
        return f" (did you mean {lower[word.lower()]!r}?)"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""

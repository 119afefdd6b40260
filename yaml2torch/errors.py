"""Located errors and warnings: every message names FILE:LINE:COL of the YAML node at fault."""

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


class SpecError(Exception):
    """A user error in a spec; the CLI prints it as one line and exits with status 2."""

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

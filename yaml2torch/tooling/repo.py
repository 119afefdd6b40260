"""The git repository around a spec, for ``check`` (which specs include a sub-spec) and ``textconv``
(where a temporary copy of a spec came from): its top folder, its tracked files, and the YamlModule
files a spec names. git is asked through its command line; without git or outside a repository
there is no ``Repo`` and the callers fall back to the spec's own folder.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from yaml2torch.spec.yaml_nodes import Node

_ROW_KEYS = ("backbone", "head", "module")  # the keys whose lists hold rows (a spec, a sub-spec)
_GIT_TIMEOUT = 60


@dataclass(frozen=True)
class Repo:
    top: Path  # the top of the work tree
    files: tuple[str, ...]  # the tracked files (the index), relative to ``top``, '/'-separated
    tracked: frozenset[str] = field(default=frozenset(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tracked", frozenset(self.files))

    def folders(self) -> set[str]:
        """Every folder holding a tracked file, and the folders above them ('' is the top)."""
        found = {""}
        for name in self.files:
            folder = posixpath.dirname(name)
            while folder and folder not in found:
                found.add(folder)
                folder = posixpath.dirname(folder)
        return found

    def holds_all(self, folder: str, names: list[str]) -> bool:
        """Whether every file name (relative to ``folder``, as a YamlModule row writes it) is tracked."""
        return all(posixpath.normpath(posixpath.join(folder, name)) in self.tracked for name in names)


def find_repo(start: Path) -> Repo | None:
    """The repository holding the folder ``start`` (None outside one, or without git)."""
    try:
        top = _git(["rev-parse", "--show-toplevel"], start).decode("utf-8", "surrogateescape").strip()
        listed = _git(["ls-files", "-z", "--full-name"], Path(top))
    except (OSError, subprocess.SubprocessError):
        return None
    if not top:
        return None
    names = listed.decode("utf-8", "surrogateescape").split("\0")
    return Repo(Path(top), tuple(name for name in names if name))


def _git(args: list[str], cwd: Path) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True, timeout=_GIT_TIMEOUT).stdout


def shown_path(path: Path) -> Path:
    """``path`` relative to the working directory when it lies below it (as the user names files)."""
    try:
        return Path(os.path.relpath(path)) if Path.cwd() in path.resolve().parents else path
    except (OSError, ValueError):
        return path


def yaml_module_files(root: Node) -> list[str]:
    """The file names of the YamlModule rows of a spec or sub-spec (as written, relative to it)."""
    if not root.is_map:
        return []
    found = []
    for key in _ROW_KEYS:
        rows = root.mapping().get(key)
        for row in rows.sequence() if rows is not None and rows.is_seq else []:
            items = row.sequence() if row.is_seq else []
            at = 1 if len(items) == 3 else 2
            if len(items) in (3, 4, 5) and items[at].value == "YamlModule":
                name = _file_arg(items[at + 1], items[4] if len(items) == 5 else None)
                if name:
                    found.append(name)
    return found


def _file_arg(args: Node, kwargs: Node | None) -> str | None:
    first = args.sequence()[0].value if args.is_seq and args.sequence() else None
    if isinstance(first, str):
        return first
    if kwargs is not None and kwargs.is_map:
        for key in ("file", "path"):
            value = kwargs.mapping().get(key)
            if value is not None and isinstance(value.value, str):
                return value.value
    return None

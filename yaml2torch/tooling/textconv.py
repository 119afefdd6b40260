"""``yaml2torch textconv FILE``: a spec's generated ``model.py``, for git's textconv (``git diff``,
``git log -p`` and ``git show`` of specs as the code they generate).

The driver never makes git fail: it always exits 0, and a file it cannot compile (not UTF-8, too
large, a YAML or spec error, a YamlModule file that cannot be found, even a bug) shows as its own
text (bytes that are not UTF-8 replaced) followed by one ``# yaml2torch: error: ...`` line. A
YamlModule sub-spec shows as its own text: it has no model file of its own.

git runs the driver from the top of the work tree and hands it either the work tree's file (a
relative path) or a temporary copy of a committed version: ``$TMPDIR/git-blob-XXXXXX/NAME`` since
git 2.37, ``$TMPDIR/XXXXXX_NAME`` before (``XXXXXX`` six letters or digits). A copy has lost the
spec's folder, which its YamlModule files are relative to; it is looked for in the repository:

1. ``--base-dir DIR`` when given;
2. the tracked files named ``NAME`` (the ``XXXXXX_`` prefix is dropped only when the name without
   it is tracked and the name with it is not): the one among them whose folder holds every
   YamlModule file the spec names, else the only one;
3. else, when no tracked file has that name (a spec renamed or moved since), the one folder of
   the repository that holds every YamlModule file the spec names;
4. else the top of the work tree.

Sub-spec files are read from the work tree, not from the commit being shown.
"""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
from pathlib import Path

from yaml2torch.errors import SpecError, UserError, printable
from yaml2torch.tooling.repo import Repo, find_repo, yaml_module_files

_NEW_GIT_TEMP_DIR = re.compile(r"^git-blob-[A-Za-z0-9]{6}$")  # git >= 2.37: $TMPDIR/git-blob-XXXXXX/NAME
_OLD_GIT_TEMP_NAME = re.compile(r"^[A-Za-z0-9]{6}_(.+)$")  # git < 2.37: $TMPDIR/XXXXXX_NAME


def textconv(path: Path, base_dir: Path | None = None) -> str:
    """The generated model.py of the spec at ``path``; never raises (see the module docstring)."""
    try:
        return _convert(path, base_dir)
    except UserError as exc:
        return _with_error(path, str(exc))
    except Exception as exc:  # noqa: BLE001 - a textconv driver must never make git fail: a bug shows in the diff too
        return _with_error(path, f"{path}: internal error ({type(exc).__name__}: {exc}); please report it")


def _convert(path: Path, base_dir: Path | None) -> str:
    from yaml2torch.blocks.yaml_module import is_sub_spec
    from yaml2torch.compiler import compile_text
    from yaml2torch.spec.ultralytics import is_ultralytics
    from yaml2torch.spec.yaml_nodes import load_text, read_text

    shown, base = locate(path, base_dir)
    text = read_text(path, shown)
    root = load_text(text, shown)
    if is_sub_spec(root) and not is_ultralytics(root):
        return text
    return compile_text(text, shown, base_dir=base).source


def _with_error(path: Path, message: str) -> str:
    text = ""
    try:
        if path.is_file():  # a regular file only: a FIFO would never end
            with path.open("rb") as handle:
                text = handle.read().decode("utf-8", errors="replace")
    except (OSError, ValueError):
        text = ""
    if text and not text.endswith("\n"):
        text += "\n"
    return f"{text}# yaml2torch: error: {printable(message)}\n"


def locate(path: Path, base_dir: Path | None = None) -> tuple[str, Path]:
    """(the name to show for the spec, the folder its YamlModule files are relative to)."""
    if not _is_git_copy(path):
        return str(path), base_dir if base_dir is not None else path.parent
    repo = find_repo(Path.cwd())
    if repo is None:
        return path.name, base_dir if base_dir is not None else Path.cwd()
    name = tracked_name(path, repo)
    folder = _spec_folder(name, _named_files(path), repo)
    if folder is None:
        return name, base_dir if base_dir is not None else repo.top
    shown = posixpath.join(folder, name)
    return shown, base_dir if base_dir is not None else repo.top / folder


def _is_git_copy(path: Path) -> bool:
    """A temporary copy git made (a committed version), not a file of the work tree."""
    if _NEW_GIT_TEMP_DIR.match(path.parent.name):
        return True
    if not _OLD_GIT_TEMP_NAME.match(path.name):
        return False
    try:
        return path.parent.resolve() == Path(tempfile.gettempdir()).resolve()
    except OSError:
        return False


def tracked_name(path: Path, repo: Repo) -> str:
    """The file name git copied: ``path``'s own, or, for git < 2.37's ``XXXXXX_NAME``, ``NAME`` when
    that name is tracked and ``XXXXXX_NAME`` is not (``resnet_ym.yaml`` keeps its name)."""
    name = path.name
    match = _OLD_GIT_TEMP_NAME.match(name)
    if _NEW_GIT_TEMP_DIR.match(path.parent.name) or match is None:
        return name
    names = {posixpath.basename(file) for file in repo.files}
    return match.group(1) if match.group(1) in names and name not in names else name


def _named_files(path: Path) -> list[str]:
    from yaml2torch.spec.yaml_nodes import load_text, read_text

    try:
        return yaml_module_files(load_text(read_text(path), str(path)))
    except SpecError:
        return []


def _spec_folder(name: str, files: list[str], repo: Repo) -> str | None:
    """The folder (relative to the top) the spec ``name`` naming YamlModule ``files`` stood in."""
    same_name = [posixpath.dirname(file) for file in repo.files if posixpath.basename(file) == name]
    relative = bool(files) and not any(os.path.isabs(file) for file in files)
    if relative:
        holding = [folder for folder in same_name if repo.holds_all(folder, files)]
        if len(holding) == 1:
            return holding[0]
    if same_name:
        return same_name[0] if len(same_name) == 1 else None
    if relative:  # no tracked file of that name: renamed or moved since; the one folder that fits
        anywhere = [folder for folder in repo.folders() if repo.holds_all(folder, files)]
        return anywhere[0] if len(anywhere) == 1 else None
    return None

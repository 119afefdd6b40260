"""Files the tool writes and reads: atomic writes, weights, importing a generated model file.

The one home for each: every command and the search call these instead of writing their own.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import io
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from yaml2torch.errors import CannotWrite, UsageError

if TYPE_CHECKING:
    from torch import nn


def write_atomic(path: Path, text: str | bytes, *, through_links: bool = False) -> None:
    """Write via a temporary file in the same folder, then rename: complete or absent.

    Only regular files are replaced: a FIFO, device or folder at ``path`` is refused, and a write
    that fails (disk full, read-only) leaves no temporary file; both raise ``CannotWrite``
    (``PATH: cannot write: reason``).

    ``through_links`` (``fmt``, which rewrites the user's own files): a symbolic link is followed
    and its target rewritten (the link stays a link); a file with several hard links is rewritten
    in place (``write_in_place``), so every name still shows the same, new, content.
    """
    path = Path(path)
    data = text.encode("utf-8") if isinstance(text, str) else text
    if through_links:
        path = Path(os.path.realpath(path))
        if _link_count(path) > 1:
            write_in_place(path, data)
            return
    _check_replaceable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        # mkstemp makes the file 0600; give it the mode a plain open() would (or the old file's)
        os.fchmod(fd, path.stat().st_mode & 0o7777 if path.is_file() else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot_write(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_in_place(path: Path, data: bytes) -> None:
    """Overwrite an existing regular file's content in place (same inode: hard links, owner and
    mode kept). The room for the new content is reserved first (``posix_fallocate``), so a full
    disk or quota refuses the write before a byte changes; then the content is written and the
    file cut to its new length. No temporary file is made."""
    _check_replaceable(path)
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        _reserve(fd, len(data))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.ftruncate(fd, len(data))
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    finally:
        os.close(fd)


def check_writable(path: Path, *, through_links: bool = False) -> None:
    """Raise ``CannotWrite`` unless ``write_atomic(path, ..., through_links=...)`` can replace the
    existing file ``path``: a regular file this process may write, in a folder it may create files
    in (or, for a file with several hard links, the file alone). Nothing is changed."""
    path = Path(path)
    real = Path(os.path.realpath(path)) if through_links else path
    _check_replaceable(real, shown=path)
    try:
        os.close(os.open(real, os.O_WRONLY))  # the real permission check (also read-only mounts, immutable files)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    in_place = through_links and _link_count(real) > 1
    if not in_place and not os.access(real.parent, os.W_OK | os.X_OK):
        raise CannotWrite(f"{path}: cannot write: cannot create files in the folder {real.parent}")


def _reserve(fd: int, size: int) -> None:
    if size == 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # a file system without it: write as is
            raise


def _link_count(path: Path) -> int:
    try:
        st = path.stat()
    except OSError:
        return 1
    return st.st_nlink if stat.S_ISREG(st.st_mode) else 1


def _cannot_write(path: Path, exc: OSError) -> CannotWrite:
    return CannotWrite(f"{path}: cannot write: {exc.strerror or exc}")


def refuse_overwriting_inputs(outputs: Iterable[Path], inputs: Iterable[Path | None], option: str = "-o") -> None:
    """Refuse, before anything is written, an output that is one of the command's inputs: the same
    file by any path (a symlink, a hard link, ``./x`` for ``x``), so an input is never replaced."""
    sources = [source for source in inputs if source is not None]
    for output in outputs:
        for source in sources:
            if same_file(output, source):
                raise UsageError(
                    f"{option} {output} would overwrite the input {source}; choose another output path"
                )


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one existing file (a symlink, a hard link, ``./x`` for ``x``)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # missing (a new path), or not a possible file name
        return False


def _check_replaceable(path: Path, shown: Path | None = None) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _cannot_write(shown or path, exc) from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise CannotWrite(f"{shown or path}: cannot write: it is {kind}; yaml2torch only replaces regular files")


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; restored at once
    os.umask(mask)
    return mask


def state_dict_bytes(model: nn.Module) -> bytes:
    """A model's weights as ``torch.save`` bytes, moved to the CPU (loadable anywhere)."""
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def save_state_dict(model: nn.Module, path: Path) -> None:
    """Save a model's weights (CPU tensors) atomically."""
    write_atomic(path, state_dict_bytes(model))


def load_state_dict(model: nn.Module, source: Path | bytes) -> None:
    """Load weights saved by ``save_state_dict`` (a file) or ``state_dict_bytes`` (bytes)."""
    import torch

    handle: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    model.load_state_dict(torch.load(handle, map_location="cpu", weights_only=True))


def import_file(path: Path, prefix: str = "yaml2torch_file") -> ModuleType:
    """Import a Python file as its own module (not via sys.path), under a name unique to its path.

    Used for generated model files and for the user's own search_model/plugin files.
    """
    path = Path(path).resolve()
    name = f"{prefix}_{hashlib.sha256(str(path).encode()).hexdigest()[:16]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: cannot import (not a Python file)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_model_class(path: Path, class_name: str = "Model") -> type[nn.Module]:
    """The model class of a generated ``model.py``, imported from its own file."""
    model_class: type[nn.Module] = getattr(import_file(path, "yaml2torch_model"), class_name)
    return model_class

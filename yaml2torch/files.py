"""Files the tool writes and reads: atomic writes, weights, importing a generated model file.

The one home for each: every command and the search call these instead of writing their own.
"""

from __future__ import annotations

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


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write via a temporary file in the same folder, then rename: complete or absent.

    Only regular files are replaced: a FIFO, device or folder at ``path`` is refused, and a write
    that fails (disk full, read-only) leaves no temporary file; both raise ``CannotWrite``.
    """
    path = Path(path)
    _check_replaceable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8") if isinstance(text, str) else text
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CannotWrite(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        # mkstemp makes the file 0600; give it the mode a plain open() would (or the old file's)
        os.fchmod(fd, path.stat().st_mode & 0o7777 if path.is_file() else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CannotWrite(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def _check_replaceable(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CannotWrite(f"cannot write {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise CannotWrite(f"cannot write {path}: it is {kind}; yaml2torch only replaces regular files")


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

"""The block catalogue. Each module here defines one block (a ``Block`` subclass)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType, ModuleType

from yaml2torch.blocks.base import Block
from yaml2torch.errors import Location, SpecError
from yaml2torch.ir.nodes import InputFile

_SUPPORT_MODULES = {"base", "args", "activations", "loader"}


def blocks_in(module: ModuleType) -> list[type[Block]]:
    """Block subclasses defined in ``module`` (not imported into it)."""
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, Block)
        and obj is not Block
        and obj.__module__ == module.__name__
        and "name" in vars(obj)
    ]


@cache
def builtin_blocks(dialect: str = "yaml2torch") -> Mapping[str, type[Block]]:
    """The blocks a spec of ``dialect`` may name (ultralytics files get ultralytics' own blocks)."""
    found: dict[str, type[Block]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _SUPPORT_MODULES:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for block in blocks_in(module):
            if dialect not in block.dialects:
                continue
            if block.name in found:
                raise RuntimeError(f"block {block.name} defined twice")
            found[block.name] = block
    return MappingProxyType(found)


def refused_blocks(dialect: str) -> Mapping[str, str]:
    """Names a dialect's files use that are refused with a reason (instead of 'unknown block')."""
    if dialect != "ultralytics":
        return MappingProxyType({})
    from yaml2torch.blocks.ultralytics import REFUSED

    return REFUSED


@dataclass(frozen=True)
class Catalogue:
    """Built-in blocks plus the plugins a spec names in ``modules:``."""

    blocks: Mapping[str, type[Block]]
    refused: Mapping[str, str] = field(default_factory=dict)  # name -> why it is not compiled
    files: tuple[InputFile, ...] = ()  # the plugin modules' source files

    @classmethod
    def for_modules(
        cls,
        modules: tuple[str, ...],
        loc: Location,
        search_dirs: tuple[Path, ...] = (),
        module_locs: tuple[Location, ...] = (),
        dialect: str = "yaml2torch",
    ) -> Catalogue:
        """``search_dirs`` (the spec's folder, the working directory) are tried for a plugin that
        the normal import path does not find, as ``python -m`` would find it from there.
        ``module_locs``: where each entry of ``modules:`` stands (errors point there)."""
        blocks = dict(builtin_blocks(dialect))
        files: list[InputFile] = []
        for i, path in enumerate(modules):
            loc_i = module_locs[i] if i < len(module_locs) else loc
            try:
                module = import_plugin(path, search_dirs)
            except ImportError as exc:
                raise SpecError(loc_i, f"cannot import plugin module {path!r}: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - the plugin's own code failed while importing
                raise SpecError(loc_i, f"plugin module {path!r} failed to import: {type(exc).__name__}: {exc}") from None
            source = getattr(module, "__file__", None)
            if source:
                files.append(InputFile(Path(source).resolve(), loc_i, "plugin module"))
            found = blocks_in(module)
            if not found:
                raise SpecError(loc_i, f"plugin module {path!r} defines no Block subclass")
            for block in found:
                if block.name in blocks:
                    raise SpecError(loc_i, f"plugin block {block.name!r} from {path!r} clashes with an existing block")
                blocks[block.name] = block
        return cls(MappingProxyType(blocks), refused_blocks(dialect), tuple(files))


def import_plugin(path: str, search_dirs: tuple[Path, ...]) -> ModuleType:
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not search_dirs or not (path == missing or path.startswith(missing + ".")):
            raise
    saved = list(sys.path)
    sys.path[:0] = [str(d) for d in search_dirs]
    try:
        importlib.invalidate_caches()
        return importlib.import_module(path)
    finally:
        sys.path[:] = saved

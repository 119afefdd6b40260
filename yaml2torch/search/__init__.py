"""The architecture search: search-space YAML -> Optuna study -> trained, scored, kept specs.

Python API (imported lazily, so ``yaml2torch compile`` never pays for torch or Optuna)::

    from yaml2torch.search import RunOptions, load_config, run_search
    result = run_search(load_config("space.yaml"), RunOptions(out_dir=Path("out")))
"""

from __future__ import annotations

_EXPORTS = {
    "load_config": "yaml2torch.search.config",
    "parse_config": "yaml2torch.search.config",
    "RunOptions": "yaml2torch.search.run",
    "run_search": "yaml2torch.search.run",
    "SearchResult": "yaml2torch.search.run",
}
__all__ = ["RunOptions", "SearchResult", "load_config", "parse_config", "run_search"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'yaml2torch.search' has no attribute {name!r}")

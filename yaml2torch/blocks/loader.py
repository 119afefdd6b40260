"""Loading sub-spec files for ``YamlModule`` rows, relative to the spec that names them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from yaml2torch.errors import Diagnostics


@dataclass(frozen=True)
class SubSpecLoader:
    base_dir: Path
    diagnostics: Diagnostics

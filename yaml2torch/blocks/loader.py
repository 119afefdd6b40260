"""Loading sub-spec files for ``YamlModule`` rows, relative to the spec that names them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yaml2torch.errors import Diagnostics
from yaml2torch.ir.nodes import InputFile
from yaml2torch.spec.limits import LayerBudget


@dataclass(frozen=True)
class SubSpecLoader:
    """What a YamlModule needs to lower its sub-spec, for one compile (never shared across compiles).

    ``base_dir`` is the folder of the file whose rows are being lowered; ``including`` the chain of
    sub-spec files above it (the recursion guard); ``class_names`` maps each distinct generated
    sub-spec class body to its name, so one body gets one class and names are assigned in spec order;
    ``read`` collects the sub-spec files read (the compiled model's ``inputs``).
    """

    base_dir: Path
    diagnostics: Diagnostics
    catalogue: Any = None  # the parent's Catalogue (plugins included); None: the built-in blocks
    including: tuple[Path, ...] = ()
    class_names: dict[str, str] = field(default_factory=dict)
    budget: LayerBudget = field(default_factory=LayerBudget)  # layers of the whole compile (spec/limits.py)
    read: list[InputFile] = field(default_factory=list)  # the sub-spec files this compile read

    def nested(self, path: Path) -> SubSpecLoader:
        """The loader for rows inside the sub-spec ``path`` (same compile, same class names)."""
        return SubSpecLoader(
            path.parent,
            self.diagnostics,
            self.catalogue,
            (*self.including, path),
            self.class_names,
            self.budget,
            self.read,
        )

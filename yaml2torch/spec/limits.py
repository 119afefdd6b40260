"""The documented limits on what one spec may cost (docs/spec.md, "Limits").

Each is checked before the work it bounds is paid: the file size before reading, the YAML value
count while parsing, a row's layers before its repeats are expanded, the include depth before a
YamlModule file is opened, the parameter count from the analytic counts (no weights are built).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from yaml2torch.errors import Location, SpecError

MAX_FILE_BYTES = 1_000_000  # a spec, sub-spec or search file
MAX_NODES = 50_000  # YAML values in one file (and after alias expansion)
MAX_DEPTH = 100  # nesting of YAML lists and mappings
MAX_LAYERS = 2_000  # modules in one model after repeats and depth_multiple, sub-specs included
MAX_INCLUDE_DEPTH = 16  # YamlModule files including YamlModule files
MAX_PARAMS = 10**10  # parameters of one model (analytic count)


@dataclass
class LayerBudget:
    """The layers one compile has built so far, shared by a model and all its sub-specs."""

    layers: int = 0

    def charge(self, count: int, loc: Location | None, what: str) -> None:
        """Count ``count`` more layers, refused at ``loc`` before they are built when over the limit."""
        self.layers += count
        if self.layers > MAX_LAYERS:
            raise SpecError(
                loc,
                f"{what} brings the model to {count_text(self.layers)} layers, more than {MAX_LAYERS:,} "
                f"(limit {MAX_LAYERS:,} layers after repeats and depth_multiple, sub-specs included)",
            )


def count_text(count: float) -> str:
    """A count for a message: with thousands separators, or its order of magnitude when huge (an
    int of thousands of digits, or a float that overflowed)."""
    if isinstance(count, int) and count < 10**15:
        return f"{count:,}"
    if isinstance(count, int):
        return f"about 10^{int(count.bit_length() * math.log10(2))}"
    return f"{count:,.0f}" if count < 1e15 else f"{count:.3g}"


def times(count: int, multiple: float) -> float:
    """``count * multiple`` as a float, ``inf`` where it overflows (an int beyond a float's range)."""
    try:
        return count * multiple
    except OverflowError:
        return math.inf


def check_params(total: int, loc: Location | None) -> None:
    if total > MAX_PARAMS:
        raise SpecError(
            loc, f"the model reaches {count_text(total)} parameters at this row, more than {MAX_PARAMS:,} (limit {MAX_PARAMS:,})"
        )

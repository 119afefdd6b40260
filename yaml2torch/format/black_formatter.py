"""The one place black is called; pinned settings make output identical on every machine."""

from __future__ import annotations

import black


class BlackFormatter:
    def __init__(self, line_length: int = 88) -> None:
        self.mode = black.Mode(
            target_versions={black.TargetVersion.PY310},
            line_length=line_length,
            magic_trailing_comma=True,
        )

    def format(self, source: str) -> str:
        return black.format_str(source, mode=self.mode)

"""Finding and loading the Jinja2 templates, from a checkout or an installed wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def templates_dir() -> Path:
    # A wheel carries them inside the package; a checkout keeps them at the top level.
    for candidate in (_PACKAGE_DIR / "templates", _PACKAGE_DIR.parent / "templates"):
        if (candidate / "model.py.jinja").is_file():
            return candidate
    raise FileNotFoundError("yaml2torch templates not found (broken installation?)")


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )

"""PluginBlock: the base for blocks defined outside yaml2torch (a spec's ``modules:``).

A plugin module defines ``Block`` subclasses; the catalogue finds them by import. The generated
file must stay standalone, so the plugin's ``nn.Module`` source is embedded in it: a PluginBlock
names the class (``module_class``, whose source is read with ``inspect.getsource``) or gives the
source text (``source``). The source must be one top-level class with the block's class name and may
use only what every generated file has in scope: ``torch``, ``nn``, ``BN_EPS``/``BN_MOMENTUM``
(when a BatchNorm-using block is present) and the classes of other blocks in the spec.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import TYPE_CHECKING, ClassVar

from yaml2torch.blocks.base import Block

if TYPE_CHECKING:
    from jinja2 import Environment


class PluginBlock(Block):
    module_class: ClassVar[type | None] = None  # an nn.Module class whose source is embedded
    source: ClassVar[str | None] = None  # or the class source itself

    def generated_name(self) -> str:
        if self.class_name:
            return self.class_name
        if self.module_class is not None:
            return self.module_class.__name__
        return self.name

    def class_source(self, env: Environment) -> str | None:
        if self.torch_class is not None:
            return None
        if self.module_class is not None:
            text = inspect.getsource(self.module_class)
        elif self.source is not None:
            text = self.source
        else:
            raise TypeError(f"plugin block {self.name} sets neither module_class nor source")
        text = textwrap.dedent(text).strip("\n") + "\n"
        check_class_source(text, self.generated_name(), self.name)
        return text


def check_class_source(text: str, class_name: str, block_name: str) -> None:
    """One top-level ``class <class_name>`` and nothing else (no imports, no module-level code)."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise TypeError(f"plugin block {block_name}: its class source does not parse: {exc}") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.ClassDef) or tree.body[0].name != class_name:
        raise TypeError(f"plugin block {block_name}: the source must be exactly one class named {class_name}")

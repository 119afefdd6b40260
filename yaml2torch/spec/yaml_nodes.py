"""Safe YAML loading into located nodes.

PyYAML's composer gives every node a mark; we convert the node graph ourselves so that
every value keeps its FILE:LINE:COL, duplicate keys and non-standard tags (``!!python/...``)
are refused, and aliases are counted so an alias bomb fails fast instead of expanding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import yaml

from yaml2torch.errors import Location, SpecError

# Tags a spec may use; anything else (``!!python/object``, custom tags) is refused.
_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
# Upper bound on nodes visited while converting, counting each alias expansion.
MAX_NODES = 50_000
MAX_DEPTH = 100

Scalar = Union[str, int, float, bool, None]


@dataclass(frozen=True, eq=False)
class Node:
    """A YAML value with the location of its node. ``value`` is a scalar, list or dict."""

    value: Scalar | list[Node] | dict[str, Node]
    loc: Location
    key_locs: dict[str, Location] | None = None  # for mappings: where each key stands

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_seq(self) -> bool:
        return isinstance(self.value, list)

    def plain(self) -> object:
        """The value with locations stripped (lists, dicts and scalars)."""
        if isinstance(self.value, list):
            return [item.plain() for item in self.value]
        if isinstance(self.value, dict):
            return {key: item.plain() for key, item in self.value.items()}
        return self.value


def type_name(value: object) -> str:
    if isinstance(value, Node):
        value = value.value
    return {
        bool: "a bool",
        int: "an int",
        float: "a float",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def read_text(path: Path) -> str:
    """Read a spec file as UTF-8, naming the position of the first bad byte."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(Location(str(path), 1, 1), "file not found") from None
    except IsADirectoryError:
        raise SpecError(Location(str(path), 1, 1), "is a directory, not a YAML file") from None
    except OSError as exc:
        raise SpecError(Location(str(path), 1, 1), f"cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise SpecError(
            Location(str(path), line, column),
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8",
        ) from None


def load_text(text: str, filename: str) -> Node:
    """Parse YAML text into a located Node tree."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(filename, mark.line + 1, mark.column + 1) if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(where, f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError(Location(filename, 1, 1), f"YAML error: {exc}") from None
    if root is None:
        raise SpecError(Location(filename, 1, 1), "the file is empty; expected a mapping")
    return _Converter(filename).convert(root, 0)


def load_file(path: Path) -> Node:
    return load_text(read_text(path), str(path))


class _Converter:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.visited = 0
        self.constructor = yaml.SafeLoader("")

    def loc(self, node: yaml.Node) -> Location:
        return Location(self.filename, node.start_mark.line + 1, node.start_mark.column + 1)

    def convert(self, node: yaml.Node, depth: int) -> Node:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise SpecError(
                self.loc(node),
                f"the document expands to more than {MAX_NODES} nodes (an alias bomb?)",
            )
        if depth > MAX_DEPTH:
            raise SpecError(self.loc(node), f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.ScalarNode):
            if node.tag not in _SCALAR_TAGS:
                raise SpecError(self.loc(node), f"tag {node.tag!r} is not allowed in a spec")
            value = self.constructor.construct_object(node)
            return Node(value, self.loc(node))
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                raise SpecError(self.loc(node), f"tag {node.tag!r} is not allowed in a spec")
            return Node([self.convert(item, depth + 1) for item in node.value], self.loc(node))
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                raise SpecError(self.loc(node), f"tag {node.tag!r} is not allowed in a spec")
            items: dict[str, Node] = {}
            key_locs: dict[str, Location] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise SpecError(self.loc(key_node), "merge keys ('<<') are not supported")
                key = self.convert(key_node, depth + 1)
                if not isinstance(key.value, str):
                    raise SpecError(key.loc, f"mapping keys must be strings, not {type_name(key)}")
                if key.value in items:
                    first = key_locs[key.value]
                    raise SpecError(
                        key.loc, f"duplicate key {key.value!r} (first at line {first.line})"
                    )
                key_locs[key.value] = key.loc
                items[key.value] = self.convert(value_node, depth + 1)
            return Node(items, self.loc(node), key_locs)
        raise SpecError(self.loc(node), "unsupported YAML node")

"""Safe YAML loading into located nodes.

PyYAML's composer gives every node a mark; we convert the node graph ourselves so that
every value keeps its FILE:LINE:COL, duplicate keys and non-standard tags (``!!python/...``)
are refused, and aliases are counted so an alias bomb fails fast instead of expanding.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Union

import yaml

from yaml2torch.errors import Location, SpecError
from yaml2torch.spec.limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES

# Tags a spec may use; anything else (``!!python/object``, custom tags) is refused.
_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_YAML_TAG_PREFIX = "tag:yaml.org,2002:"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "Node", "load_file", "load_text", "read_text", "type_name"]

Scalar = Union[str, int, float, bool, None]  # noqa: UP007 - a runtime alias; `|` needs 3.10+ objects


@dataclass(frozen=True, eq=False)
class Node:
    """A YAML value with the location of its node. ``value`` is a scalar, list or dict."""

    value: Scalar | list[Node] | dict[str, Node]
    loc: Location
    key_locs: dict[str, Location] | None = None  # for mappings: where each key stands
    defines_anchor: bool = False  # the node carries ``&name`` (its first occurrence, not an alias)

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_seq(self) -> bool:
        return isinstance(self.value, list)

    def mapping(self) -> dict[str, Node]:
        """The children of a mapping, typed; only after checking ``is_map``."""
        if not isinstance(self.value, dict):
            raise TypeError(f"expected a mapping node, not {type_name(self)}")
        return self.value

    def sequence(self) -> list[Node]:
        """The items of a list, typed; only after checking ``is_seq``."""
        if not isinstance(self.value, list):
            raise TypeError(f"expected a list node, not {type_name(self)}")
        return self.value

    def key_loc(self, key: str) -> Location:
        """Where ``key`` stands in this mapping (the mapping's own location if unrecorded)."""
        return self.key_locs[key] if self.key_locs is not None and key in self.key_locs else self.loc

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


def read_text(path: Path, name: str | None = None) -> str:
    """Read a spec file as UTF-8, naming the position of the first bad byte.

    Only a regular file is read (a FIFO or device would block or never end), and at most
    MAX_FILE_BYTES + 1 bytes of it: a larger file is refused before it is read in full.
    Errors name ``name`` (default: the path), e.g. the tracked file a temporary copy stands for.
    """
    name = str(path) if name is None else name
    data = _read_bounded(Path(path), name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise SpecError(
            Location(name, line, column),
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8",
        ) from None


def _read_bounded(path: Path, name: str) -> bytes:
    where = Location(name, 1, 1)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise SpecError(where, "is a directory, not a YAML file")
        if not stat.S_ISREG(mode):
            raise SpecError(where, "is not a regular file (a FIFO or a device?); yaml2torch reads only files")
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(where, "file not found") from None
    except OSError as exc:
        raise SpecError(where, f"cannot read: {exc.strerror or exc}") from None
    except ValueError:  # e.g. a NUL byte in the path
        raise SpecError(where, "cannot read: not a valid file name") from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(where, f"the file is larger than {MAX_FILE_BYTES:,} bytes (limit {MAX_FILE_BYTES:,} bytes)")
    return data


def load_text(text: str, filename: str) -> Node:
    """Parse YAML text into a located Node tree (at most MAX_FILE_BYTES, MAX_NODES values)."""
    if len(text) > MAX_FILE_BYTES:
        raise SpecError(
            Location(filename, 1, 1), f"the text is longer than {MAX_FILE_BYTES:,} characters (limit {MAX_FILE_BYTES:,})"
        )
    loader = None
    try:
        loader = _LocatingLoader(text, filename)  # the reader checks characters here
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(filename, mark.line + 1, mark.column + 1) if mark else Location(filename, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if problem.startswith("but ") and exc.context:  # "but found another document" needs its context
            problem = f"{exc.context}, {problem}"
        raise SpecError(where, f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        # the reader's errors (e.g. a control character) carry a position but no mark
        position = getattr(exc, "position", None)
        where = _location_of(text, position, filename) if position is not None else Location(filename, 1, 1)
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        character = getattr(exc, "character", None)
        if isinstance(character, int):
            reason = f"character U+{character:04X} is not allowed ({reason})"
        raise SpecError(where, f"YAML error: {reason}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        raise SpecError(Location(filename, 1, 1), "the file is empty; expected a mapping")
    converter = _Converter(filename, loader.anchored)
    converter.check_expansion(root)
    return converter.convert(root, 0)


def _location_of(text: str, offset: int, filename: str) -> Location:
    before = text[:offset]
    return Location(filename, before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1)


class _LocatingLoader(yaml.SafeLoader):
    """SafeLoader's composer with a nesting limit and a record of anchored nodes.

    PyYAML composes recursively, so a deeply nested document would otherwise end in a
    RecursionError; we stop it at MAX_DEPTH with the position of the offending node.
    """

    yaml_implicit_resolvers: ClassVar[dict] = {key: list(value) for key, value in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    anchors: dict[str, yaml.Node]  # the composer's anchor table

    def __init__(self, text: str, filename: str) -> None:
        super().__init__(text)
        self.filename = filename
        self.depth = 0
        self.nodes = 0
        self.anchored: list[yaml.Node] = []

    def compose_node(self, parent, index):
        self.depth += 1
        self.nodes += 1
        try:
            if self.nodes > MAX_NODES:
                mark = self.peek_event().start_mark
                raise SpecError(
                    Location(self.filename, mark.line + 1, mark.column + 1),
                    f"the file holds more than {MAX_NODES:,} YAML values (limit {MAX_NODES:,}); "
                    "a spec is refused before it is parsed in full",
                )
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise SpecError(
                    Location(self.filename, mark.line + 1, mark.column + 1),
                    f"nesting deeper than {MAX_DEPTH} levels",
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def compose_document(self):
        self.get_event()  # DOCUMENT-START
        node = self.compose_node(None, None)
        self.get_event()  # DOCUMENT-END
        self.anchored = list(self.anchors.values())
        self.anchors = {}
        return node


def load_file(path: Path) -> Node:
    return load_text(read_text(path), str(path))


# YAML 1.1 reads ``1e-3`` (no dot) as a string; specs write BN eps that way, so read it as
# YAML 1.2 does: a float.
for _first in "-+0123456789":
    _LocatingLoader.yaml_implicit_resolvers[_first].append(
        ("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"))
    )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG_PREFIX) :] if tag.startswith(_YAML_TAG_PREFIX) else tag


def _refuse_tag(tag: str, loc: Location) -> SpecError:
    short = _short_tag(tag)
    if short.startswith("!!python/"):
        why = "Python object tags are refused: a spec never creates objects"
    else:
        why = "a spec holds only strings, numbers, booleans, null, lists and mappings"
    return SpecError(loc, f"tag {short!r} is not allowed ({why})")


class _Converter:
    def __init__(self, filename: str, anchored: list[yaml.Node]) -> None:
        self.filename = filename
        self.visited = 0
        self.constructor = yaml.SafeLoader("")
        self.anchored_ids = {id(node) for node in anchored}
        self.seen_anchored: set[int] = set()

    def defines_anchor(self, node: yaml.Node) -> bool:
        """True on the first (defining) visit of an anchored node, False for its aliases."""
        if id(node) not in self.anchored_ids or id(node) in self.seen_anchored:
            return False
        self.seen_anchored.add(id(node))
        return True

    def loc(self, node: yaml.Node) -> Location:
        return Location(self.filename, node.start_mark.line + 1, node.start_mark.column + 1)

    def check_expansion(self, root: yaml.Node) -> None:
        """Refuse an alias bomb before expanding anything: count each node's expanded size over
        the (shared) node graph once, bottom-up, and stop at the first node over MAX_NODES.
        Iterative, because alias chains can be deeper than Python's recursion limit."""
        sizes: dict[int, int] = {}
        on_path: set[int] = set()
        stack: list[tuple[yaml.Node, bool]] = [(root, False)]
        while stack:
            node, children_done = stack.pop()
            children = _children(node)
            if children_done:
                size = 1 + sum(sizes[id(child)] for child in children)
                sizes[id(node)] = size
                on_path.discard(id(node))
                if size > MAX_NODES:
                    raise SpecError(
                        self.loc(node),
                        f"this value expands to {size:,} nodes through aliases, more than {MAX_NODES:,} "
                        "(an alias bomb?)",
                    )
                continue
            if id(node) in sizes:
                continue
            on_path.add(id(node))
            stack.append((node, True))
            for child in children:
                if id(child) in on_path:
                    raise SpecError(self.loc(child), "an alias refers to a value that contains it (a recursive alias)")
                if id(child) not in sizes:
                    stack.append((child, False))

    def convert(self, node: yaml.Node, depth: int) -> Node:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise SpecError(
                self.loc(node),
                f"the document expands to more than {MAX_NODES} nodes (an alias bomb?)",
            )
        if depth > MAX_DEPTH:
            raise SpecError(self.loc(node), f"nesting deeper than {MAX_DEPTH} levels")
        anchor = self.defines_anchor(node)
        if isinstance(node, yaml.ScalarNode):
            if node.tag not in _SCALAR_TAGS:
                raise _refuse_tag(node.tag, self.loc(node))
            try:
                value = self.constructor.construct_object(node)
            except ValueError:  # e.g. an int beyond Python's digit limit
                raise SpecError(self.loc(node), f"cannot read {_short_tag(node.tag)[2:]} value {node.value[:20]!r}...") from None
            return Node(value, self.loc(node), defines_anchor=anchor)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                raise _refuse_tag(node.tag, self.loc(node))
            elements = [self.convert(item, depth + 1) for item in node.value]
            return Node(elements, self.loc(node), defines_anchor=anchor)
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                raise _refuse_tag(node.tag, self.loc(node))
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
            return Node(items, self.loc(node), key_locs, defines_anchor=anchor)
        raise SpecError(self.loc(node), "unsupported YAML node")

"""``yaml2torch fmt``: a spec (or search file) in its canonical layout, comments kept.

The layout (docs/tooling.md): in every mapping whose keys the code knows, keys in the order of
the code's key constants, a key whose value holds a YAML anchor first (so every alias still
follows its anchor); rows (``backbone``, ``head``, ``module``, cells) as block lists of one
flow-style row per line; everything else in the style it was written in. Scalars, anchors and
comments are kept as written (``yaml_layout.py`` places the comments). The file is first read
with the compiler's own YAML reader, so a file that is not a spec is refused with one located
line before anything is rewritten; nothing in it is ever evaluated.
"""

from __future__ import annotations

import dataclasses
import json
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from yaml2torch.blocks.yaml_module import SUB_SPEC_KEYS
from yaml2torch.errors import CannotWrite, SpecError, UsageError
from yaml2torch.files import check_writable, write_atomic
from yaml2torch.spec import model_spec, ultralytics
from yaml2torch.spec.yaml_nodes import MAX_FILE_BYTES, Node, load_text, read_text
from yaml2torch.tooling.yaml_layout import (
    Item,
    Source,
    YNode,
    attach_comments,
    comments_of,
    emit,
    parse_tree,
    scan_comments,
)

__all__ = ["NotASpec", "comments_of", "format_files", "format_text", "write_files", "yaml_files"]

ROW_KEYS = ("backbone", "head")


class NotASpec(SpecError):
    """The file is YAML but neither a model spec nor a search file (fmt leaves it alone)."""


@dataclass(frozen=True)
class Shape:
    """What fmt knows of a mapping: its keys in canonical order and what their values hold."""

    keys: tuple[str, ...] = ()  # keys not listed follow them, in the order written
    nested: Mapping[str, Shape] = field(default_factory=dict)  # the shape of a key's mapping
    rows: tuple[str, ...] = ()  # keys holding lists of rows
    after_type: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # keys that follow `type: X`
    block: bool = False  # written as a block whatever the file says (its rows need it)


def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def model_shape() -> Shape:
    nested = {"norm": Shape(_fields(model_spec.NormSpec)), "normalize": Shape(_fields(model_spec.InputNormalization))}
    return Shape(model_spec.TOP_LEVEL_KEYS + model_spec.ANCHOR_ONLY_KEYS, nested, ROW_KEYS)


def search_shape() -> Shape:
    from yaml2torch.search import config

    train = Shape(
        config.TRAIN_KEYS,
        {
            "augment": Shape(config.AUGMENT_KEYS),
            "scheduler": Shape(config.SCHEDULER_KEYS),
            "optimizer": Shape(("type",), after_type=config.OPTIMIZERS),
        },
    )
    nested = {
        "data": Shape(config.DATA_KEYS),
        "model": dataclasses.replace(model_shape(), block=True),
        "train": train,
        "constraints": Shape(config.CONSTRAINT_KEYS),
        "pick": Shape(config.PICK_KEYS),
        "sampler": Shape(("type",)),  # then the Optuna arguments, as written
        "pruner": Shape(("type",)),
    }
    return Shape(config.TOP_KEYS, nested)


def file_shape(root: Node) -> tuple[Shape, bool]:
    """The file's shape, and whether it is a search file; decided from its keys as the loaders do."""
    fields = root.value if root.is_map else None
    if not isinstance(fields, dict) or not any(key in fields for key in ("backbone", "module", "model", "python")):
        raise NotASpec(root.loc, "not a model spec or search file (no backbone:, module:, model: or python: key); fmt leaves it alone")
    if any(key in fields for key in ultralytics.MARKER_KEYS):
        return Shape(ultralytics.KEYS + ultralytics.IGNORED_KEYS, rows=ROW_KEYS), False
    if "module" in fields and "backbone" not in fields:
        return Shape(SUB_SPEC_KEYS, rows=("module",)), False
    if "backbone" in fields:
        return model_shape(), False
    return search_shape(), True


# --- styles and key order --------------------------------------------------------------------


@dataclass
class _Plan:
    search: bool
    todo: list[tuple[YNode, Shape]] = field(default_factory=list)  # mappings to put in key order


def _choice_shape() -> Shape:
    from yaml2torch.search.space import RANGE_OPTIONS, RESERVED_KEYS

    return Shape(RESERVED_KEYS + RANGE_OPTIONS)


def _cells_shape() -> Shape:
    from yaml2torch.search.space import CELL_KEYS

    return Shape(CELL_KEYS, rows=("normal", "reduction"))


def _plan(node: YNode, shape: Shape | None, plan: _Plan, row: bool = False) -> None:
    """Set the styles of ``node``'s subtree and note the mappings to reorder. In a search file
    a choice node may stand for any value: its options take the place's shape."""
    if not node.is_collection:
        return
    if plan.search and _choice_kind(node) is not None:
        plan.todo.append((node, _choice_shape()))
        for item in node.items:
            key = _key(item)
            if key == "cells":
                _plan(item.value, _cells_shape(), plan)
            elif key in ("choice", "per_stage") and item.value.is_collection:
                for option in item.value.items:
                    _plan(option.value, shape, plan, row)
        return
    if row and node.kind == "seq":
        node.block = False  # a row: on one line
        return
    if node.kind != "map" or shape is None:
        for item in node.items:
            _plan(item.value, None, plan)
        return
    plan.todo.append((node, shape))
    for item in node.items:
        key, value = _key(item), item.value
        if key in shape.rows and value.kind == "seq":
            value.block = node.block and bool(value.items)  # an empty list stays []
            for row_item in value.items:
                _plan(row_item.value, None, plan, row=True)
            continue
        inner = shape.nested.get(key or "")
        if inner is not None and inner.block and value.kind == "map":
            value.block = node.block and bool(value.items)
        _plan(value, inner, plan)


def _key(item: Item) -> str | None:
    return item.key.value if item.key is not None and item.key.kind == "scalar" else None


def _choice_kind(node: YNode) -> str | None:
    from yaml2torch.search.space import RESERVED_KEYS

    if node.kind != "map":
        return None
    return next((key for item in node.items if (key := _key(item)) in RESERVED_KEYS), None)


def _reorder(node: YNode, shape: Shape, search: bool) -> None:
    """Keys in ``shape``'s order, unknown keys last as written. When that would put an alias
    before its anchor, the keys holding anchors come first, as written."""
    type_item = next((item for item in node.items if _key(item) == "type"), None)
    after = shape.after_type.get(type_item.value.value or "", ()) if type_item and type_item.value.kind == "scalar" else ()
    rank = {key: n for n, key in enumerate(shape.keys + tuple(after))}
    order = sorted(node.items, key=lambda item: rank.get(_key(item) or "", len(rank)))
    if not _anchors_before_aliases(order):
        holders = [item for item in node.items if _names(item, "anchor")]
        order = holders + [item for item in order if item not in holders]
    if search and [i for i in order if _has_choice(i.value)] != [i for i in node.items if _has_choice(i.value)]:
        return  # Optuna's seeded samplers draw parameters in the order they are met: keep it
    node.items = order


def _anchors_before_aliases(items: list[Item]) -> bool:
    defined = [_names(item, "anchor") for item in items]
    anywhere: set[str] = set().union(*defined)
    seen: set[str] = set()
    for item, own in zip(items, defined):
        if (_names(item, "alias") & anywhere) - own - seen:
            return False  # an alias to an anchor that a later entry defines
        seen |= own
    return True


def _names(item: Item, kind: str) -> set[str]:
    """The anchors an entry defines (``kind="anchor"``) or the aliases it uses (``"alias"``)."""
    found: set[str] = set()
    stack = [node for node in (item.key, item.value) if node is not None]
    while stack:
        node = stack.pop()
        if kind == "anchor" and node.anchor:
            found.add(node.anchor)
        if kind == "alias" and node.kind == "alias":
            found.add(node.text[1:])
        stack.extend(child for sub in node.items for child in (sub.key, sub.value) if child is not None)
    return found


def _has_choice(node: YNode) -> bool:
    if node.kind == "alias":
        return node.target is not None and _has_choice(node.target)
    return _choice_kind(node) is not None or any(_has_choice(item.value) for item in node.items)


# --- the command -----------------------------------------------------------------------------


def format_text(text: str, filename: str) -> str:
    """The canonical form of a spec or search file's text (its meaning and comments unchanged),
    with the file's line ending (that of its first line: CRLF in, CRLF out)."""
    first = text.find("\n")
    if first > 0 and text[first - 1] == "\r":
        return _format_lf(text.replace("\r\n", "\n"), filename).replace("\n", "\r\n")
    return _format_lf(text, filename)


def _format_lf(text: str, filename: str) -> str:
    root = load_text(text, filename)  # located errors for bad YAML, tags, duplicate keys
    shape, search = file_shape(root)
    src = Source(text, filename)
    tree, spans = parse_tree(src)
    tree.block = True
    plan = _Plan(search)
    _plan(tree, shape, plan)
    comments = scan_comments(src, spans)
    attach_comments(src, tree, comments)
    for node, node_shape in plan.todo:
        _reorder(node, node_shape, search and node is not tree)  # the search code reads top-level keys by name
    result = emit(tree)
    _check_same(result, root, sorted(c.text for c in comments if c.text), filename)
    return result


# A top-level key that makes a file a spec or search file (``file_shape``), found in text that
# may not even be YAML: a folder's file that fails to read is an error only when it has one.
_SPEC_KEY_LINE = re.compile(r"^([\"']?)(backbone|module|model|python)\1[ \t]*:", re.MULTILINE)

Note = Callable[[str], None]


def format_files(paths: list[Path], note: Note) -> list[tuple[Path, str]]:
    """``(file, new text)`` for every named file, and every spec under every named folder, that
    fmt would change; each file once, however many names reach it. Files named one by one must
    be specs (an error otherwise); a folder's YAML files that are not specs are left alone, with
    a note. Raises the first error: nothing is written here."""
    rewrites: list[tuple[Path, str]] = []
    seen: set[tuple[int, int]] = set()
    for path in paths:
        if path.is_dir():
            found = [(file, _format_found(file, note)) for file in yaml_files(path) if _first_time(file, seen)]
        else:
            _check_named(path)
            if not _first_time(path, seen):
                continue
            text = read_text(path)
            found = [(path, (text, format_text(text, str(path))))]
        rewrites += [(file, pair[1]) for file, pair in found if pair is not None and pair[1] != pair[0]]
    return rewrites


def write_files(rewrites: list[tuple[Path, str]], written: Note) -> None:
    """Write every rewrite, through symbolic and hard links (``files.write_atomic``). Every target
    is checked first: a file that cannot be written stops the command before anything is written;
    a write that still fails midway names the files already written."""
    for path, _text in rewrites:
        check_writable(path, through_links=True)
    done: list[str] = []
    for path, text in rewrites:
        try:
            write_atomic(path, text, through_links=True)
        except CannotWrite as exc:
            if done:
                raise CannotWrite(f"{exc}; already written: {', '.join(done)}") from None
            raise
        done.append(str(path))
        written(str(path))


def _check_named(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        problem = "a symbolic link to a missing file" if path.is_symlink() else "no such file or folder"
        raise UsageError(f"{path}: {problem}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"{path}: not a regular file (a FIFO, socket or device); fmt rewrites regular files only")


def _first_time(path: Path, seen: set[tuple[int, int]]) -> bool:
    st = path.stat()
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return False
    seen.add(key)
    return True


def _format_found(file: Path, note: Note) -> tuple[str, str] | None:
    """A folder's file: (text, formatted), or None (with a note) when it is not a spec."""
    try:
        text = read_text(file)
    except SpecError as exc:
        if _SPEC_KEY_LINE.search(_raw_text(file)):
            raise
        note(f"{exc}; not a spec, left alone")
        return None
    try:
        return text, format_text(text, str(file))
    except NotASpec as exc:
        note(str(exc))
        return None
    except SpecError as exc:
        if _SPEC_KEY_LINE.search(text):
            raise
        note(f"{exc}; not a spec, left alone")
        return None


def _raw_text(file: Path) -> str:
    try:
        with file.open("rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1).decode("utf-8", errors="replace")
    except OSError:
        return ""


def yaml_files(folder: Path) -> list[Path]:
    """The *.yaml and *.yml files under ``folder``, hidden folders and files left out, sorted."""
    found = [p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()]
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _check_same(result: str, root: Node, comments: list[str], filename: str) -> None:
    """Refuse (writing nothing) rather than change a file's meaning or lose a comment."""
    try:
        same = _plain_json(load_text(result, filename)) == _plain_json(root)
        kept = sorted(comments_of(result, filename)) == comments
    except SpecError:
        same = kept = False
    if not same:
        raise SpecError(root.loc, f"fmt would change what {filename} means; left as it is (please report this)")
    if not kept:
        raise SpecError(root.loc, f"fmt would lose or change a comment of {filename}; left as it is (please report this)")


def _plain_json(node: Node) -> str:
    return json.dumps(node.plain(), sort_keys=True)  # NaN == NaN here, and key order aside

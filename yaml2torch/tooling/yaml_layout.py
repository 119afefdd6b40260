"""A YAML text laid out again, every comment kept: the engine of ``yaml2torch fmt`` (``fmt.py``
decides styles and key order; this module knows nothing of specs).

The text is parsed into a located tree from PyYAML's events (the parser the compiler reads
specs with, so fmt and the compiler never disagree about a file). Scalars, aliases and anchors
are written back exactly as spelled; a collection is written either as a block (one entry per
line, indented by two) or in flow style on one line. Comments are found in the text (a ``#``
after white space, outside every scalar) and attached to a line of the tree:

- a comment that ends an entry's line stays at the end of that line, as far from the entry's
  key (or row) as it was, or two spaces after the line when that no longer fits;
- full-line comments and blank lines move with the entry below them; those after the last entry
  of a block, indented deeper than the key that opens it, stay at the end of that block (one
  that went to an outer block takes the ones after it there too: their order is kept); those
  above a block's first entry, up to the last blank line among them (all of them when there is
  none), stay at the top of the block (a file's header never moves);
- comments that stood inside a value fmt writes on one line (a row written as a block list, or
  a flow list over several lines) go on their own lines right above that entry, in order.

Nothing is evaluated: only PyYAML's parser runs, no constructor.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml

from yaml2torch.errors import Location, SpecError


@dataclass(eq=False)
class Item:
    """One entry of a collection: a key (None in a list) and its value, with its comments."""

    key: YNode | None
    value: YNode
    start: int = 0  # where the entry starts: its key, its dash, or its value
    gap: list[str] = field(default_factory=list)  # full-line comments above it ("" = blank line)
    above: list[str] = field(default_factory=list)  # comments that stood inside its value
    eol: tuple[int, str] | None = None  # the comment ending its line: (column from the key or value, text)


@dataclass(eq=False)
class YNode:
    """A scalar, alias, list or mapping, located in the text (offsets)."""

    kind: str  # "scalar", "alias", "seq" or "map"
    start: int
    end: int  # end of a scalar, alias or flow collection
    text: str = ""  # scalars and aliases: the source spelling, anchor and tag included
    value: str | None = None  # scalars: the value as a string (keys are compared by it)
    anchor: str | None = None
    target: YNode | None = None  # aliases: the anchored node
    items: list[Item] = field(default_factory=list)
    block: bool = False  # collections: written as a block (else on one line, in flow style)
    header: list[str] = field(default_factory=list)  # full-line comments before the first entry
    trailer: list[str] = field(default_factory=list)  # full-line comments after the last entry

    @property
    def is_collection(self) -> bool:
        return self.kind in ("seq", "map")


@dataclass(frozen=True)
class Comment:
    """A comment (``text`` starting with ``#``) or a blank line (``text == ""``)."""

    pos: int
    line: int  # 0-based
    col: int
    text: str
    own_line: bool  # nothing but white space before it on its line


class Source:
    """The text with its line starts, for offset -> (line, column)."""

    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename
        self.line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset) - 1

    def col(self, offset: int) -> int:
        return offset - self.line_starts[self.line(offset)]

    def loc(self, offset: int) -> Location:
        return Location(self.filename, self.line(offset) + 1, self.col(offset) + 1)


# --- the tree, from PyYAML's events ---------------------------------------------------------


def parse_tree(src: Source) -> tuple[YNode, list[tuple[int, int]]]:
    """The document's root node and the spans of its scalars (where a ``#`` is not a comment).

    Refused, with the place: directives, a tag on a list or mapping, a scalar over several lines
    (block scalars included): fmt could not write them back unchanged on one line."""
    events = iter(yaml.parse(src.text, Loader=yaml.SafeLoader))
    spans: list[tuple[int, int]] = []
    anchors: dict[str, YNode] = {}
    root: YNode | None = None
    for event in events:
        if isinstance(event, yaml.DocumentStartEvent) and (event.version or event.tags):
            raise SpecError(src.loc(event.start_mark.index), "fmt does not rewrite files with %YAML or %TAG directives")
        if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent, yaml.CollectionStartEvent)):
            root = _node(event, events, src, spans, anchors)
    if root is None:
        raise SpecError(Location(src.filename, 1, 1), "the file is empty; expected a mapping")
    return root, spans


def _node(event: yaml.Event, events: Iterator[yaml.Event], src: Source, spans: list, anchors: dict) -> YNode:
    start, end = event.start_mark.index, event.end_mark.index
    if isinstance(event, yaml.AliasEvent):
        return YNode("alias", start, end, text=src.text[start:end], target=anchors.get(event.anchor))
    if isinstance(event, yaml.ScalarEvent):
        text = src.text[start:end]
        if "\n" in text:
            raise SpecError(src.loc(start), "fmt does not rewrite a value written over several lines; write it on one line")
        spans.append((start, end))
        node = YNode("scalar", start, end, text=text, value=event.value, anchor=event.anchor)
    else:
        if event.tag is not None and not event.implicit:
            raise SpecError(src.loc(start), "fmt does not rewrite a tagged list or mapping; remove the tag")
        kind = "seq" if isinstance(event, yaml.SequenceStartEvent) else "map"
        node = YNode(kind, start, end, anchor=event.anchor, block=not event.flow_style)
        closing = yaml.SequenceEndEvent if kind == "seq" else yaml.MappingEndEvent
        for child in events:
            if isinstance(child, closing):
                node.end = child.end_mark.index
                break
            first = _node(child, events, src, spans, anchors)
            if kind == "seq":
                node.items.append(Item(None, first, _dash(src.text, first.start) if node.block else first.start))
            else:
                node.items.append(Item(first, _node(next(events), events, src, spans, anchors), first.start))
    if node.anchor:
        anchors[node.anchor] = node
    return node


def _dash(text: str, start: int) -> int:
    """Where the ``-`` of a block list's item stands (its value starts after it)."""
    i = start - 1
    while i >= 0 and text[i] in " \t\r\n":
        i -= 1
    return i if i >= 0 and text[i] == "-" else start


def scan_comments(src: Source, spans: list[tuple[int, int]]) -> list[Comment]:
    """Every comment and blank line, in order: a ``#`` at a line's start or after white space,
    outside every scalar, runs to the end of its line."""
    found = []
    starts = [s for s, _ in spans]
    for number, begin in enumerate(src.line_starts):
        end = src.text.find("\n", begin)
        line = src.text[begin : len(src.text) if end < 0 else end]
        if not line.strip():
            if end >= 0 or line:
                found.append(Comment(begin, number, 0, "", True))
            continue
        i = line.find("#")
        while i >= 0:
            pos = begin + i
            k = bisect.bisect_right(starts, pos) - 1
            inside = k >= 0 and spans[k][0] <= pos < spans[k][1]
            if not inside and (i == 0 or line[i - 1] in " \t"):
                found.append(Comment(pos, number, i, line[i:].rstrip(), not line[:i].strip()))
                break
            i = line.find("#", i + 1)
    return found


def comments_of(text: str, filename: str = "<text>") -> list[str]:
    """The comment texts of a YAML text, in order."""
    src = Source(text, filename)
    _root, spans = parse_tree(src)
    return [c.text for c in scan_comments(src, spans) if c.text]


# --- comments onto the tree ----------------------------------------------------------------


@dataclass(eq=False)
class _Entry:
    """An entry of a block collection, as the comment pass sees it (in the order of the text)."""

    item: Item
    chain: tuple[YNode, ...]  # the block collections holding it, innermost first
    leaf: bool  # its value is written on the entry's line
    end: int  # leaves: where the value ends
    head_line: int  # the line a comment must stand on to end this entry's line


def _entries(src: Source, node: YNode, chain: tuple[YNode, ...] = ()) -> Iterator[_Entry]:
    chain = (node, *chain)
    for item in node.items:
        value = item.value
        leaf = not (value.is_collection and value.block)
        end = value.end if value.text or value.is_collection or item.key is None else item.key.end
        yield _Entry(item, chain, leaf, end, src.line(end) if leaf else src.line(item.start))
        if not leaf:
            yield from _entries(src, value, chain)


def attach_comments(src: Source, root: YNode, comments: list[Comment]) -> None:
    """Give every comment a place in the tree (module docstring); blank lines go with the
    comments or entry below them. Only block collections (``block``) hold entries."""
    entries = list(_entries(src, root))
    starts = [e.item.start for e in entries]
    owner = _Owners(src, root)
    run: _Run | None = None
    for comment in comments:
        i = bisect.bisect_left(starts, comment.pos) - 1
        before = entries[i] if i >= 0 else None
        after = entries[i + 1] if i + 1 < len(entries) else None
        if before is not None and before.leaf and comment.pos < before.end:  # inside a value kept on one line
            if comment.text:
                before.item.above.append(comment.text)
            continue
        if not comment.own_line and before is not None and src.line(comment.pos) == before.head_line:
            item = before.item
            item.eol = (comment.col - src.col(item.key.start if item.key is not None else item.value.start), comment.text)
            continue
        if run is None or run.last_line + 1 != comment.line or run.after is not after:
            if run is not None:
                run.close()
            run = _Run(owner, before, after, root)
        run.add(comment)
    if run is not None:
        run.close()
    for node in _block_collections(root):
        first = node.items[0]
        blank = max((k for k, text in enumerate(first.gap) if not text), default=len(first.gap) - 1)
        node.header, first.gap = first.gap[: blank + 1], first.gap[blank + 1 :]


class _Owners:
    """Which block collection a trailing comment may stay in: one indented deeper than the key
    (or dash) that opens it, and at least as deep as its entries."""

    def __init__(self, src: Source, root: YNode) -> None:
        self.depth: dict[int, int] = {id(root): 0}
        for entry in _entries(src, root):
            value = entry.item.value
            if value.is_collection and value.block and value.items:
                opener = src.col(entry.item.start)
                self.depth[id(value)] = max(opener + 1, src.col(value.items[0].start))

    def trailer(self, before: _Entry | None, after: _Entry | None, col: int, outer: int = 0) -> tuple[int, list[str]] | None:
        """The trailer a comment at ``col`` joins, and its place in ``before``'s chain; only
        blocks from ``outer`` outwards (a comment never goes back into a block it left)."""
        if before is None:
            return None
        holding_after = set() if after is None else {id(node) for node in after.chain}
        for level, node in enumerate(before.chain):
            if id(node) in holding_after:
                return None
            if level >= outer and col >= self.depth[id(node)]:
                return level, node.trailer
        return None


class _Run:
    """Consecutive full-line comments and blank lines between two entries: the leading ones may
    stay at the end of a block above (a trailer); from the first that does not, all go with the
    entry below (or to the end of the document)."""

    def __init__(self, owners: _Owners, before: _Entry | None, after: _Entry | None, root: YNode) -> None:
        self.owners, self.before, self.after = owners, before, after
        self.below = after.item.gap if after is not None else root.trailer
        self.trailing = True
        self.outer = 0  # the innermost block a trailing comment may still join (the order is kept)
        self.blanks: list[str] = []
        self.last_line = -2

    def add(self, comment: Comment) -> None:
        self.last_line = comment.line
        if not comment.text:
            self.blanks.append("")
            return
        found = self.owners.trailer(self.before, self.after, comment.col, self.outer) if self.trailing else None
        if found is None:
            self.trailing = False
            target = self.below
        else:
            self.outer, target = found
        target.extend([*self.blanks, comment.text])
        self.blanks = []

    def close(self) -> None:
        self.below.extend(self.blanks)


def _block_collections(node: YNode) -> Iterator[YNode]:
    if node.is_collection and node.block and node.items:
        yield node
        for item in node.items:
            yield from _block_collections(item.value)


# --- writing it out --------------------------------------------------------------------------


@dataclass
class _Line:
    indent: int
    text: str  # "" for a blank line
    comment: bool = False  # a full-line comment or blank line
    eol: tuple[int, str] | None = None  # (column, text)
    opens: bool = False  # the head of a block (``key:`` with entries below)


def emit(root: YNode) -> str:
    """The tree as text: block collections one entry per line, the rest as written, on one line."""
    lines: list[_Line] = []
    _emit_block(root, 0, lines)
    out = []
    for line in _tidy_blank_lines(lines):
        text = " " * line.indent + line.text if line.text else ""
        if line.eol is not None:
            column, comment = line.eol
            text += " " * (column - len(text)) if column > len(text) else "  "
            text += comment
        out.append(text)
    return "\n".join(out) + "\n"


def _emit_block(node: YNode, indent: int, lines: list[_Line]) -> None:
    lines.extend(_comment_lines(node.header, indent))
    for n, item in enumerate(node.items):
        above = item.gap + item.above
        if n == 0 and node.header and node.header[-1] and above:
            above = ["", *above]  # else read back as part of the header, which never moves
        lines.extend(_comment_lines(above, indent))
        value = item.value
        head = f"{flow(item.key)}:" if item.key is not None else "-"
        eol = None if item.eol is None else (item.eol[0] + indent + (0 if item.key is not None else 2), item.eol[1])
        if not (value.is_collection and value.block):
            text = flow(value, top=True)
            lines.append(_Line(indent, f"{head} {text}" if text else head, eol=eol))
        elif item.key is not None or value.anchor:
            lines.append(_Line(indent, head + (f" &{value.anchor}" if value.anchor else ""), eol=eol, opens=True))
            _emit_block(value, indent + 2, lines)
        else:  # a block collection in a list starts on the dash's line
            inner: list[_Line] = []
            _emit_block(value, indent + 2, inner)
            first = next(k for k, line in enumerate(inner) if not line.comment)
            lines.extend(_Line(indent, line.text, comment=True) for line in inner[:first])
            lead = inner[first]
            lines.append(_Line(indent, f"- {lead.text}", eol=lead.eol or eol, opens=lead.opens))
            lines.extend(inner[first + 1 :])
    lines.extend(_comment_lines(node.trailer, indent))


def _comment_lines(texts: list[str], indent: int) -> list[_Line]:
    return [_Line(indent, text, comment=True) for text in texts]


def _tidy_blank_lines(lines: list[_Line]) -> list[_Line]:
    """One blank line at most in a row; none at the start or end, nor right below a block's head."""
    last = max((n for n, line in enumerate(lines) if line.text), default=-1)
    kept: list[_Line] = []
    for n, line in enumerate(lines):
        if not line.text and (n > last or not kept or not kept[-1].text or kept[-1].opens):
            continue
        kept.append(line)
    return kept


def flow(node: YNode, top: bool = False) -> str:
    """A value on one line, in flow style, every scalar as spelled in the source."""
    if node.kind in ("scalar", "alias"):
        return node.text if node.text or top else "null"
    prefix = f"&{node.anchor} " if node.anchor else ""
    if node.kind == "seq":
        return prefix + "[" + ", ".join(flow(item.value) for item in node.items) + "]"
    pairs = (f"{flow(item.key)}: {flow(item.value)}" for item in node.items if item.key is not None)
    return prefix + "{" + ", ".join(pairs) + "}"

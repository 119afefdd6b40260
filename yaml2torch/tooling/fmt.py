"""``yaml2torch fmt``: a spec (or search file) in its canonical layout, comments kept.

The layout: top-level keys in the order of the code's key constants (keys that only hold YAML
anchors first, so every alias still follows its anchor), ``backbone``/``head``/``module`` as block
lists of one flow-style row per line, kwargs in braces. Everything else (quotes, number spelling,
comments, anchors) is kept as written: the file is rewritten with ruamel.yaml's round trip, and
nothing in it is ever evaluated. The file is first read with the compiler's own YAML reader, so a
file that is not a spec is refused with one located line before anything is rewritten.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

from yaml2torch.blocks.yaml_module import SUB_SPEC_KEYS
from yaml2torch.errors import SpecError
from yaml2torch.spec import model_spec, ultralytics
from yaml2torch.spec.yaml_nodes import Node, load_text

ROW_SECTIONS = ("backbone", "head", "module")


@dataclass(frozen=True)
class Layout:
    """What kind of file it is and its canonical key order."""

    kind: str  # "spec", "ultralytics", "sub_spec" or "search"
    keys: tuple[str, ...]


def spec_layout(fields: dict[str, Any]) -> Layout:
    if any(key in fields for key in ultralytics.MARKER_KEYS):
        return Layout("ultralytics", ultralytics.KEYS + ultralytics.IGNORED_KEYS)
    if "module" in fields and "backbone" not in fields:
        return Layout("sub_spec", SUB_SPEC_KEYS)
    return Layout("spec", model_spec.TOP_LEVEL_KEYS + model_spec.ANCHOR_ONLY_KEYS)


def file_layout(root: Node, filename: str) -> Layout:
    """The file's kind, decided from its keys; a file that is none of them is refused."""
    from yaml2torch.search.config import TOP_KEYS

    fields = root.value if root.is_map else None
    if not isinstance(fields, dict) or not any(key in fields for key in ("backbone", "module", "model", "python")):
        raise SpecError(root.loc, f"{filename} is not a model spec or search file (no backbone:, module:, model: or python: key); fmt leaves it alone")
    if "backbone" in fields or "module" in fields:
        return spec_layout(fields)
    return Layout("search", TOP_KEYS)


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a row
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.brace_single_entry_mapping_in_flow_sequence = True
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


_TOP_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:")


def key_chunks(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(header, [(key, text)]): each top-level key with the full-line comments right above it."""
    lines = text.splitlines(keepends=True)
    starts = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _TOP_KEY.match(line))]
    if not starts:
        return text, []
    leads = []
    for n, (i, _key) in enumerate(starts):
        lead = i
        while n > 0 and lead > starts[n - 1][0] + 1 and lines[lead - 1].startswith("#"):
            lead -= 1
        leads.append(lead)
    bounds = leads + [len(lines)]
    header = "".join(lines[: bounds[0]])
    return header, [(key, "".join(lines[bounds[n] : bounds[n + 1]])) for n, (_i, key) in enumerate(starts)]


def reorder_keys(text: str, keys: tuple[str, ...], anchored: set[str]) -> str:
    """Top-level keys in canonical order, moved as text with their comments (anchor holders first)."""
    header, chunks = key_chunks(text)
    rank = {key: i for i, key in enumerate(keys)}
    order = sorted(chunks, key=lambda c: (0, 0) if c[0] in anchored else ((1, rank[c[0]]) if c[0] in rank else (2, 0)))
    if order == chunks:
        return text
    parts = [chunk if chunk.endswith("\n") else chunk + "\n" for _key, chunk in order]
    return (header + "".join(parts)).rstrip("\n") + "\n"


def comment_lines(token_groups: list[Any]) -> list[tuple[int, str]]:
    """(source line, text) of every comment line in ruamel's comment slots."""
    found = []
    for group in token_groups:
        tokens = group if isinstance(group, list) else [group]
        for token in tokens:
            if token is None or not hasattr(token, "value"):
                continue
            for k, line in enumerate(token.value.split("\n")):
                if line.strip().startswith("#"):
                    found.append((token.start_mark.line + k, line.strip()))
    return found


def rows_to_block_style(rows: Any) -> None:
    """One flow row per line; comments that sat inside a flow list move to their rows."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if rows.fa.flow_style():
        lines = [rows.lc.item(i)[0] for i in range(len(rows))]
        comments = comment_lines([slot for item in rows.ca.items.values() for slot in item] + [rows.ca.end or []])
        rows.ca.items.clear()
        rows.ca.end = None
        rows.fa.set_block_style()
        before: dict[int, list[str]] = {}
        for line, text in comments:
            if line in lines:
                rows.yaml_add_eol_comment(text, lines.index(line))
            else:
                index = next((i for i, start in enumerate(lines) if start > line), len(rows) - 1)
                before.setdefault(index, []).append(text.lstrip("# "))
        for index, texts in before.items():
            rows.yaml_set_comment_before_after_key(index, before="\n".join(texts), indent=2)
    for row in rows:
        if isinstance(row, CommentedSeq):
            row.fa.set_flow_style()
            for item in row:
                if isinstance(item, (CommentedSeq, CommentedMap)):
                    item.fa.set_flow_style()


def canonical_rows(data: Any, layout: Layout) -> None:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    targets = [data]
    if layout.kind == "search" and isinstance(data.get("model"), CommentedMap):
        targets.append(data["model"])
    for mapping in targets:
        for section in ROW_SECTIONS:
            if isinstance(mapping.get(section), CommentedSeq):
                rows_to_block_style(mapping[section])


def comments_of(text: str) -> list[str]:
    """The comment texts of a YAML text (as the compiler's reader sees no comments, a rough scan
    that ignores '#' inside quotes is enough to notice a lost one)."""
    found = []
    for line in text.splitlines():
        stripped = re.sub(r"'[^']*'|\"[^\"]*\"", "", line)
        if "#" in stripped:
            found.append(stripped[stripped.index("#") :].strip())
    return sorted(found)


def format_text(text: str, filename: str) -> str:
    """The canonical form of a spec or search file's text (its meaning and comments unchanged)."""
    root = load_text(text, filename)  # located errors for bad YAML, before ruamel sees it
    layout = file_layout(root, filename)
    fields: dict[str, Node] = root.mapping()
    anchored = {key for key, value in fields.items() if value.defines_anchor and key not in layout.keys}
    if "anchors" in fields:
        anchored.add("anchors")
    yaml = _yaml()
    data = yaml.load(reorder_keys(text, layout.keys, anchored))
    canonical_rows(data, layout)
    out = io.StringIO()
    yaml.dump(data, out)
    result = out.getvalue()
    if comments_of(result) != comments_of(text):
        lost = sorted(set(comments_of(text)) - set(comments_of(result))) or comments_of(text)
        raise SpecError(root.loc, f"fmt would lose or change the comment {lost[0]!r} (a ruamel.yaml limitation with comments next to flow lists); {filename} left as it is")
    if load_text(result, filename).plain() != root.plain():
        raise SpecError(root.loc, f"fmt would change what {filename} means; left as it is (please report this)")
    return result

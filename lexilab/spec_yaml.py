"""Reading a spec's YAML within bounds: one clear line for any file, however hostile.

PyYAML alone turns a 1 KB "billion laughs" alias bomb into gigabytes once the document is
walked or copied, recurses once per nesting level (20,000 brackets end in a RecursionError)
and builds integers of any size. The loader here counts every node as it would be after alias
expansion and refuses a document past :data:`MAX_NODES` while composing it (so a bomb is
refused in milliseconds, before anything is expanded), refuses nesting deeper than
:data:`MAX_DEPTH`, recursive aliases, integer literals longer than :data:`MAX_INT_DIGITS`
digits, files over :data:`MAX_SPEC_BYTES` and bytes that are not UTF-8.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from lexilab.errors import LexilabError

MAX_SPEC_BYTES = 4 * 2**20  # the largest shipped spec is under 4 KB
MAX_DEPTH = 64  # mappings / lists inside each other
MAX_NODES = 100_000  # scalars, lists and mappings, counted after alias expansion
MAX_INT_DIGITS = 30  # no count, seed or size in a spec needs more


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with the bounds above, enforced while composing."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0  # expanded nodes composed so far
        self._sizes: dict[int, int] = {}  # id(node) -> its expanded size, once complete

    def _count(self, size: int, mark) -> None:
        self._nodes += size
        if self._nodes > MAX_NODES:
            raise ComposerError(None, None, f"the document expands to more than {MAX_NODES:,} values "
                                "(an alias bomb?); specs are bounded", mark)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None:  # an unknown anchor is PyYAML's own error
                if id(node) not in self._sizes:
                    raise ComposerError(None, None, f"alias *{event.anchor} is used inside its own anchor "
                                        "(a recursive structure)", event.start_mark)
                self._count(self._sizes[id(node)], event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
        before = self._nodes
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._count(1, node.start_mark)
        self._sizes[id(node)] = self._nodes - before
        return node

    def construct_yaml_int(self, node):
        digits = sum(ch.isdigit() for ch in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise ConstructorError(None, None, f"an integer with {digits} digits (at most {MAX_INT_DIGITS})",
                                   node.start_mark)
        return super().construct_yaml_int(node)


BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)


def _read_text(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise LexilabError(f"{path}: {size:,} bytes; a spec is at most {MAX_SPEC_BYTES:,} bytes")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise LexilabError(f"{path}:{line}:{column}: not UTF-8 text (byte 0x{raw[err.start]:02x}); "
                           "save the spec as UTF-8") from None


def parse_yaml(path: Path) -> tuple[Any, dict[str, int], list[str]]:
    """(data, dotted key path → 1-based line, keys given twice) of a YAML file within the
    bounds; any problem is one line with the file and, where known, the line and column."""
    text = _read_text(path)
    try:
        loader = BoundedLoader(text)
    except yaml.reader.ReaderError as err:  # a character YAML does not allow (NUL, BEL, ...)
        line = text.count("\n", 0, err.position) + 1
        column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
        raise LexilabError(f"{path}:{line}:{column}: character #x{err.character:04x} is not allowed in YAML") from None
    lines: dict[str, int] = {}
    duplicates: list[str] = []
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines, duplicates
        _index(node, "", lines, duplicates)  # before construction, which merges `<<` keys into the nodes
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(str(x) for x in (err.context, err.problem) if x)
        raise LexilabError(f"{where}: YAML syntax error: {what}") from None
    except yaml.YAMLError as err:  # anything else PyYAML refuses, as one line
        raise LexilabError(f"{path}: YAML error: {' '.join(str(err).split())}") from None
    finally:
        loader.dispose()
    return data, lines, duplicates


def load_yaml(path: str | os.PathLike) -> tuple[Any, dict[str, int]]:
    """Parse a YAML file; return (data, dotted key path → 1-based line). A syntax error, a
    duplicate key or a bound exceeded is a one-line LexilabError naming the file and line."""
    from lexilab.spec import SpecError

    path = Path(path)
    if not path.is_file():
        raise LexilabError(f"{path}: no such spec file" if not path.exists() else f"{path}: not a file")
    data, lines, duplicates = parse_yaml(path)
    if duplicates:
        raise SpecError([f"{path}:{lines.get(d, 0)}: {d}: key given twice (YAML keeps only the last)" for d in duplicates])
    return data, lines


def _index(node: yaml.Node, prefix: str, lines: dict[str, int], duplicates: list[str]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{prefix}.{key}" if prefix else key
            if key in seen:
                duplicates.append(path)
            seen.add(key)
            lines[path] = key_node.start_mark.line + 1
            _index(value_node, path, lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = f"{prefix}.{index}" if prefix else str(index)
            lines[path] = item.start_mark.line + 1
            _index(item, path, lines, duplicates)

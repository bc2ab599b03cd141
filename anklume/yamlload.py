"""Load YAML with line numbers and duplicate-key detection.

PyYAML silently keeps the last of two equal keys. We compose the node graph
with the C loader (fast, keeps marks), then build plain Python values
ourselves so that duplicates, odd tags and recursive aliases become
:class:`~anklume.errors.Problem` lines instead of silent surprises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from anklume.errors import InputError, Problem

PathKey = str | int
Path = tuple[PathKey, ...]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = frozenset(
    "tag:yaml.org,2002:" + t for t in ("str", "int", "bool", "null", "float")
)


def dotted(path: Path) -> str:
    """Render a path as ``domains.pro.machines.pro-dev.ip`` / ``network_policies[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class Document:
    """Plain data from a YAML file plus the line of every path in it."""

    filename: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int | None:
        """Line of ``path``, else of its closest ancestor that has one."""
        p = path
        while True:
            found = self.lines.get(p)
            if found is not None:
                return found
            if not p:
                return None
            p = p[:-1]


class _Builder:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.lines: dict[Path, int] = {}
        self.problems: list[Problem] = []
        self.constructor = yaml.constructor.SafeConstructor()
        self.active: set[int] = set()
        self.done: dict[int, Any] = {}  # aliases reuse one value: no "billion laughs"

    def problem(self, node: yaml.Node, path: Path, what: str, fix: str) -> None:
        self.problems.append(
            Problem(self.filename, node.start_mark.line + 1, dotted(path), what, fix)
        )

    def scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        if node.tag == _STR:
            return node.value
        if node.tag not in _SCALAR_TAGS:
            self.problem(
                node, path, f"unsupported YAML tag {node.tag!r}",
                "remove the tag and write a plain value",
            )
            return None
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            self.problem(node, path, f"invalid value {node.value!r} ({exc})",
                         "quote it to make it a string")
            return None

    def build(self, node: yaml.Node, path: Path) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.done:
            return self.done[id(node)]
        if id(node) in self.active:
            self.problem(node, path, "recursive YAML alias", "remove the self-referencing alias")
            return None
        self.active.add(id(node))
        value: Any = None
        try:
            if isinstance(node, yaml.SequenceNode):
                value = self.sequence(node, path)
            elif isinstance(node, yaml.MappingNode):
                value = self.mapping(node, path)
        finally:
            self.active.discard(id(node))
        self.done[id(node)] = value
        return value

    def sequence(self, node: yaml.SequenceNode, path: Path) -> list[Any]:
        if node.tag != _SEQ:
            self.problem(node, path, f"unsupported YAML tag {node.tag!r}",
                         "remove the tag and write a plain list")
        out: list[Any] = []
        for i, child in enumerate(node.value):
            sub = (*path, i)
            self.lines.setdefault(sub, child.start_mark.line + 1)
            out.append(self.build(child, sub))
        return out

    def mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        if node.tag != _MAP:
            self.problem(node, path, f"unsupported YAML tag {node.tag!r}",
                         "remove the tag and write a plain mapping")
        out: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        merges: list[tuple[yaml.Node, Path]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merges.append((value_node, path))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, "a mapping key must be a plain scalar",
                             "use a simple name as the key")
                continue
            key = self.scalar(key_node, path)
            try:
                hash(key)
            except TypeError:  # pragma: no cover - scalars are hashable
                continue
            line = key_node.start_mark.line + 1
            sub = (*path, key if isinstance(key, int | str) else str(key))
            if key in seen:
                self.problem(
                    key_node, sub,
                    f"duplicate key {key!r} (first defined on line {seen[key]}); "
                    "YAML would silently keep only the last one",
                    "remove or rename one of them",
                )
                continue
            seen[key] = line
            self.lines.setdefault(sub, line)
            out[key] = self.build(value_node, sub)
        for value_node, mpath in merges:
            merged = self.build(value_node, mpath)
            sources = merged if isinstance(merged, list) else [merged]
            for src in sources:
                if not isinstance(src, dict):
                    self.problem(value_node, mpath, "a merge key (<<) needs a mapping",
                                 "merge an anchored mapping, e.g. <<: *defaults")
                    continue
                for k, v in src.items():
                    out.setdefault(k, v)
        return out


def plain(text: str) -> Any:
    """``text`` as plain Python values with libyaml's loader, where PyYAML has it: for a
    read where line numbers and duplicate keys do not matter (the generated tree). Raises
    yaml.YAMLError."""
    return yaml.load(text, Loader=_Loader)


def load_text(text: str, filename: str) -> Document:
    """Parse ``text``; raise :class:`InputError` with every problem found."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        col = f" (column {mark.column + 1})" if mark is not None else ""
        what = f"invalid YAML: {exc.problem or exc.context or 'syntax error'}{col}"
        raise InputError([Problem(filename, line, "", what, "fix the syntax at that line")]) \
            from None
    except yaml.YAMLError as exc:
        what = " ".join(f"invalid YAML: {exc}".split())
        raise InputError([Problem(filename, None, "", what, "fix the file's syntax")]) from None
    if node is None:
        return Document(filename, None)
    builder = _Builder(filename)
    try:
        data = builder.build(node, ())
    except RecursionError:
        raise InputError([Problem(filename, None, "", "YAML nested too deeply",
                                  "flatten the structure")]) from None
    if builder.problems:
        raise InputError(builder.problems)
    return Document(filename, data, builder.lines)


def read_text(path: str, display: str) -> str:
    """Read a UTF-8 file, turning every OS problem into one clear line."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise InputError([Problem(display, None, "", "file not found",
                                  "give the path of your infra file (default ./infra.yml)")]) \
            from None
    except IsADirectoryError:
        raise InputError([Problem(display, None, "", "is a directory, not a file",
                                  "give the path of your infra file")]) from None
    except OSError as exc:
        raise InputError([Problem(display, None, "", f"cannot read: {exc.strerror or exc}",
                                  "check the path and its permissions")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError([Problem(display, line, "", "not valid UTF-8 text",
                                  "save the file as UTF-8")]) from None

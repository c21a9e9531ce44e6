"""Reading and writing flow files with ruamel's round-trip mode, keeping comments and key order.

JSON flows go through the same parser (JSON is YAML), so they get line numbers too.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarstring import LiteralScalarString

from flowengine.problems import Pos, Problem
from flowengine.yamlguard import MAX_CHARS, NESTED, GuardedComposer, too_deep

_TOP = Pos(1, 1)


def _yaml(layout: tuple[int, int, int] = (2, 2, 0)) -> YAML:
    yaml = YAML(typ="rt")
    yaml.Composer = GuardedComposer
    yaml.preserve_quotes = True
    yaml.allow_duplicate_keys = True
    yaml.width = 4096
    mapping, sequence, offset = layout
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _duplicate_keys(root: Node, path: str) -> list[Problem]:
    """Every duplicate mapping key in a composed YAML tree, at the position of the repeat.

    Walks each node once (an alias shares its anchor's node), without recursion.
    """
    problems: list[Problem] = []
    todo, seen_nodes = [root], set()
    while todo:
        node = todo.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            problems += _repeats(node, path)
            todo.extend(value for _key, value in node.value)
        elif isinstance(node, SequenceNode):
            todo.extend(node.value)
    return sorted(problems, key=lambda p: (p.pos.line, p.pos.col))


def _repeats(node: MappingNode, path: str) -> list[Problem]:
    """The keys of one mapping that repeat an earlier key."""
    problems: list[Problem] = []
    seen: dict[Any, int] = {}
    for key, _value in node.value:
        name = getattr(key, "value", None)
        if not isinstance(name, str):
            continue  # the guard allows only scalar keys; be safe anyway
        if name in seen:
            mark = key.start_mark
            problems.append(
                Problem(
                    path,
                    Pos(mark.line + 1, mark.column + 1),
                    f"duplicate key '{name}' (first at line {seen[name]})",
                )
            )
        else:
            seen[name] = key.start_mark.line + 1
    return problems


def _guess_indent(text: str) -> tuple[int, int, int]:
    """The file's mapping indent, sequence indent and dash offset, so a save keeps its layout."""
    mapping, sequence, offset = 0, 0, -1
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for parent, child in itertools.pairwise(lines):
        head = parent.split(" #")[0].rstrip()
        if not head.endswith(":") or head.lstrip().startswith("- "):
            continue
        base = len(parent) - len(parent.lstrip())
        col = len(child) - len(child.lstrip())
        body = child.lstrip()
        if col < base or (col == base and not body.startswith("- ")):
            continue
        if body.startswith("- ") and offset < 0:
            offset = col - base
            sequence = offset + len(body) - len(body[1:].lstrip())
        elif not body.startswith("- ") and not mapping:
            mapping = col - base
        if mapping and offset >= 0:
            break
    mapping = mapping or 2
    if offset < 0:
        offset, sequence = 0, mapping
    return mapping, max(sequence, offset + 2), offset


def _precheck(text: str, name: str, is_json: bool) -> Problem | None:
    """What is wrong before parsing: too large, nested too deep, or (for JSON) not strict JSON
    (YAML would accept trailing commas and single quotes)."""
    if len(text) > MAX_CHARS:
        return Problem(name, Pos(1, 1), f"flow file too large (over {MAX_CHARS} characters)")
    deep = too_deep(text)
    if deep is not None:
        return Problem(name, Pos(*deep), f"invalid {'JSON' if is_json else 'YAML'}: {NESTED}")
    if is_json:
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            return Problem(name, Pos(exc.lineno, exc.colno), f"invalid JSON: {exc.msg}")
        except RecursionError:  # deep nesting in braces the bracket count does not see
            return Problem(name, Pos(1, 1), f"invalid JSON: {NESTED}")
    return None


def _yaml_problem(exc: BaseException, text: str, name: str) -> Problem:
    """A YAML error as a located problem (a bad character at its real line and column)."""
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        pos = Pos(mark.line + 1, mark.column + 1) if mark else Pos(1, 1)
        what = " ".join(filter(None, [exc.context, exc.problem]))
        return Problem(name, pos, f"invalid YAML: {what}")
    if isinstance(exc, ReaderError) and isinstance(exc.position, int):
        before = text[: exc.position]
        pos = Pos(before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1)
        char = exc.character
        shown = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        return Problem(name, pos, f"invalid YAML: unacceptable character {shown}: {exc.reason}")
    if isinstance(exc, RecursionError):
        return Problem(name, Pos(1, 1), f"invalid YAML: {NESTED}")
    return Problem(name, Pos(1, 1), f"invalid YAML: {exc}")


@dataclass(frozen=True, slots=True)
class TextStyle:
    """What a file looks like beyond its YAML: kept so a save changes only what was edited."""

    layout: tuple[int, int, int] = (2, 2, 0)  # mapping indent, sequence indent, dash offset
    newline: str = "\n"
    bom: bool = False
    explicit_start: bool = False
    final_newline: bool = True
    json_indent: int = 2

    @classmethod
    def of(cls, text: str) -> TextStyle:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        first = next((ln for ln in lines if not ln.lstrip().startswith("#")), "")
        json_indent = next((len(ln) - len(ln.lstrip()) for ln in lines[1:2]), 2)
        return cls(
            layout=_guess_indent(text),
            explicit_start=first.rstrip() == "---",
            final_newline=text.endswith("\n") or not text,
            json_indent=json_indent or 2,
        )


class FlowDocument:
    """A flow file's parsed tree plus what is needed to write it back unchanged.

    Kept: comments, key order, quoting, indentation, CRLF line ends, a BOM, a leading ``---``
    and a missing final newline. Not kept: YAML tags such as ``!!int``, a closing ``...``, and
    indentation that differs between sections (the first one found wins).
    """

    def __init__(self, data: Any, path: Path, style: TextStyle | None = None) -> None:
        self.data = data
        self.path = path
        self.style = style or TextStyle()

    @classmethod
    def parse(cls, text: str, path: Path) -> tuple[FlowDocument | None, list[Problem]]:
        """Parse YAML or JSON text; syntax errors and duplicate keys come back as problems."""
        name = str(path)
        bom = text.startswith("\ufeff")
        newline = "\r\n" if "\r\n" in text else "\n"
        text = text.removeprefix("\ufeff").replace("\r\n", "\n")
        problem = _precheck(text, name, path.suffix.lower() == ".json")
        if problem is not None:
            return None, [problem]
        try:
            composed = _yaml().compose(io.StringIO(text))
            problems = _duplicate_keys(composed, name) if composed is not None else []
            style = dataclasses.replace(TextStyle.of(text), bom=bom, newline=newline)
            data = _yaml(style.layout).load(text)
        except (YAMLError, RecursionError) as exc:
            return None, [_yaml_problem(exc, text, name)]
        if data is None:
            data = CommentedMap()
        return cls(data, path, style), problems

    @classmethod
    def read(cls, path: str | Path) -> tuple[FlowDocument | None, list[Problem]]:
        """Read a flow file; an unreadable file is a problem, not an exception."""
        path = Path(path)
        try:
            with path.open(encoding="utf-8", newline="") as file:
                text = file.read(MAX_CHARS + 1)
        except (OSError, UnicodeDecodeError) as exc:
            return None, [Problem(str(path), Pos(1, 1), f"cannot read flow file: {exc}")]
        return cls.parse(text, path)

    def dumps(self, data: Any | None = None) -> str:
        """The document (or ``data``) as text in this file's format and style."""
        data = self.data if data is None else data
        style = self.style
        if self.path.suffix.lower() == ".json":
            text = json.dumps(to_plain(data), indent=style.json_indent, ensure_ascii=False) + "\n"
        else:
            out = io.StringIO()
            yaml = _yaml(style.layout)
            yaml.explicit_start = style.explicit_start
            yaml.dump(data, out)
            text = out.getvalue()
        if not style.final_newline:
            text = text.removesuffix("\n")
        if style.newline != "\n":
            text = text.replace("\n", style.newline)
        return ("\ufeff" if style.bom else "") + text

    def save(self, path: str | Path | None = None) -> None:
        """Write the document back (atomically), comments and key order kept."""
        target = Path(path) if path else self.path
        tmp = target.with_name(f".{target.name}.tmp")
        with tmp.open("w", encoding="utf-8", newline="") as file:
            file.write(self.dumps())
        tmp.replace(target)


def to_plain(value: Any) -> Any:
    """Convert ruamel containers to plain dicts and lists (for JSON and for node configs)."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if hasattr(value, "__float__") and type(value).__module__.startswith("ruamel"):
        return float(value) if "Float" in type(value).__name__ else int(value)
    if isinstance(value, str):
        return str(value)
    return value


def key_pos(mapping: Any, key: Any, fallback: Pos = _TOP) -> Pos:
    """Position of ``key`` in a ruamel mapping (1-based), or ``fallback``."""
    if isinstance(mapping, CommentedMap):
        try:
            line, col = mapping.lc.key(key)
            return Pos(line + 1, col + 1)
        except (KeyError, TypeError):
            pass
    return fallback


def value_pos(container: Any, key: Any, fallback: Pos = _TOP) -> Pos:
    """Position of the value under ``key`` (or list index) in a ruamel container."""
    try:
        if isinstance(container, CommentedMap):
            line, col = container.lc.value(key)
            return Pos(line + 1, col + 1)
        if isinstance(container, CommentedSeq):
            line, col = container.lc.item(key)
            return Pos(line + 1, col + 1)
    except (KeyError, TypeError, IndexError):
        pass
    return fallback


def styled(data: Mapping[str, Any]) -> CommentedMap:
    """Plain flow data as ruamel containers: wires, layout entries and rows in flow style."""

    def flow_style(value: Any) -> Any:
        out: CommentedMap | CommentedSeq
        if isinstance(value, dict):
            out = CommentedMap(value)
        elif isinstance(value, list):
            out = CommentedSeq(value)
        else:
            return value
        out.fa.set_flow_style()
        return out

    def styled_value(value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            return CommentedSeq(flow_style(v) for v in value)  # rows, operations
        if isinstance(value, list) and not any(isinstance(v, dict | list) for v in value):
            return flow_style(value)  # endpoints, columns
        return value

    doc = CommentedMap(data)
    if isinstance(data.get("description"), str) and "\n" in data["description"]:
        doc["description"] = LiteralScalarString(data["description"])
    nodes = CommentedMap()
    for node_id, node in (data.get("nodes") or {}).items():
        ours = CommentedMap((k, styled_value(v)) for k, v in node.items())
        wires = node.get("wires")
        if isinstance(wires, dict):
            ours["wires"] = CommentedMap({p: flow_style(t) for p, t in wires.items()})
        nodes[node_id] = ours
    if "nodes" in data:
        doc["nodes"] = nodes
    if "layout" in data:
        doc["layout"] = CommentedMap({k: flow_style(v) for k, v in data["layout"].items()})
    return doc

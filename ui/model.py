"""The editor's model: every edit of a flow file, in plain Python, testable without a browser.

It wraps a :class:`FlowDocument` and edits its ruamel tree in place, so a save keeps comments,
key order and style, and a move touches only the ``layout`` section. Undo and redo keep whole
document texts (bounded), which makes them exact whatever the edit was.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowengine.ui.views import NodeView, WireView, parse_wire_key, wire_key
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from flowengine.envsubst import has_reference
from flowengine.flowfile import FlowDocument, to_plain
from flowengine.logs import MASK
from flowengine.model import NODE_ID, Flow, parse_flow
from flowengine.problems import FlowError, Pos, Problem
from flowengine.registry import Registry, UnknownNodeType, default_registry
from flowengine.types import ERROR_PORT
from flowengine.validate import CheckedFlow, check_flow

HISTORY = 100
#: Node colours by palette category (Node-RED's muted tones).
COLORS = {
    "input": "#a6bbcf",
    "output": "#c0deed",
    "function": "#fdd0a2",
    "analytics": "#d8bfd8",
}
DEFAULT_COLOR = "#dddddd"
NEW_FLOW = "version: 1\nname: {name}\nnodes: {{}}\nlayout: {{}}\n"
#: The file name endings of flow files (YAML or JSON).
FLOW_SUFFIXES = (".yaml", ".yml", ".json")


class DiskChanged(Exception):
    """The file changed on disk since it was opened or last saved: saving would lose that."""


def _flow_map(**values: Any) -> CommentedMap:
    """A mapping written inline (``{x: 80, y: 160}``), like the layout section of shipped flows."""
    out = CommentedMap(values)
    out.fa.set_flow_style()
    return out


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(float(value), 2)


def _stamp(path: Path) -> tuple[int, int] | None:
    """The file's (mtime_ns, size): cheap to take on every tick, unlike reading the file."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _digest(path: Path) -> tuple[tuple[int, int], str] | None:
    """The file's stamp and content hash (the hash decides: an identical rewrite is no change)."""
    stamp = _stamp(path)
    try:
        return (stamp, hashlib.sha256(path.read_bytes()).hexdigest()) if stamp else None
    except OSError:
        return None


def _yaml_str(text: str) -> str:
    """``text`` as a YAML scalar that reads back as that string (``yes`` or ``1`` get quotes)."""
    try:
        plain = YAML(typ="safe", pure=True).load(text) == text
    except YAMLError:
        plain = False
    return text if plain else json.dumps(text)


@dataclass(slots=True)
class _Clip:
    """Copied nodes: their raw trees, positions relative to the top-left one."""

    nodes: dict[str, Any]
    offsets: dict[str, tuple[float, float]]


class EditorModel:
    """One open flow file and its edit history. Every method that edits returns what changed
    (or False for no change) and records one undo step."""

    def __init__(
        self, doc: FlowDocument, registry: Registry | None = None, *, allow_code: bool = False
    ) -> None:
        self.doc = doc
        self.allow_code = allow_code
        #: Bumped by every change of the document (edits, undo, reload): views redraw on it.
        self.revision = 0
        self.registry = registry or default_registry()
        self.path = doc.path
        self._ensure_sections()
        self._saved_text = doc.dumps()
        self._history = [self._saved_text]
        self._at = 0
        self._clip: _Clip | None = None
        self._disk = _digest(self.path)
        self._cache: tuple[int, Flow, CheckedFlow, list[Problem]] | None = None
        self._dirty: tuple[int, bool] | None = None  # (revision, dirty): a dump costs
        self._described: dict[str, dict[str, Any]] = {}

    # ---- opening -----------------------------------------------------------------------
    @classmethod
    def open(
        cls, path: str | Path, registry: Registry | None = None, *, allow_code: bool = False
    ) -> EditorModel:
        """Open a flow file; a file that does not parse raises :class:`FlowError`."""
        doc, problems = FlowDocument.read(path)
        if doc is None:
            raise FlowError(problems)
        return cls(doc, registry, allow_code=allow_code)

    @classmethod
    def create(cls, path: str | Path, registry: Registry | None = None) -> EditorModel:
        """Write a new empty flow at ``path`` (which must not exist) and open it: YAML, or
        JSON for a ``.json`` name; any other name raises :class:`ValueError`."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in FLOW_SUFFIXES or not path.stem or path.name.startswith("."):
            raise ValueError(f"'{path.name}': a flow file name ends in .yaml, .yml or .json")
        if path.exists():
            raise FileExistsError(f"{path} exists")
        if suffix == ".json":
            empty = {"version": 1, "name": path.stem, "nodes": {}, "layout": {}}
            text = json.dumps(empty, indent=2) + "\n"
        else:
            text = NEW_FLOW.format(name=_yaml_str(path.stem))
        path.write_text(text, encoding="utf-8")
        return cls.open(path, registry)

    def _ensure_sections(self) -> None:
        data = self.doc.data
        if not isinstance(data, CommentedMap):
            raise FlowError([Problem(str(self.path), Pos(1, 1), "a flow file must be a mapping")])
        if not isinstance(data.get("nodes"), dict):
            data["nodes"] = CommentedMap()
        if not isinstance(data.get("layout"), dict):
            data["layout"] = CommentedMap()

    # ---- reading -----------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self.doc.dumps()

    @property
    def nodes(self) -> CommentedMap:
        return self.doc.data["nodes"]

    @property
    def layout(self) -> CommentedMap:
        return self.doc.data["layout"]

    @property
    def dirty(self) -> bool:
        """True when the document differs from what was last saved (or opened). Computed once
        per revision (every change bumps it): the editor asks every second, a dump is not free."""
        if self._dirty is None or self._dirty[0] != self.revision:
            self._dirty = (self.revision, self.text != self._saved_text)
        return self._dirty[1]

    def _checked(self) -> tuple[Flow, CheckedFlow, list[Problem]]:
        if self._cache is None or self._cache[0] != self.revision:
            flow, parse_problems = parse_flow(self.doc)
            checked = check_flow(flow, self.registry, allow_code=self.allow_code)
            problems = sorted(
                [*parse_problems, *checked.problems], key=lambda p: (p.pos.line, p.pos.col)
            )
            self._cache = (self.revision, flow, checked, problems)
        return self._cache[1], self._cache[2], self._cache[3]

    def flow(self) -> Flow:
        return self._checked()[0]

    def checked(self) -> CheckedFlow:
        """The validated flow, what :class:`FlowHost` deploys (parse problems included)."""
        _, checked, problems = self._checked()
        checked.problems = list(problems)
        return checked

    def problems(self) -> list[Problem]:
        """Every problem, from the same validator as ``flowengine validate``."""
        return list(self._checked()[2])

    def node_problems(self) -> dict[str, list[Problem]]:
        """Problems per node id (those not tied to a node are under ``""``)."""
        out: dict[str, list[Problem]] = {}
        for problem in self.problems():
            out.setdefault(problem.node or "", []).append(problem)
        return out

    def describe(self, type_name: str) -> dict[str, Any] | None:
        """``Registry.describe`` of a type (cached: a schema is built once), None if unknown."""
        if type_name not in self._described:
            try:
                self._described[type_name] = self.registry.describe(type_name)
            except UnknownNodeType:
                return None
        return self._described[type_name]

    def node_type(self, node_id: str) -> str:
        raw = self.nodes.get(node_id)
        return str(raw.get("type", "")) if isinstance(raw, dict) else ""

    def position(self, node_id: str, index: int = 0) -> tuple[float, float]:
        xy = self.layout.get(node_id)
        try:
            return float(xy["x"]), float(xy["y"])
        except (TypeError, KeyError, ValueError):
            return 80.0 + 220.0 * (index % 5), 80.0 + 100.0 * (index // 5)

    def output_ports(self, node_id: str) -> list[str]:
        """A node's output ports, ``error`` last (a switch's follow its rule names)."""
        _, checked, _ = self._checked()
        try:
            cls = self.registry.get(self.node_type(node_id))
        except UnknownNodeType:
            return ["out", ERROR_PORT]
        built = checked.nodes.get(node_id)
        ports = cls.output_ports(built.config if built else None)
        return [*(ports if ports is not None else cls.outputs), ERROR_PORT]

    def to_view(self) -> tuple[list[NodeView], list[WireView]]:
        """What the canvas draws: nodes with ports, colour and first error; every wire."""
        flow, _, problems = self._checked()
        first_error: dict[str, str] = {}
        for problem in problems:
            if problem.node and problem.is_error:
                first_error.setdefault(problem.node, problem.message)
        views: list[NodeView] = []
        wires: list[WireView] = []
        for index, (node_id, node) in enumerate(flow.nodes.items()):
            info = self.describe(node.type)
            x, y = self.position(node_id, index)
            views.append(
                NodeView(
                    id=node_id,
                    type=node.type,
                    label=node.label,
                    x=x,
                    y=y,
                    inputs=list(info["inputs"]) if info else ["in"],
                    outputs=self.output_ports(node_id),
                    color=COLORS.get(info["category"], DEFAULT_COLOR) if info else DEFAULT_COLOR,
                    icon="",
                    disabled=node.disabled,
                    error=first_error.get(node_id),
                )
            )
            for port, targets in node.wires.items():
                for target in targets:
                    key = wire_key(node_id, port, target.node, target.port)
                    wires.append(
                        WireView(
                            key=key,
                            source=node_id,
                            port=port,
                            target=target.node,
                            target_port=target.port,
                        )
                    )
        return views, wires

    def form_values(self, node_id: str) -> dict[str, Any]:
        """A node's keys as plain values for the property form; literal secrets come back as
        ``******`` (never in clear), ``${VAR}`` references as written."""
        raw = self.nodes.get(node_id)
        if not isinstance(raw, dict):
            return {}
        values = {str(k): to_plain(v) for k, v in raw.items() if k != "wires"}
        for name in self._secret_fields(node_id):
            value = values.get(name)
            if value not in (None, "") and not has_reference(value):
                values[name] = MASK
        return values

    def _secret_fields(self, node_id: str) -> set[str]:
        try:
            return self.registry.get(self.node_type(node_id)).Config.secret_fields()
        except UnknownNodeType:
            return set()

    # ---- history -----------------------------------------------------------------------
    def _commit(self) -> bool:
        """Record the current document as one undo step; False when nothing changed."""
        text = self.text
        if text == self._history[self._at]:
            return False
        del self._history[self._at + 1 :]
        self._history.append(text)
        if len(self._history) > HISTORY:
            del self._history[0]
        self._at = len(self._history) - 1
        self.revision += 1
        return True

    def _load_text(self, text: str) -> None:
        doc, problems = FlowDocument.parse(text, self.path)
        if doc is None:  # our own output always parses; a failure here is a bug
            raise FlowError(problems)
        doc.style = self.doc.style
        self.doc = doc
        self._ensure_sections()
        self.revision += 1

    @property
    def can_undo(self) -> bool:
        return self._at > 0

    @property
    def can_redo(self) -> bool:
        return self._at < len(self._history) - 1

    def undo(self) -> bool:
        if not self.can_undo:
            return False
        self._at -= 1
        self._load_text(self._history[self._at])
        return True

    def redo(self) -> bool:
        if not self.can_redo:
            return False
        self._at += 1
        self._load_text(self._history[self._at])
        return True

    # ---- edits -------------------------------------------------------------------------
    def new_id(self, type_name: str, taken: set[str] | None = None) -> str:
        """A readable free id: the type name plus the smallest free number (``filter2``)."""
        base = re.sub(r"[^A-Za-z0-9_-]", "_", type_name) or "node"
        if not NODE_ID.match(base):
            base = f"n_{base}"
        used = {str(k) for k in self.nodes} | (taken or set())
        n = 1
        while f"{base}{n}" in used:
            n += 1
        return f"{base}{n}"

    def _set_pos(self, node_id: str, x: float, y: float) -> None:
        entry = self.layout.get(node_id)
        if isinstance(entry, dict):
            entry["x"], entry["y"] = _num(x), _num(y)
        else:
            self.layout[node_id] = _flow_map(x=_num(x), y=_num(y))

    def add_node(self, type_name: str, x: float, y: float) -> str:
        """Add a node of a known type at (x, y); returns its new id."""
        self.registry.get(type_name)  # raises UnknownNodeType with a suggestion
        node_id = self.new_id(type_name)
        self.nodes[node_id] = CommentedMap(type=type_name)
        self._set_pos(node_id, x, y)
        self._commit()
        return node_id

    def move(self, positions: dict[str, dict[str, float]]) -> bool:
        """Move nodes; only the ``layout`` section changes."""
        for node_id, xy in positions.items():
            if node_id in self.nodes:
                self._set_pos(node_id, float(xy["x"]), float(xy["y"]))
        return self._commit()

    def _targets(self, raw: CommentedMap, port: str) -> Any:
        wires = raw.get("wires")
        if isinstance(wires, dict):
            return wires.get(port)
        return wires if port == "out" else None

    def _wire_lists(self, raw: Any, add: str | None = None) -> dict[str, list[Any]]:
        """A node's wires as one list per output port, normalised in place so that editing a
        list edits the file: a string target (``wires: b``, ``{out: b}``) becomes a one-item
        list. ``add`` gets an empty list when it has none (a bare ``wires: [...]`` becomes a
        mapping when a port other than ``out`` joins it)."""
        if not isinstance(raw, dict):
            return {}
        wires = raw.get("wires")
        if isinstance(wires, dict):
            for p, targets in wires.items():
                if isinstance(targets, str):
                    wires[p] = self._seq([targets])
            if add is not None and wires.get(add) is None:
                wires[add] = self._seq([])
            return {str(p): t for p, t in wires.items() if isinstance(t, list)}
        if isinstance(wires, str):
            raw["wires"] = wires = self._seq([wires])
        if wires is not None and not isinstance(wires, list):
            return {}  # not a wires shape: validation reports it, edits leave it alone
        if add is not None and add != "out":
            ports = CommentedMap({"out": wires} if wires else {})
            ports[add] = self._seq([])
            raw["wires"] = ports
            return dict(ports)
        if add == "out" and wires is None:
            raw["wires"] = wires = self._seq([])
        return {"out": wires} if wires is not None else {}

    def _retarget(self, raw: Any, ids: dict[str, str]) -> None:
        """Point targets at renamed nodes (``ids``: old id -> new id), keeping input ports."""
        for targets in self._wire_lists(raw).values():
            for i, t in enumerate(targets):
                node, dot, port = str(t).partition(".")
                if node in ids:
                    targets[i] = ids[node] + dot + port

    def wire(self, source: str, port: str, target: str, target_port: str = "in") -> bool:
        """Connect ``source.port`` to ``target.target_port``; False for a self-loop, a
        duplicate or an unknown node (cycles and bad ports are left to validation to report)."""
        raw = self.nodes.get(source)
        if source == target or not isinstance(raw, dict) or target not in self.nodes:
            return False
        item = target if target_port == "in" else f"{target}.{target_port}"
        existing = self._targets(raw, port)
        if item == existing or (isinstance(existing, list) and item in existing):
            return False  # checked before normalising: a refused edit changes nothing
        targets = self._wire_lists(raw, add=port).get(port)
        if targets is None:
            return False
        targets.append(item)
        return self._commit()

    @staticmethod
    def _seq(items: list[str]) -> CommentedSeq:
        seq = CommentedSeq(items)
        seq.fa.set_flow_style()
        return seq

    def _drop_target(self, raw: Any, port: str | None, item_of: Any) -> None:
        """Remove targets matching ``item_of(str)`` from one port (or all when ``port`` is None)."""
        for p, targets in self._wire_lists(raw).items():
            if port is not None and p != port:
                continue
            for i in reversed(range(len(targets))):
                if item_of(str(targets[i])):
                    del targets[i]
            if not targets and isinstance(raw["wires"], dict):
                del raw["wires"][p]
        if isinstance(raw, dict) and raw.get("wires") is not None and not raw["wires"]:
            del raw["wires"]

    def unwire(self, key: str) -> bool:
        source, port, target, target_port = parse_wire_key(key)
        item = target if target_port == "in" else f"{target}.{target_port}"
        self._drop_target(self.nodes.get(source), port, lambda t: t == item)
        return self._commit()

    def delete(self, nodes: list[str] | None = None, wires: list[str] | None = None) -> bool:
        """Delete wires and nodes (with their layout and every wire into them)."""
        for key in wires or []:
            source, port, target, target_port = parse_wire_key(key)
            item = target if target_port == "in" else f"{target}.{target_port}"
            self._drop_target(self.nodes.get(source), port, lambda t, i=item: t == i)
        gone = set(nodes or []) & {str(k) for k in self.nodes}
        for node_id in gone:
            del self.nodes[node_id]
            if node_id in self.layout:
                del self.layout[node_id]
        if gone:
            for raw in self.nodes.values():
                self._drop_target(raw, None, lambda t: t.partition(".")[0] in gone)
        return self._commit()

    def set_field(self, node_id: str, name: str, value: Any, *, commit: bool = True) -> bool:
        """Set one key of a node (config field or name/description/disabled/...); ``None``
        removes it (back to the default). A secret set to ``******`` keeps its value."""
        raw = self.nodes.get(node_id)
        if not isinstance(raw, dict) or name in ("type", "wires"):
            return False
        if value == MASK and name in self._secret_fields(node_id):
            return False
        if value is None:
            if name not in raw:
                return False
            del raw[name]
        elif name in raw:
            if to_plain(raw[name]) == value:
                return False
            raw[name] = value
        else:
            at = list(raw).index("wires") if "wires" in raw else len(raw)
            raw.insert(at, name, value)
        return self._commit() if commit else True

    def set_config(self, node_id: str, values: dict[str, Any]) -> bool:
        """Replace a node's keys (except type and wires) in one undo step."""
        raw = self.nodes.get(node_id)
        if not isinstance(raw, dict):
            return False
        for name in [k for k in raw if k not in ("type", "wires") and k not in values]:
            del raw[name]
        for name, value in values.items():
            self.set_field(node_id, name, value, commit=False)
        return self._commit()

    def rename(self, old: str, new: str) -> bool:
        """Give a node a new id, rewriting wires into it and its layout key."""
        if new == old or not NODE_ID.match(new) or new in self.nodes or old not in self.nodes:
            return False
        index = list(self.nodes).index(old)
        self.nodes.insert(index, new, self.nodes.pop(old))
        if old in self.layout:
            self.layout.insert(list(self.layout).index(old), new, self.layout.pop(old))
        for raw in self.nodes.values():
            self._retarget(raw, {old: new})
        return self._commit()

    # ---- clipboard ---------------------------------------------------------------------
    def copy(self, ids: list[str]) -> int:
        """Keep copies of nodes for :meth:`paste`; returns how many were copied."""
        ids = [i for i in ids if i in self.nodes]
        if not ids:
            return 0
        positions = {i: self.position(i) for i in ids}
        left = min(x for x, _ in positions.values())
        top = min(y for _, y in positions.values())
        self._clip = _Clip(
            nodes={i: copy.deepcopy(self.nodes[i]) for i in ids},
            offsets={i: (x - left, y - top) for i, (x, y) in positions.items()},
        )
        return len(ids)

    def paste(self, x: float, y: float) -> list[str]:
        """Add the copied nodes at (x, y) under new ids; wires between them are kept, wires
        to nodes outside the copy are dropped."""
        if self._clip is None:
            return []
        new: dict[str, str] = {}
        for old in self._clip.nodes:
            new[old] = self.new_id(self.node_type_of(self._clip.nodes[old]), set(new.values()))
        for old, raw in self._clip.nodes.items():
            raw = copy.deepcopy(raw)
            self._drop_target(raw, None, lambda t: t.partition(".")[0] not in new)
            self._retarget(raw, new)
            self.nodes[new[old]] = raw
            dx, dy = self._clip.offsets[old]
            self._set_pos(new[old], x + dx, y + dy)
        self._commit()
        return list(new.values())

    def import_any(self, text: str, x: float, y: float) -> tuple[list[str], list[str]]:
        """Import a flow text or a Node-RED ``flows.json`` (a JSON list of nodes, or the admin
        API's ``{"flows": [...]}``); returns the new ids and notes on what did not map."""
        from flowengine.nodes.nodered.convert import NodeRedError, import_nodered

        head = text.lstrip()[:1]
        if head == "[" or (head == "{" and '"flows"' in text[:2000]):
            try:
                result = import_nodered(text)
            except NodeRedError as exc:
                raise FlowError([Problem("import", Pos(1, 1), str(exc))]) from None
            notes = [
                f"not imported: {u.type} '{u.name or u.id}' ({u.reason})" for u in result.unmapped
            ]
            notes += [f"set ${{{k}}}: {v}" for k, v in result.env.items()]
            return self.import_nodes(json.dumps(result.flow), x, y), notes
        return self.import_nodes(text, x, y), []

    def import_nodes(self, text: str, x: float, y: float) -> list[str]:
        """Add the nodes of a flow text (YAML or JSON, e.g. an export) at (x, y) under new
        ids, like a paste; the clipboard is left as it was."""
        doc, problems = FlowDocument.parse(text, Path("import.yaml"))
        nodes = doc.data.get("nodes") if doc is not None and isinstance(doc.data, dict) else None
        if not isinstance(nodes, dict) or not nodes:
            raise FlowError(problems or [Problem("import", Pos(1, 1), "no 'nodes' to import")])
        layout = doc.data.get("layout") if isinstance(doc.data.get("layout"), dict) else {}
        spots = {}
        for i, node_id in enumerate(nodes):
            xy = layout.get(node_id) if isinstance(layout, dict) else None
            try:
                spots[node_id] = (float(xy["x"]), float(xy["y"]))
            except (TypeError, KeyError, ValueError):
                spots[node_id] = (220.0 * i, 0.0)
        left = min(p[0] for p in spots.values())
        top = min(p[1] for p in spots.values())
        saved, self._clip = (
            self._clip,
            _Clip(
                nodes={str(k): v for k, v in nodes.items()},
                offsets={str(k): (px - left, py - top) for k, (px, py) in spots.items()},
            ),
        )
        try:
            return self.paste(x, y)
        finally:
            self._clip = saved

    @staticmethod
    def node_type_of(raw: Any) -> str:
        return str(raw.get("type", "node")) if isinstance(raw, dict) else "node"

    # ---- disk --------------------------------------------------------------------------
    def changed_on_disk(self) -> bool:
        """True when the file's content changed since it was opened or last saved here."""
        if self._disk is not None and _stamp(self.path) == self._disk[0]:
            return False  # same mtime and size: not worth reading the file again
        now = _digest(self.path)
        if now is None or self._disk is None:
            return now != self._disk
        if now[1] == self._disk[1]:
            self._disk = now  # rewritten with the same content: remember the new stamp
            return False
        return True

    def save(self, *, force: bool = False) -> None:
        """Write the file (atomically); raises :class:`DiskChanged` when someone else changed
        it since it was opened, unless ``force``."""
        if not force and self.changed_on_disk():
            raise DiskChanged(f"{self.path} changed on disk since it was opened")
        self.doc.save()
        self._saved_text = self.text
        self._dirty = (self.revision, False)
        self._disk = _digest(self.path)

    def reload(self) -> None:
        """Discard local edits and read the file again (after it changed on disk)."""
        doc, problems = FlowDocument.read(self.path)
        if doc is None:
            raise FlowError(problems)
        self.doc = doc
        self._ensure_sections()
        self._saved_text = self.text
        self._history = [self._saved_text]
        self._at = 0
        self._disk = _digest(self.path)
        self.revision += 1
        self._dirty = (self.revision, False)


def flow_files(folder: str | Path) -> list[Path]:
    """The flow files in a folder (YAML and JSON), for ``flowengine edit DIR``."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FLOW_SUFFIXES)

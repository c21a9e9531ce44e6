"""The editor's edits of nodes, wires and positions. Each edits the ruamel tree in place and
records one undo step (or returns False when it changed nothing)."""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml.comments import CommentedMap

from flowengine.flowfile import to_plain
from flowengine.logs import MASK
from flowengine.model import NODE_ID
from flowengine.ui.reading import ModelReading
from flowengine.ui.views import parse_wire_key
from flowengine.ui.wiring import (
    drop_targets,
    port_targets,
    retarget_all,
    target_item,
    wire_lists,
)
from flowengine.wires import IN, split_target, target_node

#: Keys of a node the property form never sets (the canvas edits wires).
_FIXED_KEYS = ("type", "wires")


def _flow_map(**values: Any) -> CommentedMap:
    """A mapping written inline (``{x: 80, y: 160}``), like the layout section of shipped flows."""
    out = CommentedMap(values)
    out.fa.set_flow_style()
    return out


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(float(value), 2)


class ModelEdits(ModelReading):
    """Adding, moving, wiring, deleting, configuring and renaming nodes."""

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

    def wire(self, source: str, port: str, target: str, target_port: str = IN) -> bool:
        """Connect ``source.port`` to ``target.target_port``; False for a self-loop, a
        duplicate or an unknown node (cycles and bad ports are left to validation to report)."""
        raw = self.nodes.get(source)
        if source == target or not isinstance(raw, dict) or target not in self.nodes:
            return False
        existing = {split_target(str(t)) for t in port_targets(raw, port)}
        if (target, target_port) in existing:
            return False  # checked before normalising: a refused edit changes nothing
        targets = wire_lists(raw, add=port).get(port)
        if targets is None:
            return False
        targets.append(target_item(target, target_port))
        return self._commit()

    def _drop_wire(self, key: str) -> None:
        """Remove the wire a canvas key names (nothing when it is not in the file)."""
        source, port, target, target_port = parse_wire_key(key)
        drop_targets(
            self.nodes.get(source), port, lambda t: split_target(t) == (target, target_port)
        )

    def unwire(self, key: str) -> bool:
        self._drop_wire(key)
        return self._commit()

    def delete(self, nodes: list[str] | None = None, wires: list[str] | None = None) -> bool:
        """Delete wires and nodes (with their layout and every wire into them)."""
        for key in wires or []:
            self._drop_wire(key)
        gone = set(nodes or []) & {str(k) for k in self.nodes}
        for node_id in gone:
            del self.nodes[node_id]
            if node_id in self.layout:
                del self.layout[node_id]
        if gone:
            for raw in self.nodes.values():
                drop_targets(raw, None, lambda t: target_node(t) in gone)
        return self._commit()

    def set_field(self, node_id: str, name: str, value: Any, *, commit: bool = True) -> bool:
        """Set one key of a node (config field or name/description/disabled/...); ``None``
        removes it (back to the default). A secret set to ``******`` keeps its value."""
        raw = self.nodes.get(node_id)
        if not isinstance(raw, dict) or name in _FIXED_KEYS:
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
        for name in [k for k in raw if k not in _FIXED_KEYS and k not in values]:
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
            retarget_all(raw, {old: new})
        return self._commit()

"""Copy, paste and import of nodes: copies go in under new ids, keeping only the wires among
them, at a spot the user picks with their relative positions kept."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowengine.flowfile import FlowDocument
from flowengine.problems import FlowError, Pos, Problem
from flowengine.ui.arrange import ModelArrange
from flowengine.ui.wiring import drop_targets, retarget_all
from flowengine.wires import target_node


@dataclass(slots=True)
class _Clip:
    """Copied nodes: their raw trees, positions relative to the top-left one."""

    nodes: dict[str, Any]
    offsets: dict[str, tuple[float, float]]


def _spots(nodes: dict[Any, Any], layout: Any) -> dict[str, tuple[float, float]]:
    """Where imported nodes were laid out (a row for those without a layout entry)."""
    spots: dict[str, tuple[float, float]] = {}
    for i, node_id in enumerate(nodes):
        xy: Any = layout.get(node_id) if isinstance(layout, dict) else None
        try:
            spots[str(node_id)] = (float(xy["x"]), float(xy["y"]))
        except (TypeError, KeyError, ValueError):
            spots[str(node_id)] = (220.0 * i, 0.0)
    return spots


def _offsets(spots: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Positions relative to the top-left of them all."""
    left = min(x for x, _ in spots.values())
    top = min(y for _, y in spots.values())
    return {i: (x - left, y - top) for i, (x, y) in spots.items()}


class ModelClipboard(ModelArrange):
    """The copied nodes of this model, and pasting or importing them."""

    _clip: _Clip | None = None

    def copy(self, ids: list[str]) -> int:
        """Keep copies of nodes for :meth:`paste`; returns how many were copied."""
        ids = [i for i in ids if i in self.nodes]
        if not ids:
            return 0
        self._clip = _Clip(
            nodes={i: copy.deepcopy(self.nodes[i]) for i in ids},
            offsets=_offsets({i: self.position(i) for i in ids}),
        )
        return len(ids)

    def cut(self, ids: list[str]) -> int:
        """Copy nodes for :meth:`paste` and delete them (one undo step); returns how many."""
        count = self.copy(ids)
        if count:
            self.delete(ids)
        return count

    def duplicate(self, ids: list[str], dx: float = 40.0, dy: float = 40.0) -> list[str]:
        """Copies of nodes (and the wires among them) offset by (dx, dy), under new ids; the
        clipboard is left as it was."""
        saved = self._clip
        try:
            if not self.copy(ids):
                return []
            spots = [self.position(i) for i in ids if i in self.nodes]
            left, top = min(x for x, _ in spots), min(y for _, y in spots)
            return self.paste(left + dx, top + dy)
        finally:
            self._clip = saved

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
            drop_targets(raw, None, lambda t: target_node(t) not in new)
            retarget_all(raw, new)
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
        if doc is None or not isinstance(nodes, dict) or not nodes:
            raise FlowError(problems or [Problem("import", Pos(1, 1), "no 'nodes' to import")])
        saved, self._clip = (
            self._clip,
            _Clip(
                nodes={str(k): v for k, v in nodes.items()},
                offsets=_offsets(_spots(nodes, doc.data.get("layout"))),
            ),
        )
        try:
            return self.paste(x, y)
        finally:
            self._clip = saved

    @staticmethod
    def node_type_of(raw: Any) -> str:
        return str(raw.get("type", "node")) if isinstance(raw, dict) else "node"

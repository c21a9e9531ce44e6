"""Canvas arrangement edits: groups (named, coloured boxes kept in ``layout``), splicing a node
into a wire, and disabling a selection. Each records one undo step, like every edit."""

from __future__ import annotations

from typing import Any, TypedDict

from ruamel.yaml.comments import CommentedMap

from flowengine.model import NODE_ID
from flowengine.types import ERROR_PORT
from flowengine.ui.edits import ModelEdits
from flowengine.ui.views import parse_wire_key
from flowengine.ui.wiring import flow_seq, port_targets, target_item, wire_lists
from flowengine.wires import split_target

#: Group colours, in the order new groups take them (light, so node colours stay readable).
GROUP_COLORS = ("#ffe0b2", "#c8e6c9", "#bbdefb", "#f8bbd0", "#d1c4e9", "#fff9c4")


class GroupView(TypedDict):
    """One group as the canvas draws it: a box around its member nodes."""

    id: str
    name: str
    color: str
    nodes: list[str]


def is_group(entry: Any) -> bool:
    """A ``layout`` entry that is a group (``{name, color, nodes}``), not a node's ``{x, y}``."""
    return isinstance(entry, dict) and "nodes" in entry


class ModelArrange(ModelEdits):
    """Groups, splice and disable on top of the node and wire edits."""

    def groups(self) -> dict[str, Any]:
        """The group entries of ``layout`` by id, as written."""
        return {str(k): v for k, v in self.layout.items() if is_group(v)}

    def group_views(self) -> list[GroupView]:
        """What the canvas draws: each group with the members that are nodes."""
        return [
            GroupView(
                id=gid,
                name=str(raw.get("name", "")),
                color=str(raw.get("color", "")) or GROUP_COLORS[0],
                nodes=[str(m) for m in raw.get("nodes") or [] if m in self.nodes],
            )
            for gid, raw in self.groups().items()
        ]

    def group(self, ids: list[str], name: str = "", color: str = "") -> str | None:
        """Put nodes in a new group (out of any group they were in); returns its id."""
        ids = [i for i in dict.fromkeys(ids) if i in self.nodes]
        if not ids:
            return None
        self.leave_groups(set(ids))
        taken = {str(k) for k in self.layout}
        n = 1
        while f"group{n}" in taken or f"group{n}" in self.nodes:
            n += 1
        gid = f"group{n}"
        entry = CommentedMap(
            name=name or f"Group {n}",
            color=color or GROUP_COLORS[(n - 1) % len(GROUP_COLORS)],
            nodes=flow_seq(ids),
        )
        entry.fa.set_flow_style()
        self.layout[gid] = entry
        self._commit()
        return gid

    def ungroup(self, group_id: str) -> bool:
        if not is_group(self.layout.get(group_id)):
            return False
        del self.layout[group_id]
        return self._commit()

    def set_group(self, group_id: str, name: str | None = None, color: str | None = None) -> bool:
        """Rename or recolour a group."""
        entry = self.layout.get(group_id)
        if not is_group(entry):
            return False
        if name is not None:
            entry["name"] = name
        if color is not None:
            entry["color"] = color
        return self._commit()

    def leave_groups(self, ids: set[str]) -> None:
        """Take nodes out of their groups; groups left empty go."""
        for gid, entry in self.groups().items():
            members = entry.get("nodes")
            if not isinstance(members, list):
                continue
            for i in reversed(range(len(members))):
                if members[i] in ids:
                    del members[i]
            if not members:
                del self.layout[gid]

    def delete(self, nodes: list[str] | None = None, wires: list[str] | None = None) -> bool:
        """Delete wires and nodes; deleted nodes leave their groups."""
        self.leave_groups(set(nodes or []) & {str(k) for k in self.nodes})
        return super().delete(nodes, wires)

    def rename(self, old: str, new: str) -> bool:
        """Give a node a new id; its group membership follows."""
        if new == old or not NODE_ID.match(new) or new in self.nodes or old not in self.nodes:
            return False
        if is_group(self.layout.get(new)):
            return False  # a group's id: its layout entry would become the node's
        for entry in self.groups().values():
            members = entry.get("nodes")
            if isinstance(members, list) and old in members:
                members[members.index(old)] = new
        return super().rename(old, new)

    def splice(self, node_id: str, key: str) -> bool:
        """Put a node into a wire: ``a -> b`` becomes ``a -> node -> b`` (its first input and
        first non-error output); False when the node has no such ports or the wire is gone."""
        try:
            source, port, target, target_port = parse_wire_key(key)
        except ValueError:
            return False
        info = self.describe(self.node_type(node_id))
        outs = [p for p in self.output_ports(node_id) if p != ERROR_PORT]
        if node_id in (source, target) or not info or not info["inputs"] or not outs:
            return False
        raw = self.nodes.get(source)
        if (target, target_port) not in {split_target(str(t)) for t in port_targets(raw, port)}:
            return False
        self._drop_wire(key)
        wire_lists(raw, add=port)[port].append(target_item(node_id, info["inputs"][0]))
        wire_lists(self.nodes[node_id], add=outs[0])[outs[0]].append(
            target_item(target, target_port)
        )
        return self._commit()

    def set_disabled(self, ids: list[str], disabled: bool) -> bool:
        """Disable or enable nodes in one undo step."""
        changed = False
        for node_id in ids:
            changed |= self.set_field(node_id, "disabled", True if disabled else None, commit=False)
        return self._commit() if changed else False

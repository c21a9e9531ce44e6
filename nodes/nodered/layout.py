"""Our flow's parts made of a Node-RED export's: readable node ids, the common node keys,
the layout (tabs stacked) and the description (tab infos and comments)."""

from __future__ import annotations

from typing import Any

from flowengine.nodes.nodered.context import Mapped, Raw
from flowengine.nodes.nodered.values import slug, to_int, unique


def unique_ids(mapped: dict[str, Mapped], everything: dict[str, Raw]) -> dict[str, str]:
    """Node-RED id -> a readable id: the slug of the name (else our type), numbered if taken."""
    ids: dict[str, str] = {}
    for nr_id, m in mapped.items():
        base = slug(str(everything[nr_id].get("name") or "")) or m.type
        ids[nr_id] = unique(base, ids.values())
    return ids


def our_node(source: Raw, m: Mapped, everything: dict[str, Raw]) -> Raw:
    """A mapped node with its name, description and disabled state (its own or its tab's)."""
    ours: Raw = {"type": m.type}
    if source.get("name"):
        ours["name"] = str(source["name"])
    if source.get("info"):
        ours["description"] = str(source["info"])
    tab = everything.get(str(source.get("z")), {})
    if source.get("d") or tab.get("disabled") or source.get("active") is False:
        ours["disabled"] = True
    return {**ours, **m.config}


def tab_offsets(nodes: list[Raw], tabs: list[Raw]) -> dict[Any, tuple[int, int]]:
    """Stack several tabs vertically, so their nodes do not overlap in the layout."""
    offsets: dict[Any, tuple[int, int]] = {}
    top = 0
    for t in tabs:
        ys = [to_int(n.get("y")) for n in nodes if n.get("z") == t["id"]]
        offsets[t["id"]] = (0, top)
        top += (max(ys) + 120) if ys else 0
    return offsets


def position(source: Raw, offsets: dict[Any, tuple[int, int]]) -> Raw:
    """A node's layout entry: its place on its tab, moved by the tab's offset."""
    dx, dy = offsets.get(source.get("z"), (0, 0))
    return {"x": to_int(source.get("x")) + dx, "y": to_int(source.get("y")) + dy}


def description(items: list[Raw], tabs: list[Raw], scope: set[Any]) -> str:
    """The flow's description: the tabs' infos, then the text of their comment nodes."""
    lines = [str(t["info"]).strip() for t in tabs if str(t.get("info") or "").strip()]
    for node in items:
        if node["type"] == "comment" and node.get("z") in scope:
            text = ": ".join(s for s in (node.get("name"), node.get("info")) if s)
            lines += [text.strip()] if text.strip() else []
    return "\n".join(lines)

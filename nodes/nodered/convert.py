"""Import a Node-RED ``flows.json`` into a flowengine flow, and write it as YAML.

Node-RED moves one message at a time, flowengine batches of rows: ``msg.payload`` is a row's
``value``, ``msg.topic`` its ``topic`` column and ``msg.payload.X`` (or ``msg.X``) a column
``X``. Only what keeps its meaning is mapped (the table is in docs/nodered-import.md; one
module per Node-RED family: mqtt, inject, switch, change, delay, http_request); the rest is
listed with a reason, never guessed at. Credentials become ``${VAR}`` references: a secret
found in the file is never written out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowengine.flowfile import FlowDocument, styled
from flowengine.nodes.nodered.context import Context, Mapped, Raw
from flowengine.nodes.nodered.layout import description, our_node, position, tab_offsets, unique_ids
from flowengine.nodes.nodered.mappers import Unmapped, map_nodes
from flowengine.nodes.nodered.wiring import Wiring, absorbed, our_wires
from flowengine.registry import Registry, default_registry

__all__ = ["NOT_NODES", "ImportResult", "NodeRedError", "Unmapped", "import_nodered", "to_yaml"]

#: Node-RED types that are no flow nodes at all (their text may become the description).
NOT_NODES = {"tab", "comment", "group", "subflow"}


class NodeRedError(ValueError):
    """The input is not a Node-RED flow export (or the asked tab is not in it)."""


@dataclass
class ImportResult:
    """The imported flow (our format, as plain data) and what could not be carried over."""

    flow: dict[str, Any]
    unmapped: list[Unmapped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # variable -> what it must hold
    ids: dict[str, str] = field(default_factory=dict)  # Node-RED id -> node id


def _load(data: list[Raw] | str | Mapping[str, Any]) -> list[Raw]:
    """The export's objects, from its JSON text, the parsed list or the admin API's reply."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise NodeRedError(f"not JSON: {exc}") from None
    if isinstance(data, Mapping) and isinstance(data.get("flows"), list):
        data = data["flows"]  # the admin API's {"rev": ..., "flows": [...]}
    if not isinstance(data, list) or not all(
        isinstance(n, dict) and isinstance(n.get("id"), str) and isinstance(n.get("type"), str)
        for n in data
    ):
        raise NodeRedError("not a Node-RED flow export: expected a JSON array of nodes")
    return data


def _scope(items: list[Raw], tab: str | None) -> list[Raw]:
    """The tabs to import: the one named ``tab`` (by label or id), else all."""
    tabs = [n for n in items if n["type"] == "tab"]
    if tab is None:
        return tabs
    chosen = [t for t in tabs if tab in (t.get("label"), t["id"])]
    if not chosen:
        names = ", ".join(repr(t.get("label") or t["id"]) for t in tabs) or "none"
        raise NodeRedError(f"no tab '{tab}' in the file; tabs: {names}")
    return chosen[:1]


def _flow(
    items: list[Raw], tabs: list[Raw], scope: set[Any], nodes: dict[str, Raw], layout: Raw
) -> Raw:
    """Our flow document: named after its tabs, described by their infos and comments."""
    flow: Raw = {"version": 1}
    if tabs:
        flow["name"] = ", ".join(str(t.get("label") or t["id"]) for t in tabs)
    text = description(items, tabs, scope)
    if text:
        flow["description"] = text
    flow.update(nodes=nodes, layout=layout)
    return flow


def import_nodered(
    data: list[Raw] | str, *, tab: str | None = None, registry: Registry | None = None
) -> ImportResult:
    """Map a Node-RED export (parsed, or its JSON text) to a flow; ``tab`` (label or id) picks
    one tab, default all. Raises :class:`NodeRedError` when ``data`` is no flow export."""
    items = _load(data)
    everything = {n["id"]: n for n in items}
    tabs = _scope(items, tab)
    scope = {t["id"] for t in tabs} | (set() if tab or tabs else {None})
    flow_nodes = [
        n for n in items if n.get("z") in scope and "x" in n and n["type"] not in NOT_NODES
    ]
    wiring = Wiring(everything, flow_nodes)
    cx = Context(everything, wiring.feeders)
    mapped, unmapped = map_nodes(flow_nodes, cx, registry or default_registry())
    dropped = absorbed(mapped, wiring.feeders)
    for nr_id in dropped:
        del mapped[nr_id]
    ids = unique_ids(mapped, everything)
    nodes, layout = _nodes(mapped, ids, wiring, cx, tab_offsets(flow_nodes, tabs))
    warnings = [text for nr_id, text in cx.notes if nr_id not in dropped]
    return ImportResult(_flow(items, tabs, scope, nodes, layout), unmapped, warnings, cx.env, ids)


def _nodes(
    mapped: dict[str, Mapped], ids: dict[str, str], wiring: Wiring, cx: Context,
    offsets: dict[Any, tuple[int, int]],
) -> tuple[dict[str, Raw], Raw]:  # fmt: skip
    """Our nodes (wired) and their layout, by our ids."""
    nodes: dict[str, Raw] = {}
    layout: Raw = {}
    for nr_id, m in mapped.items():
        source = wiring.all[nr_id]
        node = nodes[ids[nr_id]] = our_node(source, m, wiring.all)
        wires = our_wires(source, m, mapped, ids, wiring, cx)
        if wires:
            node["wires"] = wires
        layout[ids[nr_id]] = position(source, offsets)
    return nodes, layout


def to_yaml(result: ImportResult, source: str = "flows.json") -> str:
    """The imported flow as YAML, under a header that lists what was not imported."""
    header = [f"Imported from Node-RED ({source}) by `flowengine import`."]
    if result.unmapped:
        header.append(f"Not imported ({len(result.unmapped)} nodes; see docs/nodered-import.md):")
        header += [f"  {u.type} '{u.name or u.id}' ({u.id}): {u.reason}" for u in result.unmapped]
    else:
        header.append("Every node was imported.")
    if result.env:
        header.append("Set these environment variables (or put them in .env):")
        header += [f"  {name}: {what}" for name, what in result.env.items()]
    body = FlowDocument(styled(result.flow), Path("imported.yaml")).dumps()
    return "".join(f"# {line}\n" for line in header) + body

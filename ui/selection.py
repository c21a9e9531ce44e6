"""Export of selected nodes (the editor's "export selection" and copy/paste): the nodes, the
wires among them and their layout, as a flow of its own."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from flowengine.export import export
from flowengine.flowfile import FlowDocument, styled
from flowengine.model import Flow
from flowengine.registry import Registry, default_registry
from flowengine.wires import keep_targets


def export_selection(flow: Mapping[str, Any] | FlowDocument, ids: Iterable[str]) -> dict[str, Any]:
    """The selected nodes, the wires among them and their layout, as a flow of its own (for
    "export selection" and copy/paste); comments of a document's nodes come along."""
    data = flow.data if isinstance(flow, FlowDocument) else flow
    nodes = data.get("nodes") if isinstance(data, Mapping) else None
    if not isinstance(nodes, Mapping):
        raise ValueError("not a flow: no 'nodes' mapping")
    wanted = list(dict.fromkeys(ids))
    missing = [i for i in wanted if i not in nodes]
    if missing:
        raise ValueError(f"no such node(s): {', '.join(missing)}")
    keep = set(wanted)

    picked = type(nodes)() if isinstance(nodes, CommentedMap) else {}
    for node_id in (n for n in nodes if n in keep):
        node = copy.deepcopy(nodes[node_id])
        if isinstance(node, dict) and "wires" in node:
            kept = keep_targets(node["wires"], keep.__contains__)
            if kept is None:
                del node["wires"]
            else:
                node["wires"] = kept
        picked[node_id] = node
    out: dict[str, Any] = CommentedMap() if isinstance(nodes, CommentedMap) else {}
    out["version"] = data.get("version", 1)
    out["nodes"] = picked
    layout = data.get("layout")
    if isinstance(layout, Mapping):
        out["layout"] = type(layout)({k: copy.deepcopy(v) for k, v in layout.items() if k in keep})
    return out


def selection_text(
    flow: Mapping[str, Any] | FlowDocument,
    ids: Iterable[str],
    fmt: str = "yaml",
    registry: Registry | None = None,
) -> str:
    """:func:`export_selection` as YAML or JSON text, literal secrets masked like ``export``."""
    if fmt not in ("yaml", "json"):
        raise ValueError(f"format '{fmt}': yaml or json")
    data = export_selection(flow, ids)
    if not isinstance(data, CommentedMap):
        data = styled(data)
    path = Path("selection.yaml")
    doc = FlowDocument(data, path, flow.style if isinstance(flow, FlowDocument) else None)
    return export(Flow(path=path, doc=doc), registry or default_registry(), fmt)

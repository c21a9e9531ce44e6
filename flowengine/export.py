"""Export a flow as YAML or JSON (secrets masked, ``${VAR}`` kept) or draw it (Mermaid, DOT)."""

from __future__ import annotations

import copy
import json
from typing import Any

from flowengine.envsubst import has_reference
from flowengine.flowfile import FlowDocument, to_plain
from flowengine.masking import MASK, is_secret_key, mask_url_password, url_password
from flowengine.model import Flow
from flowengine.registry import Registry, UnknownNodeType

FORMATS = ("yaml", "json", "mermaid", "dot")


def masked_data(flow: Flow, registry: Registry) -> Any:
    """A copy of the document with literal secrets masked; ``${VAR}`` references stay as written.

    Masked: a secret field's value (of a connection URL only its password, so the export still
    shows where it connects), the password of any URL, and credential-keyed values at any depth
    (``headers: {Authorization: ...}``).
    """
    assert flow.doc is not None
    data = copy.deepcopy(flow.doc.data)
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, dict):
        return data
    for raw in nodes.values():
        if not isinstance(raw, dict):
            continue
        try:
            secrets = registry.get(str(raw.get("type"))).Config.secret_fields()
        except UnknownNodeType:
            secrets = set()
        for key, value in raw.items():
            raw[key] = _masked(value, key in secrets or is_secret_key(key))
    return data


def _masked(value: Any, secret: bool) -> Any:
    """``value`` with its literal secrets masked, in place for containers (keeps comments)."""
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = _masked(item, secret or is_secret_key(key))
        return value
    if isinstance(value, list):
        for index, item in enumerate(value):
            value[index] = _masked(item, secret)
        return value
    if not isinstance(value, str):
        return MASK if secret and value is not None else value
    if url_password(value) is not None:
        return type(value)(mask_url_password(value, keep=has_reference))
    if secret and not has_reference(value):
        return MASK
    return value


def _kind(flow: Flow, registry: Registry, node_id: str) -> str:
    try:
        return registry.get(flow.nodes[node_id].type).kind
    except UnknownNodeType:
        return "transform"


def _edges(flow: Flow) -> list[tuple[str, str, str]]:
    edges = []
    for node in flow.nodes.values():
        for port, targets in node.wires.items():
            for target in targets:
                parts = [
                    p
                    for p in (
                        port if port != "out" else "",
                        target.port if target.port != "in" else "",
                    )
                    if p
                ]
                edges.append((node.id, target.node, " -> ".join(parts)))
    return edges


def to_mermaid(flow: Flow, registry: Registry) -> str:
    """A Mermaid flowchart: sources as stadiums, sinks as subroutines, ports on edge labels."""
    shapes = {"source": ('(["', '"])'), "transform": ('["', '"]'), "sink": ('[["', '"]]')}
    lines = ["flowchart LR"]
    for node in flow.nodes.values():
        left, right = shapes[_kind(flow, registry, node.id)]
        label = f"{node.label}<br/><i>{node.type}</i>".replace('"', "'")
        lines.append(f"  {node.id}{left}{label}{right}")
        if node.disabled:
            lines.append(f"  style {node.id} stroke-dasharray: 5 5")
    for src, dest, label in _edges(flow):
        arrow = f" -- {label} --> " if label else " --> "
        lines.append(f"  {src}{arrow}{dest}")
    return "\n".join(lines) + "\n"


def _dot(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(flow: Flow, registry: Registry) -> str:
    """A Graphviz digraph, left to right."""
    shapes = {"source": "ellipse", "transform": "box", "sink": "box3d"}
    lines = [
        f'digraph "{_dot(flow.name or flow.path.stem)}" {{',
        "  rankdir=LR;",
        "  node [fontname=Helvetica];",
    ]
    for node in flow.nodes.values():
        shape = shapes[_kind(flow, registry, node.id)]
        style = ", style=dashed" if node.disabled else ""
        label = f"{_dot(node.label)}\\n{_dot(node.type)}"
        lines.append(f'  "{node.id}" [label="{label}", shape={shape}{style}];')
    for src, dest, label in _edges(flow):
        attr = f' [label="{label}"]' if label else ""
        lines.append(f'  "{src}" -> "{dest}"{attr};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def export(flow: Flow, registry: Registry, fmt: str) -> str:
    """Render ``flow`` in one of :data:`FORMATS`."""
    if fmt == "mermaid":
        return to_mermaid(flow, registry)
    if fmt == "dot":
        return to_dot(flow, registry)
    assert flow.doc is not None
    data = masked_data(flow, registry)
    if fmt == "json":
        return json.dumps(to_plain(data), indent=2, ensure_ascii=False) + "\n"
    if flow.doc.path.suffix.lower() == ".json":
        data = to_plain(data)
        return FlowDocument(data, flow.doc.path.with_suffix(".yaml")).dumps()
    return flow.doc.dumps(data)

"""The flow model (format version 1): nodes keyed by id, their wires, settings and layout.

Parsing never raises on bad input: it returns what it could read plus located problems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flowengine.flowfile import FlowDocument, key_pos, to_plain, value_pos
from flowengine.problems import Pos, Problem, did_you_mean
from flowengine.settings import BufferPolicy, FlowSettings, RetryPolicy
from flowengine.wires import OUT, as_list, by_port, split_target

FORMAT_VERSION = 1
#: ``tests`` holds test cases (see flowengine.flowtest); the runtime ignores it.
TOP_KEYS = ("version", "name", "description", "settings", "nodes", "layout", "tests")
#: Node keys that belong to the runtime; every other key is the node type's config.
NODE_KEYS = ("type", "name", "description", "disabled", "wires", "queue_size", "retry", "buffer")
NODE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class Target:
    """The receiving end of a wire: a node id and its input port."""

    node: str
    port: str = "in"
    pos: Pos = field(default_factory=Pos)

    def __str__(self) -> str:
        return self.node if self.port == "in" else f"{self.node}.{self.port}"


@dataclass(slots=True)
class NodeDef:
    """One node as written in the file, before its type's config model is applied."""

    id: str
    type: str
    config: dict[str, Any] = field(default_factory=dict)
    wires: dict[str, list[Target]] = field(default_factory=dict)
    name: str | None = None
    description: str | None = None
    disabled: bool = False
    queue_size: int | None = None
    retry: RetryPolicy | None = None
    buffer: BufferPolicy | None = None
    pos: Pos = field(default_factory=Pos)
    field_pos: dict[str, Pos] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class LayoutGroup:
    """A named, coloured box the editor draws around some nodes and moves as one. Stored in
    ``layout`` under its own id as ``{name, color, nodes: [...]}``: the ``nodes`` key tells
    it from a node's ``{x, y}``, and one line per group keeps diffs small."""

    id: str
    nodes: tuple[str, ...]
    name: str = ""
    color: str = ""


@dataclass(slots=True)
class Flow:
    """A parsed flow: what the runtime, validator, exporter and editor work from."""

    path: Path
    version: int = FORMAT_VERSION
    name: str | None = None
    description: str | None = None
    settings: FlowSettings = field(default_factory=FlowSettings)
    nodes: dict[str, NodeDef] = field(default_factory=dict)
    layout: dict[str, tuple[float, float]] = field(default_factory=dict)
    groups: dict[str, LayoutGroup] = field(default_factory=dict)
    doc: FlowDocument | None = None


def _pydantic_problems(
    exc: ValidationError, path: str, where: Any, fallback: Pos, node: str | None, prefix: str
) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        first = err["loc"][0] if err["loc"] else None
        pos = key_pos(where, first, fallback) if first is not None else fallback
        what = f"{prefix}'{loc}'" if loc else f"'{prefix.strip()}'"
        out.append(Problem(path, pos, f"{what}: {err['msg']}", node))
    return out


def _parse_targets(
    raw: Any, container: Any, key: Any, path: str, node_id: str
) -> tuple[list[Target], list[Problem]]:
    here = value_pos(container, key)
    items = as_list(raw)
    if items is None:
        return [], [Problem(path, here, "wires must be a list of node ids", node_id)]
    here_list = (
        [here] if isinstance(raw, str) else [value_pos(raw, i, here) for i in range(len(raw))]
    )
    targets: list[Target] = []
    problems: list[Problem] = []
    for item, pos in zip(items, here_list, strict=True):
        if not isinstance(item, str) or not item:
            problems.append(
                Problem(path, pos, f"wire target must be a node id, got {item!r}", node_id)
            )
            continue
        if any(str(t) == item for t in targets):
            problems.append(
                Problem(path, pos, f"duplicate wire to '{item}' (ignored)", node_id, "warning")
            )
            continue
        targets.append(Target(*split_target(item), pos))
    return targets, problems


def _parse_node(
    node_id: Any, raw: Any, nodes_map: Any, path: str
) -> tuple[NodeDef | None, list[Problem]]:
    """One node of ``nodes``; None when its id or shape leaves nothing to read."""
    pos = key_pos(nodes_map, node_id)
    nid = str(node_id)
    if not isinstance(node_id, str):
        return None, [Problem(path, pos, f"node id {node_id!r} must be a string: quote it")]
    if not NODE_ID.match(nid):
        return None, [Problem(path, pos, f"invalid node id '{nid}': use letters, digits, _ and -")]
    if not isinstance(raw, dict):
        return None, [Problem(path, pos, "a node must be a mapping with at least 'type'", nid)]
    problems: list[Problem] = []
    kind = raw.get("type", "")
    node = NodeDef(id=nid, type=kind if isinstance(kind, str) else "", pos=pos)
    if "type" not in raw:
        problems.append(Problem(path, pos, "missing 'type'", nid))
    elif not isinstance(kind, str) or not kind:
        problems.append(Problem(path, key_pos(raw, "type", pos), "'type' must be a type name", nid))
    for key in raw:
        node.field_pos[str(key)] = key_pos(raw, key, pos)
    for key, value in raw.items():
        if str(key) != "type":
            problems += _node_key(node, raw, key, value, path)
    return node, problems


def _node_key(node: NodeDef, raw: Any, key: Any, value: Any, path: str) -> list[Problem]:
    """Read one key of a node's mapping into ``node``: a runtime key, else config."""
    k, nid = str(key), node.id
    where = node.field_pos[k]
    if k == "name":
        node.name = None if value is None else str(value)
    elif k == "description":
        node.description = None if value is None else str(value)
    elif k == "disabled":
        node.disabled = bool(value)
        if not isinstance(value, bool):
            return [Problem(path, where, "'disabled' must be true or false", nid)]
    elif k == "queue_size":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return [Problem(path, where, "'queue_size' must be an integer >= 1", nid)]
        node.queue_size = int(value)
    elif k == "retry":
        try:
            node.retry = RetryPolicy.model_validate(to_plain(value))
        except ValidationError as exc:
            return _pydantic_problems(exc, path, value, where, nid, "retry ")
    elif k == "buffer":
        try:
            node.buffer = BufferPolicy.model_validate({} if value is True else to_plain(value))
        except ValidationError as exc:
            return _pydantic_problems(exc, path, value, where, nid, "buffer ")
    elif k == "wires":
        return _node_wires(node, raw, key, value, path)
    else:
        node.config[k] = to_plain(value)
    return []


def _node_wires(node: NodeDef, raw: Any, key: Any, value: Any, path: str) -> list[Problem]:
    """Read a node's ``wires`` (a list for ``out``, or a mapping per port) into ``node``."""
    problems: list[Problem] = []
    ports = by_port(value)
    for port, targets in ({OUT: value} if ports is None else ports).items():
        where, at = (value, port) if isinstance(value, dict) else (raw, key)
        parsed, probs = _parse_targets(targets, where, at, path, node.id)
        node.wires[port] = parsed
        problems += probs
    return problems


def parse_flow(doc: FlowDocument) -> tuple[Flow, list[Problem]]:
    """Read the flow model out of a document, collecting every structural problem."""
    path = str(doc.path)
    flow = Flow(path=doc.path, doc=doc)
    data = doc.data
    if not isinstance(data, dict):
        return flow, [Problem(path, Pos(1, 1), "a flow file must be a mapping with 'nodes'")]
    problems: list[Problem] = []
    for key in data:
        if key not in TOP_KEYS:
            hint = did_you_mean(str(key), TOP_KEYS)
            problems.append(
                Problem(path, key_pos(data, key), f"unknown top-level key '{key}'{hint}")
            )
    problems += _parse_version(flow, data, path)
    flow.name = data.get("name")
    flow.description = data.get("description")
    problems += _parse_settings(flow, data, path)
    problems += _parse_nodes(flow, data, path)
    problems += _parse_layout(flow, data, path)
    return flow, problems


def _parse_group(
    flow: Flow, group_id: str, raw: dict[Any, Any], where: Pos, path: str
) -> list[Problem]:
    """One ``layout`` group: ``{name, color, nodes}``; members that are not nodes are warnings."""
    members, name, color = raw.get("nodes"), raw.get("name", ""), raw.get("color", "")
    if group_id in flow.nodes:
        return [Problem(path, where, f"group '{group_id}' has a node's id", group_id)]
    unknown = sorted(set(raw) - {"nodes", "name", "color"})
    if unknown:
        return [Problem(path, where, f"unknown group key(s): {', '.join(map(str, unknown))}")]
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        return [Problem(path, where, "a group's 'nodes' must be a list of node ids")]
    if not isinstance(name, str) or not isinstance(color, str):
        return [Problem(path, where, "a group's 'name' and 'color' must be strings")]
    flow.groups[group_id] = LayoutGroup(group_id, tuple(members), name, color)
    return [
        Problem(path, where, f"group member '{m}' is not a node", None, "warning")
        for m in members
        if m not in flow.nodes
    ]


def _parse_version(flow: Flow, data: dict[Any, Any], path: str) -> list[Problem]:
    """``version``: missing means the current one (a warning); newer than ours is an error."""
    version = data.get("version")
    if version is None:
        return [
            Problem(
                path, Pos(1, 1), f"no 'version' key; assuming {FORMAT_VERSION}", severity="warning"
            )
        ]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return [Problem(path, value_pos(data, "version"), "'version' must be a positive integer")]
    if version > FORMAT_VERSION:
        return [
            Problem(
                path,
                value_pos(data, "version"),
                f"flow format version {version} is newer than this flowengine reads "
                f"({FORMAT_VERSION}); upgrade flowengine",
            )
        ]
    flow.version = version
    return []


def _parse_settings(flow: Flow, data: dict[Any, Any], path: str) -> list[Problem]:
    """``settings``: validated by :class:`FlowSettings`; when invalid the defaults stay."""
    settings = data.get("settings")
    if settings is None:
        return []
    if not isinstance(settings, dict):
        return [
            Problem(
                path, key_pos(data, "settings"), "'settings' must be a mapping (queue_size, ...)"
            )
        ]
    try:
        flow.settings = FlowSettings.model_validate(to_plain(settings))
    except ValidationError as exc:
        return _pydantic_problems(exc, path, settings, key_pos(data, "settings"), None, "settings ")
    return []


def _parse_nodes(flow: Flow, data: dict[Any, Any], path: str) -> list[Problem]:
    """``nodes``: each node read on its own, so one bad node hides no other problem."""
    nodes = data.get("nodes")
    if nodes is None:
        return [Problem(path, Pos(1, 1), "no 'nodes' section")]
    if not isinstance(nodes, dict):
        return [Problem(path, key_pos(data, "nodes"), "'nodes' must be a mapping of id -> node")]
    problems: list[Problem] = []
    for node_id, raw in nodes.items():
        node, probs = _parse_node(node_id, raw, nodes, path)
        problems += probs
        if node is not None and node.id not in flow.nodes:
            flow.nodes[node.id] = node
    return problems


def _parse_layout(flow: Flow, data: dict[Any, Any], path: str) -> list[Problem]:
    """Editor positions; read after the nodes, so an entry for no node is a warning."""
    layout = data.get("layout")
    if layout is None:
        return []
    if not isinstance(layout, dict):
        return [
            Problem(path, key_pos(data, "layout"), "'layout' must be a mapping of id -> {x, y}")
        ]
    problems: list[Problem] = []
    for node_id, xy in layout.items():
        where = key_pos(layout, node_id)
        if isinstance(xy, dict) and "nodes" in xy:
            problems += _parse_group(flow, str(node_id), xy, where, path)
            continue
        try:
            flow.layout[str(node_id)] = (float(xy["x"]), float(xy["y"]))
        except (TypeError, KeyError, ValueError):
            problems.append(
                Problem(path, where, "layout entries need numeric x and y", str(node_id))
            )
        if str(node_id) not in flow.nodes:
            problems.append(
                Problem(
                    path, where, "layout for a node that does not exist", str(node_id), "warning"
                )
            )
    return problems

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
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flowengine.flowfile import FlowDocument, styled
from flowengine.nodes.nodered.context import Context, Difference, Mapped, Raw, label
from flowengine.nodes.nodered.layout import description, our_node, position, tab_offsets, unique_ids
from flowengine.nodes.nodered.mappers import Unmapped, map_nodes
from flowengine.nodes.nodered.wiring import Wiring, absorbed, our_wires
from flowengine.registry import Registry, default_registry

__all__ = [
    "NOT_NODES",
    "Differs",
    "ImportResult",
    "NodeRedError",
    "Unmapped",
    "import_nodered",
    "is_nodered",
    "report",
    "to_yaml",
]

#: Node-RED types that are no flow nodes at all (their text may become the description).
NOT_NODES = {"tab", "comment", "group", "subflow"}
#: Where the import report's lines fold.
REPORT_WIDTH = 100


class NodeRedError(ValueError):
    """The input is not a Node-RED flow export (or the asked tab is not in it)."""


@dataclass(frozen=True, slots=True)
class Differs:
    """An imported node that will behave differently from the Node-RED one."""

    node: str  # our node id
    source: str  # how the Node-RED node is named: type and name
    kind: str  # payloads, numbers, topics, click-only, function
    text: str


@dataclass
class ImportResult:
    """The imported flow (our format, as plain data) and what could not be carried over."""

    flow: dict[str, Any]
    unmapped: list[Unmapped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # variable -> what it must hold
    ids: dict[str, str] = field(default_factory=dict)  # Node-RED id -> node id
    differences: list[Differs] = field(default_factory=list)

    @property
    def same(self) -> bool:
        """True when every node was imported and none behaves differently."""
        return not self.unmapped and not self.differences

    def renamed(self, new_ids: list[str]) -> ImportResult:
        """This result with its nodes under ``new_ids`` (in the flow's node order), as the
        editor pastes an import under ids of its own."""
        new = dict(zip(self.flow.get("nodes") or {}, new_ids, strict=False))
        diffs = [replace(d, node=new.get(d.node, d.node)) for d in self.differences]
        ids = {nr: new.get(ours, ours) for nr, ours in self.ids.items()}
        return replace(self, differences=diffs, ids=ids)

    def marks(self) -> dict[str, str]:
        """``{node id: what differs}`` for the canvas: each affected node and why."""
        out: dict[str, list[str]] = {}
        for d in self.differences:
            out.setdefault(d.node, []).append(f"{d.kind}: {d.text}")
        return {node: "; ".join(texts) for node, texts in out.items()}


def is_nodered(text: str) -> bool:
    """Whether ``text`` looks like a Node-RED export (a JSON array, or the admin API's
    ``{"flows": [...]}``) rather than a flow file."""
    head = text.lstrip()[:1]
    return head == "[" or (head == "{" and '"flows"' in text[:2000])


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
    differences = _differences(cx.differences, ids, everything)
    flow = _flow(items, tabs, scope, nodes, layout)
    return ImportResult(flow, unmapped, warnings, cx.env, ids, differences)


def _differences(
    found: list[Difference], ids: dict[str, str], everything: dict[str, Raw]
) -> list[Differs]:
    """What differs, per imported node (in flow order; absorbed injects are gone)."""
    order = {nr_id: i for i, nr_id in enumerate(ids)}
    kept = sorted((d for d in found if d.id in ids), key=lambda d: order[d.id])
    return [Differs(ids[d.id], label(everything[d.id]), d.kind, d.text) for d in kept]


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


def report(result: ImportResult, source: str = "flows.json") -> str:
    """The import report, the same text on the command line and in the editor: a summary,
    then what behaves differently (per node), what was not imported, the other warnings and
    the variables to set (docs/nodered-import.md)."""
    imported = len(result.flow.get("nodes") or {})
    total = imported + len(result.unmapped)
    nodes = {d.node for d in result.differences}
    lines = [
        f"Imported from Node-RED ({source}): {imported} of {total} nodes; "
        + (
            "every one behaves as in Node-RED."
            if result.same
            else f"{len(nodes)} behave differently, {len(result.unmapped)} not imported."
        )
    ]
    if result.differences:
        lines += ["", f"Behaves differently ({_count(len(nodes))}: check before relying on it):"]
        for node in dict.fromkeys(d.node for d in result.differences):
            mine = [d for d in result.differences if d.node == node]
            lines.append(f"  {node} (was {mine[0].source}):")
            lines += [_wrap(f"    - {d.kind}: {d.text}", 6) for d in mine]
    if result.unmapped:
        lines += ["", f"Not imported ({_count(len(result.unmapped))}, dropped with their wires):"]
        named = [(u, f" '{u.name}'" if u.name else "") for u in result.unmapped]
        lines += [_wrap(f"  {u.type}{name} ({u.id}): {u.reason}", 4) for u, name in named]
    if result.warnings:
        lines += ["", "Warnings:"] + [_wrap(f"  {w}", 4) for w in result.warnings]
    if result.env:
        lines += ["", "Set these environment variables (or put them in .env):"]
        lines += [f"  {name}: {what}" for name, what in result.env.items()]
    return "\n".join(lines) + "\n"


def _wrap(line: str, indent: int) -> str:
    """A report line folded at :data:`REPORT_WIDTH`, its continuation lines indented."""
    return textwrap.fill(
        line,
        REPORT_WIDTH,
        subsequent_indent=" " * indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _count(n: int) -> str:
    return f"{n} node" if n == 1 else f"{n} nodes"


def to_yaml(result: ImportResult, source: str = "flows.json") -> str:
    """The imported flow as YAML, under the import report as a comment."""
    header = [f"{line}".rstrip() for line in report(result, source).splitlines()]
    header.append("By `flowengine import`; see docs/nodered-import.md.")
    body = FlowDocument(styled(result.flow), Path("imported.yaml")).dumps()
    return "".join(f"# {line}\n".replace("# \n", "#\n") for line in header) + body

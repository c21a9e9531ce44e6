"""Node-RED's wires (a list of target ids per output) followed through junctions and links,
and turned into our wires: Node-RED output i is our port ``Mapped.ports[i]``."""

from __future__ import annotations

from collections.abc import Iterator

from flowengine.nodes.nodered.context import Context, Mapped, Raw, label
from flowengine.types import ERROR_PORT
from flowengine.wires import OUT

#: Node-RED types that only carry wires: followed through, neither imported nor listed.
PASS_THROUGH = {"junction", "link in", "link out"}
#: Our types that take no input: wires to them are dropped.
SOURCES = {"inject", "mqtt_in", "rest_in"}


def passes(node: Raw) -> bool:
    """Whether ``node`` only carries wires (a junction, or a link that is no return link)."""
    return node["type"] in PASS_THROUGH and node.get("mode", "link") == "link"


def _outs(node: Raw, index: int) -> list[str]:
    """The ids Node-RED output ``index`` of ``node`` is wired to (nothing if malformed)."""
    wires = node.get("wires") or []
    if not isinstance(wires, list) or index >= len(wires) or not isinstance(wires[index], list):
        return []
    return [str(w) for w in wires[index]]


class Wiring:
    """Who feeds whom among the imported tabs' nodes, following junctions and links through."""

    def __init__(self, everything: dict[str, Raw], flow_nodes: list[Raw]) -> None:
        self.all = everything
        self.feeders: dict[str, list[str]] = {}
        for node in flow_nodes:
            if not passes(node):
                for i in range(len(node.get("wires") or [])):
                    for target in self.targets(node, i):
                        self.feeders.setdefault(target, []).append(node["id"])

    def targets(self, node: Raw, index: int) -> list[str]:
        """The nodes output ``index`` of ``node`` reaches, in order, without duplicates."""
        return list(dict.fromkeys(t for w in _outs(node, index) for t in self._expand(w)))

    def _expand(self, target: str, seen: frozenset[str] = frozenset()) -> Iterator[str]:
        """``target``, or what it passes on to when it only carries wires (loops stop)."""
        node = self.all.get(target)
        if node is None or target in seen:
            return
        if not passes(node):
            yield target
            return
        nexts = (node.get("links") or []) if node["type"] == "link out" else _outs(node, 0)
        for nxt in nexts:
            yield from self._expand(str(nxt), seen | {target})


def _dropped(
    source: Raw, i: int, port: str | None, target: str, dest: Raw, mapped: dict[str, Mapped]
) -> str | None:
    """Why the wire from output ``i`` of ``source`` to ``target`` is not imported (None: it
    is)."""
    if port is None:
        return f"output {i + 1} is not imported: wire to {label(dest)} dropped"
    if dest.get("z") != source.get("z") and target not in mapped:
        return f"wire to {label(dest)} on another tab dropped"
    if target not in mapped:
        return f"wire to unmapped {label(dest)} dropped"
    if mapped[target].type in SOURCES:
        return f"wire to {label(dest)} dropped: it became a source"
    return None


def our_wires(
    source: Raw, m: Mapped, mapped: dict[str, Mapped], ids: dict[str, str], wiring: Wiring,
    cx: Context,
) -> list[str] | dict[str, list[str]] | None:  # fmt: skip
    """Our wires of a mapped node (a list when its one port is ``out``); the Node-RED wires
    that cannot be carried over are warned about."""
    wires: dict[str, list[str]] = {}
    outputs = len(source.get("wires") or [])
    for i, port in enumerate(m.ports + [None] * (outputs - len(m.ports))):
        for target in wiring.targets(source, i):
            if mapped.get(target) and mapped[target].absorbs == source["id"]:
                continue  # the inject became the schedule of this GET
            if port is not None and mapped.get(target) and mapped[target].on_error_port:
                wires.setdefault(ERROR_PORT, []).append(ids[target])
                after = [t for t in wiring.targets(wiring.all[target], 0) if t in mapped]
                wires.setdefault(port, []).extend(ids[t] for t in after)
                continue  # text to the parser on `error`, readings past it on `port`
            why = _dropped(source, i, port, target, wiring.all[target], mapped)
            if why is not None:
                cx.warn(source, why)
            elif port is not None:
                wires.setdefault(port, []).append(ids[target])
    if not wires:
        return None
    return wires[OUT] if m.ports == [OUT] and list(wires) == [OUT] else wires


def absorbed(mapped: dict[str, Mapped], feeders: dict[str, list[str]]) -> set[str]:
    """Injects whose every target is a GET that took over their schedule."""
    takers: dict[str, set[str]] = {}
    for nr_id, m in mapped.items():
        if m.absorbs:
            takers.setdefault(m.absorbs, set()).add(nr_id)
    fed: dict[str, set[str]] = {}
    for target, sources in feeders.items():
        for src in sources:
            fed.setdefault(src, set()).add(target)
    return {inj for inj, gets in takers.items() if inj in mapped and fed.get(inj, set()) <= gets}

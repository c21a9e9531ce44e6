"""The shapes a node's ``wires`` may take in a flow file, read in one place.

A node writes its wires as any of::

    wires: b                      # one target on the `out` port
    wires: [b, c.in2]             # targets on `out`; `node.port` names an input port
    wires: {out: [b], error: c}   # per output port, each a target or a list of them

The parser, the editor's model and the Node-RED converter all read wires through these
functions, so a new shape is added here once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: The output port a bare target or list is wired from.
OUT = "out"
#: The input port a target without ``.port`` goes to.
IN = "in"


def by_port(wires: Any) -> dict[str, Any] | None:
    """``{port: targets as written}`` (each a string, a list or something invalid); ``{}`` for
    no wires, None when ``wires`` is no wires shape at all (validation reports it)."""
    if wires is None:
        return {}
    if isinstance(wires, dict):
        return {str(port): targets for port, targets in wires.items()}
    if isinstance(wires, str | list):
        return {OUT: wires}
    return None


def as_list(targets: Any) -> list[Any] | None:
    """The targets of one port as a list (a lone string becomes one item); None if invalid."""
    if isinstance(targets, str):
        return [targets]
    if isinstance(targets, list):
        return targets
    return None


def split_target(target: str) -> tuple[str, str]:
    """``"b.in2"`` -> ``("b", "in2")``; ``"b"`` -> ``("b", "in")``."""
    node, _, port = target.partition(".")
    return node, port or IN


def target_node(target: Any) -> str:
    """The node id a target names, whatever its port."""
    return str(target).partition(".")[0]


def retarget(target: Any, ids: dict[str, str]) -> Any:
    """``target`` pointed at a renamed node (``ids``: old id -> new id), its port kept."""
    node, dot, port = str(target).partition(".")
    return ids[node] + dot + port if node in ids else target


def keep_targets(wires: Any, keep: Callable[[str], bool]) -> Any:
    """``wires`` in its own shape with only the targets whose node ``keep`` accepts; ports left
    empty are dropped, and None is returned when nothing is left."""
    ports = by_port(wires)
    if ports is None:
        return wires
    kept: dict[str, Any] = {}
    for port, targets in ports.items():
        items = as_list(targets)
        if items is None:
            kept[port] = targets
            continue
        items = [t for t in items if keep(target_node(t))]
        if items:
            kept[port] = items
    if not kept:
        return None
    return kept if isinstance(wires, dict) else kept.get(OUT)

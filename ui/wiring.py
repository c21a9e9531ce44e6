"""Editing a node's ``wires`` in its ruamel tree, in place, so a save keeps the file's style.

Reading a wires shape goes through :mod:`flowengine.wires`, like the parser's; what is here is
only the normalisation that makes a port's targets an editable list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from flowengine.wires import IN, OUT, as_list, by_port, retarget

#: A test on one target as written (``"b"``, ``"b.in2"``): True drops it.
Drop = Callable[[str], bool]


def flow_seq(items: list[Any]) -> CommentedSeq:
    """A list written inline (``[b, c]``), like the wires of shipped flows."""
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def target_item(target: str, port: str) -> str:
    """How a target is written: ``b`` for the ``in`` port, else ``b.port``."""
    return target if port == IN else f"{target}.{port}"


def port_targets(raw: Any, port: str) -> list[Any]:
    """The targets of one output port as written, whatever the shape (no change to ``raw``)."""
    ports = by_port(raw.get("wires")) if isinstance(raw, dict) else None
    return as_list((ports or {}).get(port)) or []


def wire_lists(raw: Any, add: str | None = None) -> dict[str, list[Any]]:
    """A node's wires as one list per output port, normalised in place so that editing a
    list edits the file: a string target (``wires: b``, ``{out: b}``) becomes a one-item
    list. ``add`` gets an empty list when it has none (a bare ``wires: [...]`` becomes a
    mapping when a port other than ``out`` joins it)."""
    if not isinstance(raw, dict):
        return {}
    wires = raw.get("wires")
    if by_port(wires) is None:
        return {}  # not a wires shape: validation reports it, edits leave it alone
    if isinstance(wires, dict):
        for p, targets in wires.items():
            if isinstance(targets, str):
                wires[p] = flow_seq([targets])
        if add is not None and wires.get(add) is None:
            wires[add] = flow_seq([])
        return {str(p): t for p, t in wires.items() if isinstance(t, list)}
    if isinstance(wires, str):
        raw["wires"] = wires = flow_seq([wires])
    if add is not None and add != OUT:
        ports = CommentedMap({OUT: wires} if wires else {})
        ports[add] = flow_seq([])
        raw["wires"] = ports
        return dict(ports)
    if add == OUT and wires is None:
        raw["wires"] = wires = flow_seq([])
    return {OUT: wires} if wires is not None else {}


def drop_targets(raw: Any, port: str | None, drop: Drop) -> None:
    """Remove the targets ``drop`` accepts from one port (or all when ``port`` is None);
    ports left empty go, and so does a ``wires`` key left empty."""
    for p, targets in wire_lists(raw).items():
        if port is not None and p != port:
            continue
        for i in reversed(range(len(targets))):
            if drop(str(targets[i])):
                del targets[i]
        if not targets and isinstance(raw["wires"], dict):
            del raw["wires"][p]
    if isinstance(raw, dict) and raw.get("wires") is not None and not raw["wires"]:
        del raw["wires"]


def retarget_all(raw: Any, ids: dict[str, str]) -> None:
    """Point a node's targets at renamed nodes (``ids``: old id -> new id), ports kept."""
    for targets in wire_lists(raw).values():
        for i, target in enumerate(targets):
            new = retarget(target, ids)
            if new is not target:
                targets[i] = new

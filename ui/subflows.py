"""Subflows in the editor: "Make subflow" (selected nodes -> a new subflow file and one
instance in their place) and what the canvas and property form show of an instance (its
subflow's ports and params, read from the subflow file)."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowengine.flowfile import FlowDocument, styled, to_plain
from flowengine.model import NODE_ID
from flowengine.registry import Registry
from flowengine.subflow import SUBFLOW_TYPE, SUFFIX, find_package, read_subflow
from flowengine.wires import IN, OUT, as_list, by_port, split_target, target_node

if TYPE_CHECKING:
    from flowengine.ui.model import EditorModel

_described: dict[tuple[Path, int], dict[str, Any] | None] = {}


def describe_instance(flow_path: Path, raw: Any) -> dict[str, Any] | None:
    """``Registry.describe`` of a subflow instance's type: its subflow's params as the config
    schema, its ports; None when the subflow cannot be read. Cached per file version."""
    if not isinstance(raw, dict):
        return None
    if raw.get("package"):
        path, _ = find_package(str(raw["package"]))
    elif raw.get("path"):
        path = flow_path.parent / str(raw["path"])
    else:
        return None
    try:
        key = (path.resolve(), path.stat().st_mtime_ns) if path else None
    except OSError:
        return None
    if key is None:
        return None
    if key not in _described:
        sub, _ = read_subflow(key[0])
        info = None
        if sub is not None:
            registry = Registry()
            registry.register(SUBFLOW_TYPE, sub.node_type)
            info = registry.describe(SUBFLOW_TYPE)
        _described[key] = info
    return _described[key]


def versions(paths: tuple[Path, ...]) -> tuple[int, ...]:
    """The modification times of subflow files (0: gone), to notice an edit of one."""
    out = []
    for path in paths:
        try:
            out.append(path.stat().st_mtime_ns)
        except OSError:
            out.append(0)
    return tuple(out)


def _port_name(base: str, node: str, port: str, default: str, taken: set[str]) -> str:
    """A readable free port name: ``base`` for the first, else the inner node's id."""
    name = base if not taken else (node if port == default else f"{node}_{port}")
    if not NODE_ID.match(name) or name == "error":
        name = f"p_{name}"
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _crossing(
    model: EditorModel, inside: set[str]
) -> tuple[dict[tuple[str, str], list[tuple[str, str]]], dict[tuple[str, str], list[str]]]:
    """Wires across the selection's edge: inner target -> outer sources (into it), and inner
    source (node, port) -> outer targets as written (out of it)."""
    into: dict[tuple[str, str], list[tuple[str, str]]] = {}
    out_of: dict[tuple[str, str], list[str]] = {}
    for node_id, raw in model.nodes.items():
        ports = by_port(raw.get("wires")) if isinstance(raw, dict) else None
        for port, targets in (ports or {}).items():
            for target in as_list(targets) or []:
                node, node_port = split_target(str(target))
                if str(node_id) not in inside and node in inside:
                    into.setdefault((node, node_port), []).append((str(node_id), port))
                elif str(node_id) in inside and node not in inside:
                    out_of.setdefault((str(node_id), port), []).append(str(target))
    return into, out_of


def make_subflow(model: EditorModel, node_ids: list[str], path: str | Path, name: str) -> str:
    """Move ``node_ids`` into a new subflow file at ``path`` (relative to the flow's folder)
    named ``name``, and put one instance in their place; returns the instance's id.

    The wires that crossed the selection's edge become the subflow's ports: one input port per
    group of inner targets fed by the same outer nodes, one output port per inner node port
    wired outside. Raises ValueError for an empty selection or a bad name, FileExistsError
    when the file exists. One undo step in the flow (the new file stays when undone).
    """
    inside = {n for n in node_ids if n in model.nodes}
    if not inside:
        raise ValueError("select the nodes to make a subflow of")
    if not NODE_ID.match(name):
        raise ValueError(f"invalid subflow name '{name}': use letters, digits, _ and -")
    target = Path(path) if Path(path).is_absolute() else model.path.parent / path
    if not target.name.endswith(SUFFIX):
        raise ValueError(f"'{target.name}': a subflow file name ends in {SUFFIX}")
    if target.exists():
        raise FileExistsError(f"{target} exists")
    into, out_of = _crossing(model, inside)
    inst = model.new_id(name)

    # inputs: inner targets grouped by the outer sources that feed them
    groups: dict[frozenset[tuple[str, str]], list[tuple[str, str]]] = {}
    for inner, sources in into.items():
        groups.setdefault(frozenset(sources), []).append(inner)
    inputs: dict[str, list[str]] = {}
    rewire: dict[tuple[str, str, str], str] = {}  # (outer node, port, inner target) -> port
    taken: set[str] = set()
    for sources, inners in groups.items():
        port = _port_name(IN, inners[0][0], inners[0][1], IN, taken)
        inputs[port] = [n if p == IN else f"{n}.{p}" for n, p in inners]
        for node, node_port in sources:
            for n, p in inners:
                rewire[(node, node_port, f"{n}.{p}")] = port
    outputs: dict[str, list[str]] = {}
    inst_wires: dict[str, list[str]] = {}
    taken = set()
    for (node, port), targets in out_of.items():
        name_out = _port_name(OUT, node, port, OUT, taken)
        outputs[name_out] = [node if port == OUT else f"{node}.{port}"]
        inst_wires[name_out] = list(dict.fromkeys(targets))

    _write_subflow(model, target, name, inside, inputs, outputs)
    _replace(model, inside, inst, target, rewire, inst_wires)
    return inst


def _write_subflow(
    model: EditorModel,
    target: Path,
    name: str,
    inside: set[str],
    inputs: dict[str, list[str]],
    outputs: dict[str, list[str]],
) -> None:
    """The new subflow file: the selected nodes with only their inner wires, and a layout
    moved to the top left corner."""
    nodes: dict[str, Any] = {}
    for node_id in [str(k) for k in model.nodes if str(k) in inside]:
        raw = copy.deepcopy(to_plain(model.nodes[node_id]))
        ports = by_port(raw.get("wires"))
        if ports is not None and ports:
            kept = {
                p: [t for t in as_list(ts) or [] if target_node(t) in inside]
                for p, ts in ports.items()
            }
            kept = {p: ts for p, ts in kept.items() if ts}
            if not kept:
                raw.pop("wires")
            elif set(kept) == {OUT} and not isinstance(raw["wires"], dict):
                raw["wires"] = kept[OUT]
            else:
                raw["wires"] = kept
        nodes[node_id] = raw
    spots = {n: model.position(n) for n in nodes}
    left = min(x for x, _ in spots.values())
    top = min(y for _, y in spots.values())
    layout = {n: {"x": x - left + 80, "y": y - top + 80} for n, (x, y) in spots.items()}
    header = {"name": name, "version": "0.1.0", "description": "", "params": {}}
    header.update(inputs=inputs, outputs=outputs)
    data = {"version": 1, "subflow": header, "nodes": nodes, "layout": layout}
    target.parent.mkdir(parents=True, exist_ok=True)
    FlowDocument(styled(data), target).save()


def _replace(
    model: EditorModel,
    inside: set[str],
    inst: str,
    target: Path,
    rewire: dict[tuple[str, str, str], str],
    inst_wires: dict[str, list[str]],
) -> None:
    """In the flow: outer wires into the selection go to the instance's ports, the selected
    nodes go, and the instance comes in their place (one undo step)."""
    from ruamel.yaml.comments import CommentedMap

    from flowengine.ui.wiring import flow_seq, wire_lists

    spots = [model.position(n) for n in inside]
    for node_id, raw in model.nodes.items():
        if str(node_id) in inside:
            continue
        for port, targets in wire_lists(raw).items():
            seen: list[str] = []
            for item in list(targets):
                node, node_port = split_target(str(item))
                if node not in inside:
                    seen.append(str(item))
                    continue
                inst_port = rewire[(str(node_id), port, f"{node}.{node_port}")]
                new = inst if inst_port == IN else f"{inst}.{inst_port}"
                if new not in seen:
                    seen.append(new)
            if seen != [str(t) for t in targets]:
                targets[:] = seen
    rel = os.path.relpath(target, model.path.parent).replace(os.sep, "/")
    node = CommentedMap(type=SUBFLOW_TYPE, path=rel)
    if inst_wires:
        if set(inst_wires) == {OUT}:
            node["wires"] = flow_seq(inst_wires[OUT])
        else:
            node["wires"] = CommentedMap({p: flow_seq(t) for p, t in inst_wires.items()})
    model.leave_groups({str(n) for n in inside})  # a group listing a gone node warns
    for node_id in inside:
        del model.nodes[node_id]
        if node_id in model.layout:
            del model.layout[node_id]
    model.nodes[inst] = node
    x = sum(x for x, _ in spots) / len(spots)
    y = sum(y for _, y in spots) / len(spots)
    model._set_pos(inst, x, y)
    model._commit()


def subflow_dialog(model: EditorModel, node_ids: list[str], on_done: Callable[[str], None]) -> None:
    """Ask for the subflow's name and file, then make it (the canvas's "Make subflow")."""
    from nicegui import ui

    if not node_ids:
        ui.notify("Select the nodes to make a subflow of", type="warning")
        return
    with ui.dialog() as dialog, ui.card().classes("w-96").mark("subflow-dialog"):
        ui.label(f"Make a subflow of {len(node_ids)} node(s)").classes("text-h6")
        name = ui.input("Name", value="subflow").props("dense").classes("w-full")
        name.mark("subflow-name")
        file = ui.input("File (relative to the flow)", value=f"subflows/subflow{SUFFIX}")
        file.props("dense").classes("w-full").mark("subflow-file")
        name.on_value_change(lambda e: file.set_value(f"subflows/{e.value}{SUFFIX}"))

        def make() -> None:
            try:
                inst = make_subflow(model, node_ids, file.value, name.value)
            except (ValueError, OSError) as exc:
                ui.notify(str(exc), type="negative")
                return
            dialog.close()
            on_done(inst)

        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Make subflow", on_click=make).mark("subflow-make")
    dialog.open()

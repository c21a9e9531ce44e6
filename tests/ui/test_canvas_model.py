"""The canvas's arrangement edits without a browser: groups in ``layout`` (round trip through the
file, validation), splice onto a wire, cut, duplicate, disable; node types declare an icon."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.flowfile import FlowDocument
from flowengine.model import LayoutGroup, parse_flow
from flowengine.registry import default_registry
from flowengine.ui.model import EditorModel
from tests.helpers.samples import SAMPLE


@pytest.fixture
def model(tmp_path: Path) -> EditorModel:
    path = tmp_path / "line3.yaml"
    path.write_text(SAMPLE)
    return EditorModel.open(path)


def test_a_group_round_trips_through_the_file_on_one_line(model: EditorModel) -> None:
    before = model.text
    gid = model.group(["furnace", "deviation"], name="Furnace watch")
    assert gid == "group1"
    model.save()
    text = model.path.read_text()
    added = [line for line in text.splitlines() if line not in before.splitlines()]
    assert added == [
        "  group1: {name: Furnace watch, color: '#ffe0b2', nodes: [furnace, deviation]}"
    ]
    flow, problems = parse_flow(FlowDocument.read(model.path)[0])  # type: ignore[arg-type]
    assert flow.groups == {
        "group1": LayoutGroup("group1", ("furnace", "deviation"), "Furnace watch", "#ffe0b2")
    }
    assert not problems
    again = EditorModel.open(model.path)
    assert again.group_views() == [
        {
            "id": "group1",
            "name": "Furnace watch",
            "color": "#ffe0b2",
            "nodes": ["furnace", "deviation"],
        }
    ]
    # a node joins one group only; deleting and renaming members follow; empty groups go
    assert again.group(["deviation", "too_far"]) == "group2"
    assert again.group_views()[0]["nodes"] == ["furnace"]
    assert again.rename("too_far", "limit")
    assert again.group_views()[1]["nodes"] == ["deviation", "limit"]
    again.delete(["furnace"])
    assert [g["id"] for g in again.group_views()] == ["group2"]
    assert again.undo() and len(again.group_views()) == 2  # one undo step per edit


def test_bad_groups_are_located_problems(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(
        "version: 1\nnodes:\n  a: {type: inject}\n"
        "layout:\n"
        "  a: {x: 0, y: 0}\n"
        "  g1: {name: G, nodes: [a, ghost]}\n"
        "  g2: {name: G, nodes: a}\n"
        "  a2: {nodes: [a], colour: red}\n"
    )
    _, problems = parse_flow(FlowDocument.read(path)[0])  # type: ignore[arg-type]
    found = {(p.pos.line, p.severity, p.message) for p in problems}
    assert found == {
        (6, "warning", "group member 'ghost' is not a node"),
        (7, "error", "a group's 'nodes' must be a list of node ids"),
        (8, "error", "unknown group key(s): colour"),
    }


def test_splice_puts_a_node_into_a_wire_in_one_step(model: EditorModel) -> None:
    node = model.add_node("select", 300, 300)
    assert model.splice(node, "furnace:out->deviation:in")
    flow = model.flow()
    assert [t.node for t in flow.nodes["furnace"].wires["out"]] == [node]
    assert [t.node for t in flow.nodes[node].wires["out"]] == ["deviation"]
    errors = [p.message for p in model.problems() if p.is_error]
    assert errors == ["missing required field 'columns'"]  # the new node's, not the wires'
    # a node without an output, or a wire that is not there, is not spliced
    sink = model.add_node("debug", 0, 0)
    assert not model.splice(sink, f"{node}:out->deviation:in")
    assert not model.splice(node, "furnace:out->deviation:in")
    model.undo()
    model.undo()
    assert [t.node for t in model.flow().nodes["furnace"].wires["out"]] == ["deviation"]


def test_cut_duplicate_and_disable(model: EditorModel) -> None:
    copies = model.duplicate(["furnace", "deviation"])
    assert copies == ["filter1", "compute1"]
    assert model.position("filter1") == (
        model.position("furnace")[0] + 40,
        model.position("furnace")[1] + 40,
    )
    assert [t.node for t in model.flow().nodes["filter1"].wires["out"]] == ["compute1"]
    assert model.set_disabled(copies, True)
    assert all(model.flow().nodes[i].disabled for i in copies)
    assert model.set_disabled(copies, False)
    assert not any("disabled" in model.nodes[i] for i in copies)
    assert model.cut(copies) == 2
    assert not set(copies) & set(model.nodes)
    assert model.paste(0, 0) == ["filter1", "compute1"]


def test_every_node_type_declares_an_icon() -> None:
    registry = default_registry()
    icons = {name: registry.describe(name)["icon"] for name in registry.names()}
    assert all(icon and icon.replace("_", "").isalnum() for icon in icons.values()), icons
    assert icons["inject"] == "touch_app" and icons["debug"] == "bug_report"

"""Export of a selection: inner wires, layout and comments kept; literal secrets masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowengine.flowfile import FlowDocument
from flowengine.ui.selection import export_selection, selection_text


def test_export_selection_keeps_inner_wires_layout_and_comments():
    text = (
        "version: 1\n"
        "nodes:\n"
        "  a:\n"
        "    type: inject\n"
        "    wires: [b, c]\n"
        "  b:  # the filter\n"
        "    type: filter\n"
        "    query: value > 1\n"
        "    wires: {out: [c], rejected: [d]}\n"
        "  c:\n"
        "    type: debug\n"
        "  d:\n"
        "    type: join\n"
        "    on: [sensor]\n"
        "layout:\n"
        "  a: {x: 1, y: 2}\n"
        "  b: {x: 3, y: 4}\n"
    )
    doc, _ = FlowDocument.parse(text, Path("f.yaml"))
    assert doc is not None
    part = export_selection(doc, ["b", "c"])
    assert part["nodes"]["b"]["wires"] == {"out": ["c"]}
    assert list(part["nodes"]) == ["b", "c"] and dict(part["layout"]) == {"b": {"x": 3, "y": 4}}
    assert "# the filter" in selection_text(doc, ["b", "c"])
    plain = export_selection(
        {"nodes": {"x": {"type": "a", "wires": ["y.right", "z"]}, "y": {}}}, ["x", "y"]
    )
    assert plain["nodes"]["x"]["wires"] == ["y.right"] and plain["version"] == 1
    with pytest.raises(ValueError, match="no such node"):
        export_selection(doc, ["b", "nope"])


def test_selection_text_masks_literal_secrets_like_export():
    flow = {
        "version": 1,
        "nodes": {
            "pub": {
                "type": "mqtt_out",
                "topic": "t",
                "password": "literal-pw",
                "username": "${USER}",
            },
            "src": {"type": "inject", "wires": ["pub"]},
        },
        "layout": {"pub": {"x": 5, "y": 6}},
    }
    as_json = json.loads(selection_text(flow, ["pub"], "json"))
    assert as_json["nodes"]["pub"]["password"] == "******"
    assert as_json["nodes"]["pub"]["username"] == "${USER}"
    as_yaml = selection_text(flow, ["pub", "src"], "yaml")
    assert "literal-pw" not in as_yaml and "wires: [pub]" in as_yaml
    assert "pub: {x: 5, y: 6}" in as_yaml
    assert flow["nodes"]["pub"]["password"] == "literal-pw"  # the input is left alone

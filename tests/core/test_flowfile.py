"""Round trip: load then save writes the same file back; JSON flows get line numbers too."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from flowengine.flowfile import FlowDocument
from flowengine.model import parse_flow

REPO = Path(__file__).resolve().parents[2]
HAND_WRITTEN = textwrap.dedent(
    """\
    # A hand-written flow: comments, odd key order and quoting must survive a save.
    version: 1
    name: "Line 3"   # quoted on purpose
    nodes:
      z_last:
        wires:
          - b            # sequence with dash at the mapping's indent
        type: inject
        rows: [{sensor: a, value: 1}]
      b:
        type: debug
        rows: 3
    layout:
      z_last: {x: 1, y: 2}
    """
)


@pytest.mark.parametrize(
    "text",
    [
        HAND_WRITTEN,
        HAND_WRITTEN.replace("\n      - b", "\n        - b"),  # indented dashes
        HAND_WRITTEN.replace("  ", "    "),  # four-space indent
        HAND_WRITTEN.replace("  ", "    ").replace("\n            - b", "\n        - b"),
        HAND_WRITTEN.replace("\n", "\r\n"),  # written on Windows
        "\ufeff" + HAND_WRITTEN,  # with a byte order mark
        "---\n" + HAND_WRITTEN,  # explicit document start
        HAND_WRITTEN.removesuffix("\n"),  # no final newline
    ],
    ids=[
        "dashes-at-indent",
        "dashes-indented",
        "4-spaces",
        "4-spaces-flat-dashes",
        "crlf",
        "bom",
        "doc-start",
        "no-final-newline",
    ],
)
def test_load_then_save_is_byte_identical(tmp_path, text):
    path = tmp_path / "flow.yaml"
    path.write_bytes(text.encode())
    doc, problems = FlowDocument.read(path)
    assert doc is not None and problems == []
    doc.save()
    assert path.read_bytes() == text.encode()


@pytest.mark.parametrize("path", sorted((REPO / "flows").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_flows_round_trip(tmp_path, path):
    doc, _ = FlowDocument.read(path)
    assert doc is not None
    assert doc.dumps() == path.read_text()


def test_moving_a_node_changes_only_the_layout_lines(tmp_path):
    path = tmp_path / "flow.yaml"
    path.write_text(HAND_WRITTEN)
    doc, _ = FlowDocument.read(path)
    assert doc is not None
    doc.data["layout"]["z_last"]["x"] = 240
    doc.save()
    before, after = HAND_WRITTEN.splitlines(), path.read_text().splitlines()
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert [after[i] for i in changed] == ["  z_last: {x: 240, y: 2}"]


def test_json_flow_parses_with_positions(tmp_path):
    path = tmp_path / "flow.json"
    data = {
        "version": 1,
        "nodes": {"a": {"type": "inject", "wires": ["b"]}, "b": {"type": "debug"}},
    }
    path.write_text(json.dumps(data, indent=2))
    doc, problems = FlowDocument.read(path)
    assert doc is not None and problems == []
    flow, problems = parse_flow(doc)
    assert problems == []
    assert flow.nodes["b"].pos.line == 10
    assert doc.dumps() == path.read_text()  # even without a final newline
    path.write_text(json.dumps(data, indent=4) + "\n")
    doc, _ = FlowDocument.read(path)
    assert doc is not None and doc.dumps() == path.read_text()


def test_strict_json_errors_name_line_and_column(tmp_path):
    path = tmp_path / "flow.json"
    path.write_text('{\n  "version": 1,\n  "nodes": {},\n}\n')
    doc, problems = FlowDocument.read(path)
    assert doc is None
    assert str(problems[0]).startswith(f"{path}:4:1: invalid JSON")


def test_unreadable_file_is_a_problem_not_an_exception(tmp_path):
    doc, problems = FlowDocument.read(tmp_path / "missing.yaml")
    assert doc is None
    assert "cannot read flow file" in str(problems[0])

"""Validation collects every problem in one pass, each located as PATH:LINE:COL: node 'ID'."""

from __future__ import annotations

import re
import textwrap

import pytest

from flowengine.testing import registry_with
from flowengine.validate import load_flow

BAD_FLOW = textwrap.dedent(
    """\
    version: 1
    nodes:
      src:
        type: injekt
        wires: [f]
      f:
        type: filter
        query: value > 1
        qeury: oops
        wires: [nowhere, c]
      c:
        type: compute
        columns: not-a-mapping
        wires: [f]
      lone:
        type: inject
      orphan:
        type: debug
      sel:
        type: select
        wires:
          sideways: [orphan]
    """
)


def problems_of(path, env=None):
    checked = load_flow(path, registry_with(), env or {})
    return checked, [str(p) for p in checked.problems]


def test_every_problem_reported_once_with_location(write_flow):
    path = write_flow(BAD_FLOW)
    checked, lines = problems_of(path)
    assert not checked.ok
    text = "\n".join(lines)
    assert f"{path}:4:5: node 'src': unknown node type 'injekt' (did you mean 'inject'?)" in text
    assert f"{path}:9:5: node 'f': unknown field 'qeury' (did you mean 'query'?)" in text
    assert f"{path}:10:13: node 'f': wire to missing node 'nowhere'" in text
    assert re.search(rf"{re.escape(str(path))}:13:5: node 'c': field 'columns': .*dictionary", text)
    assert "node 'sel': no output port 'sideways'" in text
    assert f"{path}:15:3: warning: node 'lone': source is wired to nothing" in text
    assert "warning: node 'orphan': unreachable" in text
    for line in lines:
        assert re.match(rf"{re.escape(str(path))}:\d+:\d+: ", line), line


def test_cycle_names_its_nodes(write_flow):
    path = write_flow(
        textwrap.dedent(
            """\
            version: 1
            nodes:
              src: {type: inject, wires: [a]}
              a: {type: compute, columns: {x: "1"}, wires: [b]}
              b: {type: compute, columns: {y: "2"}, wires: [a]}
            """
        )
    )
    _checked, lines = problems_of(path)
    cycles = [line for line in lines if "cycle" in line]
    assert len(cycles) == 1
    assert "a -> b -> a" in cycles[0] or "b -> a -> b" in cycles[0]


def test_duplicate_ids_and_keys_are_errors_at_the_repeat(write_flow):
    path = write_flow(
        textwrap.dedent(
            """\
            version: 1
            nodes:
              src: {type: inject, wires: [out]}
              out: {type: debug}
              src:
                type: inject
                rows: []
                rows: []
            """
        )
    )
    _, lines = problems_of(path)
    assert f"{path}:5:3: duplicate key 'src' (first at line 3)" in lines
    assert f"{path}:8:5: duplicate key 'rows' (first at line 7)" in lines


def test_malformed_yaml_reports_parser_position(write_flow):
    path = write_flow("version: 1\nnodes:\n  a: {type: inject\n  b: [\n")
    _checked, lines = problems_of(path)
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}:")
    line, col = map(int, lines[0].split(":")[1:3])
    assert (line, col) == (4, 4)  # where the parser notices: the next entry
    assert "invalid YAML" in lines[0]


def test_missing_required_field_and_wrong_type(write_flow):
    path = write_flow(
        textwrap.dedent(
            """\
            version: 1
            nodes:
              src: {type: inject, count: many, wires: [f]}
              f:
                type: filter
                wires: [d]
              d: {type: debug}
            """
        )
    )
    _, lines = problems_of(path)
    assert any(":3:" in x and "node 'src': field 'count'" in x and "integer" in x for x in lines)
    assert f"{path}:4:3: node 'f': missing required field 'query'" in lines


def test_missing_env_variable_is_located(write_flow):
    path = write_flow(
        "version: 1\nnodes:\n  src:\n    type: inject\n    topic: ${LINE_TOPIC}\n    wires: [d]\n"
        "  d: {type: debug}\n"
    )
    _, lines = problems_of(path)
    assert lines == [
        f"{path}:5:5: node 'src': field 'topic': environment variable 'LINE_TOPIC' is "
        "not set (use ${LINE_TOPIC:-default})"
    ]
    checked, lines = problems_of(path, {"LINE_TOPIC": "line3"})
    assert checked.ok and lines == []


def test_wire_to_a_missing_input_port(write_flow):
    path = write_flow(
        "version: 1\nnodes:\n  a: {type: inject, wires: [b.left]}\n  b: {type: debug}\n"
        "  c: {type: inject, wires: [a]}\n"
    )
    _, lines = problems_of(path)
    assert any("wire to missing input port 'left' of 'b' (ports: in)" in x for x in lines)
    assert any(
        "node 'c': wire to missing input port 'in' of 'a' (a source takes no input)" in x
        for x in lines
    )


def test_newer_version_and_unknown_top_level_key(write_flow):
    path = write_flow("version: 7\nnode: {}\n")
    _, lines = problems_of(path)
    assert any("flow format version 7 is newer" in x for x in lines)
    assert any("unknown top-level key 'node' (did you mean 'nodes'?)" in x for x in lines)


def test_disabled_node_is_not_run_but_still_checked(write_flow):
    path = write_flow(
        "version: 1\nnodes:\n  a: {type: inject, wires: [b, c]}\n  b: {type: debug, disabled: true}\n"
        "  c: {type: debug}\n"
    )
    checked, _ = problems_of(path)
    assert checked.ok
    assert "b" not in checked.graph and "c" in checked.graph


def test_the_documented_example_is_a_valid_flow(tmp_path):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "flow-format.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example)
    checked = load_flow(path, registry_with(), {})
    assert [str(p) for p in checked.errors] == []
    assert checked.flow.nodes["deviation"].queue_size == 32
    assert checked.flow.settings.retry.max == 30.0


def test_a_missing_variable_does_not_hide_other_problems(write_flow):
    path = write_flow(
        "version: 1\nnodes:\n  src:\n    type: inject\n    topic: ${NOPE}\n    intervall: 1\n"
        "    count: many\n    wires: [d]\n  d: {type: debug}\n"
    )
    _, lines = problems_of(path)
    assert len(lines) == 3
    assert "5:5: node 'src': field 'topic': environment variable 'NOPE' is not set" in lines[0]
    assert "6:5: node 'src': unknown field 'intervall' (did you mean 'interval'?)" in lines[1]
    assert "7:5: node 'src': field 'count'" in lines[2]


def test_unreadable_dotenv_is_a_problem(write_flow, tmp_path):
    path = write_flow("version: 1\nnodes:\n  a: {type: inject, wires: [b]}\n  b: {type: debug}\n")
    (tmp_path / ".env").write_bytes(b"A=\xff\xfe\n")
    checked = load_flow(path, registry_with())
    assert "cannot read .env" in str(checked.errors[0])
    assert str(checked.errors[0]).startswith(f"{tmp_path / '.env'}:1:1:")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nsettings: 5\nnodes: {}\n", "2:1: 'settings' must be a mapping"),
        (
            "version: 1\nnodes:\n  a: {type: [inject]}\n",
            "3:7: node 'a': 'type' must be a type name",
        ),
        ("version: 1\nnodes:\n  true: {type: inject}\n", "3:3: node id True must be a string"),
        ("version: 1\nnodes:\n  a: {type: inject, retry: 5}\n", "node 'a': 'retry': Input should"),
        (
            "version: 1\nnodes:\n  a: {type: inject, wires: [b, b]}\n  b: {type: debug}\n",
            "3:32: warning: node 'a': duplicate wire to 'b' (ignored)",
        ),
    ],
)
def test_odd_shapes_get_clear_messages(write_flow, text, message):
    _, lines = problems_of(write_flow(text))
    assert any(message in line for line in lines), lines

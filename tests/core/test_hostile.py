"""Poison flow files fail fast with PATH:LINE:COL problems: never a traceback, never a hang."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flowengine.export import export
from flowengine.flowfile import FlowDocument
from flowengine.testing import registry_with
from flowengine.validate import load_flow

REGISTRY = registry_with()


def bomb(levels: int = 7) -> str:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + f"\nversion: 1\nnodes:\n  x: {{type: inject, rows: *a{levels - 1}}}\n"


def merge_bomb() -> str:
    keys = ", ".join(f"k{i}: {i}" for i in range(100))
    a = ",".join(["*a"] * 100)
    b = ",".join(["*b"] * 100)
    return f"a: &a {{{keys}}}\nb: &b {{<<: [{a}]}}\nc: &c {{<<: [{b}]}}\nversion: 1\nnodes: {{}}\n"


CASES = {
    "billion laughs": (bomb(), "5:38", "aliases expand to more than 100000 values"),
    "merge bomb": (merge_bomb(), "3:22", "aliases expand to more than 100000 values"),
    "deep flow nesting": (
        "version: 1\nnodes:\n  a: {type: debug, columns: " + "[" * 500 + "]" * 500 + "}\n",
        "3:128",
        "nested more than 100 levels deep",
    ),
    "deep block nesting": (
        "version: 1\nnodes:\n  a:\n" + "".join("  " * (i + 2) + f"k{i}:\n" for i in range(500)),
        "101:199",
        "nested more than 100 levels deep",
    ),
    "recursive alias": (
        "version: 1\nnodes: &n {a: {type: inject, rows: *n}}\n",
        "2:36",
        "recursive alias '*n'",
    ),
    "list node id": (
        "version: 1\nnodes:\n  [a]: {type: debug}\n",
        "3:3",
        "a mapping key must be a plain value, not a list or a mapping",
    ),
    "map node id": (
        "version: 1\nnodes:\n  ? {a: 1}\n  : {type: debug}\n",
        "3:5",
        "a mapping key must be a plain value",
    ),
    "python tag": (
        'version: 1\nnodes:\n  a: {type: debug, name: !!python/object/apply:os.system ["echo hi"]}\n',
        "3:26",
        "YAML tag '!!python/object/apply:os.system' is not allowed",
    ),
    "python scalar tag": (
        "version: 1\nname: !!python/name:os.system\nnodes: {}\n",
        "2:7",
        "YAML tag '!!python/name:os.system' is not allowed",
    ),
    "local tag": ("version: 1\nnodes: !mine {}\n", "2:8", "YAML tag '!mine' is not allowed"),
    "bad character": (
        'version: 1\nnodes:\n  a: {type: debug}\n  b: {type: debug, name: "x\x07y"}\n',
        "4:28",
        "unacceptable character #x0007",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_yaml_is_a_located_error(write_flow, name):
    text, where, message = CASES[name]
    path = write_flow(text)
    started = time.monotonic()
    checked = load_flow(path, REGISTRY, env={})
    assert time.monotonic() - started < 2
    errors = [str(p) for p in checked.errors]
    assert any(e.startswith(f"{path}:{where}: ") and message in e for e in errors), errors


def test_too_large_a_file_is_refused(write_flow, monkeypatch):
    monkeypatch.setattr("flowengine.flowfile.MAX_CHARS", 1000)
    path = write_flow("version: 1\nnodes: {}\n" + "# padding\n" * 200)
    checked = load_flow(path, REGISTRY, env={})
    assert [str(p) for p in checked.errors] == [
        f"{path}:1:1: flow file too large (over 1000 characters)"
    ]


def test_anchors_and_merges_within_bounds_still_work(write_flow):
    path = write_flow(
        "version: 1\n"
        "nodes:\n"
        "  a: &dbg {type: debug}\n"
        "  b: {<<: *dbg, name: second}\n"
        "  c: *dbg\n"
        "  i: {type: inject, rows: [{v: !!int '1'}], wires: [a, b, c]}\n"
    )
    checked = load_flow(path, REGISTRY, env={})
    assert checked.ok, [str(p) for p in checked.problems]
    assert checked.flow.nodes["b"].name == "second"


def test_huge_expression_is_a_field_error(write_flow):
    query = " + ".join(["a"] * 20000) + " > 0"
    path = write_flow(f"version: 1\nnodes:\n  f:\n    type: filter\n    query: {query}\n")
    checked = load_flow(path, REGISTRY, env={})
    errors = [str(p) for p in checked.errors]
    assert len(errors) == 1 and errors[0].startswith(
        f"{path}:5:5: node 'f': field 'query': cannot check: RecursionError"
    )


def test_unset_variable_in_name_is_an_error(write_flow):
    path = write_flow(
        "version: 1\nname: ${FLOW_NAME}\nnodes:\n"
        '  a: {type: debug, name: "${UNSET_X}"}\n'
        "  b:\n    type: debug\n    name: ${OK:-fine}\n"
    )
    errors = [str(p) for p in load_flow(path, REGISTRY, env={}).errors]
    assert errors == [
        f"{path}:2:7: field 'name': environment variable 'FLOW_NAME' is not set "
        "(use ${FLOW_NAME:-default})",
        f"{path}:4:20: node 'a': field 'name': environment variable 'UNSET_X' is not set "
        "(use ${UNSET_X:-default})",
    ]


QOS_FLOW = """\
version: 1
nodes:
  m:
    type: mqtt_in
    topic: t
    qos: ${QOS:-0}
    wires: [d]
  d:
    type: debug
    name: ${NAME:-7}
"""


def test_whole_reference_is_read_as_a_yaml_scalar(write_flow):
    path = write_flow(QOS_FLOW)
    checked = load_flow(path, REGISTRY, env={})
    assert checked.ok, [str(p) for p in checked.problems]
    assert checked.nodes["m"].config.qos == 0
    checked = load_flow(path, REGISTRY, env={"QOS": "2"})
    assert checked.nodes["m"].config.qos == 2
    bad = load_flow(path, REGISTRY, env={"QOS": "7"})
    assert [str(p) for p in bad.errors] == [
        f"{path}:6:5: node 'm': field 'qos': Input should be 0, 1 or 2"
    ]


def test_export_of_a_python_tag_is_an_error_not_a_traceback(write_flow):
    path = write_flow("version: 1\nnodes:\n  a: {type: debug, name: !!python/str 'x'}\n")
    checked = load_flow(path, REGISTRY, env={})
    assert checked.flow.doc is None
    assert [str(p) for p in checked.errors] == [
        f"{path}:3:26: invalid YAML: YAML tag '!!python/str' is not allowed in a flow file"
    ]


def test_export_masks_only_the_password_of_a_url(write_flow):
    path = write_flow(
        "version: 1\nnodes:\n"
        "  w: {type: sql_out, connection_string: 'postgresql://u:hunter2@db/plant', table: t}\n"
        "  v: {type: sql_out, connection_string: 'postgresql://u:${PGPW}@db/plant', table: t}\n"
        "  r: {type: rest_out, url: 'http://x/', headers: {Authorization: Bearer abc, "
        "X-API-Key: k, Accept: json, Proxy-Authorization: '${P}'}}\n"
    )
    checked = load_flow(path, REGISTRY, env={})
    text = export(checked.flow, REGISTRY, "yaml")
    assert "postgresql://u:******@db/plant" in text
    assert "postgresql://u:${PGPW}@db/plant" in text
    assert "Authorization: '******'" in text and "X-API-Key: '******'" in text
    assert "Accept: json" in text and "Proxy-Authorization: '${P}'" in text
    assert "hunter2" not in text and "abc" not in text


def test_document_parse_never_raises_on_odd_keys():
    doc, problems = FlowDocument.parse("? [a, b]\n: 1\n", Path("x.yaml"))
    assert doc is None and "mapping key must be a plain value" in problems[0].message


def test_deep_json_is_a_located_error(write_flow):
    path = write_flow('{"version": 1, "nodes": ' + "[" * 5000 + "}", name="deep.json")
    errors = [str(p) for p in load_flow(path, REGISTRY, env={}).errors]
    assert errors == [f"{path}:1:124: invalid JSON: nested more than 100 levels deep"]


def test_cli_validate_and_export_of_hostile_files(cli_env, write_flow):
    from tests.helpers.cli import flowengine

    tagged = write_flow(
        'version: 1\nnodes:\n  a: {type: debug, name: !!python/object/apply:os.system ["x"]}\n'
    )
    for command in ("validate", "export"):
        result = flowengine(command, str(tagged), env=cli_env)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert f"{tagged}:3:26: invalid YAML: YAML tag '!!python/object/apply:os.system'" in (
            result.stderr
        )
    validated = flowengine("validate", str(tagged), env=cli_env)
    assert validated.stdout == f"{tagged}: 1 error(s), 0 warning(s), 0 nodes\n"
    assert "error(s)," not in validated.stderr

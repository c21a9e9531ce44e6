"""Cases checked against their flow: `given.config` over the flow's configs, states a node
would take, and what `flowengine validate` reports of a flow's tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from flowengine.cli import main
from flowengine.flowtest.check import flow_test_problems, load_suite
from flowengine.registry import default_registry


def problems(path: Path) -> list[str]:
    return [str(p) for p in load_suite(path, default_registry()).problems]


def test_given_config_sets_keys_over_the_flows_for_that_case(write_test: Callable[..., Path]):
    path = write_test(
        """\
        given: {config: {high: {query: "scaled > 100"}}}
        cases:
          - name: the file's default
            expect: {high: {no_output: true}}
          - name: its own
            given: {config: {scale: {columns: {scaled: "value * 20"}}}}
            expect: {high: {row_count: 1}}
          - name: as the flow says
            given: {config: {}}
            expect: {high: {no_output: true}}
        """
    )
    suite = load_suite(path, default_registry())
    assert suite.problems == []
    default, own, plain = (c.checked for c in suite.cases)
    assert default is not None and own is not None and plain is not None
    assert default.nodes["high"].config.query == "scaled > 100"  # type: ignore[attr-defined]
    assert own.nodes["scale"].config.columns == {"scaled": "value * 20"}  # type: ignore[attr-defined]
    assert own.nodes["high"].config.query == "scaled > 10"  # type: ignore[attr-defined]
    assert plain.nodes["high"].config.query == "scaled > 10"  # type: ignore[attr-defined]
    result = CliRunner().invoke(main, ["test", str(path)])
    assert result.exit_code == 0, result.output  # `value * 20` passes the flow's own filter


def test_given_config_problems_are_located_at_the_key_in_the_test_file(
    write_test: Callable[..., Path],
):
    path = write_test(
        """\
        given:
          config: {high: {qurey: "x > 1"}}
        cases:
          - name: bad
            given:
              config:
                src: {count: -1, intervl: 5}
            expect: {high: {no_output: true}}
          - name: the file's
            expect: {high: {no_output: true}}
          - name: ghost
            given: {config: {ghost: {a: 1}}}
            expect: {high: {no_output: true}}
        """
    )
    found = problems(path)
    p = str(path)
    assert f"{p}:7:26: case 'bad': 'given.config.src.intervl': node 'src': unknown field " in (
        "\n".join(found)
    )
    assert any(
        f.startswith(f"{p}:7:15: case 'bad': 'given.config.src.count': node 'src': ") for f in found
    )
    assert (
        f"{p}:2:19: 'given.config.high.qurey': node 'high': unknown field 'qurey' "
        "(did you mean 'query'?)"
    ) in found
    assert (
        f"{p}:12:22: case 'ghost': 'given.config.ghost': no node 'ghost' in {path.parent / 'line.yaml'}"
        in found
    )
    assert not any(str(path.parent / "line.yaml") + ":" in f for f in found)  # not the flow's


def test_a_state_a_node_would_not_take_is_a_problem(
    flow_dir: Path, write_test: Callable[..., Path]
):
    (flow_dir / "band.yaml").write_text(
        "version: 1\nnodes:\n"
        "  src: {type: inject, rows: [{sensor: a, value: 0}], wires: [band]}\n"
        "  band: {type: deadband, band: 1.0, wires: [keep, db]}\n"
        "  keep: {type: filter, query: 'value > 0'}\n"
        "  db: {type: sql_out, connection_string: 'sqlite:///x.db', table: t}\n"
    )
    path = write_test(
        """\
        cases:
          - name: states
            given:
              state: {band: {last: {}}, keep: {x: 1}, db: {n: 1}}
              watermark: {band: 3}
            expect: {band: {no_output: true}}
          - name: outside the target
            target: keep
            given: {state: {band: {_last: {}}}}
            expect: {keep: {no_output: true}}
          - name: fed
            given: {state: {src: {n: 1}}}
            input: [{feed: src, rows: [{sensor: a, value: 1}]}]
            expect: {band: {row_count: 1}}
        """,
        "band.test.yaml",
    )
    found = "\n".join(problems(path))
    p = str(path)
    assert (
        f"{p}:4:15: case 'states': 'given.state.band': node 'band' keeps no state 'last' "
        "(its state: _last) (did you mean '_last'?)"
    ) in found
    assert "'given.state.keep': state for node 'keep', whose type 'filter' keeps none" in found
    assert (
        "'given.state.db': node 'db' runs as a stand-in in this case (external I/O is replaced "
        "unless replace_io is false): a state given to it would not be used"
    ) in found
    assert "'given.watermark.band': node 'band' keeps no state 'watermark'" in found
    assert (
        "case 'outside the target': 'given.state.band': node 'band' is not in the case's" in found
    )
    assert (
        "case 'fed': 'given.state.src': node 'src' runs as a stand-in in this case (the case"
        in found
    )


def test_validate_reports_the_problems_of_a_flows_tests(
    flow_dir: Path, write_test: Callable[..., Path]
):
    flow = flow_dir / "line.yaml"
    flow.write_text(
        flow.read_text() + "tests:\n  - name: inline\n    expect: {high: {row_cnt: 1}}\n"
    )
    beside = write_test(
        "cases:\n  - {name: fine, expect: {high: {no_output: true}}}\n"
        "  - {name: typo, expect: {hihg: {no_output: true}}}\n"
    )
    found, cases = flow_test_problems(flow, default_registry())
    assert [str(p) for p in found] == [
        f"{flow}:20:21: case 'inline': unknown key 'expect.high.row_cnt' (did you mean "
        "'row_count'?)",
        f"{beside}:3:27: case 'typo': 'expect.hihg': no node 'hihg' in {flow} (did you mean "
        "'high'?)",
    ]
    assert cases == 1
    result = CliRunner().invoke(main, ["validate", str(flow), str(beside)])
    assert result.exit_code == 1
    assert str(found[0]) in result.output and str(found[1]) in result.output
    assert f"{flow}: 2 error(s), 0 warning(s), 4 nodes, 1 test case(s)" in result.output
    assert f"{beside}: 1 error(s), 0 warning(s), 1 test case(s)" in result.output


def test_validate_of_a_flow_without_tests_says_as_before(flow_dir: Path):
    result = CliRunner().invoke(main, ["validate", str(flow_dir / "line.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(": ok, 0 warning(s), 4 nodes")

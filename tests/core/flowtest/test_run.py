"""`flowengine test` end to end: outcomes, diffs, exit codes, -k, -x, --junit, --update, -j,
file errors with PATH:LINE:COL, and fake time through `advance`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from flowengine.cli import main
from tests.helpers.cli import flowengine

CASES = """\
cases:
  - name: scales by two
    target: {from: scale}
    input:
      - feed: scale
        rows: [{sensor: a, value: 6}, {sensor: b, value: 4}]
    expect:
      scale:
        rows: [{sensor: a, value: 6, scaled: 12}, {sensor: b, value: 4, scaled: 8}]
      high: {rows: [{sensor: a, value: 6, scaled: 12}]}
      out: {row_count: 1, query: "scaled > 10"}
  - name: factor three is wrong
    target: scale
    given: {env: {FACTOR: 3}}
    input:
      - {feed: scale, rows: [{sensor: a, value: 6}, {sensor: b, value: 1}]}
    expect:
      scale:
        rows: [{sensor: a, value: 6, scaled: 12}, {sensor: b, value: 1, scaled: 3}]
  - name: whole flow is quiet
    expect:
      src: {rows: [{timestamp: "+0s", sensor: a, value: 1.0}]}
      out: {no_output: true}
"""


def run(*args: str, cwd=None):
    result = CliRunner().invoke(main, ["test", *map(str, args)], catch_exceptions=False)
    return result.exit_code, result.output


def test_failing_case_says_which_rows_and_columns(write_test):
    path = write_test(CASES)
    code, out = run(path)
    assert code == 1, out
    assert f"{path} .F." in out
    assert f"{path}::factor three is wrong" in out
    assert "scale: rows differ" in out
    assert "1 row(s) differ in column(s): scaled" in out
    assert "0    scaled  12        18" in out
    assert f"FAILED {path}::factor three is wrong - scale: rows differ" in out
    assert out.rstrip().splitlines()[-1].startswith("=") and "1 failed, 2 passed in" in out


def test_keyword_selection_and_exit_zero(write_test):
    path = write_test(CASES)
    code, out = run(path, "-k", "not wrong", "-v")
    assert code == 0, out
    assert f"{path}::scales by two PASSED" in out
    assert "2 passed, 1 deselected" in out
    code, out = run(path, "-k", "nomatch")
    assert code == 2 and "no cases ran, 3 deselected" in out
    code, out = run(path, "-k", "(broken")
    assert code == 2 and "missing ')'" in out


def test_exitfirst_stops_after_the_first_failure(write_test):
    path = write_test(CASES)
    code, out = run(path, "-x")
    assert code == 1
    assert "1 failed, 1 passed in" in out


def test_junit_output_parses(write_test, tmp_path):
    path = write_test(CASES)
    report = tmp_path / "out" / "junit.xml"
    code, _ = run(path, "--junit", report)
    assert code == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "0")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"scales by two", "factor three is wrong", "whole flow is quiet"}
    failure = cases["factor three is wrong"].find("failure")
    assert failure is not None and failure.get("message") == "scale: rows differ"
    assert "scaled  12        18" in failure.text


def test_file_errors_are_located_and_exit_two(write_test, tmp_path):
    good = write_test(CASES)
    bad = write_test("cases:\n  - name: a\n    expect: {out: {row_cnt: 1}}\n", "line2.test.yaml")
    (tmp_path / "line2.yaml").write_text((tmp_path / "line.yaml").read_text())
    report = tmp_path / "junit.xml"
    code, out = run(good, bad, "--junit", report)
    assert code == 2
    assert (
        f"{bad}:3:20: case 'a': unknown key 'expect.out.row_cnt' (did you mean 'row_count'?)" in out
    )
    assert "1 failed, 2 passed, 1 error in" in out
    collect = [
        c for c in ET.parse(report).getroot().iter("testcase") if c.get("name") == "(collect)"
    ]
    assert len(collect) == 1 and "row_cnt" in collect[0].find("error").text
    code, out = run(tmp_path / "nope")
    assert code == 2 and f"{tmp_path / 'nope'}:1:1: no such file or directory" in out


def test_snapshots_update_only_with_update(write_test, tmp_path):
    path = write_test(
        """\
        cases:
          - name: golden scale
            target: scale
            input: [{feed: scale, rows: [{sensor: a, value: 2}]}]
            expect: {scale: {snapshot: true}}
        """
    )
    golden = tmp_path / "__snapshots__" / "line.test.yaml" / "golden-scale" / "scale.out.jsonl"
    code, out = run(path)
    assert code == 1 and "run `flowengine test --update` to write it" in out
    assert not golden.exists()
    code, out = run(path, "--update")
    assert code == 0 and f"wrote {golden}" in out
    assert json.loads(golden.read_text()) == {"sensor": "a", "value": 2, "scaled": 4}
    assert run(path)[0] == 0
    golden.write_text('{"sensor": "a", "value": 2, "scaled": 5}\n')
    code, out = run(path)
    assert code == 1 and "differs from snapshot" in out and "scaled  5         4" in out
    assert '"scaled": 5' in golden.read_text()  # a failing run never rewrites the golden file


def test_fake_time_moves_only_with_advance(write_test, tmp_path):
    (tmp_path / "tick.yaml").write_text(
        "version: 1\nnodes:\n"
        "  tick: {type: inject, interval: 10, rows: [{v: 1}], wires: [sink]}\n"
        "  sink: {type: debug}\n"
    )
    (tmp_path / "moves.csv").write_text(
        "timestamp,v\n2026-03-01T06:00:30Z,2\n2026-03-01T06:00:30Z,3\n2026-03-01T06:01:00Z,4\n"
    )
    path = write_test(
        """\
        given: {now: "2026-03-01T06:00:00Z"}
        cases:
          - name: ticks every ten fake seconds
            input: [{advance: 25s}]
            expect:
              tick:
                rows: [{timestamp: "+0s", v: 1}, {timestamp: "+10s", v: 1}, {timestamp: "+20s", v: 1}]
              sink: {row_count: 3}
          - name: an hour takes no time
            timeout: 30
            input: [{advance: 1h}]
            expect: {tick: {row_count: 361}}
          - name: replay at the file's own times
            input:
              - {feed: tick, replay: moves.csv}
              - {advance_to: "+90s"}
            expect:
              sink:
                rows: [{timestamp: "+30s", v: 2}, {timestamp: "+30s", v: 3}, {timestamp: "+60s", v: 4}]
        """,
        "tick.test.yaml",
    )
    code, out = run(path)
    assert code == 0, out
    assert "3 passed" in out


def test_parallel_workers_give_the_same_results(write_test, tmp_path):
    path = write_test(CASES)
    result = flowengine("test", str(path), "-j", "2", "--junit", str(tmp_path / "j.xml"),
                        env=None, cwd=tmp_path, timeout=120)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 2 passed in" in result.stdout
    names = [c.get("name") for c in ET.parse(tmp_path / "j.xml").getroot().iter("testcase")]
    assert names == ["scales by two", "factor three is wrong", "whole flow is quiet"]


def test_schema_option_prints_the_test_format():
    code, out = run("--schema")
    assert code == 0
    schema = json.loads(out)
    assert {"flow", "given", "cases"} <= set(schema["properties"])
    case = schema["$defs"]["CaseSpec"]["properties"]
    assert {"target", "mocks", "given", "input", "expect"} <= set(case)


@pytest.mark.parametrize("args", [["--jobs", "-1"], ["--nope"]])
def test_usage_errors_exit_two(args):
    assert run(*args)[0] == 2


ALERT_FLOW = """\
version: 1
nodes:
  plc: {type: mqtt_in, topics: [plant/#], wires: [alert]}
  alert:
    type: alert
    column: value
    levels: {warning: 0.7, critical: 0.9}
    clear_at: 0.4
    for: 2s
    wires: [mail]
  mail: {type: email, to: [a@example.com], from: flow@example.com}
tests:
  - name: raises critical within five seconds, then clears
    input:
      - feed: plc
        rows:
          - {timestamp: "+0s", sensor: p, value: 0.95}
          - {timestamp: "+3s", sensor: p, value: 0.95}
          - {timestamp: "+10s", sensor: p, value: 0.1}
    expect:
      alert:
        alerts:
          - {event: raise, severity: critical, before: "+5s"}
          - {event: clear, after: "+5s"}
      mail: {row_count: 2, contains: [{event: raise, severity: critical}]}
  - name: a mocked node sends its fixed rows
    mocks: {alert: [{event: raise, severity: warning}]}
    input: [{feed: plc, rows: [{timestamp: "+0s", sensor: p, value: 0.1}]}]
    expect:
      mail: {rows: [{event: raise, severity: warning}]}
  - name: a bad batch goes to the error port
    input: [{feed: plc, rows: [{timestamp: "+0s", sensor: p}]}]
    expect:
      alert.error: {row_count: 1}
      alert: {errors: ["value"], counters: {errors: 1}, no_output: true}
  - name: expects a warning and gets a critical
    input: [{feed: plc, rows: [{timestamp: "+0s", value: 0.95}, {timestamp: "+3s", value: 0.95}]}]
    expect:
      alert: {alerts: [{event: raise, severity: warning}]}
"""


def test_inline_tests_with_io_replaced_mocks_errors_and_alerts(tmp_path):
    pytest.importorskip("paho.mqtt", reason="paho-mqtt (flowengine[mqtt]) is not installed")
    flow = tmp_path / "alerting.yaml"
    flow.write_text(ALERT_FLOW)
    code, out = run(flow, "-v")
    assert code == 1, out
    assert out.count(" PASSED") == 3
    assert (
        "event 0: expected raise warning, got raise critical at 2026-01-01T00:00:03Z (severity)"
        in out
    )


def test_seeded_state_and_counters(write_test, tmp_path):
    (tmp_path / "band.yaml").write_text(
        "version: 1\nnodes:\n"
        "  src: {type: inject, rows: [{sensor: a, value: 0}], wires: [band]}\n"
        "  band: {type: deadband, band: 1.0, wires: [sink]}\n"
        "  sink: {type: debug}\n"
    )
    path = write_test(
        """\
        cases:
          - name: a value within the band of the seeded one is suppressed
            target: band
            given: {state: {band: {_last: {a: [10.0, null]}}}}
            input: [{feed: band, rows: [{sensor: a, value: 10.5}, {sensor: a, value: 12}]}]
            expect:
              band: {rows: [{sensor: a, value: 12.0}], counters: {suppressed: 1}}
          - name: without state the first value passes
            target: band
            input: [{feed: band, rows: [{sensor: a, value: 10.5}]}]
            expect:
              band: {row_count: 1, counters: {suppressed: 0}}
        """,
        "band.test.yaml",
    )
    code, out = run(path)
    assert code == 0, out


def test_a_state_the_node_refuses_errors_the_case_with_its_reason(write_test, tmp_path):
    (tmp_path / "al.yaml").write_text(
        "version: 1\nnodes:\n"
        "  src: {type: inject, rows: [{line: '3', p: 0.1}], wires: [al]}\n"
        "  al: {type: alert, column: p, raise_at: 0.5, wires: [sink]}\n"
        "  sink: {type: debug}\n"
    )
    path = write_test(
        """\
        cases:
          - name: an old state shape
            target: al
            given: {state: {al: {stats: {}}}}
            input: [{feed: al, rows: [{timestamp: "+0s", line: "3", p: 0.9}]}]
            expect:
              al: {row_count: 1}
        """,
        "al.test.yaml",
    )
    code, out = run(path)
    assert code == 1, out
    assert f"{path} E" in out
    assert (
        f"ERROR {path}::an old state shape - StateRejected: node 'al' rejected the given state: "
        "KeyError: 'keys'"
    ) in out
    assert "never retrieved" not in out

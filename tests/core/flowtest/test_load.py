"""Test files are validated like flow files: every problem as PATH:LINE:COL, never a traceback."""

from __future__ import annotations

from pathlib import Path

from flowengine.flowtest.check import load_suite
from flowengine.flowtest.load import discover, read_suite
from flowengine.registry import default_registry
from flowengine.validate import load_flow


def problems(path: Path) -> list[str]:
    return [str(p) for p in load_suite(path, default_registry()).problems]


def test_spec_errors_are_located_with_hints(write_test):
    path = write_test(
        """\
        cases:
          - name: typo
            target: {frm: scale}
            input:
              - feed: scale
                rowz: []
              - advance: 3 parsecs
              - wait: 1
            expect:
              high:
                rows: 5
                query: "value.to_csv('x')"
          - name: typo
            expect: {out: {no_output: true}}
          - expect: {out: {no_output: true}}
        """
    )
    found = problems(path)
    p = str(path)
    assert f"{p}:3:14: case 'typo': unknown key 'target.frm' (did you mean 'from'?)" in found
    assert f"{p}:6:9: case 'typo': unknown key 'input.0.rowz' (did you mean 'rows'?)" in found
    assert any(
        f.startswith(f"{p}:7:9: case 'typo': 'input.1.advance': '3 parsecs' is not") for f in found
    )
    assert any(f.startswith(f"{p}:8:9: case 'typo': 'input.2': a step is") for f in found)
    assert (
        f"{p}:11:9: case 'typo': 'expect.high.rows': Input should be a valid list or a valid string"
        in found
    )
    assert any(
        f.startswith(f"{p}:12:9: case 'typo': 'expect.high.query': query calls 'value.to_csv'")
        for f in found
    )
    assert f"{p}:15:5: case 3: missing key 'name'" in found
    assert f"{p}:13:11: two cases are named 'typo' (the first at line 2)" in found


def test_yaml_errors_and_duplicate_keys_are_located(write_test):
    bad = write_test("cases:\n  - name: a\n    expect: [\n", "bad.test.yaml")
    assert problems(bad)[0].startswith(f"{bad}:4:1: invalid YAML")
    dup = write_test(
        "cases:\n  - name: a\n    name: b\n    expect: {out: {no_output: true}}\n", "dup.test.yaml"
    )
    assert f"{dup}:3:5: duplicate key 'name' (first at line 2)" in problems(dup)


def test_names_are_checked_against_the_flow(write_test):
    path = write_test(
        """\
        cases:
          - name: refs
            target: {from: scale, to: hihg}
            expect: {high: {no_output: true}}
          - name: more
            target: {from: scale, to: high}
            mocks: {src: {outt: []}}
            input:
              - {feed: out, rows: []}
              - {feed: scale, file: missing.csv}
            expect:
              high.nope: {no_output: true}
              src: {no_output: true}
        """
    )
    found = problems(path)
    p = str(path)
    assert (
        f"{p}:3:27: case 'refs': 'target.to': no node 'hihg' in {path.parent / 'line.yaml'} (did you mean 'high'?)"
        in found
    )
    assert any(
        f.startswith(f"{p}:7:13: case 'more': 'mocks.src': node 'src' is not in the case's target")
        for f in found
    )
    assert any(
        f.startswith(f"{p}:9:10: case 'more': 'input.0.feed': node 'out' is not in") for f in found
    )
    assert (
        f"{p}:10:23: case 'more': 'input.1.file': data file {path.parent / 'missing.csv'} not found"
        in found
    )
    assert any(
        f.startswith(f"{p}:12:7: case 'more': 'expect.high.nope': no port 'nope' on node 'high'")
        for f in found
    )


def test_a_missing_or_broken_flow_is_a_file_error(write_test, flow_dir):
    lonely = write_test("cases: [{name: a, expect: {x: {no_output: true}}}]\n", "other.test.yaml")
    assert problems(lonely) == [
        f"{lonely}:1:1: flow file {flow_dir / 'other.yaml'} not found "
        "(name it with 'flow:' or put NAME.yaml beside NAME.test.yaml)"
    ]
    named = write_test(
        "flow: nope.yaml\ncases: [{name: a, expect: {x: {no_output: true}}}]\n", "n.test.yaml"
    )
    assert problems(named) == [f"{named}:1:1: flow file {flow_dir / 'nope.yaml'} not found"]
    (flow_dir / "broken.yaml").write_text("version: 1\nnodes:\n  a: {type: injct}\n")
    broken = write_test("cases: [{name: a, expect: {a: {no_output: true}}}]\n", "broken.test.yaml")
    assert problems(broken) == [
        f"{flow_dir / 'broken.yaml'}:3:7: node 'a': unknown node type 'injct' (did you mean 'inject'?)"
    ]


def test_env_comes_from_given_and_dotenv_not_the_process(write_test, flow_dir, monkeypatch):
    (flow_dir / "env.yaml").write_text(
        "version: 1\nnodes:\n  a: {type: inject, rows: [{v: 1}], count: '${N}', wires: [b]}\n"
        "  b: {type: debug}\n"
    )
    monkeypatch.setenv("N", "3")
    path = write_test(
        "cases:\n  - {name: unset, expect: {a: {row_count: 1}}}\n"
        "  - {name: set, given: {env: {N: 2}}, expect: {a: {row_count: 1}}}\n",
        "env.test.yaml",
    )
    suite = load_suite(path, default_registry())
    assert [c.spec.name for c in suite.cases] == ["set"]
    assert any("environment variable 'N' is not set" in str(p) for p in suite.problems)
    (flow_dir / ".env").write_text("N=4\n")
    assert len(load_suite(path, default_registry()).cases) == 2


def test_inline_tests_are_read_and_the_flow_still_validates(flow_dir):
    flow = flow_dir / "inline.yaml"
    flow.write_text(
        (flow_dir / "line.yaml").read_text()
        + "tests:\n  - name: passes through\n    expect: {src: {row_count: 1}}\n"
        + "  - name: bad\n    expect: {src: {row_cnt: 1}}\n"
    )
    assert load_flow(flow, default_registry()).ok
    raw = read_suite(flow)
    assert [str(p) for p in raw.problems] == [
        f"{flow}:22:20: case 'bad': unknown key 'expect.src.row_cnt' (did you mean 'row_count'?)"
    ]


def test_discovery(flow_dir, write_test, monkeypatch):
    monkeypatch.chdir(flow_dir)
    write_test("cases: []\n")
    (flow_dir / "sub" / ".hidden").mkdir(parents=True)
    (flow_dir / "sub" / ".hidden" / "x.test.yaml").write_text("cases: []\n")
    (flow_dir / "sub" / "y.test.yml").write_text("cases: []\n")
    (flow_dir / "sub" / "inline.yaml").write_text("version: 1\nnodes: {}\ntests: []\n")
    (flow_dir / "sub" / "plain.yaml").write_text("version: 1\nnodes: {}\n")
    files, found = discover([Path(".")])
    assert [str(f) for f in files] == ["line.test.yaml", "sub/inline.yaml", "sub/y.test.yml"]
    assert found == []
    files, found = discover([Path("line.yaml"), Path("line.test.yaml"), Path("gone")])
    assert [str(f) for f in files] == ["line.test.yaml"]
    assert [str(p) for p in found] == ["gone:1:1: no such file or directory"]

"""The python node runs code from the flow file, so it loads only on an explicit opt-in."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from flowengine.testing import check_text, run_flow
from tests.helpers.cli import flowengine

CODE = "def process(df):\n    return df[df['value'] > 1].assign(doubled=df['value'] * 2)\n"


def nodes(code: str = CODE) -> dict:
    return {
        "src": {"type": "inject", "rows": [{"sensor": "a", "value": v} for v in (0.5, 2, 3)],
                "wires": ["py"]},
        "py": {"type": "python", "code": code, "wires": ["cap"]},
        "cap": {"type": "capture"},
    }  # fmt: skip


def test_refused_without_an_opt_in():
    checked = check_text(nodes())
    assert not checked.ok
    (problem,) = checked.errors
    assert problem.node == "py" and "runs Python code from the flow file" in problem.message


def test_runs_when_the_flow_opts_in():
    result = run_flow({"version": 1, "settings": {"allow_code": True}, "nodes": nodes()})
    frame = result.frame("cap")
    assert frame["value"].tolist() == [2, 3] and frame["doubled"].tolist() == [4, 6]


def test_code_without_process_or_with_a_syntax_error_is_a_validation_error():
    flow = {"version": 1, "settings": {"allow_code": True}}
    missing = check_text({**flow, "nodes": nodes("def other(df):\n    return df\n")})
    assert "must define a function `process(df)` or `process_row(row)`" in str(missing.errors[0])
    broken = check_text({**flow, "nodes": nodes("def process(df)\n    return df\n")})
    assert "field 'code': line 1" in str(broken.errors[0])


def test_the_cli_flag_opts_in(cli_env, tmp_path):
    flow = tmp_path / "py.yaml"
    flow.write_text(
        textwrap.dedent(
            """\
            version: 1
            nodes:
              src: {type: inject, wires: [py]}
              py:
                type: python
                code: |
                  def process(df):
                      return df
                wires: [out]
              out: {type: debug}
            """
        )
    )
    refused = flowengine("validate", str(flow), env=cli_env)
    assert refused.returncode == 1 and "--allow-code" in refused.stderr
    assert flowengine("validate", "--allow-code", str(flow), env=cli_env).returncode == 0
    ran = flowengine("run", "--allow-code", "--no-live", str(flow), env=cli_env)
    assert ran.returncode == 0, ran.stderr


# ---- process_row: one row at a time, as a Node-RED function node -------------------------
ROLLING = """\
win = {}
def process_row(row):
    a = win.setdefault(row["sensor"], [])
    a.append(row["value"])
    if len(a) > 3:
        del a[0]
    row["mean"] = sum(a) / len(a)
    row["over"] = row["mean"] > 2
    return row
"""


def _rows_flow(code: str, rows: list[dict], firings: int = 1) -> dict:
    src = {"type": "inject", "rows": rows, "wires": ["py"]}
    if firings > 1:
        src |= {"interval": 0.01, "count": firings}
    return {
        "version": 1,
        "settings": {"allow_code": True},
        "nodes": {
            "src": src,
            "py": {"type": "python", "code": code, "wires": {"out": ["cap"], "error": ["bad"]}},
            "cap": {"type": "capture"},
            "bad": {"type": "capture"},
        },
    }


def test_process_row_keeps_its_state_across_rows_and_batches():
    rows = [{"sensor": s, "value": v} for s, v in [("a", 1), ("b", 10), ("a", 2)]]
    result = run_flow(_rows_flow(ROLLING, rows, firings=2))
    frame = result.frame("cap")
    # the last 3 values per sensor: a 1, 2, then 1, 2 again
    assert frame["mean"].tolist() == pytest.approx([1.0, 10.0, 1.5, 4 / 3, 10.0, 5 / 3])
    assert frame["over"].tolist() == [False, True, False, False, True, False]
    assert frame["over"].dtype == bool and frame["mean"].dtype == "float64"
    assert str(frame["timestamp"].dtype).startswith("datetime64[") and frame["timestamp"].dt.tz
    assert len(result.batches("cap")) == 2  # batch by batch


def test_process_row_drops_splits_and_names_the_row_that_failed():
    code = """\
def process_row(row):
    if row["value"] == 0:
        return None
    if row["value"] == 2:
        return [dict(row, part=1), dict(row, part=2)]
    if row["value"] == 3:
        return 1 / 0
    if row["value"] == 4:
        return "text"
    return row
"""
    rows = [{"sensor": "a", "value": v} for v in (0, 1, 2, 3, 4, 5)]
    result = run_flow(_rows_flow(code, rows))
    good = result.frame("cap")
    assert good["value"].tolist() == [1, 2, 2, 5]
    assert good["part"].isna().tolist() == [True, False, False, True]  # missing in some rows
    bad = result.frame("bad")
    assert bad["value"].tolist() == [3, 4]  # each failed row alone, as it came in
    assert "ZeroDivisionError" in bad["error"].iloc[0]
    assert "returned str" in bad["error"].iloc[1]
    assert result.stats("py")["errors"] == 2  # counted per row; the batch's others went on


def test_process_row_reads_batches_made_as_frames_too():
    from flowengine.nodes.basic.rowfunc import RowRunner
    from flowengine.types import Batch, long_frame

    seen = []
    runner = RowRunner(lambda row: seen.append(row) or row, ctx=None)  # type: ignore[arg-type]
    frame = long_frame(pd.Timestamp("2026-01-01", tz="UTC"), ["a", "b"], [1.5, 2.5], extra=[1, 2])
    out = runner(Batch(frame))
    assert [r["sensor"] for r in seen] == ["a", "b"] and seen[0]["extra"] == 1
    assert isinstance(seen[0]["timestamp"], pd.Timestamp)
    assert isinstance(out, Batch) and out.lists is not None  # handed on as lists
    expected = frame.astype({"extra": "int64", "timestamp": "datetime64[ns, UTC]"})
    pd.testing.assert_frame_equal(out.frame, expected)  # UTC times come back as ns


def test_defining_both_functions_is_a_validation_error():
    code = "def process(df):\n    return df\ndef process_row(row):\n    return row\n"
    checked = check_text(_rows_flow(code, [{"sensor": "a", "value": 1}]))
    assert "not both" in str(checked.errors[0])

"""Filter: matching rows on `out`, the others on `rejected`, failures on `error`."""

from __future__ import annotations

import textwrap
from typing import Any

import pandas as pd
import pytest

from flowengine.testing import check_text, run_flow

ROWS = [
    {"sensor": "furnace", "value": 1200.0},
    {"sensor": "furnace", "value": 1300.0},
    {"sensor": "ladle", "value": 1400.0},
    {"sensor": "furnace", "value": 1250.0},
]


def split_flow(query: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "src": {"type": "inject", "rows": rows, "wires": ["f"]},
        "f": {"type": "filter", "query": query, "wires": {"out": ["kept"], "rejected": ["rej"]}},
        "kept": {"type": "capture"},
        "rej": {"type": "capture"},
    }


def test_rows_split_between_out_and_rejected() -> None:
    result = run_flow(split_flow("value > 1250 and sensor == 'furnace'", ROWS))
    match = [r for r in ROWS if r["value"] > 1250 and r["sensor"] == "furnace"]
    other = [r for r in ROWS if r not in match]
    assert result.frame("kept")[["sensor", "value"]].to_dict("records") == match
    assert result.frame("rej")[["sensor", "value"]].to_dict("records") == other


def test_backticks_quote_odd_column_names() -> None:
    rows = [{"tag name": "a", "value": 1.0}, {"tag name": "b", "value": 2.0}]
    result = run_flow(split_flow("`tag name` == 'b'", rows))
    assert result.frame("kept")["tag name"].tolist() == ["b"]
    assert result.frame("rej")["tag name"].tolist() == ["a"]


def test_an_empty_side_sends_nothing() -> None:
    result = run_flow(split_flow("value > 0", ROWS))
    assert len(result.frame("kept")) == len(ROWS)
    assert result.batches("rej") == []


def test_unwired_rejected_port_is_fine() -> None:
    flow = {
        "src": {"type": "inject", "rows": ROWS, "wires": ["f"]},
        "f": {"type": "filter", "query": "sensor == 'ladle'", "wires": ["cap"]},
        "cap": {"type": "capture"},
    }
    result = run_flow(flow)
    assert result.frame("cap")["sensor"].tolist() == ["ladle"]
    assert result.report.errors == 0


def test_syntax_error_is_located_at_the_node_and_line() -> None:
    text = textwrap.dedent(
        """\
        version: 1
        nodes:
          src:
            type: inject
            wires: [hot]
          hot:
            type: filter
            query: "value >"
            wires: [cap]
          cap:
            type: capture
        """
    )
    checked = check_text(text, path="line3.yaml")
    [problem] = checked.errors
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "query:" in s)
    assert problem.node == "hot"
    assert problem.pos.line == line
    assert str(problem).startswith(f"line3.yaml:{line}:")
    assert "query" in problem.message


def test_missing_column_routes_the_batch_to_error_and_the_flow_goes_on() -> None:
    good = [{"sensor": "a", "value": 5.0}, {"sensor": "b", "value": 0.0}]
    bad = [{"sensor": "c", "reading": 5.0}]
    flow = {
        "src": {"type": "frames", "frames": [good, bad, good], "wires": ["f"]},
        "f": {"type": "filter", "query": "value > 1", "wires": {"out": ["kept"], "error": ["err"]}},
        "kept": {"type": "capture"},
        "err": {"type": "capture"},
    }
    result = run_flow(flow)
    [failed] = result.batches("err")
    assert "value" in (failed.error or "")
    assert failed.frame.to_dict("records") == bad
    assert failed.origin == "f"
    # both good batches got through, including the one after the failure
    assert result.frame("kept").to_dict("records") == [good[0], good[0]]
    assert result.stats("f")["errors"] == 1


#: Batches as sources make them: the simulator's row slices (object strings, int8, UTC times)
#: and rows from JSON (pandas' str dtype, missing values).
MIXED = [
    {"timestamp": "2026-01-01T00:00:00Z", "sensor": "a", "value": 1300.0, "quality": "good"},
    {"timestamp": "2026-01-01T00:00:03Z", "sensor": None, "value": float("nan"), "quality": "bad"},
    {
        "timestamp": "2026-01-01T00:00:05Z",
        "sensor": "furnace_temp",
        "value": 900.0,
        "quality": "good",
    },
]
SOURCES = {
    "simulate": {"type": "simulate", "realtime": False, "batch_size": 4, "count": 6, "seed": 3},
    "rows": {"type": "frames", "frames": [MIXED, MIXED[::-1], MIXED[:1]]},
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    "query",
    [
        "quality == 'good' and value > 1000",
        "sensor in ['furnace_temp', 'a'] or value != value",
        "timestamp > '2026-01-01T00:00:01Z'",
        "not (value < 1200) | (sensor == 'furnace_temp')",
    ],
)
def test_both_sides_are_the_frames_pandas_selects(source: str, query: str) -> None:
    flow = split_flow(query, [])
    flow["src"] = {**SOURCES[source], "wires": ["f", "raw"]}
    flow["raw"] = {"type": "capture"}
    result = run_flow(flow)
    inputs = [b.frame for b in result.batches("raw")]
    masks = [frame.eval(query) for frame in inputs]
    kept = [f[m] for f, m in zip(inputs, masks, strict=True) if m.any()]
    rejected = [f[~m] for f, m in zip(inputs, masks, strict=True) if (~m).any()]
    for node, expected in (("kept", kept), ("rej", rejected)):
        got = [b.frame for b in result.batches(node)]
        assert len(got) == len(expected)
        for frame, want in zip(got, expected, strict=True):
            pd.testing.assert_frame_equal(frame, want, check_exact=True)


def test_a_query_that_is_not_a_condition_fails_as_in_pandas() -> None:
    flow = split_flow("value * 2", ROWS)
    flow["f"]["wires"]["error"] = ["err"]
    flow["err"] = {"type": "capture"}
    result = run_flow(flow)
    [failed] = result.batches("err")
    assert "KeyError" in (failed.error or "")
    assert result.batches("kept") == []

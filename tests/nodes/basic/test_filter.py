"""Filter: matching rows on `out`, the others on `rejected`, failures on `error`."""

from __future__ import annotations

import textwrap
from typing import Any

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

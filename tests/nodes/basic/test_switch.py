"""Switch: rows routed by ordered rules to a port per rule name, unmatched to `otherwise`."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from flowengine.testing import FlowResult, check_text, run_flow

ROWS = [{"sensor": "t", "value": v} for v in (800.0, 1000.0, 1300.0, 1500.0)]
RULES = {"hot": "value > 1250", "very_hot": "value > 1400", "cold": "value < 900"}


def route(mode: str) -> FlowResult:
    flow: dict[str, Any] = {
        "src": {"type": "inject", "rows": ROWS, "wires": ["sw"]},
        "sw": {
            "type": "switch",
            "rules": RULES,
            "mode": mode,
            "wires": {
                "hot": ["hot"],
                "very_hot": ["very"],
                "cold": ["cold"],
                "otherwise": ["rest"],
            },
        },
        **{name: {"type": "capture"} for name in ("hot", "very", "cold", "rest")},
    }
    return run_flow(flow)


def values(result: FlowResult, node: str) -> list[float]:
    frame = result.frame(node)
    return frame["value"].tolist() if len(frame) else []


def test_first_mode_sends_each_row_to_the_first_matching_rule() -> None:
    result = route("first")
    assert values(result, "hot") == [1300.0, 1500.0]
    assert values(result, "very") == []  # 1500 already went to the first rule
    assert values(result, "cold") == [800.0]
    assert values(result, "rest") == [1000.0]


def test_all_mode_sends_a_row_to_every_matching_rule() -> None:
    result = route("all")
    assert values(result, "hot") == [1300.0, 1500.0]
    assert values(result, "very") == [1500.0]
    assert values(result, "cold") == [800.0]
    assert values(result, "rest") == [1000.0]


def test_unsafe_rule_and_unknown_port_fail_validation() -> None:
    [problem] = check_text({"sw": {"type": "switch", "rules": {"x": "value.to_csv('f')"}}}).errors
    assert "rule 'x'" in problem.message
    flow = {
        "sw": {"type": "switch", "rules": {"x": "value > 1"}, "wires": {"hot": ["c"]}},
        "c": {"type": "capture"},
    }
    [problem] = check_text(flow).errors
    assert (
        "no output port 'hot'" in problem.message
        and "ports: x, otherwise, error" in problem.message
    )


def test_rule_names_must_be_port_names() -> None:
    for bad in ("otherwise", "error", "2hot", "a b"):
        [problem] = check_text({"sw": {"type": "switch", "rules": {bad: "value > 1"}}}).errors
        assert "must be a port name" in problem.message


def test_an_invalid_config_does_not_add_guessed_port_errors() -> None:
    flow = {
        "sw": {"type": "switch", "rules": {"hot": "value >"}, "wires": {"hot": ["c"]}},
        "c": {"type": "capture"},
    }
    [problem] = check_text(flow).errors  # the rule's syntax, not the wire
    assert "rule 'hot'" in problem.message


SIMULATED = {"type": "simulate", "realtime": False, "batch_size": 4, "count": 6, "seed": 3}
MIXED_RULES = {
    "hot": "value > 1000",
    "good": "quality == 'good'",
    "all": "value == value",
    "again": "value == value",
}


def old_switch(frame: pd.DataFrame, mode: str) -> dict[str, pd.DataFrame]:
    """What the switch did with pandas' eval and boolean masks."""
    taken = pd.Series(False, index=frame.index)
    result = {}
    for port, expr in MIXED_RULES.items():
        mask = frame.eval(expr).astype(bool)
        if mode == "first":
            mask &= ~taken
        taken |= mask
        result[port] = frame[mask]
    result["otherwise"] = frame[~taken]
    return result


@pytest.mark.parametrize("mode", ["first", "all"])
def test_ports_get_the_frames_pandas_masks_select(mode: str) -> None:
    ports = [*MIXED_RULES, "otherwise"]
    flow: dict[str, Any] = {
        "src": {**SIMULATED, "wires": ["sw", "raw"]},
        "sw": {
            "type": "switch",
            "rules": MIXED_RULES,
            "mode": mode,
            "wires": {p: [p] for p in ports},
        },
        "raw": {"type": "capture"},
        **{p: {"type": "capture"} for p in ports},
    }
    result = run_flow(flow)
    expected = [old_switch(b.frame, mode) for b in result.batches("raw")]
    for port in ports:
        want = [by_port[port] for by_port in expected if len(by_port[port])]
        got = [b.frame for b in result.batches(port)]
        assert len(got) == len(want)
        for frame, reference in zip(got, want, strict=True):
            pd.testing.assert_frame_equal(frame, reference, check_exact=True)
    if mode == "all":  # two ports with every row get two frames, not one shared object
        pairs = zip(result.batches("all"), result.batches("again"), strict=True)
        assert all(a.frame is not b.frame for a, b in pairs)

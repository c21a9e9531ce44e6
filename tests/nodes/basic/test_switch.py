"""Switch: rows routed by ordered rules to a port per rule name, unmatched to `otherwise`."""

from __future__ import annotations

from typing import Any

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

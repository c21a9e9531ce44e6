"""Alert: the state machine's rules on hand-made series, then the node in mini-flows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from flowengine.nodes.analytics.alerts import (
    AlertMachine,
    Deviations,
    Rules,
    to_seconds,
    top_features,
)
from flowengine.testing import check_text, run_flow

T0 = datetime(2026, 1, 1, 10, 42, 0)
S = timedelta(seconds=1)


def feed(
    machine: AlertMachine,
    values: list[float],
    raise_at: float = 0.8,
    clear_at: float = 0.6,
    key: tuple[object, ...] = ("k",),
    levels: dict[str, float] | None = None,
) -> list[tuple[int, str, str]]:
    """Feed one value a second; return (second, event, severity) for each event."""
    events = []
    for i, v in enumerate(values):
        severity = None
        for name, threshold in sorted((levels or {}).items(), key=lambda kv: kv[1]):
            if v >= threshold:
                severity = name
        event = machine.step(key, T0 + i * S, v >= raise_at, v < clear_at, severity)
        if event:
            events.append((i, event.kind, event.severity))
    return events


def test_hysteresis_raises_at_raise_at_and_clears_only_below_clear_at() -> None:
    values = [0.5, 0.79, 0.8, 0.7, 0.61, 0.6, 0.59, 0.7, 0.85]
    events = feed(AlertMachine(Rules()), values)
    # 0.8 raises; 0.7..0.6 are between the thresholds; 0.59 clears; 0.85 raises again
    assert events == [(2, "raise", "warning"), (6, "clear", "warning"), (8, "raise", "warning")]


def test_min_duration_needs_the_condition_to_hold_continuously() -> None:
    values = [0.9, 0.9, 0.7, 0.9, 0.9, 0.9, 0.9]
    events = feed(AlertMachine(Rules(hold=3 * S)), values)
    # the run from 0 breaks at 2 (0.7 < raise_at); the run from 3 reaches 3 s at second 6
    assert events == [(6, "raise", "warning")]


def test_cooldown_blocks_a_raise_after_a_clear() -> None:
    values = [0.9, 0.5, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5]
    events = feed(AlertMachine(Rules(cooldown=3 * S)), values)
    # cleared at 1; raising is allowed again from second 4; 0.5 at 6 clears again
    assert events == [
        (0, "raise", "warning"),
        (1, "clear", "warning"),
        (4, "raise", "warning"),
        (6, "clear", "warning"),
    ]
    assert feed(AlertMachine(Rules()), values)[2] == (2, "raise", "warning")


def test_one_active_alert_per_key() -> None:
    machine = AlertMachine(Rules())
    a = feed(machine, [0.9, 0.95, 0.9, 0.5], key=("line3", "s1"))
    b = feed(machine, [0.5, 0.9, 0.99, 0.9], key=("line3", "s2"))
    assert a == [(0, "raise", "warning"), (3, "clear", "warning")]
    assert b == [(1, "raise", "warning")]
    assert machine.states[("line3", "s2")].active


def test_severity_escalates_but_never_steps_down_until_clear() -> None:
    ranking = ("warning", "critical")
    levels = {"warning": 0.6, "critical": 0.8}
    values = [0.5, 0.65, 0.7, 0.85, 0.7, 0.9, 0.55]
    events = feed(AlertMachine(Rules(ranking=ranking)), values, 0.6, 0.6, levels=levels)
    assert events == [
        (1, "raise", "warning"),
        (3, "escalate", "critical"),
        (6, "clear", "critical"),
    ]


def test_late_rows_are_recognised_per_key() -> None:
    machine = AlertMachine(Rules())
    machine.step(("a",), T0 + 5 * S, False, True, None)
    assert machine.is_late(("a",), T0)
    assert not machine.is_late(("b",), T0)


def test_deviations_name_the_most_unusual_features() -> None:
    stats = Deviations()
    for x in range(10):
        stats.update({"a": float(x % 2), "b": 10.0 + x % 3, "c": 5.0})
    scores = stats.update({"a": 0.5, "b": 30.0, "c": 5.0})
    assert top_features(scores, 2) == "b"  # c never varies, a sits at its mean
    assert top_features(stats.update({"a": 9.0, "b": 30.0}), 2) == "a, b"


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5.0), ("1min", 60.0), (2, 2.0)])
def test_durations(text: object, seconds: float) -> None:
    assert to_seconds(text) == seconds


def rows(probs: list[float], line: int = 3, start: int = 0, **cols: list[Any]) -> list[dict]:
    out = []
    for i, p in enumerate(probs):
        extra = {name: values[i] for name, values in cols.items()}
        ts = f"2026-01-01T10:42:{start + i:02d}Z"
        out.append({"timestamp": ts, "line": line, "defect_probability": p, **extra})
    return out


def alert_flow(frames: list[list[dict]], **alert: Any) -> dict[str, Any]:
    return {
        "src": {"type": "frames", "frames": frames, "wires": ["a"]},
        "a": {"type": "alert", "key": ["line"], **alert, "wires": {"out": ["cap"], "error": ["e"]}},
        "cap": {"type": "capture"},
        "e": {"type": "capture"},
    }


def run(frames: list[list[dict]], **alert: Any) -> pd.DataFrame:
    result = run_flow(alert_flow(frames, **alert))
    assert result.batches("e") == []
    return result.frame("cap")


def test_threshold_levels_across_batches_with_message_and_features() -> None:
    force = [10.0, 10.2, 9.8, 10.1, 10.0, 30.0, 10.0, 10.0]
    temp = [1.0, 1.1, 0.9, 1.0, 1.2, 1.0, 1.0, 1.0]
    series = rows([0.1, 0.2, 0.1, 0.2, 0.7, 0.86, 0.9, 0.5], roll_force=force, temp=temp)
    levels = {"warning": 0.6, "critical": 0.8}
    out = run([series[:5], series[5:]], column="defect_probability", levels=levels,
              features=["roll_force", "temp"], top=1)  # fmt: skip
    assert out["event"].tolist() == ["raise", "escalate", "clear"]
    assert out["severity"].tolist() == ["warning", "critical", "critical"]
    assert out["probability"].tolist() == [0.7, 0.86, 0.5]
    assert out["top_features"].tolist()[1] == "roll_force"
    assert out["message"][1] == (
        "Line 3: defect probability 0.86 (critical, escalated) since 10:42:04; top: roll_force"
    )
    assert out["timestamp"].dt.second.tolist() == [4, 5, 7]


def test_condition_with_min_duration_passes_model_top_features() -> None:
    series = rows([0.9, 0.9, 0.9, 0.9, 0.1], top_features=["x, y"] * 5)
    out = run([series], condition="defect_probability > 0.8", severity="critical", **{"for": "2s"})
    assert out["event"].tolist() == ["raise", "clear"]
    assert out["timestamp"].dt.second.tolist() == [2, 4]
    assert out["top_features"].tolist() == ["x, y", "x, y"]
    assert out["message"][0] == (
        "Line 3: defect probability 0.90 (critical) since 10:42:02; top: x, y"
    )


def test_no_event_no_output_and_rows_sorted_by_time() -> None:
    quiet = run([rows([0.1, 0.2, 0.3])], column="defect_probability", raise_at=0.8)
    assert quiet.empty
    shuffled = list(reversed(rows([0.1, 0.9, 0.9])))
    out = run([shuffled], column="defect_probability", raise_at=0.8, clear_at=0.6)
    assert out["timestamp"].dt.second.tolist() == [1]


def test_below_direction_and_dedup_per_line() -> None:
    a, b = rows([5.0, 1.0, 1.0, 6.0], line=1), rows([1.0, 1.0, 5.0, 5.0], line=2)
    frames = [[{**r, "pressure": r.pop("defect_probability")} for r in a + b]]
    out = run(frames, column="pressure", raise_at=2.0, clear_at=4.0, direction="below")
    # in time order: line 2 low at 0 s, line 1 low at 1 s, line 2 back up at 2 s, line 1 at 3 s
    expected = [[2, "raise"], [1, "raise"], [2, "clear"], [1, "clear"]]
    assert out[["line", "event"]].values.tolist() == expected
    assert "pressure" in out


def test_config_needs_exactly_one_mode_and_a_safe_expression() -> None:
    both = check_text(alert_flow([], column="p", condition="p > 1"))
    assert any("either 'condition' or 'column'" in str(p) for p in both.errors)
    checked = check_text(alert_flow([], condition="p.to_csv('x')"))
    assert any("not allowed" in str(p) for p in checked.errors)

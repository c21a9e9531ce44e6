"""Debug: logs the head of each batch at its level and keeps the latest batches."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from flowengine.testing import run_flow

ROWS = [{"sensor": f"s{i}", "value": float(i)} for i in range(4)]


def debug(**config: Any) -> dict[str, Any]:
    src = {"type": "inject", "rows": ROWS, "wires": ["dbg"], **config.pop("src", {})}
    return {"src": src, "dbg": {"type": "debug", **config}}


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("flowengine.node.debug")]


def test_logs_the_head_of_each_batch(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    run_flow(debug(rows=2, src={"count": 2}))
    logged = records(caplog)
    assert len(logged) == 2
    for record in logged:
        text = record.getMessage()
        assert record.levelno == logging.INFO
        assert "node 'dbg'" in text
        assert f"{len(ROWS)} rows from 'src'" in text
        assert all(r["sensor"] in text for r in ROWS[:2])
        assert not any(r["sensor"] in text for r in ROWS[2:])


@pytest.mark.parametrize("level", ["debug", "info", "warning"])
def test_logs_at_the_configured_level(caplog: pytest.LogCaptureFixture, level: str) -> None:
    caplog.set_level(logging.DEBUG)
    run_flow(debug(level=level))
    [record] = records(caplog)
    assert record.levelname == level.upper()


def test_debug_level_is_quiet_when_the_logger_is_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    run_flow(debug(level="debug"))
    assert records(caplog) == []


def test_rows_zero_logs_a_summary_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    run_flow(debug(rows=0))
    [record] = records(caplog)
    assert "\n" not in record.getMessage()
    assert not any(r["sensor"] in record.getMessage() for r in ROWS)


def test_columns_limits_what_is_printed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    run_flow(debug(columns=["sensor", "nonexistent"]))
    [record] = records(caplog)
    text = record.getMessage()
    assert "sensor" in text and ROWS[0]["sensor"] in text
    assert "value" not in text and "timestamp" not in text


def test_keeps_at_most_keep_recent_batches() -> None:
    keep, count = 2, 5
    flow = debug(keep=keep, src={"count": count, "interval": 0.001, "wires": ["dbg", "cap"]})
    flow["cap"] = {"type": "capture"}
    result = run_flow(flow)
    recent = list(result.node("dbg").recent)
    captured = result.batches("cap")
    stamps = [b.frame["timestamp"].iloc[0] for b in captured]
    assert len(set(stamps)) == count  # each firing is distinguishable
    assert [b.frame["timestamp"].iloc[0] for b in recent] == stamps[-keep:]


def test_keep_zero_keeps_nothing() -> None:
    result = run_flow(debug(keep=0, src={"count": 3}))
    assert len(result.node("dbg").recent) == 0


def test_error_batches_show_their_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    flow = {
        "src": {"type": "inject", "rows": ROWS, "wires": ["s"]},
        "s": {"type": "select", "columns": ["pressure"], "wires": {"error": ["dbg"]}},
        "dbg": {"type": "debug"},
    }
    run_flow(flow)
    [record] = records(caplog)
    assert "rows from 's'" in record.getMessage()
    assert "error=" in record.getMessage() and "pressure" in record.getMessage()

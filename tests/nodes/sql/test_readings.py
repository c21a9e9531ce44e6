"""sql_in reads a long-format result (timestamp, sensor, value) as readings: float values, a
quality column, NaN/inf/NULL values by ``non_finite``, rows that are no reading to the error
port; the poll never fails for them (no restart). Other results pass through unchanged."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flowengine.testing import run_flow

sa = pytest.importorskip("sqlalchemy")
from flowengine.nodes.sql.readings import readings  # noqa: E402  (needs the sql extra)

NOW = pd.Timestamp("2026-05-01T00:00:00Z")
T = "2026-03-01 12:00:00.000000"
ROWS: list[dict[str, Any]] = [
    {"timestamp": T, "sensor": "good", "value": 1.5},
    {"timestamp": T, "sensor": "text_number", "value": "2.5"},
    {"timestamp": T, "sensor": "null", "value": None},
    {"timestamp": T, "sensor": "inf", "value": math.inf},
    {"timestamp": T, "sensor": "hot", "value": "hot"},
    {"timestamp": None, "sensor": "untimed", "value": 7.0},
    {"timestamp": "2026-03-01T12:00:00Z", "sensor": "iso_t", "value": 8.0},
    {"timestamp": "yesterday", "sensor": "bad_time", "value": 9.0},
]


def poll(tmp_path: Path, non_finite: str) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE r (timestamp TEXT, sensor TEXT, value REAL)"))
        conn.execute(sa.text("INSERT INTO r VALUES (:timestamp, :sensor, :value)"), ROWS)
    engine.dispose()
    flow = {
        "src": {
            "type": "sql_in",
            "connection_string": url,
            "query": "SELECT * FROM r",
            "polls": 1,
            "non_finite": non_finite,
            "wires": {"out": ["cap"], "error": ["err"]},
        },
        "cap": {"type": "capture"},
        "err": {"type": "capture"},
    }
    result = run_flow(flow, path=tmp_path / "flow.yaml")
    return result, result.frame("cap").set_index("sensor"), result.frame("err")


def test_bad_policy_keeps_non_finite_rows_and_rejects_unreadable_ones(tmp_path: Path) -> None:
    result, out, err = poll(tmp_path, "bad")
    assert result.stats("src")["retries"] == 0
    assert list(out.columns[:3]) == ["timestamp", "value", "quality"]
    assert out["quality"].to_dict() == {
        "good": "good",
        "text_number": "good",
        "null": "bad",
        "inf": "bad",
        "untimed": "bad",
        "iso_t": "good",
    }
    assert out.loc["text_number", "value"] == 2.5 and out["value"].dtype == float
    assert out.loc["inf", "value"] == math.inf and math.isnan(out.loc["null", "value"])
    assert out.loc["iso_t", "timestamp"] == pd.Timestamp("2026-03-01T12:00:00Z")
    assert str(out["timestamp"].dt.tz) == "UTC"
    assert dict(zip(err["sensor"], err["error"], strict=True)) == {
        "hot": "value is not a number: 'hot'",
        "bad_time": "timestamp is not a time: 'yesterday'",
    }
    stats = result.stats("src")
    assert stats["errors"] == 2 and stats["counters"]["bad_rows"] == 2


def test_error_policy_sends_non_finite_rows_to_the_error_port(tmp_path: Path) -> None:
    _, out, err = poll(tmp_path, "error")
    assert "null" not in out.index and "inf" not in out.index
    assert set(err["sensor"]) == {"null", "inf", "hot", "bad_time"}
    assert (out["quality"] == out.index.map({"untimed": "bad"}).fillna("good")).all()


def test_keep_policy_marks_non_finite_rows_good(tmp_path: Path) -> None:
    _, out, _ = poll(tmp_path, "keep")
    assert out.loc["inf", "quality"] == "good" and out.loc["null", "quality"] == "good"


def test_own_quality_column_is_kept_and_only_made_worse() -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime([NOW, NOW, None], utc=True),
            "sensor": ["a", "b", "c"],
            "value": [Decimal("1.5"), Decimal("NaN"), 10**400],
            "quality": ["uncertain", "good", "good"],
        }
    )
    rows, errors = readings(frame, "bad", NOW)
    assert errors is None
    assert rows["quality"].tolist() == ["uncertain", "bad", "bad"]
    assert rows["value"].iloc[0] == 1.5 and rows["value"].iloc[2] == math.inf
    assert rows["timestamp"].iloc[2] == NOW


def test_other_results_pass_through_unchanged() -> None:
    frame = pd.DataFrame({"timestamp": [NOW], "value": [math.nan], "line": ["3"]})
    rows, errors = readings(frame, "error", NOW)
    assert rows is frame and errors is None

"""Deadband: report by exception per sensor, with state across batches."""

from __future__ import annotations

from flowengine.testing import check_text
from tests.helpers.timed import T0, through


def test_band_is_absolute_per_sensor_and_kept_across_batches() -> None:
    frames = [[[0, "a", 10.0], [1, "a", 10.4], [2, "b", 50.0]], [[3, "a", 10.6], [4, "b", 50.2]]]
    result = through({"type": "deadband", "band": 0.5}, frames)
    got = result.frame("cap")[["sensor", "value"]].values.tolist()
    # a: 10.0 reported, 10.4 within 0.5, 10.6 is 0.6 from the last reported (10.0); b: first only
    assert got == [["a", 10.0], ["b", 50.0], ["a", 10.6]]
    assert result.stats("n")["counters"]["suppressed"] == 2


def test_percent_of_last_reported_value() -> None:
    frames = [[[0, "a", 100.0], [1, "a", 104.0], [2, "a", 106.0], [3, "a", 110.0]]]
    result = through({"type": "deadband", "percent": 5}, frames)
    assert result.frame("cap")["value"].tolist() == [100.0, 106.0]  # 110 is < 5% of 106


def test_max_silence_re_reports_a_steady_sensor() -> None:
    frames = [[[0, "a", 1.0], [5, "a", 1.0]], [[10, "a", 1.0], [12, "a", 1.0], [21, "a", 1.0]]]
    result = through({"type": "deadband", "band": 1, "max_silence": 10}, frames)
    seconds = (result.frame("cap")["timestamp"] - T0).dt.total_seconds().tolist()
    assert seconds == [0.0, 10.0, 21.0]


def test_needs_band_or_percent() -> None:
    [problem] = check_text({"n": {"type": "deadband"}}).errors
    assert "band" in problem.message

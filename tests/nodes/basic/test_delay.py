"""Delay: hold batches, or limit their rate with backpressure (or counted drops)."""

from __future__ import annotations

from flowengine.testing import check_text
from tests.helpers.timed import through

FRAMES = [[[i, "a", float(i)]] for i in range(5)]  # five one-row batches


def test_delay_holds_each_batch() -> None:
    result = through({"type": "delay", "delay": 0.1}, FRAMES[:2])
    assert result.frame("cap")["value"].tolist() == [0.0, 1.0]
    assert result.report.duration >= 0.1


def test_rate_limit_spaces_batches_and_loses_none() -> None:
    result = through({"type": "delay", "mode": "rate_limit", "rate": 20}, FRAMES)
    assert result.frame("cap")["value"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert result.report.duration >= 4 / 20  # the 2nd..5th wait 1/20 s each
    assert result.stats("n")["counters"]["delayed"] >= 3


def test_rate_limit_by_rows() -> None:
    frames = [[[i, "a", 1.0], [i, "b", 1.0]] for i in range(3)]  # 2 rows per batch
    result = through({"type": "delay", "mode": "rate_limit", "rate": 20, "per": "rows"}, frames)
    assert len(result.frame("cap")) == 6
    assert result.report.duration >= 2 * 2 / 20  # the 2nd and 3rd wait 2 rows / 20 rows/s


def test_drop_discards_and_counts_the_excess() -> None:
    result = through({"type": "delay", "mode": "rate_limit", "rate": 0.5, "drop": True}, FRAMES)
    assert result.frame("cap")["value"].tolist() == [0.0]  # the rest arrive within 2 s
    assert result.stats("n")["counters"]["dropped"] == 4


def test_rate_limit_needs_a_rate() -> None:
    [problem] = check_text({"n": {"type": "delay", "mode": "rate_limit"}}).errors
    assert "rate" in problem.message

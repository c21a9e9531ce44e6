"""Batch: rows gathered by count or by time (arrival checks and a timer), flushed at the end."""

from __future__ import annotations

from flowengine.testing import run_flow
from tests.helpers.timed import Timed, through


def test_count_emits_exact_chunks_and_flushes_the_rest() -> None:
    frames = [[[i, "a", float(i)] for i in range(n0, n0 + 3)] for n0 in (0, 3, 6, 9)]  # 12 rows
    result = through({"type": "batch", "count": 5}, frames)
    sizes = [len(b) for b in result.batches("cap")]
    assert sizes == [5, 5, 2]
    assert result.frame("cap")["value"].tolist() == [float(i) for i in range(12)]


def test_timer_emits_a_quiet_input_before_the_stream_ends() -> None:
    # a source that sends 2 rows then stays open; only the timer can get them out
    flow = {
        "src": {"type": "inject", "rows": [{"value": 1.0}, {"value": 2.0}], "wires": ["b"]},
        "b": {"type": "batch", "interval": 0.05, "count": 100, "wires": ["cap"]},
        "cap": {"type": "capture"},
    }
    result = run_flow({**flow, "src": {**flow["src"], "interval": 60}}, duration=1.0)
    [batch] = result.batches("cap")
    assert batch.frame["value"].tolist() == [1.0, 2.0]
    # sent by the timer: after the interval, well before the flow stopped at 1 s (flush)
    waited = batch.created - batch.frame["timestamp"].iloc[0].timestamp()
    assert 0.04 <= waited <= 0.8


def test_rows_wait_for_the_interval_then_flush_at_the_end() -> None:
    frames = [[[0, "a", 1.0]], [[1, "a", 2.0]], [[2, "a", 3.0]]]
    flow = {
        "src": {"type": "timed", "frames": frames, "pause": 0.0, "wires": ["b"]},
        "b": {"type": "batch", "interval": 1000, "wires": ["cap"]},
        "cap": {"type": "capture"},
    }
    result = run_flow(flow, types={"timed": Timed})
    assert [len(b) for b in result.batches("cap")] == [3]  # one frame, at the end of the stream

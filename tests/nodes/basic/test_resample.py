"""Resample: per-sensor buckets, equal to pandas on the whole series whatever the batching."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from flowengine.testing import check_text
from tests.helpers.timed import T0, through

ROWS = [[0, "a", 1.0], [0.5, "b", 10.0], [1.2, "a", 3.0], [1.7, "a", 5.0], [2.1, "b", 20.0],
        [2.4, "a", 7.0], [3.9, "b", 30.0], [4.0, "a", 9.0]]  # fmt: skip


def reference(agg: str) -> list[list[Any]]:
    frame = pd.DataFrame(ROWS, columns=["s", "sensor", "value"])
    frame["timestamp"] = T0 + pd.to_timedelta(frame["s"], unit="s")
    out = frame.groupby(["sensor", frame["timestamp"].dt.floor("1s")])["value"].agg(agg)
    return [[k[1], k[0], v] for k, v in out.items()]


@pytest.mark.parametrize("agg", ["mean", "max", "last", "count"])
@pytest.mark.parametrize("cuts", [[8], [1, 7], [3, 3, 2], [1, 1, 1, 1, 1, 1, 1, 1]])
def test_matches_pandas_whatever_the_batch_boundaries(agg: str, cuts: list[int]) -> None:
    frames, i = [], 0
    for n in cuts:
        frames.append(ROWS[i : i + n])
        i += n
    result = through({"type": "resample", "freq": "1s", "agg": agg}, frames)
    got = result.frame("cap").sort_values(["sensor", "timestamp"])
    rows = got[["timestamp", "sensor", "value"]].values.tolist()
    assert rows == [[t, s, pytest.approx(v)] for t, s, v in reference(agg)]


def test_buckets_close_before_the_end_and_late_rows_are_dropped() -> None:
    frames = [[[0, "a", 1.0], [1.5, "a", 2.0]], [[0.5, "a", 100.0], [2.5, "a", 3.0]]]
    result = through({"type": "resample", "freq": "1s", "agg": "sum"}, frames)
    batches = [b.frame["value"].tolist() for b in result.batches("cap")]
    assert batches == [[1.0], [2.0], [3.0]]  # bucket 0 sent once bucket 1 began; last at flush
    assert result.stats("n")["counters"]["late"] == 1


def test_calendar_frequencies_are_refused() -> None:
    [problem] = check_text({"n": {"type": "resample", "freq": "1ME"}}).errors
    assert "fixed" in problem.message

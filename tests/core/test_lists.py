"""Batches made of plain lists (flowengine.lists) and the backlog a source can see."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from flowengine.context import Context
from flowengine.inbox import Wire
from flowengine.lists import Lists, utc_time
from flowengine.status import NodeStats
from flowengine.types import Batch

NS = [1_700_000_000_000_000_000, 1_700_000_000_123_456_789]


def _lists() -> Lists:
    data = {"timestamp": NS, "sensor": ["a", "b"], "value": [1.5, float("nan")], "n": [1, 2]}
    return Lists(data, 2, frozenset({"timestamp"}))


def test_the_frame_is_what_pandas_makes_of_the_lists_with_utc_times() -> None:
    frame = _lists().frame()
    expected = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(NS, unit="ns", utc=True),
            "sensor": ["a", "b"],
            "value": [1.5, float("nan")],
            "n": [1, 2],
        }
    )
    pd.testing.assert_frame_equal(frame, expected)
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_a_batch_of_lists_builds_its_frame_once_and_fans_out_lists() -> None:
    lists = _lists()
    batch = Batch(None, "t", "src", lists=lists)
    assert len(batch) == 2 and "as lists" in repr(batch)
    frame = batch.frame
    assert batch.frame is frame  # built once
    first = batch.for_wire("src", "in", first=True)
    other = batch.for_wire("src", "in", first=False)
    assert first.lists is lists and other.lists is lists  # shared, read-only
    assert first.frame is frame and other.frame is not frame  # each other builds its own
    pd.testing.assert_frame_equal(other.frame, frame)
    batch.frame = frame.iloc[:1]
    assert batch.lists is None and len(batch) == 1  # a frame set replaces the lists


def _context(outputs: dict[str, list[Wire]]) -> Context:
    return Context(
        "src",
        stats=NodeStats("src", "t", "source"),
        outputs=outputs,
        sender=None,  # type: ignore[arg-type]
        log=logging.LoggerAdapter(logging.getLogger("test")),
        flow_dir=Path(),
    )


def test_backlog_is_the_most_batches_waiting_on_any_wire_of_the_port() -> None:
    a, b = Wire("src", "out", "x", "in", 8), Wire("src", "out", "y", "in", 8)
    ctx = _context({"out": [a, b]})
    assert ctx.backlog() == 0 and ctx.backlog("error") == 0  # unwired: nothing waits
    batch = Batch(pd.DataFrame({"v": [1]}))
    b.items.extend([batch, batch])
    a.items.append(batch)
    assert ctx.backlog("out") == 2
    b.items.clear()
    assert ctx.backlog("out") == 1


plain = st.one_of(
    st.lists(st.floats(allow_nan=True), min_size=3, max_size=3),
    st.lists(st.integers(-(2**70), 2**70), min_size=3, max_size=3),
    st.lists(st.booleans(), min_size=3, max_size=3),
    st.lists(st.text(max_size=3), min_size=3, max_size=3),
    st.lists(st.one_of(st.none(), st.integers(), st.floats(), st.text()), min_size=3, max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "value", "sensor"]), plain, min_size=1))
def test_columns_of_lists_hold_what_their_frame_holds(data: dict[str, list[object]]) -> None:
    data = {"timestamp": [*NS, NS[0]], **data}
    lists = Lists(data, 3, frozenset({"timestamp"}))
    columns = lists.columns()
    if columns is None:  # a column pandas reads its own way: the batch keeps to the frame
        kinds = [set(map(type, v)) for k, v in data.items() if k != "timestamp"]
        assert any(len(k) > 1 or not k <= {float, int, bool, str} for k in kinds) or any(
            isinstance(x, int) and not -(2**63) <= x < 2**63 for v in data.values() for x in v
        )
        return
    pd.testing.assert_frame_equal(columns.frame(), lists.frame())


def test_a_batch_of_lists_offers_columns_to_the_built_in_nodes() -> None:
    batch = Batch(None, lists=_lists())
    assert batch.columns is not None and batch.columns is batch.columns  # converted once
    pd.testing.assert_frame_equal(batch.frame, _lists().frame())
    copy = batch.for_wire("src", "in", first=False)
    assert copy.columns is batch.columns  # shared with the lists
    mixed = Batch(None, lists=Lists({"v": [1, "x"]}, 2))
    assert mixed.columns is None and mixed.frame["v"].tolist() == [1, "x"]


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2**63) + 1, 2**63 - 1))
def test_one_utc_time_is_the_timestamp_pandas_makes(ns: int) -> None:
    made, expected = utc_time(ns), pd.Timestamp(ns, tz="UTC")
    assert made == expected and made.value == ns
    assert made.tz == expected.tz and made.unit == expected.unit
    assert made.isoformat() == expected.isoformat()

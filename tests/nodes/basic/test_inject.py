"""Inject: fixed rows once, `count` times, on an interval or a cron schedule."""

from __future__ import annotations

import asyncio
import logging
import re
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from flowengine.clock import FakeClock
from flowengine.context import Context
from flowengine.metrics import NodeStats
from flowengine.nodes.basic.inject import Inject, InjectConfig, _parse_times
from flowengine.problems import FlowError
from flowengine.testing import check_text, run_flow

ROWS = [{"sensor": "a", "value": 1.5}, {"sensor": "b", "value": 2.5}]


def inject(**config: object) -> dict[str, object]:
    return {"src": {"type": "inject", **config, "wires": ["cap"]}, "cap": {"type": "capture"}}


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line of ``text`` containing ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_rows_emitted_count_times() -> None:
    result = run_flow(inject(rows=ROWS, count=3))
    batches = result.batches("cap")
    assert len(batches) == 3
    for batch in batches:
        assert batch.frame[["sensor", "value"]].to_dict("records") == ROWS
        assert batch.origin == "src"


def test_default_fires_once_and_the_flow_ends_by_itself() -> None:
    result = run_flow(inject(rows=ROWS), duration=10)
    assert len(result.batches("cap")) == 1
    assert not result.runtime.stopping  # ended because the source finished, not the timer
    assert result.report.drained


def test_missing_timestamp_is_the_firing_time_in_utc() -> None:
    before = pd.Timestamp.now(tz="UTC")
    result = run_flow(inject(rows=ROWS))
    after = pd.Timestamp.now(tz="UTC")
    frame = result.frame("cap")
    assert list(frame.columns) == ["timestamp", "sensor", "value"]
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["timestamp"].between(before, after).all()


def test_given_timestamps_are_parsed_to_utc() -> None:
    given = ["2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00.250Z", "2024-05-01 09:00"]
    rows = [{"timestamp": ts, "value": float(i)} for i, ts in enumerate(given)]
    frame = run_flow(inject(rows=rows)).frame("cap")
    assert str(frame["timestamp"].dt.tz) == "UTC"
    expected = [
        pd.Timestamp("2024-05-01T10:00:00Z"),
        pd.Timestamp("2024-05-01T10:00:00.250Z"),
        pd.Timestamp("2024-05-01T09:00:00Z"),  # naive text is taken as UTC
    ]
    assert frame["timestamp"].tolist() == expected
    assert frame["value"].tolist() == [0.0, 1.0, 2.0]


def test_a_row_without_timestamp_gets_the_firing_time() -> None:
    before = pd.Timestamp.now(tz="UTC")
    rows = [{"timestamp": "2024-05-01T10:00:00Z", "value": 1.0}, {"value": 2.0}]
    frame = run_flow(inject(rows=rows)).frame("cap")
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-05-01T10:00:00Z")
    assert frame["timestamp"].iloc[1] >= before


def test_topic_travels_with_each_batch() -> None:
    result = run_flow(inject(topic="setpoints", count=2))
    assert [b.topic for b in result.batches("cap")] == ["setpoints", "setpoints"]


def test_interval_spaces_the_firings() -> None:
    interval = 0.01
    result = run_flow(inject(rows=ROWS[:1], interval=interval, count=3))
    stamps = result.frame("cap")["timestamp"]
    gaps = stamps.diff().dropna().dt.total_seconds()
    assert len(stamps) == 3
    # asyncio may wake a timer up to its clock resolution early; allow a millisecond
    assert (gaps >= interval - 0.001).all()


def test_once_false_waits_one_interval_before_the_first_firing() -> None:
    interval = 0.05
    start = pd.Timestamp.now(tz="UTC")
    result = run_flow(inject(rows=ROWS[:1], interval=interval, count=1, once=False))
    first = result.frame("cap")["timestamp"].iloc[0]
    assert first >= start + pd.Timedelta(seconds=interval - 0.001)


def test_interval_and_cron_together_are_rejected() -> None:
    checked = check_text(inject(interval=5, cron="*/5 * * * *"))
    assert not checked.ok
    assert any("either 'interval' or 'cron'" in p.message for p in checked.errors)
    with pytest.raises(FlowError, match="interval"):
        run_flow(inject(interval=5, cron="*/5 * * * *"))


def test_invalid_cron_is_a_located_error_naming_the_field() -> None:
    text = textwrap.dedent(
        """\
        version: 1
        nodes:
          tick:
            type: inject
            cron: "61 * * * *"
            wires: [cap]
          cap:
            type: capture
        """
    )
    checked = check_text(text, path="flows/tick.yaml")
    [problem] = checked.errors
    assert problem.node == "tick"
    assert "cron" in problem.message and "61 * * * *" in problem.message
    line = line_of(text, "cron:")
    assert re.fullmatch(rf"flows/tick\.yaml:{line}:\d+: node 'tick': .*cron.*", str(problem))


@pytest.mark.parametrize("bad", ["yesterday", 1714557600])
def test_unparseable_timestamp_is_a_validation_error(bad: object) -> None:
    checked = check_text(inject(rows=[{"timestamp": bad, "value": 1.0}]))
    [problem] = checked.errors
    assert problem.node == "src"
    assert "timestamp" in problem.message and str(bad) in problem.message


@pytest.mark.parametrize(
    "rows",
    [
        [{"sensor": "a", "value": 1.5, "n": 1, "ok": True, "note": None}, {"sensor": "b"}],
        [{"timestamp": "2026-01-02T03:04:05+01:00", "value": 1}, {"value": 2.5}],
        [{"sensor": "a", "tags": ["x"], "at": {"k": 1}}],
    ],
)
def test_rows_leave_as_columns_that_build_the_frame_the_rows_make(
    rows: list[dict[str, object]],
) -> None:
    """Downstream built-in nodes then work without a DataFrame; anyone else gets the frame
    inject always made."""
    clock = FakeClock("2026-03-01T00:00:00Z")
    ctx = Context(
        "src",
        stats=NodeStats("src", "inject", "source"),
        outputs={},
        sender=None,  # type: ignore[arg-type]
        log=logging.LoggerAdapter(logging.getLogger("test")),
        flow_dir=Path(),
        clock=clock,
    )
    node = Inject(InjectConfig(rows=rows, topic="t"), ctx)
    asyncio.run(node.start())
    batch = node._rows()
    expected = pd.DataFrame(rows)
    if "timestamp" in expected:
        expected["timestamp"] = _parse_times(expected["timestamp"], clock.now())
    else:
        expected.insert(0, "timestamp", clock.now())
    assert batch.columns is not None and len(batch) == len(rows)
    assert (batch.topic, batch.origin, batch.created) == ("t", "src", clock.time())
    pd.testing.assert_frame_equal(batch.frame, expected, check_exact=True)
    assert batch.frame.columns.dtype == expected.columns.dtype


def test_once_false_without_a_schedule_fires_only_from_the_button() -> None:
    """Node-RED's inject without repeat: never by itself (an hour of fake time), once per
    button press (``Runtime.fire``), and the flow keeps running and stops cleanly."""
    from flowengine.harness import FlowHarness

    flow = inject(rows=ROWS, once=False)
    flow["cap"] = {"type": "debug", "rows": 10}

    async def main() -> tuple[int, int, list[int], bool]:
        async with FlowHarness(
            check_text(flow), clock=FakeClock("2026-03-02T00:00:00Z"), feeders={}
        ) as h:
            await h.advance(3600)
            before = len(h.inputs("cap"))
            await h.runtime.fire("src")
            await h.runtime.fire("src")
            await h.settle()
            sizes = [len(f) for f in h.inputs("cap")]
            running = h.runtime.running and h.runtime.stats["src"].state == "ok"
            status = h.runtime.stats["src"].text
        assert h.report is not None and h.report.drained
        return before, len(sizes), sizes, running and "button" in status

    before, after, sizes, running = asyncio.run(asyncio.wait_for(main(), 30))
    assert before == 0
    assert after == 2 and sizes == [2, 2]
    assert running

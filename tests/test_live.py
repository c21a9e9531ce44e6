"""The status display of `flowengine run`: the live table and the plain status lines."""

from __future__ import annotations

import asyncio
import logging

from rich.console import Console

from flowengine.live import RateMeter, log_status, status_table
from flowengine.testing import run_flow


def finished_flow():
    return run_flow(
        {
            "src": {"type": "inject", "rows": [{"sensor": "a", "value": 1}] * 3, "count": 2,
                    "wires": ["f"]},
            "f": {"type": "filter", "query": "value > 5", "wires": ["cap"]},
            "cap": {"type": "capture"},
        }
    )  # fmt: skip


def test_table_shows_every_node_with_its_counts_and_queues():
    result = finished_flow()
    console = Console(record=True, width=140)
    console.print(status_table(result.runtime, RateMeter()))
    text = console.export_text()
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 5}
    assert set(rows) == {"src", "f", "cap"}
    src = [c.strip() for c in rows["src"].split("│")]
    assert src[2:6] == ["inject", "stopped", "0", "6"]  # type, state, rows in, rows out
    f = [c.strip() for c in rows["f"].split("│")]
    assert f[4:6] == ["6", "0"] and f[8] == "0/8"  # all filtered out; its queue, empty


def test_rate_meter_reports_rows_per_second_between_snapshots(monkeypatch):
    clock = iter([100.0, 102.0])
    monkeypatch.setattr("flowengine.live.time.monotonic", lambda: next(clock))
    meter = RateMeter()
    assert meter.rate("a", 50) == 0.0
    assert meter.rate("a", 250) == 100.0


def test_plain_status_line_lists_each_node(caplog):
    result = finished_flow()

    async def one_line() -> None:
        task = asyncio.create_task(log_status(result.runtime, 0.01))
        while not any("status:" in r.message for r in caplog.records):
            await asyncio.sleep(0.005)
        task.cancel()

    with caplog.at_level(logging.INFO, logger="flowengine.status"):
        asyncio.run(asyncio.wait_for(one_line(), 10))
    line = next(r.message for r in caplog.records if "status:" in r.message)
    assert line.startswith("status: src=stopped 0 rows/s; f=stopped") and "cap=stopped" in line

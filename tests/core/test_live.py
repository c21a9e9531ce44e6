"""The status display of `flowengine run`: the live table and the plain status lines."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from flowengine.live import log_status, status_table
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


def first_status_line(runtime: Any, caplog: Any) -> str:
    """Run the plain status logger until it writes one line; return that line."""

    async def one_line() -> None:
        task = asyncio.create_task(log_status(runtime, 0.01))
        while not any("status:" in r.message for r in caplog.records):
            await asyncio.sleep(0.005)
        task.cancel()

    with caplog.at_level(logging.INFO, logger="flowengine.status"):
        asyncio.run(asyncio.wait_for(one_line(), 10))
    return next(r.message for r in caplog.records if "status:" in r.message)


def test_table_shows_every_node_with_its_counts_and_queues():
    result = finished_flow()
    console = Console(record=True, width=140)
    console.print(status_table(result.runtime))
    text = console.export_text()
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 5}
    assert set(rows) == {"src", "f", "cap"}
    src = [c.strip() for c in rows["src"].split("│")]
    assert src[2:6] == ["inject", "stopped", "0", "6"]  # type, state, rows in, rows out
    f = [c.strip() for c in rows["f"].split("│")]
    assert f[4:6] == ["6", "0"] and f[8] == "0/8"  # all filtered out; its queue, empty


def test_table_and_status_line_show_each_nodes_own_rate(monkeypatch, caplog):
    result = finished_flow()
    clock = SimpleNamespace(monotonic=lambda: 1000.0, time=time.time)  # stats' clock only
    monkeypatch.setattr("flowengine.status.time", clock)
    result.runtime.stats["src"].samples = deque([(998.0, 0)])  # 6 rows out in 2 s
    console = Console(record=True, width=140)
    console.print(status_table(result.runtime))
    src = next(ln for ln in console.export_text().splitlines() if ln.startswith("│ src"))
    assert [c.strip() for c in src.split("│")][6] == "3"

    line = first_status_line(result.runtime, caplog)
    assert line.startswith("status: src=stopped 3 rows/s;")


def test_plain_status_line_lists_each_node(caplog):
    result = finished_flow()

    line = first_status_line(result.runtime, caplog)
    assert re.fullmatch(
        r"status: src=stopped \d+ rows/s; f=stopped \d+ rows/s; cap=stopped 0 rows/s", line
    )

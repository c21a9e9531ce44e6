"""The status display of `flowengine run`: the live table and the plain status lines."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from flowengine.live import log_status, status_part, status_table
from flowengine.node import NodeConfig, Sink
from flowengine.runtime import Runtime
from flowengine.status import NodeStats, OnDisk, human_age
from flowengine.testing import check_text, run_flow
from flowengine.types import Batch


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


class Down(Sink[NodeConfig]):
    """A database that refuses every connection: its batches wait in the buffer."""

    def write(self, batch: Batch) -> None:
        raise ConnectionRefusedError("db down")


def buffering_flow(tmp_path: Path, buffer: str) -> Runtime:
    text = f"""
version: 1
settings: {{drain_timeout: 0.5}}
nodes:
  src: {{type: inject, rows: [{{v: 1}}], interval: 0.005, count: 100000, wires: [db]}}
  db: {{type: down, retry: {{initial: 0.01, max: 0.05}}, buffer: {buffer}}}
"""
    return Runtime(check_text(text, types={"down": Down}, path=tmp_path / "f.yaml"))


async def until(check: Any) -> None:
    async with asyncio.timeout(20):
        while not check():
            await asyncio.sleep(0.01)


def table_cells(runtime: Runtime) -> dict[str, list[str]]:
    """The table's cells by node id ("node" for the header line)."""
    console = Console(record=True, width=200)
    console.print(status_table(runtime))
    cells = [re.split("[│┃]", ln)[1:-1] for ln in console.export_text().splitlines()]
    return {row[0].strip(): [c.strip() for c in row] for row in cells if len(row) > 5}


def test_a_sinks_buffer_shows_in_the_table_and_the_status_line(tmp_path, caplog):
    runtime = buffering_flow(tmp_path, "{max_bytes: 4000}")  # fills up: the flow is held back
    db = runtime.stats.get

    async def main() -> tuple[dict[str, list[str]], str, str]:
        task = asyncio.create_task(runtime.run())
        await until(lambda: db("db") is not None and db("db").warning == "buffer full")
        rows, part = table_cells(runtime), status_part(runtime.stats["db"])  # no await between
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="flowengine.status"):
            logger = asyncio.create_task(log_status(runtime, 0.01))
            await until(lambda: any("status:" in r.message for r in caplog.records))
            logger.cancel()
        runtime.stop()
        await asyncio.wait_for(task, 20)
        return rows, part, next(r.message for r in caplog.records if "status:" in r.message)

    rows, part, line = asyncio.run(main())
    assert rows["node"][-2:] == ["on disk", "status"]
    assert rows["src"][-2] == "-"  # no buffer of its own
    assert re.fullmatch(r"[\d,]+ rows, \d+\.\d kB, \d+s", rows["db"][-2])
    assert re.fullmatch(
        r"db=retrying \d+ rows/s, [\d,]+ rows buffered \(\d+\.\d kB, oldest \d+s\) \[buffer full\]",
        part,
    ), part
    assert re.search(  # the forwarder's retries and the full buffer take turns in the text
        r"; db=retrying \d+ rows/s, [\d,]+ rows buffered \(\d+\.\d kB, oldest \d+s\) "
        r"\[(buffer full|sink unavailable, buffering)\]$",
        line,
    ), line
    disk = runtime.stats["db"].on_disk()
    assert disk is not None and disk.kind == "buffer" and disk.rows > 0  # kept for next start


def test_no_on_disk_column_without_buffers_and_ages_that_go_on(monkeypatch):
    result = finished_flow()
    assert "on disk" not in table_cells(result.runtime)["node"]
    stats = NodeStats("db", "down", "sink", state="retrying", text="sink unavailable")
    stats.counters.update(buffered_batches=3, buffered_rows=1234, buffered_bytes=2_100_000)
    stats.counters["buffered_oldest"] = 4965
    clock = SimpleNamespace(monotonic=time.monotonic, time=lambda: 5000.0)
    monkeypatch.setattr("flowengine.status.time", clock)
    assert stats.on_disk() == OnDisk("buffer", 3, 1234, 2_100_000, 35.0)
    clock.time = lambda: 5010.0  # the counters stand still (no batch came or went): 10 s later
    disk = stats.on_disk()
    assert disk is not None and disk.age_s == 45.0
    assert disk.describe() == "1,234 rows buffered (2.1 MB, oldest 45s)"
    assert stats.warning == "sink unavailable, buffering"  # a sink down with a backlog
    snap = stats.snapshot()
    assert snap["on_disk"] == disk.as_dict() and snap["warning"] == stats.warning
    stats.set_state("ok", "")
    assert stats.warning is None and stats.snapshot()["warning"] is None
    journal = NodeStats("src", "mqtt", "source", counters={"journal_batches": 2, "journal_rows": 9})
    journal.counters["journal_bytes"] = 512
    assert journal.on_disk() == OnDisk("journal", 2, 9, 512, None)
    assert journal.on_disk().describe() == "9 rows journaled (512 B)"  # type: ignore[union-attr]
    journal.set_state("retrying", "journal /x/j.db: full (512 of 500 bytes): holding back")
    assert journal.warning == "journal full"
    assert [human_age(s) for s in (59, 250, 7500, 277200)] == ["59s", "4m10s", "2h05m", "3d05h"]

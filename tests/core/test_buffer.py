"""Store-and-forward: a sink that is down holds nothing up; its batches wait on disk, in order."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from flowengine.journal import Journal
from flowengine.node import Done, NodeConfig, Sink, Source, option
from flowengine.runtime import Runtime
from flowengine.testing import check_text, run_flow
from flowengine.types import Batch


class RowsConfig(NodeConfig):
    batches: int = option(40, description="Batches to emit.")


class Rows(Source[RowsConfig]):
    """Batch i holds seq i."""

    async def start(self) -> None:
        self.n = 0

    async def read(self) -> pd.DataFrame:
        if self.n >= self.config.batches:
            raise Done
        self.n += 1
        await asyncio.sleep(0)
        return pd.DataFrame({"seq": [self.n - 1]})


class Dest(Sink[NodeConfig]):
    """A destination that is down until ``up`` is set, and refuses seq 13 as bad data."""

    up: ClassVar[threading.Event] = threading.Event()
    got: ClassVar[list[int]] = []
    refused: ClassVar[list[int]] = []

    def write(self, batch: Batch) -> None:
        if not Dest.up.is_set():
            raise ConnectionRefusedError("destination down")
        seq = int(batch.frame["seq"].iloc[0])
        if seq == 13:
            Dest.refused.append(seq)
            raise ValueError("seq 13 is not accepted")
        Dest.got.append(seq)


TYPES: dict[str, Any] = {"rows": Rows, "dest": Dest}


def flow(batches: int = 40, buffer: str = "{}", errors: bool = True) -> str:
    err = "wires: {error: [bad]}" if errors else ""
    return f"""
version: 1
settings: {{drain_timeout: 5}}
nodes:
  src: {{type: rows, batches: {batches}, wires: [db]}}
  db:
    type: dest
    queue_size: 2
    retry: {{initial: 0.01, max: 0.05}}
    buffer: {buffer}
    {err}
  bad: {{type: capture}}
"""


def reset() -> None:
    Dest.up.clear()
    Dest.got.clear()
    Dest.refused.clear()


def test_a_down_sink_holds_nothing_up_and_gets_everything_in_order(tmp_path: Path) -> None:
    reset()
    runtime = Runtime(check_text(flow(), types=TYPES, path=tmp_path / "f.yaml"))

    async def main() -> None:
        task = asyncio.create_task(runtime.run())
        async with asyncio.timeout(30):  # the source ends while the sink is still down
            while runtime.stats["src"].state != "stopped":
                await asyncio.sleep(0.01)
        assert Dest.got == [] and runtime.stats["db"].counters["buffered_batches"] > 2
        Dest.up.set()
        report = await asyncio.wait_for(task, 30)
        assert report.drained

    asyncio.run(main())
    assert Dest.got == [s for s in range(40) if s != 13]  # in order, none lost
    bad = runtime.node("bad").batches  # type: ignore[attr-defined]
    assert [int(b.frame["seq"].iloc[0]) for b in bad] == [13] and "not accepted" in bad[0].error
    assert runtime.stats["db"].counters["buffered_batches"] == 0
    assert runtime.stats["db"].errors >= 2  # the outage was counted, and the bad batch


def test_what_is_buffered_at_a_stop_is_forwarded_after_the_next_start(tmp_path: Path) -> None:
    reset()
    path = tmp_path / "f.yaml"
    first = run_flow(flow(10, errors=False), types=TYPES, path=path)  # the sink stays down
    assert Dest.got == [] and first.stats("db")["counters"]["buffered_batches"] == 10
    buffer = tmp_path / ".flowengine" / "f" / "buffer-db.db"
    assert Journal(buffer).stats.batches == 10  # on disk, not lost
    Dest.up.set()
    run_flow(flow(0, errors=False), types=TYPES, path=path)
    assert Dest.got == list(range(10)) and Journal(buffer).stats.batches == 0


def test_a_full_buffer_blocks_the_flow_or_drops_the_oldest(tmp_path: Path) -> None:
    reset()
    small = "{max_bytes: 3000, when_full: drop_oldest}"
    result = run_flow(flow(40, small, errors=False), types=TYPES, path=tmp_path / "d.yaml")
    stats = result.stats("db")
    assert 0 < stats["counters"]["buffered_batches"] < 40 and stats["errors"] > 0
    assert stats["counters"]["dropped_batches"] + stats["counters"]["buffered_batches"] == 40
    reset()
    runtime = Runtime(
        check_text(flow(40, "{max_bytes: 3000}", False), types=TYPES, path=tmp_path / "b.yaml")
    )

    async def main() -> None:
        task = asyncio.create_task(runtime.run())
        async with asyncio.timeout(30):  # full: the sink shows it and the source waits
            while "buffer full" not in str(runtime.stats["db"].snapshot()["text"]):
                await asyncio.sleep(0.01)
        assert runtime.stats["src"].state != "stopped"
        Dest.up.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    assert Dest.got == [s for s in range(40) if s != 13]  # block: nothing dropped


def test_buffer_is_for_sinks_and_its_size_is_checked() -> None:
    text = flow().replace(
        "  src: {type: rows, batches: 40, wires: [db]}",
        "  src: {type: rows, buffer: {}, wires: [db]}",
    )
    checked = check_text(text, types=TYPES)
    assert any("'buffer' is for sinks" in str(p) for p in checked.errors)
    checked = check_text(flow(buffer="{max_bytes: lots}"), types=TYPES)
    assert any("not a size" in str(p) for p in checked.errors)


class Unstartable(Dest):
    """A destination that cannot even be connected to until ``up`` is set."""

    async def start(self) -> None:
        if not Dest.up.is_set():
            raise ConnectionRefusedError("destination down at start-up")


def test_a_sink_that_cannot_connect_at_start_up_holds_nothing_up(tmp_path: Path) -> None:
    reset()
    text = flow(errors=False).replace("type: dest", "type: unstartable")
    runtime = Runtime(
        check_text(text, types={**TYPES, "unstartable": Unstartable}, path=tmp_path / "u.yaml")
    )

    async def main() -> None:
        task = asyncio.create_task(runtime.run())
        async with asyncio.timeout(30):  # the source ends though the sink never connected yet
            while runtime.stats["src"].state != "stopped":
                await asyncio.sleep(0.01)
        assert runtime.stats["db"].counters["buffered_batches"] > 2
        Dest.up.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    assert Dest.got == [s for s in range(40) if s != 13]

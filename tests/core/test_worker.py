"""``--worker I/N`` in the core: one flow per owned partition, states kept per partition in a
store another host could read (here: files), moved with the partition when N changes; a
worker whose N differs from live peers' refused; ``Source.committed`` after each saved
checkpoint; lag per partition on /metrics and in the live table. The partitioned source is a
test type with a file registry; the NATS family's is tested in tests/nodes/nats."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry
from rich.console import Console

from flowengine.checkpoint import CheckpointStore, FileBackend, open_backend
from flowengine.live import status_table
from flowengine.metrics import RuntimeCollector
from flowengine.node import Done, NodeConfig, Source, option
from flowengine.runtime import Runtime
from flowengine.testing import check_text
from flowengine.validate import CheckedFlow
from flowengine.worker import Worker, WorkerRefused, parse_worker
from tests.helpers.cli import flowengine


class PartsConfig(NodeConfig):
    partitions: int = option(4, description="Partitions of the fake stream.")
    rows: int = option(6, description="Rows per partition, then the end.")
    only: list[int] | None = option(None, description="The partitions read (None: all).")
    folder: str = option(description="Where the registry of workers lives.")


class Parts(Source[PartsConfig]):
    """Rows `{part, seq}` of each partition it reads, one per read; where it is per partition
    is its state, so it replays from a checkpoint (no journal)."""

    replayable = True
    state_attrs = ("done",)
    committed_log: ClassVar[list[tuple[bool, dict[int, int]]]] = []

    async def start(self) -> None:
        self.done: dict[int, int] = {}
        self.closed = False

    async def read(self) -> pd.DataFrame:
        cfg = self.config
        for p in cfg.only if cfg.only is not None else range(cfg.partitions):
            n = self.done.get(p, 0)
            if n < cfg.rows:
                await asyncio.sleep(0.002)
                self.done = {**self.done, p: n + 1}
                self.ctx.stats.counters[f"lag_p{p}"] = cfg.rows - n - 1
                return pd.DataFrame({"part": [p], "seq": [n]})
        raise Done

    async def committed(self, state: Any) -> None:
        Parts.committed_log.append((self.closed, dict(state["done"])))

    async def close(self) -> None:
        self.closed = True

    @classmethod
    def partitioning(cls, config: PartsConfig) -> FakePartitioning:
        return FakePartitioning(config)


class FakePartitioning:
    """A registry of workers in a JSON file, stores as files: what a family provides."""

    lease = 0.2

    def __init__(self, cfg: PartsConfig) -> None:
        self.cfg = cfg
        self.registry = Path(cfg.folder) / "workers.json"
        self.beats = 0

    async def open(self) -> int:
        return self.cfg.partitions

    def narrow(self, partition: int) -> PartsConfig:
        return self.cfg.model_copy(update={"only": [partition]})

    def store(self, key: str) -> FileBackend:
        return FileBackend(Path(self.cfg.folder) / "store" / key)

    def _peers(self) -> dict[str, Any]:
        return json.loads(self.registry.read_text()) if self.registry.exists() else {}

    async def join(self, group: str, index: int, count: int) -> None:
        peers = self._peers()
        if other := [k for k, v in peers.items() if v["count"] != count]:
            raise WorkerRefused(f"worker {index}/{count} refused: {other} run with another N")
        self.key = str(index)
        self.registry.write_text(json.dumps({**peers, self.key: {"count": count}}))

    async def beat(self) -> None:
        self.beats += 1

    async def leave(self) -> None:
        peers = self._peers()
        peers.pop(self.key, None)
        self.registry.write_text(json.dumps(peers))

    async def close(self) -> None:
        pass


TYPES: dict[str, Any] = {"parts": Parts}


def flow_text(folder: Path, rows: int = 6, checkpoint: str = "50ms") -> str:
    return f"""
version: 1
settings: {{checkpoint: {checkpoint}}}
nodes:
  src: {{type: parts, rows: {rows}, folder: '{folder}', wires: [cap, out]}}
  cap: {{type: capture}}
  out: {{type: file, path: 'out-${{FLOWENGINE_PARTITION:-all}}.jsonl'}}
"""


def worker(tmp_path: Path, index: int, count: int, rows: int = 6) -> Worker:
    path = tmp_path / "parts.yaml"
    text = flow_text(tmp_path, rows)

    def load(extra: Mapping[str, str]) -> CheckedFlow:
        return check_text(text, types=TYPES, path=path, env=dict(extra))

    return Worker(load({}), load, index, count)


def captured(w: Worker) -> dict[int, list[tuple[int, int]]]:
    """What each partition's flow received, as (part, seq) rows."""
    out = {}
    for p, runtime in w.runtimes.items():
        batches = runtime.node("cap").batches  # type: ignore[attr-defined]
        out[p] = [(int(r.part), int(r.seq)) for b in batches for r in b.frame.itertuples()]
    return out


def test_worker_i_of_n_runs_one_flow_per_owned_partition(tmp_path: Path) -> None:
    w = worker(tmp_path, 1, 2)
    report = asyncio.run(w.run())
    assert report.drained
    assert w.partitions == [1, 3]
    assert captured(w) == {p: [(p, n) for n in range(6)] for p in (1, 3)}
    assert sorted(f.name for f in tmp_path.glob("out-*.jsonl")) == ["out-1.jsonl", "out-3.jsonl"]
    assert sorted(w.stats) == ["cap@p1", "cap@p3", "out@p1", "out@p3", "src@p1", "src@p3"]
    assert w.flow.name == "parts worker 1/2: partitions 1, 3"
    for p in (1, 3):  # each partition's checkpoint in the store, its local state apart
        saved = CheckpointStore(tmp_path, FileBackend(tmp_path / "store" / f"parts.p{p}")).load()
        assert saved is not None and saved.state_of("src", saved.configs["src"]) == {"done": {p: 6}}
        local = w.runtimes[p].flow.settings.state_dir  # journals and buffers, if any
        assert local == str(tmp_path / ".flowengine" / "parts" / f"p{p}")
    assert json.loads((tmp_path / "workers.json").read_text()) == {}  # left when done


def test_the_state_moves_with_the_partition_when_n_changes(tmp_path: Path) -> None:
    """Worker 0/2 ran partitions 0 and 2 to their end; started as the only worker (0/1),
    it restores those from the store and reads only what partitions 1 and 3 still have."""
    first = worker(tmp_path, 0, 2)
    asyncio.run(first.run())
    assert sorted(captured(first)) == [0, 2]
    alone = worker(tmp_path, 0, 1)
    asyncio.run(alone.run())
    got = captured(alone)
    assert got[0] == got[2] == []  # their state came from the store: nothing again
    assert got[1] == [(1, n) for n in range(6)] and got[3] == [(3, n) for n in range(6)]


def test_a_worker_whose_n_differs_from_live_peers_is_refused(tmp_path: Path) -> None:
    (tmp_path / "workers.json").write_text(json.dumps({"1": {"count": 3}}))
    with pytest.raises(WorkerRefused, match=r"worker 0/2 refused: \['1'\] run with another N"):
        asyncio.run(worker(tmp_path, 0, 2).run())
    with pytest.raises(WorkerRefused, match="5 workers for 4 partitions"):
        asyncio.run(worker(tmp_path, 0, 5).run())


def test_a_stop_before_the_partitions_start_ends_cleanly(tmp_path: Path) -> None:
    w = worker(tmp_path, 0, 2, rows=10_000)

    async def main() -> Any:
        task = asyncio.create_task(w.run())
        while not w.runtimes:
            await asyncio.sleep(0.01)
        w.stop()
        return await task

    assert asyncio.run(main()).drained
    assert all(len(rows) < 10_000 for rows in captured(w).values())


def test_parse_worker_and_the_cli_option() -> None:
    assert parse_worker("1/4") == (1, 4) and parse_worker(" 0 / 1 ") == (0, 1)
    for bad, why in [("2/2", "0 <= I < N"), ("0/0", "N >= 1"), ("a/b", "I/N, e.g. 0/2")]:
        with pytest.raises(ValueError, match=why):
            parse_worker(bad)
    done = flowengine("run", "missing.yaml", "--worker", "3/2", env={})
    assert done.returncode == 2
    env = {"FLOWENGINE_WORKER": "7", "PATH": ""}
    done = flowengine("run", __file__, env=env)
    assert done.returncode == 2 and "give the worker as I/N" in done.stderr
    assert "Traceback" not in done.stderr


def test_committed_hears_each_saved_state_after_its_save(tmp_path: Path) -> None:
    """The checkpoints' states reach ``committed`` in order, each once saved; the last one a
    clean stop saves reaches it after ``close``."""
    Parts.committed_log.clear()
    text = flow_text(tmp_path, rows=40, checkpoint="20ms").replace("wires: [cap, out]", "")
    runtime = Runtime(check_text(text, types=TYPES, path=tmp_path / "c.yaml"))
    report = asyncio.run(runtime.run())
    assert report.drained
    log = Parts.committed_log
    assert len(log) >= 2
    totals = [sum(done.values()) for _, done in log]
    assert totals == sorted(totals) and totals[-1] == 160
    assert log[-1][0] is True and not log[0][0]  # the final one after close


class Broken:
    where = "nowhere"

    def read(self) -> bytes | None:
        return None

    def write(self, data: bytes) -> None:
        raise ConnectionError("store away")

    def close(self) -> None:
        pass


def test_a_store_that_fails_is_logged_and_the_flow_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Parts.committed_log.clear()
    text = flow_text(tmp_path, rows=20, checkpoint="20ms")
    checked = check_text(text, types=TYPES, path=tmp_path / "b.yaml")
    with caplog.at_level(logging.ERROR):
        report = asyncio.run(Runtime(checked, checkpoint_store=Broken()).run())
    assert report.drained and report.errors == 0
    assert "not saved to nowhere: ConnectionError: store away" in caplog.text
    assert "the last checkpoint not saved to nowhere" in caplog.text
    assert Parts.committed_log == []  # nothing saved: nothing confirmed


def test_checkpoint_store_urls_by_scheme() -> None:
    with pytest.raises(ValueError, match=r"unknown scheme \(known: .*nats-kv://"):
        open_backend("s3://bucket/x", "flow")
    with pytest.raises(ValueError, match=r"needs settings\.checkpoint"):
        Runtime(check_text({"x": {"type": "capture"}}), checkpoint_store=Broken())


def test_lag_per_partition_on_metrics_and_in_the_live_table(tmp_path: Path) -> None:
    w = worker(tmp_path, 0, 2)
    asyncio.run(w.run())
    w.stats["src@p0"].counters.update({"lag_p0": 7, "lag": 7})
    registry = CollectorRegistry()
    registry.register(RuntimeCollector(w))
    text = generate_latest(registry).decode()
    assert 'flowengine_partition_lag{node="src@p0",partition="0"} 7.0' in text
    assert 'flowengine_node_rows_out_total{node="src@p2",type="parts"} 6.0' in text
    console = Console(width=200, record=True)
    console.print(status_table(w))
    shown = console.export_text()
    assert "parts worker 0/2: partitions 0, 2" in shown and "lag" in shown
    assert any("src@p0" in line and " 7 " in line for line in shown.splitlines())

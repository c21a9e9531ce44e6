"""``/metrics`` of a running flow: what a sink's store-and-forward buffer holds, and its warning."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path

from flowengine.metrics import MetricsServer
from flowengine.node import NodeConfig, Sink
from flowengine.runtime import Runtime
from flowengine.testing import check_text
from flowengine.types import Batch

FLOW = """
version: 1
settings: {drain_timeout: 0.5}
nodes:
  src: {type: inject, rows: [{v: 1}, {v: 2}], interval: 0.01, count: 100000, wires: [db]}
  db: {type: down, retry: {initial: 0.01, max: 0.05}, buffer: {}}
"""


class Down(Sink[NodeConfig]):
    """A database that refuses every connection: its batches wait in the buffer."""

    def write(self, batch: Batch) -> None:
        raise ConnectionRefusedError("db down")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def gauge(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.M)
    assert match, f"{name}{{{labels}}} not in:\n{text}"
    return float(match.group(1))


def test_metrics_show_what_a_down_sink_holds_on_disk(tmp_path: Path) -> None:
    runtime = Runtime(check_text(FLOW, types={"down": Down}, path=tmp_path / "f.yaml"))

    async def main() -> str:
        task = asyncio.create_task(runtime.run())
        server = MetricsServer(runtime, 0)
        await server.start()
        try:
            async with asyncio.timeout(20):
                while runtime.stats["db"].counters.get("buffered_rows", 0) < 6:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(1.1)  # the oldest batch is a second old
            return await asyncio.to_thread(scrape, server.port)
        finally:
            await server.close()
            runtime.stop()
            await asyncio.wait_for(task, 20)

    text = asyncio.run(main())
    key = 'kind="buffer",node="db"'
    assert gauge(text, "flowengine_node_buffered_rows", key) >= 6
    assert gauge(text, "flowengine_node_buffered_bytes", key) > 0
    assert gauge(text, "flowengine_node_buffer_oldest_seconds", key) >= 1.0
    assert gauge(text, "flowengine_node_warning", 'node="db",type="down"') == 1.0  # backlog
    assert gauge(text, "flowengine_node_warning", 'node="src",type="inject"') == 0.0
    assert 'flowengine_node_buffered_rows{kind="buffer",node="src"' not in text  # none of its own

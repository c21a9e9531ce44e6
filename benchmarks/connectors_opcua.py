"""OPC UA subscription throughput: values/s with 1,000 and 10,000 monitored items, and lag.

The server runs in another process (``flowengine simulate --opcua``: every sensor changes every
tick, with the tick's time as source timestamp). The client is the ``opcua_in`` node in
subscription mode inside a real Runtime, feeding a counting sink. For each item count this
reports the time to create the monitored items (in batches), values/s received against values/s
expected (items x rate), and the lag (arrival time minus source timestamp) in the first and last
third of the run: a last-third lag well above the first third means the client falls behind.

    python benchmarks/connectors_opcua.py                  # 1,000 and 10,000 items, 1 Hz, 30 s
    python benchmarks/connectors_opcua.py --items 1000 --seconds 10 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import pandas as pd

from flowengine.node import NodeConfig, Sink
from flowengine.runtime import Runtime
from flowengine.testing import check_text
from flowengine.types import Batch


class LagSink(Sink):
    """Counts values and records (arrival time, median lag) per batch."""

    samples: list[tuple[float, float, int]] = []

    def __init__(self, config: NodeConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        LagSink.samples = []

    def write(self, batch: Batch) -> None:
        now = pd.Timestamp.now(tz="UTC")
        lag = (now - batch.frame["timestamp"]).dt.total_seconds().median()
        LagSink.samples.append((time.monotonic(), float(lag), len(batch.frame)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the simulate server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("the simulate server did not start")


async def _measure(url: str, items: int, rate: float, seconds: float) -> dict[str, Any]:
    nodes = {f"ns=2;i={1001 + i}": f"s{i}" for i in range(items)}
    flow = {
        "src": {
            "type": "opcua_in",
            "server_url": url,
            "mode": "subscription",
            "nodes": nodes,
            "sampling_interval": 1.0 / rate,
            "queue_size": 2,
            "batch_interval": 0.5,
            "timeout": 30,
            "wires": ["sink"],
        },
        "sink": {"type": "lag"},
    }
    runtime = Runtime(check_text(flow, types={"lag": LagSink}))
    began = time.monotonic()
    task = asyncio.create_task(runtime.run())
    while runtime.stats["src"].state != "ok":
        if task.done():
            raise RuntimeError(f"flow ended: {runtime.snapshot()}")
        await asyncio.sleep(0.01)
    subscribed = time.monotonic() - began
    await asyncio.sleep(2.0)  # the initial values of every item arrive first
    first = len(LagSink.samples)
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    t1 = time.monotonic()
    samples = LagSink.samples[first:]
    runtime.stop()
    await task
    values = sum(n for _, _, n in samples)
    third = max(1, len(samples) // 3)
    lag_first = statistics.median(lag for _, lag, _ in samples[:third]) if samples else None
    lag_last = statistics.median(lag for _, lag, _ in samples[-third:]) if samples else None
    return {
        "items": items,
        "rate_hz": rate,
        "subscribe_s": round(subscribed, 2),
        "values_per_s": round(values / (t1 - t0)),
        "expected_per_s": round(items * rate),
        "lag_first_s": None if lag_first is None else round(lag_first, 3),
        "lag_last_s": None if lag_last is None else round(lag_last, 3),
        "errors": runtime.stats["src"].errors,
    }


def run(items: int, rate: float, seconds: float) -> dict[str, Any]:
    port = _free_port()
    cmd = [sys.executable, "-m", "flowengine.cli", "simulate", "--opcua", f"127.0.0.1:{port}"]
    cmd += ["--rate", str(rate), "--sensors", str(items)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc)
        return asyncio.run(_measure(f"opc.tcp://127.0.0.1:{port}", items, rate, seconds))
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--rate", type=float, default=1.0, help="Updates per second per item.")
    parser.add_argument("--seconds", type=float, default=30.0, help="Measured seconds per run.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [run(n, args.rate, args.seconds) for n in args.items]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("items   subscribe  values/s  expected  lag first  lag last  errors")
    for r in results:
        print(
            f"{r['items']:>6}  {r['subscribe_s']:>8.2f}s  {r['values_per_s']:>8}  "
            f"{r['expected_per_s']:>8}  {r['lag_first_s']:>8}s  {r['lag_last_s']:>7}s  "
            f"{r['errors']:>6}"
        )


if __name__ == "__main__":
    main()

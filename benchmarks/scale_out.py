"""Scale-out: rows/s of the same partitioned analytics flow with 1 and then 2 worker processes.

One run, side by side: an ingest flow publishes ``--ticks`` ticks of ``--lines`` simulated lines
(one reading per line per tick, long format) to a JetStream stream with 8 partitions by line;
then the analytics flow (``nats_in`` -> 10 s windows per line -> alert -> SQLite per partition)
runs as 1 worker and then as 2 (``flowengine run --worker I/N``, each a process of its own),
reading the whole stream from the start. For each, the rows/s from the first row to the last
(scraped from each worker's ``/metrics``), the largest consumer lag seen, and the CPU seconds of
each worker process. NATS, the workers and this script share the machine's cores.

    python benchmarks/scale_out.py [--lines 100] [--ticks 1200] [--nats nats://127.0.0.1:4222]

Needs a NATS server with JetStream and ``flowengine[nats]``. Streams and buckets it makes are
deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pandas as pd

from flowengine.node import Done, NodeConfig, Source, option
from flowengine.testing import run_flow

T0 = pd.Timestamp("2026-03-02T00:00:00Z")

ANALYTICS = """
version: 1
name: {name}
settings: {{checkpoint: 1s, retry: {{initial: 0.2, max: 1}}}}
nodes:
  bus:
    type: nats_in
    servers: {url}
    stream: {stream}
    subject: {subject}
    durable: {name}
    state_bucket: {name}_state
    fetch_batch: 100
    max_ack_pending: 100000
    wires: [win]
  win: {{type: window, size: 10s, key: line, aggregations: [count, mean, max], lateness: 60s,
         wires: [windows, hot]}}
  hot: {{type: alert, column: value_max, raise_at: 90, clear_at: 75, key: [line], wires: [alerts]}}
  windows:
    type: sql_out
    connection_string: "sqlite:///windows-${{FLOWENGINE_PARTITION:-all}}.db"
    table: windows
  alerts:
    type: sql_out
    connection_string: "sqlite:///alerts-${{FLOWENGINE_PARTITION:-all}}.db"
    table: alerts
"""


class PlantConfig(NodeConfig):
    lines: int = option(100, description="Lines.")
    ticks: int = option(1200, description="Ticks (one reading per line each).")


class Plant(Source[PlantConfig]):
    """One reading per line per tick: a slow sine per line, so windows and alerts have work."""

    async def start(self) -> None:
        self.k = 0
        self.names = [f"L{i:03d}" for i in range(self.config.lines)]

    async def read(self) -> pd.DataFrame:
        if self.k >= self.config.ticks:
            raise Done
        k, self.k = self.k, self.k + 1
        n = len(self.names)
        return pd.DataFrame(
            {
                "timestamp": [T0 + pd.Timedelta(seconds=k)] * n,
                "line": self.names,
                "sensor": "temp",
                "value": [60 + 35 * math.sin(2 * math.pi * (k + 7 * i) / 50) for i in range(n)],
            }
        )


def _scrape(port: int) -> tuple[float, float]:
    """Rows out of the workers' nats_in copies and their summed lag, from ``/metrics``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return 0.0, 0.0
    rows = sum(
        float(m.group(1))
        for m in re.finditer(r'flowengine_node_rows_out_total\{node="bus@p\d+"[^}]*\} (\S+)', text)
    )
    lag = sum(
        float(m.group(1)) for m in re.finditer(r"flowengine_partition_lag\{[^}]*\} (\S+)", text)
    )
    return rows, lag


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_cpu() -> float:
    """CPU seconds of the local nats-server so far (-1 when there is none to read): it shares
    the cores with the workers, which is what the ratio is up against."""
    try:
        pids = subprocess.run(["pgrep", "-x", "nats-server"], capture_output=True, text=True)
        return sum(_cpu(int(pid)) for pid in pids.stdout.split())
    except (OSError, ValueError):
        return -1.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _workers(n: int, total: int, args: argparse.Namespace, names: dict[str, str], folder: Path):
    """Run ``n`` workers until every reading is through; rows/s, max lag, CPU per process."""
    name = f"{names['tag']}_{n}"
    procs, ports = [], []
    for i in range(n):
        where = folder / name / f"w{i}"
        where.mkdir(parents=True)
        flow = where / "analytics.yaml"
        flow.write_text(ANALYTICS.format(name=name, url=args.nats, **names))
        port = _free_port()
        ports.append(port)
        cmd = [sys.executable, "-m", "flowengine.cli", "run", str(flow), "--no-live"]
        cmd += ["--worker", f"{i}/{n}", "--metrics-port", str(port)]
        log = (where / "run.log").open("w")
        procs.append(subprocess.Popen(cmd, cwd=where, stdout=subprocess.DEVNULL, stderr=log))
    first: tuple[float, float] | None = None
    last, lags = None, [0.0]
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and last is None:
        got = [_scrape(p) for p in ports]
        rows, now = sum(g[0] for g in got), time.monotonic()
        if rows and first is None:
            first = (now, rows)
        if first is not None:
            lags.append(sum(g[1] for g in got))
        if rows >= total:
            last = now
        time.sleep(0.25)
    cpus = [_cpu(p.pid) for p in procs]
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(60)
    if first is None or last is None:
        raise SystemExit(f"{n} worker(s) did not finish within {args.timeout}s: see {folder}")
    rate = (total - first[1]) / max(last - first[0], 1e-9)
    return rate, max(lags), cpus, name


def _drop(url: str, streams: list[str]) -> None:
    async def drop() -> None:
        import nats

        nc = await nats.connect(url)
        js = nc.jetstream()
        for stream in streams:
            with contextlib.suppress(Exception):  # never made, or gone already
                await js.delete_stream(stream)
        await nc.close()

    asyncio.run(drop())


def main() -> None:
    """Publish once, then 1 and 2 workers; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=1200)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    tag = f"fe_scale_{uuid.uuid4().hex[:8]}"
    names = {"tag": tag, "stream": tag.upper(), "subject": f"fe.scale.{tag}"}
    total = args.lines * args.ticks
    ingest = {
        "plc": {"type": "plant", "lines": args.lines, "ticks": args.ticks, "wires": ["bus"]},
        "bus": {"type": "nats_out", "servers": args.nats, "stream": names["stream"]},
    }
    ingest["bus"] |= {"subject": names["subject"], "partition_by": "line", "partitions": 8}
    began = time.monotonic()
    run_flow(ingest, types={"plant": Plant}, timeout=args.timeout)
    print(
        f"published {total:,} readings ({args.lines} lines) into 8 partitions "
        f"in {time.monotonic() - began:.1f}s",
        flush=True,
    )
    made = [names["stream"]]
    rates: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="fe-scale-") as tmp:
        try:
            print(f"load average before: {os.getloadavg()[0]:.1f}")
            print(
                "| workers | rows/s | max lag (messages) | CPU s per worker process | nats-server CPU s |"
            )
            print("|---|---|---|---|---|")
            for n in (1, 2):
                server = _server_cpu()
                rate, lag, cpus, name = _workers(n, total, args, names, Path(tmp))
                served = f"{_server_cpu() - server:.1f}" if server >= 0 else "-"
                made += [f"KV_{name}_state", f"KV_flowengine_workers_{name}"]
                rates[n] = rate
                shown = ", ".join(f"{c:.1f}" for c in cpus)
                print(f"| {n} | {rate:,.0f} | {lag:,.0f} | {shown} | {served} |", flush=True)
        finally:
            _drop(args.nats, made)
    print(f"\n2 workers / 1 worker: {rates[2] / rates[1]:.2f}x (target >= 1.6x on 2 cores)")


if __name__ == "__main__":
    main()

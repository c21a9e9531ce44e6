"""SQL sink throughput: rows/s written by the ``sql_out`` node into SQLite and PostgreSQL.

A source emits prebuilt long-format frames (timestamp, sensor, value, quality) of 1,000 and
10,000 rows as fast as the sink takes them; the figure is rows written / wall time of the flow run
(connect and table creation included, plugin loading not; the count is checked afterwards). Targets from issue 3:
200,000 rows/s into SQLite and 100,000 rows/s into PostgreSQL.

    python benchmarks/connectors_sql.py                 # both engines, ~200k rows per case
    python benchmarks/connectors_sql.py --rows 50000    # quicker
    python benchmarks/connectors_sql.py --pg postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from flowengine.node import Done, NodeConfig, Source, option
from flowengine.nodes.sql.client import driver_url
from flowengine.runtime import Runtime
from flowengine.testing import check_text
from flowengine.types import Result


class BlocksConfig(NodeConfig):
    rows: int = option(1000, description="Rows per batch.")
    batches: int = option(10, description="Batches to emit.")


class Blocks(Source):
    """The same prebuilt frame, ``batches`` times (the source costs next to nothing)."""

    Config = BlocksConfig
    config: BlocksConfig

    async def start(self) -> None:
        n = self.config.rows
        self.frame = pd.DataFrame(
            {
                "timestamp": pd.date_range("2026-01-01", periods=n, freq="ms", tz="UTC"),
                "sensor": [f"s{i % 16}" for i in range(n)],
                "value": [i * 0.5 for i in range(n)],
                "quality": "good",
            }
        )
        self.sent = 0

    async def read(self) -> Result:
        if self.sent >= self.config.batches:
            raise Done
        self.sent += 1
        return self.frame


def measure(url: str, rows: int, total: int) -> dict[str, Any]:
    table = f"bench_{uuid.uuid4().hex[:8]}"
    batches = max(1, total // rows)
    flow = {
        "src": {"type": "blocks", "rows": rows, "batches": batches, "wires": ["db"]},
        "db": {"type": "sql_out", "connection_string": url, "table": table},
    }
    runtime = Runtime(check_text(flow, types={"blocks": Blocks}))  # plugin loading: untimed
    began = time.perf_counter()
    asyncio.run(runtime.run())
    elapsed = time.perf_counter() - began
    engine = sa.create_engine(driver_url(url))
    try:
        with engine.begin() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar()
            sa.Table(table, sa.MetaData()).drop(conn)
    finally:
        engine.dispose()
    if count != rows * batches or runtime.stats["db"].errors:
        raise SystemExit(f"{url}: wrote {count} of {rows * batches} rows")
    return {
        "rows_per_batch": rows,
        "rows": count,
        "seconds": elapsed,
        "rows_per_s": count / elapsed,
    }


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="Rows per case.")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        engines = {"sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        if _listening(5432):
            engines["postgresql"] = args.pg
        for engine, url in engines.items():
            for rows in (1000, 10000):
                results.append({"engine": engine, **measure(url, rows, args.rows)})
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'engine':<11} {'batch':>6} {'rows':>8} {'seconds':>8} {'rows/s':>10}")
    for r in results:
        print(
            f"{r['engine']:<11} {r['rows_per_batch']:>6} {r['rows']:>8} {r['seconds']:>8.2f} "
            f"{r['rows_per_s']:>10,.0f}"
        )


if __name__ == "__main__":
    main()

"""Measure payload encodings for `nats_out`: bytes and encode+decode time of a long-format batch.

    python -m tests.nodes.nats.measure_encodings

Prints a Markdown table (the one in docs/connectors-nats.md): Arrow IPC as nats_out sends it
(uncompressed, and zstd as `compression: auto` does from 64 rows), Parquet, and JSON rows as
`format: json` sends them. Time is the best of 5 rounds, per batch, frame to bytes to frame.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from flowengine.nodes.nats.codec import decode, encode


def batch(rows: int) -> pd.DataFrame:
    """Long format: 50 sensors of one line at 10 Hz."""
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-03-01", periods=rows, freq="100ms", tz="UTC"),
            "sensor": [f"line3.sensor{i % 50:02d}" for i in range(rows)],
            "value": rng.normal(20, 2, rows),
            "quality": "good",
            "source": "plc-line3",
            "line": "line3",
        }
    )


def parquet(frame: pd.DataFrame, codec: str) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out, compression=codec)
    return out.getvalue()


def unparquet(data: bytes) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(data)).to_pandas()


CODECS: dict[str, tuple[Callable[[pd.DataFrame], bytes], Callable[[bytes], pd.DataFrame]]] = {
    "Arrow IPC": (lambda f: encode(f, "arrow", "none"), lambda b: decode(b, None)),
    "Arrow IPC + zstd": (lambda f: encode(f, "arrow", "zstd"), lambda b: decode(b, None)),
    "Parquet (snappy)": (lambda f: parquet(f, "snappy"), unparquet),
    "Parquet (zstd)": (lambda f: parquet(f, "zstd"), unparquet),
    "JSON rows": (lambda f: encode(f, "json"), lambda b: decode(b, None)),
}


def measure(rows: int, name: str) -> tuple[int, float]:
    """Payload bytes and microseconds per encode+decode."""
    enc, dec = CODECS[name]
    frame = batch(rows)
    payload = enc(frame)
    assert len(dec(payload)) == rows
    reps = 2000 if rows < 100 else 200
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(reps):
            dec(enc(frame))
        best = min(best, (time.perf_counter() - began) / reps)
    return len(payload), best * 1e6


def main() -> None:
    print("| rows | encoding | bytes | encode+decode (µs) |")
    print("|---:|---|---:|---:|")
    for rows in (1, 50, 1000):
        for name in CODECS:
            size, micros = measure(rows, name)
            print(f"| {rows} | {name} | {size:,} | {micros:,.0f} |")


if __name__ == "__main__":
    main()

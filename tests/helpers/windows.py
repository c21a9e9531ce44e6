"""Window test data: rows as (sensor, ms offset, value) and a whole-series loop reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

BASE = pd.Timestamp("2026-01-01", tz="UTC").value
MS = 1_000_000
Row = tuple[str, int, float]  # sensor, ms offset, value


def frame(rows: list[Row]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime([BASE + t * MS for _, t, _ in rows], utc=True),
            "sensor": [s for s, _, _ in rows],
            "value": [v for _, _, v in rows],
            "quality": "good",
        }
    )


def reference(rows: list[Row], size: int, step: int) -> pd.DataFrame:
    """Every non-empty window per sensor, by explicit loops over the whole series."""
    out: list[dict[str, Any]] = []
    for sensor in sorted({s for s, _, _ in rows}):
        points = sorted((BASE + t * MS, v) for s, t, v in rows if s == sensor)
        start = (points[0][0] - size) // step * step
        while start <= points[-1][0]:
            inside = [(t, v) for t, v in points if start <= t < start + size]
            if inside:
                x = np.array([(t - start) / 1e9 for t, _ in inside])
                y = np.array([v for _, v in inside])
                n = len(y)
                out.append(
                    {
                        "timestamp": pd.Timestamp(start + size, tz="UTC"),
                        "window_start": pd.Timestamp(start, tz="UTC"),
                        "sensor": sensor,
                        "value_mean": y.mean(),
                        "value_std": y.std(ddof=1) if n > 1 else np.nan,
                        "value_min": y.min(),
                        "value_max": y.max(),
                        "value_last": y[-1],
                        "value_count": n,
                        "value_range": y.max() - y.min(),
                        "value_slope": np.polyfit(x, y, 1)[0] if n > 1 else np.nan,
                    }
                )
            start += step
    if not out:
        return pd.DataFrame()
    ref = pd.DataFrame(out)
    return ref.sort_values(["timestamp", "sensor"]).reset_index(drop=True)

"""Simulated training history for the model tests: the same features node logic as the demo."""

from __future__ import annotations

import functools

import pandas as pd

from flowengine.nodes.analytics.featurize import Featurizer
from flowengine.nodes.analytics.steelsim import LineConfig, SteelLine
from flowengine.nodes.analytics.windows import parse_duration

AGGS = ("mean", "std", "min", "max", "slope")


@functools.cache
def history(seed: int, hours: float, rate: float = 10.0, interval: float = 120.0) -> pd.DataFrame:
    """Feature rows (10 s windows every second) of ``hours`` of a simulated line, with the
    ground-truth ``defect`` carried; cached per process (callers must not modify it)."""
    line = SteelLine(LineConfig(seed=seed, rate=rate, sensors=6, defect_interval=interval))
    feats = Featurizer(
        parse_duration("10s"), parse_duration("1s"), AGGS, by=["line"], labels=["defect"]
    )
    start = pd.Timestamp("2026-01-01", tz="UTC")
    ticks, block = int(hours * 3600 * rate), int(100 * rate)
    parts = [
        feats.push(line.long_frame(i, min(block, ticks - i), start, "sim", "line3"))[0]
        for i in range(0, ticks, block)
    ]
    return pd.concat([*parts, feats.flush()], ignore_index=True)

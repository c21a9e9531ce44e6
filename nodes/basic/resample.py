"""Resample: per series, aggregate rows into fixed time buckets, across batch boundaries."""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import field_validator

from flowengine.node import NodeConfig, Transform, option
from flowengine.types import Batch, Result


class ResampleConfig(NodeConfig):
    freq: str = option(description="Bucket width, a pandas offset.", examples=["1s", "10s", "1min"])
    agg: Literal["mean", "last", "max", "min", "sum", "count"] = option(
        "mean", description="Aggregation of the values in a bucket."
    )
    key: str = option("sensor", description="Column that identifies a series.")
    column: str = option("value", description="Column aggregated.")

    @field_validator("freq")
    @classmethod
    def _valid(cls, freq: str) -> str:
        try:
            # pandas-stubs take only Tick offsets; Timedelta checks any offset is fixed itself
            pd.Timedelta(pd.tseries.frequencies.to_offset(freq))  # type: ignore[arg-type]
        except (ValueError, TypeError):
            raise ValueError(f"'{freq}' is not a fixed pandas frequency (e.g. 10s, 1min)") from None
        return freq


class Resample(Transform[ResampleConfig]):
    """Emit one row per series and bucket once a later bucket of that series starts.

    The newest bucket of each series stays open (rows may still arrive for it) and is sent at
    the end of the stream. Rows for a bucket already sent are late: counted and dropped.
    Buckets are stamped with their start; empty buckets produce no row. The open buckets and
    the newest bucket sent per series are the checkpointed state.
    """

    icon = "timeline"
    state_attrs = ("_held", "_sent")

    async def start(self) -> None:
        self._held = pd.DataFrame()
        self._sent: dict[object, pd.Timestamp] = {}

    def _aggregate(self, rows: pd.DataFrame) -> pd.DataFrame:
        key, col = self.config.key, self.config.column
        rows = rows.sort_values("_bucket", kind="stable")
        carry = {c: "last" for c in ("quality", "source") if c in rows}
        out = rows.groupby([key, "_bucket"], sort=True).agg({col: self.config.agg, **carry})
        out = out.reset_index().rename(columns={"_bucket": "timestamp"})
        first = ["timestamp", key, col]
        return out[first + [c for c in out if c not in first]]

    def process(self, batch: Batch) -> Result:
        key = self.config.key
        new = batch.frame.assign(_bucket=batch.frame["timestamp"].dt.floor(self.config.freq))
        sent = pd.to_datetime(new[key].map(self._sent), utc=True)
        late = new["_bucket"] <= sent  # NaT (series not sent yet) compares False
        self.ctx.count("late", int(late.sum()))
        rows = (
            pd.concat([self._held, new[~late]], ignore_index=True)
            if len(self._held)
            else new[~late]
        )
        newest = rows.groupby(key)["_bucket"].transform("max")
        done = rows[rows["_bucket"] < newest]
        self._held = rows[rows["_bucket"] >= newest]
        if done.empty:
            return None
        self._sent.update(done.groupby(key)["_bucket"].max().to_dict())
        return self._aggregate(done)

    async def flush(self) -> Result:
        held, self._held = self._held, pd.DataFrame()
        return self._aggregate(held) if len(held) else None

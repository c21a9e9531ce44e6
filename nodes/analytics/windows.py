"""Windowed aggregation and as-of pivoting of the long format, batch by batch.

The logic lives here, in pure pandas/numpy and apart from the nodes, so that property tests can
feed it any batch boundaries and arrival orders and compare it with a computation on the whole
series. Times are handled as int64 nanoseconds since the epoch (UTC): window and grid
boundaries are then exact integer arithmetic, free of float rounding.

Lateness, shared by both: the watermark is the largest timestamp seen minus ``lateness``. A row
older than the watermark *before* its batch arrived is late (returned apart, for the error
port); anything else is accepted. Output is only produced for times below the watermark, so an
accepted row can never belong to output already emitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias

import numpy as np
import pandas as pd

from flowengine.node import C, Transform
from flowengine.types import Batch, Result

if TYPE_CHECKING:
    from pandas.api.typing import SeriesGroupBy

Aggregation: TypeAlias = Literal["mean", "std", "min", "max", "last", "count", "range", "slope"]
AGGREGATIONS: tuple[Aggregation, ...] = (
    "mean",
    "std",
    "min",
    "max",
    "last",
    "count",
    "range",
    "slope",
)
_MIN = int(np.iinfo(np.int64).min)
_MAX = int(np.iinfo(np.int64).max)
_BUFFER = ["t", "k", "v", "seq"]


def parse_duration(text: str | float) -> int:
    """A duration (``10s``, ``1min``, ``250ms``; a bare number means seconds) in nanoseconds."""
    delta = pd.Timedelta(text, unit="s") if isinstance(text, int | float) else pd.Timedelta(text)
    if pd.isna(delta):
        raise ValueError(f"invalid duration {text!r}")
    return int(delta.value)


def to_ns(timestamps: pd.Series) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch (UTC); missing times become ``_MIN``."""
    ts = pd.to_datetime(timestamps, utc=True).dt.as_unit("ns")
    return ts.astype("int64").to_numpy()


def _times(ns: np.ndarray) -> pd.DatetimeIndex:
    """Nanoseconds since the epoch as UTC timestamps (always ns, even when empty)."""
    return pd.to_datetime(ns, utc=True).as_unit("ns")


def _empty_buffer() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "t": np.array([], dtype=np.int64),
            "k": np.array([], dtype=object),
            "v": np.array([], dtype=float),
            "seq": np.array([], dtype=np.int64),
        }
    )


class _Stream:
    """Shared intake: split late rows off, keep the rest in a buffer, track the watermark."""

    def __init__(self, key: str, value: str, lateness: int) -> None:
        self.key = key
        self.value = value
        self.lateness = lateness
        self.buffer = _empty_buffer()
        self.max_seen: int | None = None
        self._seq = 0

    @property
    def watermark(self) -> int:
        return _MIN if self.max_seen is None else self.max_seen - self.lateness

    def intake(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Buffer the accepted rows of ``frame``; return the rejected ones (late or no time)."""
        for column in ("timestamp", self.key, self.value):
            if column not in frame.columns:
                raise KeyError(f"input has no column '{column}'")
        t = to_ns(frame["timestamp"])
        missing = frame["timestamp"].isna().to_numpy()
        late = missing | (t < self.watermark)
        values = pd.to_numeric(frame[self.value], errors="raise").to_numpy(dtype=float)
        keep = ~late & ~np.isnan(values)  # a missing value has nothing to contribute
        n = int(keep.sum())
        if n:
            rows = pd.DataFrame(
                {
                    "t": t[keep],
                    "k": frame[self.key].to_numpy(dtype=object)[keep],
                    "v": values[keep],
                    "seq": np.arange(self._seq, self._seq + n, dtype=np.int64),
                }
            )
            self._seq += n
            self.buffer = pd.concat([self.buffer, rows], ignore_index=True)
            top = int(t[keep].max())
            self.max_seen = top if self.max_seen is None else max(self.max_seen, top)
        return frame[late]


class Windower(_Stream):
    """Tumbling (``step == size``) or sliding time windows per key, aligned to the epoch.

    A window covers ``[start, start + size)`` with ``start`` a multiple of ``step``; only
    windows holding at least one row are emitted, once the watermark reaches their end.
    """

    def __init__(
        self,
        size: int,
        step: int | None = None,
        aggregations: Sequence[Aggregation] = ("mean",),
        *,
        key: str = "sensor",
        value: str = "value",
        lateness: int = 0,
    ) -> None:
        super().__init__(key, value, lateness)
        if size <= 0 or (step is not None and step <= 0):
            raise ValueError("window size and step must be positive")
        self.size = size
        self.step = step or size
        self.aggregations = tuple(aggregations)
        self._emitted = _MIN  # every window ending at or before this has been emitted

    def push(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Take one batch; return (windows now complete, rejected rows)."""
        rejected = self.intake(frame)
        out = self._emit(self.watermark)
        return out, rejected

    def flush(self) -> pd.DataFrame:
        """Emit every window still open (end of stream)."""
        return self._emit(_MAX)

    def _emit(self, upto: int) -> pd.DataFrame:
        if upto <= self._emitted:
            return self._frame(pd.DataFrame())
        lo, self._emitted = self._emitted, upto
        buf = self.buffer
        t = buf["t"].to_numpy()
        n = -(-self.size // self.step)
        starts = (t // self.step * self.step)[:, None] - np.arange(n, dtype=np.int64) * self.step
        ends = starts + self.size
        valid = (ends > t[:, None]) & (ends > lo) & (ends <= upto)
        rows, cols = np.nonzero(valid)
        exploded = pd.DataFrame(
            {
                "k": buf["k"].to_numpy()[rows],
                "start": starts[rows, cols],
                "t": t[rows],
                "v": buf["v"].to_numpy()[rows],
                "seq": buf["seq"].to_numpy()[rows],
            }
        )
        if upto != _MAX:  # rows no window ending after ``upto`` can hold are done with
            self.buffer = buf[t > upto - self.size].reset_index(drop=True)
        return self._frame(exploded)

    def _frame(self, ex: pd.DataFrame) -> pd.DataFrame:
        """Aggregate exploded (window, row) pairs into one row per (window end, key).

        A row falls in ``ceil(size / step)`` windows at most; exploding it into each lets one
        groupby compute every window, instead of a rolling pass per key and window position.
        """
        names = [f"{self.value}_{a}" for a in self.aggregations]
        if ex.empty:
            columns = ["timestamp", "window_start", self.key, *names]
            return pd.DataFrame({c: [] for c in columns})
        ex = ex.sort_values(["k", "start", "t", "seq"], kind="stable")
        groups = ex.groupby(["k", "start"], sort=True, dropna=False)["v"]
        result: dict[str, pd.Series] = {}
        for agg, name in zip(self.aggregations, names, strict=True):
            result[name] = self._aggregate(agg, ex, groups)
        out = pd.DataFrame(result).reset_index()
        start = out["start"].to_numpy()
        out.insert(0, "timestamp", _times(start + self.size))
        out.insert(1, "window_start", _times(start))
        out = out.drop(columns="start").rename(columns={"k": self.key})
        out = out[["timestamp", "window_start", self.key, *names]]
        return out.sort_values(["timestamp", self.key], kind="stable").reset_index(drop=True)

    @staticmethod
    def _aggregate(agg: Aggregation, ex: pd.DataFrame, groups: SeriesGroupBy) -> pd.Series:
        """One aggregation per group; ``ex`` is sorted by time, so ``last`` is the newest row."""
        if agg == "count":
            return groups.size().astype("int64")
        if agg == "range":
            return groups.max() - groups.min()
        if agg == "slope":  # least squares on seconds since the window start, centred for accuracy
            x = (ex["t"] - ex["start"]) / 1e9
            keys = [ex["k"], ex["start"]]
            dx = x - x.groupby(keys, dropna=False).transform("mean")
            dy = ex["v"] - groups.transform("mean")
            sxy = (dx * dy).groupby(keys, sort=True, dropna=False).sum()
            sxx = (dx * dx).groupby(keys, sort=True, dropna=False).sum()
            return sxy / sxx.where(sxx > 0)
        return groups.agg(agg)


class Pivoter(_Stream):
    """Long rows to wide rows on an epoch-aligned time grid, one column per key.

    Each grid time ``g`` takes, per key, the last value at or before ``g`` and no older than
    ``tolerance`` (as ``pd.merge_asof(direction="backward")``). Lags are the value ``k`` grid
    steps earlier and deltas the difference to it; both are missing before the grid's first
    time. The grid starts at the first grid time at or after the earliest row and a grid row is
    emitted once the watermark has passed it, so the buffer keeps just enough history (the last
    row per key, plus the rows a lag can reach) to align across batch boundaries.
    """

    def __init__(
        self,
        freq: int,
        tolerance: int | None = None,
        *,
        lags: Sequence[int] = (),
        deltas: Sequence[int] = (),
        keys: Sequence[str] | None = None,
        key: str = "sensor",
        value: str = "value",
        lateness: int = 0,
    ) -> None:
        super().__init__(key, value, lateness)
        if freq <= 0:
            raise ValueError("freq must be positive")
        self.freq = freq
        self.tolerance = tolerance
        self.lags = tuple(lags)
        self.deltas = tuple(deltas)
        self.keys = list(keys) if keys is not None else None
        self._depth = max((*self.lags, *self.deltas), default=0)
        self._origin: int | None = None  # the first grid time, fixed at the first emission
        self._next: int | None = None
        self._seen: set[object] = set()

    def push(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Take one batch; return (grid rows now complete, rejected rows)."""
        if self.keys is not None and self.key in frame.columns:
            frame = frame[frame[self.key].isin(self.keys)]
        rejected = self.intake(frame)
        wm = self.watermark
        out = self._emit((wm - 1) // self.freq * self.freq) if wm != _MIN else self._wide({}, [])
        return out, rejected

    def flush(self) -> pd.DataFrame:
        """Emit the grid up to the last row seen (end of stream)."""
        if self.max_seen is None:
            return self._wide({}, [])
        return self._emit(self.max_seen // self.freq * self.freq)

    def _emit(self, upto: int) -> pd.DataFrame:
        buf = self.buffer
        self._seen.update(buf["k"].unique())
        if self._origin is None:
            if buf.empty:
                return self._wide({}, [])
            first = -(-int(buf["t"].min()) // self.freq) * self.freq
        else:
            first = self._next if self._next is not None else self._origin
        if first > upto:
            return self._wide({}, [])
        if self._origin is None:
            self._origin = first
        start = max(self._origin, first - self._depth * self.freq)
        grid = np.arange(start, upto + 1, self.freq, dtype=np.int64)
        keys = self.keys if self.keys is not None else sorted(self._seen, key=str)
        columns: dict[str, np.ndarray] = {}
        skip = (first - start) // self.freq
        for k in keys:
            rows = buf[buf["k"] == k].sort_values(["t", "seq"], kind="stable")
            values = _asof(rows["t"].to_numpy(), rows["v"].to_numpy(), grid, self.tolerance)
            name = str(k)
            columns[name] = values[skip:]
            for lag in self.lags:
                columns[f"{name}_lag{lag}"] = _shift(values, lag)[skip:]
            for lag in self.deltas:
                columns[f"{name}_delta{lag}"] = (values - _shift(values, lag))[skip:]
        self._next = upto + self.freq
        self._prune(self._next - self._depth * self.freq)
        return self._wide(columns, grid[skip:].tolist())

    def _prune(self, cutoff: int) -> None:
        """Drop rows no future grid time needs, keeping each key's last row before ``cutoff``."""
        buf = self.buffer.sort_values(["t", "seq"], kind="stable")
        old = buf["t"].to_numpy() < cutoff
        last = buf[old].groupby("k", sort=False, dropna=False).tail(1)
        self.buffer = pd.concat([last, buf[~old]]).reset_index(drop=True)

    def _wide(self, columns: dict[str, np.ndarray], grid: list[int]) -> pd.DataFrame:
        frame = pd.DataFrame({"timestamp": _times(np.array(grid, dtype=np.int64))})
        return pd.concat([frame, pd.DataFrame(columns)], axis=1) if columns else frame


def _asof(t: np.ndarray, v: np.ndarray, grid: np.ndarray, tolerance: int | None) -> np.ndarray:
    """The last value at or before each grid time (``t`` sorted), missing beyond tolerance."""
    idx = np.searchsorted(t, grid, side="right") - 1
    found = idx >= 0
    out = np.full(len(grid), np.nan)
    out[found] = v[idx[found]]
    if tolerance is not None:
        out[found & (grid - t[np.maximum(idx, 0)] > tolerance)] = np.nan
    return out


def _shift(values: np.ndarray, k: int) -> np.ndarray:
    """``values`` moved ``k`` places later, missing where nothing precedes."""
    out = np.full(len(values), np.nan)
    if k < len(values):
        out[k:] = values[: len(values) - k]
    return out


class Stream(Protocol):
    """What a StreamTransform drives: Windower, Pivoter, flowengine.nodes.analytics.featurize.Featurizer."""

    def push(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]: ...

    def flush(self) -> pd.DataFrame: ...


class StreamTransform(Transform[C]):
    """A transform over a watermarked stream: accepted rows go to its state, late rows to the
    ``error`` port (counted as ``late_rows``), and ``flush`` emits what is still open.

    The stream object (buffer, watermark, emitted marks) is plain numpy and pandas data, so it
    is the checkpointed state as it is; its settings come from the unchanged config.
    """

    stream: Stream
    state_attrs = ("stream",)

    def process(self, batch: Batch) -> Result:
        out, late = self.stream.push(batch.frame)
        if late.empty:
            return out
        self.ctx.count("late_rows", len(late))
        error = Batch(late, batch.topic, self.ctx.node_id, batch.created, error="late rows")
        return {"out": out, "error": error}

    async def flush(self) -> Result:
        return self.stream.flush()

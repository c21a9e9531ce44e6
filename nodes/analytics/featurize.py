"""Model features from the long format: windows per (group, sensor), one wide row per window.

A defect model wants one row per line and time with a column per sensor and aggregation
(``furnace_temp_mean``, ``roll_force_slope``, ...). Every window of every sensor of a group
ends on the same epoch-aligned times, so the wide row is an exact reshape, with no as-of
alignment (that is the ``pivot`` node's job for unaligned data).

Sliding windows are computed from panes: each row is added once to the running sums of its
``step``-long pane (count, sum, sum of squares, min, max, last, and the sums a least-squares
slope needs), and a window combines its ``size / step`` panes. So a row costs the same whatever
the overlap, where exploding rows into every window they fall in costs ``size / step`` times
more; all of it is vectorised numpy over the batch, so one node serves many lines (``by``) at a
cost per batch rather than per line. Values are centred per sensor (on its first value) before
squaring, which keeps the variance free of cancellation at plant magnitudes. The results equal
the ``window`` node's (:class:`~flowengine.nodes.analytics.windows.Windower`) up to float rounding; a property
test checks that for random batch cuts and arrival orders within the lateness.

Label columns (``labels``, e.g. the simulator's ``defect``) are carried as their maximum over
the window and the group, so history written by the same flow can train a model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from flowengine.nodes.analytics.windows import _MIN, Aggregation, _times, to_ns

# Pane statistics, one column each in the pane table.
_N, _S1, _S2, _MN, _MX, _LT, _LSEQ, _LV, _SX, _SXX, _SXY = range(11)
_STATS = 11


def _groups(sort_keys: Sequence[np.ndarray], grouped: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort order by ``sort_keys`` (the last one primary, as ``np.lexsort``) and the start of
    each run of rows equal in the last ``grouped`` keys; within a run rows follow the other
    keys, so a run's last row is its newest when those are (time, arrival)."""
    order = np.lexsort(sort_keys)
    if not order.size:
        return order, np.zeros(0, np.intp)
    change = np.zeros(order.size, dtype=bool)
    change[0] = True
    for key in sort_keys[len(sort_keys) - grouped :]:
        ordered = key[order]
        change[1:] |= ordered[1:] != ordered[:-1]
    return order, np.flatnonzero(change)


def _ends(starts: np.ndarray, total: int) -> np.ndarray:
    """The last index of each run."""
    return np.append(starts[1:], total) - 1


class Featurizer:
    """Sliding or tumbling windows per (group, sensor), emitted as one wide row per group.

    ``push`` returns (rows of windows now complete, rejected rows) and ``flush`` the rest, like
    the other stream classes; lateness follows the same rule (a row older than the watermark
    before its batch is rejected; windows are emitted once the watermark reaches their end).
    With ``partial`` false, a group's windows that start before its first row, and those that
    ``flush`` would emit past its last pane, are left out: each row then covers ``size``.
    """

    partial: bool = True  # (a class default too: state pickled before the setting existed)

    def __init__(
        self,
        size: int,
        step: int | None = None,
        aggregations: Sequence[Aggregation] = ("mean",),
        *,
        sensors: Sequence[str] | None = None,
        by: Sequence[str] = (),
        labels: Sequence[str] = (),
        key: str = "sensor",
        value: str = "value",
        lateness: int = 0,
        partial: bool = True,
    ) -> None:
        step = step or size
        if size <= 0 or step <= 0 or size % step:
            raise ValueError("window size and step must be positive, size a multiple of step")
        self.size, self.step, self.panes = size, step, size // step
        self.aggregations = tuple(aggregations)
        self.sensors = list(sensors) if sensors is not None else None
        self.by, self.labels = list(by), list(labels)
        self._by_fixed = False  # ``by`` columns absent from the first batch are dropped
        self._empty_cache: tuple[tuple[int, int], pd.DataFrame] | None = None
        self.key, self.value, self.lateness = key, value, lateness
        self.partial = partial
        self._first = np.zeros(0, dtype=np.int64)  # per group: first full window (partial=False)
        # per group (line): the newest time seen and the last window emitted, so that a line
        # running behind another is not late by the other's clock
        self._max_seen = np.zeros(0, dtype=np.int64)
        self._codes: dict[tuple[object, ...], int] = {}  # (group..., sensor) -> code
        self._groups: dict[tuple[object, ...], int] = {}  # (group...) -> group code
        self._group_of: list[int] = []  # code -> group code
        self._sensor_of: list[str] = []  # code -> sensor name
        self._ref: list[float] = []  # code -> centring value
        self._seq = 0
        # The pane table: one row per (code, pane) with statistics and label maxima.
        self._pane_keys = np.zeros((0, 2), dtype=np.int64)  # code, pane index
        self._pane_stats = np.zeros((0, _STATS))
        self._pane_labels = np.zeros((0, len(self.labels)))
        self._emitted = np.zeros(0, dtype=np.int64)  # per group: last window (start pane) out

    def watermarks(self) -> np.ndarray:
        """Per group: the newest time seen minus the lateness (``_MIN`` before any row)."""
        seen = self._max_seen
        return np.where(seen == _MIN, _MIN, seen - self.lateness)

    # ---- intake ----------------------------------------------------------------------------
    def _encode(self, frame: pd.DataFrame, readings: np.ndarray) -> np.ndarray:
        """A persistent integer code per (group, sensor) for each row of ``frame``.

        Each column is factorised on its own and the codes combined (a groupby over object
        columns costs several times more); only combinations new to this batch go through
        Python, and those are a few per line and sensor.
        """
        cols = [*self.by, self.key]
        local = np.zeros(len(frame), dtype=np.int64)
        for col in cols:
            codes, values = pd.factorize(frame[col], use_na_sentinel=False)
            local = local * len(values) + codes
        combos, first, inverse = np.unique(local, return_index=True, return_inverse=True)
        mapping = np.empty(len(combos), dtype=np.int64)
        rows = frame[cols].iloc[first].itertuples(index=False, name=None)
        for i, (row, raw) in enumerate(zip(first, rows, strict=True)):
            # a missing key (NaN, None, NaT) is one key, None: NaN never equals itself
            combo = tuple(None if pd.isna(v) else v for v in raw)
            code = self._codes.get(combo)
            if code is None:
                g = self._groups.setdefault(combo[:-1], len(self._groups))
                if g == len(self._max_seen):
                    self._max_seen = np.append(self._max_seen, np.int64(_MIN))
                    self._emitted = np.append(self._emitted, np.int64(_MIN))
                    if not self.partial:
                        self._first = np.append(self._first, np.iinfo(np.int64).max)
                code = self._codes[combo] = len(self._codes)
                self._group_of.append(g)
                self._sensor_of.append(str(combo[-1]))
                value = float(readings[row])
                self._ref.append(value if np.isfinite(value) else 0.0)
            mapping[i] = code
        return mapping[inverse.ravel()]

    def push(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Take one batch; return (wide rows of the windows now complete, rejected rows)."""
        if not self._by_fixed and len(frame):
            self.by, self._by_fixed = [c for c in self.by if c in frame.columns], True
        for column in ("timestamp", self.key, self.value, *self.by, *self.labels):
            if column not in frame.columns:
                raise KeyError(f"input has no column '{column}'")
        if self.sensors is not None:
            frame = frame[frame[self.key].isin(self.sensors)]
        t = to_ns(frame["timestamp"])
        # before any state changes: a bad value fails this batch (to the error port), no more
        values = pd.to_numeric(frame[self.value], errors="raise").to_numpy(dtype=float)
        codes = self._encode(frame, values) if len(frame) else np.zeros(0, dtype=np.int64)
        group = np.asarray(self._group_of, dtype=np.int64)[codes]
        late = frame["timestamp"].isna().to_numpy() | (t < self.watermarks()[group])
        keep = ~late & ~np.isnan(values)
        if keep.any():
            labels = (
                np.column_stack(
                    [
                        pd.to_numeric(frame[c], errors="coerce").to_numpy(float)[keep]
                        for c in self.labels
                    ]
                )
                if self.labels
                else np.zeros((int(keep.sum()), 0))
            )
            self._add(codes[keep], t[keep], values[keep], labels)
            np.maximum.at(self._max_seen, group[keep], t[keep])
            if not self.partial:
                first = -(-t[keep] // self.step)  # the first pane that starts at or after a row
                np.minimum.at(self._first, group[keep], first)
        wm = self.watermarks()
        upto = np.where(wm == _MIN, _MIN, wm // self.step - self.panes)  # last complete windows
        return self._emit(upto), frame[late]

    def flush(self) -> pd.DataFrame:
        """Emit every window still open (end of stream); with ``partial`` false only those
        that end by the group's last pane."""
        upto = self._emitted.copy()
        group = np.asarray(self._group_of, dtype=np.int64)[self._pane_keys[:, 0]]
        last = self._pane_keys[:, 1] - (0 if self.partial else self.panes - 1)
        np.maximum.at(upto, group, last)
        return self._emit(upto)

    def _add(self, codes: np.ndarray, t: np.ndarray, v: np.ndarray, labels: np.ndarray) -> None:
        """Aggregate rows into per-(code, pane) statistics and merge them into the table."""
        n = len(codes)
        pane = t // self.step
        seq = np.arange(self._seq, self._seq + n, dtype=np.int64)
        self._seq += n
        order, starts = _groups((seq, t, pane, codes), 2)
        c, p, tt, sq = codes[order], pane[order], t[order], seq[order]
        y = v[order] - np.asarray(self._ref)[c]
        x = (tt - p * self.step) / 1e9  # seconds since the pane start
        ends = _ends(starts, n)
        stats = np.empty((starts.size, _STATS))
        stats[:, _N] = np.diff(np.append(starts, n))
        stats[:, _S1] = np.add.reduceat(y, starts)
        stats[:, _S2] = np.add.reduceat(y * y, starts)
        stats[:, _MN] = np.minimum.reduceat(y, starts)
        stats[:, _MX] = np.maximum.reduceat(y, starts)
        stats[:, _LT], stats[:, _LSEQ], stats[:, _LV] = tt[ends], sq[ends], y[ends]
        stats[:, _SX] = np.add.reduceat(x, starts)
        stats[:, _SXX] = np.add.reduceat(x * x, starts)
        stats[:, _SXY] = np.add.reduceat(x * y, starts)
        lab = (
            np.fmax.reduceat(labels[order], starts, axis=0)
            if labels.shape[1]
            else np.zeros((starts.size, 0))
        )
        keys = np.column_stack([c[starts], p[starts]])
        self._merge(keys, stats, lab)

    def _merge(self, keys: np.ndarray, stats: np.ndarray, labels: np.ndarray) -> None:
        """Combine new pane statistics with the table (a pane can span batches).

        Only the table rows of the batch's (group, sensor) codes can meet a new pane, so the
        sort touches those alone: a batch of one line costs the same however many lines the
        table holds. The table's order does not matter.
        """
        mine = np.isin(self._pane_keys[:, 0], np.unique(keys[:, 0]))
        rest = ~mine
        k = np.concatenate([self._pane_keys[mine], keys])
        s = np.concatenate([self._pane_stats[mine], stats])
        lab = np.concatenate([self._pane_labels[mine], labels])
        order, starts = _groups((s[:, _LSEQ], s[:, _LT], k[:, 1], k[:, 0]), 2)
        k, s, lab = k[order], s[order], lab[order]
        if starts.size < len(k):  # some pane twice: combine each run into one row
            out = np.empty((starts.size, _STATS))
            for col in (_N, _S1, _S2, _SX, _SXX, _SXY):
                out[:, col] = np.add.reduceat(s[:, col], starts)
            out[:, _MN] = np.minimum.reduceat(s[:, _MN], starts)
            out[:, _MX] = np.maximum.reduceat(s[:, _MX], starts)
            pick = _ends(starts, len(k))  # runs are sorted by (last time, arrival): newest last
            out[:, _LT], out[:, _LSEQ], out[:, _LV] = s[pick, _LT], s[pick, _LSEQ], s[pick, _LV]
            lab = (
                np.fmax.reduceat(lab, starts, axis=0)
                if lab.shape[1]
                else np.zeros((starts.size, 0))
            )
            k, s = k[starts], out
        self._pane_keys = np.concatenate([self._pane_keys[rest], k])
        self._pane_stats = np.concatenate([self._pane_stats[rest], s])
        self._pane_labels = np.concatenate([self._pane_labels[rest], lab])

    # ---- output ----------------------------------------------------------------------------
    def columns(self) -> list[str]:
        """The feature columns, in output order: sensor-major, aggregations in config order."""
        sensors = self.sensors if self.sensors is not None else sorted(set(self._sensor_of))
        return [f"{s}_{a}" for s in sensors for a in self.aggregations]

    def _empty(self) -> pd.DataFrame:
        """An empty result with the current columns (made again only when a sensor appears)."""
        key = (len(self._sensor_of), len(self.by))
        if self._empty_cache is not None and self._empty_cache[0] == key:
            return self._empty_cache[1]
        columns = [*self.by, *self.columns(), *self.labels]
        frame = pd.DataFrame(np.empty((0, len(columns))), columns=columns)  # one block: cheap
        frame.insert(0, "timestamp", _times(np.zeros(0, np.int64)))
        self._empty_cache = (key, frame)
        return frame

    def _emit(self, upto: np.ndarray) -> pd.DataFrame:
        """Rows of windows ``emitted[g] < w <= upto[g]`` per group g (w: the window's first
        pane)."""
        all_groups = np.asarray(self._group_of, dtype=np.int64)[self._pane_keys[:, 0]]
        moved = upto > self._emitted  # groups with windows to emit; the others cost nothing
        if not moved.any():
            return self._empty()
        active = moved[all_groups]
        keys, stats = self._pane_keys[active], self._pane_stats[active]
        labels, group = self._pane_labels[active], all_groups[active]
        lo, hi = self._emitted[group] + 1, upto[group]
        if not self.partial:  # no window that starts before the group's first row
            lo = np.maximum(lo, self._first[group])
        self._emitted = np.maximum(self._emitted, upto)
        # each pane p is in windows p-m+1 .. p; explode panes into the windows being emitted
        p = keys[:, 1]
        w = p[:, None] - np.arange(self.panes, dtype=np.int64)[None, :]
        valid = (w >= lo[:, None]) & (w <= hi[:, None])
        rows, cols = np.nonzero(valid)
        # windows still to come start after the last one out: older panes are done with
        done = np.zeros(len(active), dtype=bool)
        done[np.flatnonzero(active)] = p <= self._emitted[group]
        self._trim(~done)
        if not rows.size:
            return self._empty()
        win, code = w[rows, cols], keys[rows, 0]
        st, lab = stats[rows], labels[rows]
        d = (p[rows] - win) * (self.step / 1e9)  # pane start minus window start, seconds
        order, starts = _groups((st[:, _LSEQ], st[:, _LT], code, win), 2)
        st, lab, d = st[order], lab[order], d[order]
        out_code, out_win = code[order][starts], win[order][starts]
        ref = np.asarray(self._ref)[out_code]
        aggs = _aggregate(st, d, starts, _ends(starts, len(st)), ref)
        lab_out = (
            np.fmax.reduceat(lab, starts, axis=0) if lab.shape[1] else np.zeros((starts.size, 0))
        )
        return self._wide(out_win, out_code, aggs, lab_out)

    def _trim(self, keep: np.ndarray) -> None:
        """Keep only the panes ``keep`` marks (those a window still to come contains)."""
        if not keep.all():
            self._pane_keys = self._pane_keys[keep]
            self._pane_stats = self._pane_stats[keep]
            self._pane_labels = self._pane_labels[keep]

    def _wide(
        self, win: np.ndarray, code: np.ndarray, aggs: dict[str, np.ndarray], labels: np.ndarray
    ) -> pd.DataFrame:
        group = np.asarray(self._group_of, dtype=np.int64)[code]
        pairs, row = np.unique(np.column_stack([win, group]), axis=0, return_inverse=True)
        row = row.ravel()
        sensors = self.sensors if self.sensors is not None else sorted(set(self._sensor_of))
        position = {s: i for i, s in enumerate(sensors)}
        spos = np.array([position.get(self._sensor_of[c], -1) for c in range(len(self._ref))])[code]
        ok = spos >= 0
        a = len(self.aggregations)
        matrix = np.full((len(pairs), len(sensors) * a), np.nan)
        for j, agg in enumerate(self.aggregations):
            matrix[row[ok], spos[ok] * a + j] = aggs[agg][ok]
        if self.labels:
            lab = np.full((len(pairs), len(self.labels)), np.nan)
            np.fmax.at(lab, row, labels)
            matrix = np.hstack([matrix, lab])
        body = pd.DataFrame(matrix, columns=[*self.columns(), *self.labels])  # one block
        groups = list(self._groups)
        for i, column in enumerate(reversed(self.by)):
            index = len(self.by) - 1 - i
            body.insert(0, column, [groups[g][index] for g in pairs[:, 1]])
        body.insert(0, "timestamp", _times((pairs[:, 0] + self.panes) * self.step))
        return body


def _aggregate(
    st: np.ndarray, d: np.ndarray, starts: np.ndarray, ends: np.ndarray, ref: np.ndarray
) -> dict[str, np.ndarray]:
    """Every aggregation per window from its pane stats ``st`` (runs from ``starts``, last rows
    at ``ends``), panes shifted by ``d`` seconds from the window start, values by ``ref``."""
    n = np.add.reduceat(st[:, _N], starts)
    s1 = np.add.reduceat(st[:, _S1], starts)
    s2 = np.add.reduceat(st[:, _S2], starts)
    sx = np.add.reduceat(st[:, _SX] + st[:, _N] * d, starts)
    sxx = np.add.reduceat(st[:, _SXX] + 2 * d * st[:, _SX] + st[:, _N] * d * d, starts)
    sxy = np.add.reduceat(st[:, _SXY] + d * st[:, _S1], starts)
    mn = np.minimum.reduceat(st[:, _MN], starts)
    mx = np.maximum.reduceat(st[:, _MX], starts)
    last = st[ends, _LV]  # runs sorted by (last time, arrival)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = (s2 - s1 * s1 / n) / (n - 1)
        var = np.where(n > 1, np.maximum(var, 0.0), np.nan)
        den = sxx - sx * sx / n
        flat = den <= 1e-12 * np.maximum(sxx, 1e-300)  # one distinct time: no trend
        slope = np.where((n > 1) & ~flat, (sxy - sx * s1 / n) / den, np.nan)
    return {
        "mean": mean + ref,
        "std": np.sqrt(var),
        "min": mn + ref,
        "max": mx + ref,
        "last": last + ref,
        "count": n,
        "range": mx - mn,
        "slope": slope,
    }

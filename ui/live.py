"""The live view of a running flow: node status and rates, wire fill, a chart of debug batches.

Everything here reads the host (``snapshot``, ``wire_fill``, ``debug_batches``) on a timer; the
pure functions turn those readings into what the canvas and the panels show. A flow's readings
are shared by every tab that shows it (:class:`LiveShare`): read and turned into views once a
tick, and each tab is sent only what changed since it last looked, so N viewers cost about what
one does. The debug sidebar's message list is :mod:`.debugview` (re-exported here).
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd
from nicegui import ui

from flowengine.status import OnDisk
from flowengine.ui.debugview import BatchFeed, DebugPanel, Seen, SharedFeed, cell, table_of
from flowengine.ui.model import wire_key
from flowengine.ui.views import DiskBadge, StatusView

__all__ = [  # the debug list's parts, where they were before debugview.py
    "BatchFeed",
    "ChartPanel",
    "DebugPanel",
    "LiveShare",
    "Seen",
    "cell",
    "chart_points",
    "compact",
    "fill_views",
    "share_of",
    "status_views",
    "table_of",
]

STATE_COLORS = {
    "ok": "green",
    "starting": "yellow",
    "retrying": "yellow",
    "error": "red",
    "stopped": "grey",
}
CHART_POINTS = 300
MAX_SERIES = 8
#: a flow's readings are taken at most this often, however many tabs tick (they tick once a
#: second each, at their own phase: one reading serves them all)
READ_PERIOD = 0.9


def _snapshots(raw: Any) -> dict[str, dict[str, Any]]:
    if isinstance(raw, dict):
        return {str(k): dict(v, id=k) for k, v in raw.items()}
    return {str(s["id"]): s for s in raw or []}


def compact(n: int) -> str:
    """A count for a small badge: ``999``, ``1.2k``, ``35k``, ``4.1M``."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            value = n / size
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return str(n)


def disk_badge(snap: dict[str, Any]) -> DiskBadge | None:
    """The node's on-disk badge from its snapshot's ``on_disk`` and ``warning`` (see
    :meth:`flowengine.status.NodeStats.on_disk`); None for nodes without buffer or journal."""
    raw = snap.get("on_disk")
    if not isinstance(raw, dict):
        return None
    disk = OnDisk(
        raw["kind"], int(raw["batches"]), int(raw["rows"]), int(raw["bytes"]), raw.get("age_s")
    )
    warning = snap.get("warning")
    title = disk.describe() + (f": {warning}" if warning else "")
    return {"label": compact(disk.rows), "title": title, "warn": bool(warning)}


def status_views(raw: Any) -> dict[str, StatusView]:
    """The canvas's StatusView per node, from ``host.snapshot()`` (its ``rows_per_s`` is the
    runtime's own rate)."""
    out: dict[str, StatusView] = {}
    for node_id, snap in _snapshots(raw).items():
        state = str(snap.get("state", "stopped"))
        rate = float(snap.get("rows_per_s") or 0.0)
        error = str(snap.get("last_error") or "") or None
        text = str(snap.get("text") or "") or state
        if state == "error" and error:
            text = error if len(error) < 40 else error[:37] + "..."
        view: StatusView = {
            "color": STATE_COLORS.get(state, "grey"),
            "text": text,
            "rate": round(rate, 1),
            "error": error if state in ("error", "retrying") or snap.get("errors") else None,
        }
        if (badge := disk_badge(snap)) is not None:
            view["disk"] = badge
        out[node_id] = view
    return out


def fill_views(raw: dict[Any, float]) -> dict[str, float]:
    """``host.wire_fill()`` ((src, port, dst, dport) -> 0..1) keyed like the canvas's wires."""
    out = {}
    for key, value in (raw or {}).items():
        name = wire_key(*key) if isinstance(key, tuple) else str(key)
        out[name] = max(0.0, min(1.0, float(value)))
    return out


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    return [str(c) for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]


def chart_points(frame: pd.DataFrame, column: str, at: float) -> dict[str, list[list[Any]]]:
    """Series name -> [[epoch ms, value], ...] for one column of a batch; long-format frames
    (a ``sensor`` column) give one series per sensor."""
    if column not in frame.columns:
        return {}
    if "timestamp" in frame.columns:
        stamps = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce")
        times = stamps.dt.as_unit("ms").astype("int64").tolist()  # whatever unit pandas chose
    else:
        times = [int(at * 1000)] * len(frame)
    values = pd.to_numeric(frame[column], errors="coerce").tolist()
    if "sensor" in frame.columns and column == "value":
        out: dict[str, list[list[Any]]] = {}
        for t, sensor, v in zip(times, frame["sensor"].astype(str), values, strict=True):
            if v == v:  # not NaN
                out.setdefault(sensor, []).append([t, v])
        return out
    return {column: [[t, v] for t, v in zip(times, values, strict=True) if v == v]}


class ChartPanel:
    """Plots chosen numeric columns of one debug node's batches live (``ui.echart``). While
    ``shown()`` says it is hidden, its node's batches are only kept (the latest
    :data:`CHART_POINTS`); :meth:`show` plots them."""

    def __init__(
        self, debug_nodes: Callable[[], list[str]], shown: Callable[[], bool] | None = None
    ) -> None:
        self.debug_nodes = debug_nodes
        self.shown = shown
        self.stale = False  # points added while hidden, not drawn yet
        self.pending: deque[Seen] = deque(maxlen=CHART_POINTS)  # batches come while hidden
        self.series: dict[str, deque[list[Any]]] = {}
        self.known_columns: list[str] = []
        with ui.row().classes("w-full items-center gap-2"):
            self.source = (
                ui.select(debug_nodes(), label="Node", on_change=lambda: self.reset())
                .props("dense")
                .classes("w-32")
                .mark("chart-node")
            )
            self.columns = (
                ui.select([], label="Columns", multiple=True, on_change=lambda: self.reset())
                .props("dense use-chips")
                .classes("grow")
                .mark("chart-columns")
            )
        self.chart = ui.echart(
            {
                "animation": False,
                "tooltip": {"trigger": "axis"},
                "legend": {"type": "scroll", "top": 0},
                "xAxis": {"type": "time", "axisLabel": {"hideOverlap": True}},
                "yAxis": {"type": "value", "scale": True},
                "series": [],
                "grid": {"left": 50, "right": 10, "top": 30, "bottom": 30},
            }
        ).classes("w-full h-64")

    def refresh_nodes(self) -> None:
        options = self.debug_nodes()
        if options != self.source.options:
            self.source.set_options(options)
        if self.source.value is None and options:
            self.source.value = options[0]

    def reset(self) -> None:
        self.series.clear()
        self._draw()

    def add(self, seen: list[Seen]) -> None:
        if self.shown is not None and not self.shown():
            self.pending.extend(s for s in seen if s.node == self.source.value)
            return
        changed = False
        for s in seen:
            if s.node != self.source.value:
                continue
            cols = numeric_columns(s.frame)
            if set(cols) - set(self.known_columns):
                self.known_columns = sorted(set(self.known_columns) | set(cols))
                chosen = self.columns.value or [c for c in ("value",) if c in cols]
                self.columns.set_options(self.known_columns, value=chosen)
            for column in self.columns.value or []:
                for name, points in chart_points(s.frame, column, s.at).items():
                    if name not in self.series and len(self.series) >= MAX_SERIES:
                        continue
                    self.series.setdefault(name, deque(maxlen=CHART_POINTS)).extend(points)
                    changed = True
        if changed:
            self._draw()

    def show(self) -> None:
        """The panel came into view: plot what came while it was hidden."""
        pending, self.pending = list(self.pending), deque(maxlen=CHART_POINTS)
        self.add(pending)
        if self.stale:
            self._draw()

    def _draw(self) -> None:
        if self.shown is not None and not self.shown():
            self.stale = True
            return
        self.stale = False
        self.chart.options["series"] = [
            {"name": name, "type": "line", "showSymbol": False, "data": list(points)}
            for name, points in self.series.items()
        ]
        self.chart.update()


def shown_rate(rate: float) -> float:
    """``rate`` to the digits the canvas shows (``formatRate`` in canvas.js: 27k, 2.7k, 27,
    2.7 rows/s): a rate that moves within them is not a change to send."""
    size = abs(rate)
    step = 1e5 if size >= 1e6 else 1e3 if size >= 1e4 else 1e2 if size >= 1e3 else 1.0
    step = step if size >= 10 else 0.1
    return round(round(rate / step) * step, 1)


class LiveShare:
    """One flow's live view, read from its host at most once per :data:`READ_PERIOD` for all
    the tabs showing it. Every node's status and every wire's fill remembers the reading
    (``version``) it last changed at, so a tab that says which version it has gets only the
    nodes and wires that changed since; debug batches are numbered (:class:`SharedFeed`)."""

    def __init__(self, period: float = READ_PERIOD) -> None:
        self.period = period
        self.version = 0
        self.reads = 0  # readings taken (what a test counts)
        self.status: dict[str, StatusView] = {}
        self.fill: dict[str, float] = {}
        self.feed = SharedFeed()
        self._status_at: dict[str, int] = {}
        self._fill_at: dict[str, int] = {}
        self._read_at = float("-inf")

    def read(self, host: Any, debug_nodes: Iterable[str], now: float | None = None) -> None:
        """Take a reading of ``host`` unless one was taken in the last :attr:`period`."""
        now = time.monotonic() if now is None else now
        if now - self._read_at < self.period:
            return
        self._read_at = now
        self.reads += 1
        self.version += 1
        with contextlib.suppress(Exception):  # a host mid-deploy may not answer this time
            status = status_views(host.snapshot())
            for view in status.values():  # to what is shown: fewer changes to send
                view["rate"] = shown_rate(view["rate"])
            self._merge(status, self.status, self._status_at)
            fill = {k: round(v, 2) for k, v in fill_views(host.wire_fill()).items()}
            self._merge(fill, self.fill, self._fill_at)
        self.feed.update(host, debug_nodes)

    def expire(self) -> None:
        """The next :meth:`read` takes a reading, however recent the last one."""
        self._read_at = float("-inf")

    def _merge(self, views: dict[str, Any], known: dict[str, Any], at: dict[str, int]) -> None:
        for key, view in views.items():
            if known.get(key) != view:
                known[key], at[key] = view, self.version
        for gone in known.keys() - views.keys():
            del known[gone], at[gone]

    def status_since(self, version: int) -> dict[str, StatusView]:
        """The nodes whose status changed after reading ``version`` (0: all)."""
        return {k: self.status[k] for k, v in self._status_at.items() if v > version}

    def fill_since(self, version: int) -> dict[str, float]:
        """The wires whose fill changed after reading ``version`` (0: all)."""
        return {k: self.fill[k] for k, v in self._fill_at.items() if v > version}


_shares: weakref.WeakKeyDictionary[Any, LiveShare] = weakref.WeakKeyDictionary()


def share_of(host: Any) -> LiveShare:
    """The live view shared by every tab on ``host``'s flow (made on first use)."""
    share = _shares.get(host)
    if share is None:
        share = _shares[host] = LiveShare()
    return share

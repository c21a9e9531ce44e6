"""The live view of a running flow: node status and rates, wire fill, debug batches, a chart.

Everything here reads the host (``snapshot``, ``wire_fill``, ``debug_batches``) on a timer; the
pure functions turn those readings into what the canvas and the panels show.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from nicegui import ui

from flowengine.logs import redact
from flowengine.status import OnDisk
from flowengine.ui.model import wire_key
from flowengine.ui.views import DiskBadge, StatusView

STATE_COLORS = {
    "ok": "green",
    "starting": "yellow",
    "retrying": "yellow",
    "error": "red",
    "stopped": "grey",
}
TABLE_ROWS = 10
KEEP_BATCHES = 50
CHART_POINTS = 300
MAX_SERIES = 8


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


@dataclass(slots=True)
class Seen:
    """One debug batch as listed in the sidebar."""

    node: str
    at: float
    frame: pd.DataFrame
    error: str | None = None


class BatchFeed:
    """New debug batches since the last poll, per debug node (a host keeps the latest N)."""

    def __init__(self) -> None:
        self._seen: dict[str, set[tuple[int, float]]] = {}

    def poll(self, host: Any, nodes: Iterable[str]) -> list[Seen]:
        new: list[Seen] = []
        for node_id in nodes:
            batches = host.debug_batches(node_id)
            marks = [(id(b), b.created) for b in batches]  # kept batches stay alive: ids hold
            before = self._seen.get(node_id, set())
            for batch, mark in zip(batches, marks, strict=True):
                if mark not in before:
                    new.append(Seen(node_id, batch.created, batch.frame, batch.error))
            self._seen[node_id] = set(marks)
        return sorted(new, key=lambda s: s.at)


def cell(value: Any) -> str:
    """A table cell as text: floats to 6 digits, times of day to the millisecond."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%H:%M:%S.%f")[:-3]
    return redact(str(value))  # a secret that reached the data shows as in the logs: ******


def table_of(frame: pd.DataFrame, rows: int = TABLE_ROWS) -> tuple[list[dict], list[dict]]:
    """Columns and rows for ``ui.table`` (values as text: timestamps, NaN, objects)."""
    head = frame.head(rows)
    columns = [{"name": str(c), "label": str(c), "field": str(c), "align": "left"} for c in head]
    records = []
    for i, (_, row) in enumerate(head.iterrows()):
        rec = {"_row": i}
        for c in head.columns:
            value = row[c]
            rec[str(c)] = cell(value)
        records.append(rec)
    return columns, records


class DebugPanel:
    """The debug sidebar: the latest batches from debug nodes as tables; pause, clear, filter,
    and "Save as test" (``on_save_test``) for the selected nodes."""

    def __init__(self, on_save_test: Callable[[], Any] | None = None) -> None:
        self.entries: deque[Seen] = deque(maxlen=KEEP_BATCHES)
        self.paused = False
        if on_save_test is not None:  # the batches in and out of the canvas's selection
            ui.button("Save as test", icon="science", on_click=on_save_test).props(
                "flat dense no-caps"
            ).mark("save-test").tooltip(
                "A test case from the batches that entered and left the selected node(s)"
            )
        with ui.row().classes("w-full items-center gap-2"):
            self.pause = ui.switch("Pause", on_change=lambda e: self._pause(e.value)).mark(
                "debug-pause"
            )
            ui.button("Clear", icon="clear_all", on_click=self.clear).props("flat dense").mark(
                "debug-clear"
            )
            self.filter = (
                ui.input(placeholder="Filter", on_change=lambda: self.render())
                .props("dense clearable")
                .classes("grow")
                .mark("debug-filter")
            )
        self.count = ui.label("No batches yet").classes("text-caption text-grey-7")
        self.box = ui.column().classes("w-full gap-2").mark("debug-list")

    def _pause(self, paused: bool) -> None:
        self.paused = paused
        self.render()

    def clear(self) -> None:
        self.entries.clear()
        self.render()

    def add(self, seen: list[Seen]) -> None:
        if self.paused or not seen:
            return
        self.entries.extend(seen)
        self.render()

    def visible(self) -> list[Seen]:
        query = (self.filter.value or "").strip().lower()
        if not query:
            return list(self.entries)
        return [
            s
            for s in self.entries
            if query in s.node.lower() or query in s.frame.to_string().lower()
        ]

    def render(self) -> None:
        shown = self.visible()
        self.count.text = f"{len(shown)} of {len(self.entries)} batches" + (
            " (paused)" if self.paused else ""
        )
        self.box.clear()
        with self.box:
            for s in reversed(shown[-15:]):
                stamp = time.strftime("%H:%M:%S", time.localtime(s.at))
                with ui.card().classes("w-full p-1").tight():
                    head = f"{s.node} · {stamp} · {len(s.frame)} rows"
                    if s.error:
                        head += f" · error: {s.error}"
                    ui.label(head).classes("text-caption text-weight-medium px-1")
                    columns, rows = table_of(s.frame)
                    ui.table(columns=columns, rows=rows, row_key="_row").props(
                        "dense flat"
                    ).classes("w-full text-xs")


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
    """Plots chosen numeric columns of one debug node's batches live (``ui.echart``)."""

    def __init__(self, debug_nodes: Callable[[], list[str]]) -> None:
        self.debug_nodes = debug_nodes
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

    def _draw(self) -> None:
        self.chart.options["series"] = [
            {"name": name, "type": "line", "showSymbol": False, "data": list(points)}
            for name, points in self.series.items()
        ]
        self.chart.update()

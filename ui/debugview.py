"""The debug sidebar, as Node-RED's: every batch a debug node kept is one message in a list.

A message shows the rows and columns its node asks for (the debug node's ``rows`` and
``columns``) as records (``{column: value}`` a line, wrapped: no horizontal scroll) or as a
compact table; the newest is at the bottom and the list keeps the latest :data:`KEEP_MESSAGES`.
A click on a message selects its node; "copy" puts its rows on the clipboard as the YAML list
a flow test's ``rows:`` takes. Only new batches are drawn (:class:`BatchFeed` tells which), so
a busy flow costs one small element per batch, never a redraw of the list.
"""

from __future__ import annotations

import html
import inspect
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from io import StringIO
from typing import Any, Literal

import pandas as pd
from nicegui import ui
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from flowengine.logs import redact
from flowengine.ui.testfile import mask_secrets, plain_rows

KEEP_MESSAGES = 100
TABLE_ROWS = 10
DEFAULT_ROWS = 5  # the debug node's own default
COPY_ROWS = 1000  # a message copies at most this many rows
MAX_CELL = 300  # characters of one value shown (the copy has them all)
ALL, SELECTED = "__all__", "__selected__"
Mode = Literal["records", "table"]

CSS = """
.fe-debug-scroll { display: flex; flex-direction: column-reverse; overflow-y: auto;
  overflow-x: hidden; max-height: calc(100vh - 260px); width: 100%; }
.fe-msg { border-left: 3px solid #9e9e9e; padding: 2px 4px; cursor: pointer; width: 100%;
  min-width: 0; }
.fe-msg:hover { background: #f5f5f5; }
.fe-msg.fe-msg-error { border-left-color: #c10015; }
.fe-msg-body { font-family: monospace; font-size: 11px; overflow-wrap: anywhere;
  white-space: normal; min-width: 0; }
.fe-msg-body .fe-k { color: #8e24aa; }
.fe-msg-body .fe-more { color: #757575; }
.fe-msg-body table { table-layout: fixed; width: 100%; border-collapse: collapse; }
.fe-msg-body th, .fe-msg-body td { border-bottom: 1px solid #e0e0e0; text-align: left;
  padding: 0 2px; vertical-align: top; overflow-wrap: anywhere; }
"""


@dataclass(slots=True)
class Seen:
    """One debug batch as listed in the sidebar."""

    node: str
    at: float
    frame: pd.DataFrame
    error: str | None = None
    topic: str | None = None
    #: its bodies as drawn, by (shown, mode): every tab showing it draws it once, not each
    bodies: dict[tuple[Shown, Mode], str] = field(default_factory=dict, repr=False, compare=False)

    def body(self, shown: Shown, mode: Mode) -> str:
        key = (shown, mode)
        text = self.bodies.get(key)
        if text is None:
            text = self.bodies[key] = body_html(self.frame, shown, mode)
        return text


def _mark(batch: Any) -> tuple[Any, ...]:
    """What tells kept batches apart across polls without their identity (a host in another
    process sends copies): its metadata and a hash of its first rows."""
    try:
        head = int(pd.util.hash_pandas_object(batch.frame.head(3), index=False).sum())
    except TypeError:  # unhashable cells (dicts, lists): the metadata has to do
        head = 0
    return (batch.created, batch.origin, batch.topic, batch.error, len(batch.frame), head)


class BatchFeed:
    """New debug batches since the last poll, per debug node. A host keeps the latest N, so
    what it sends now is the end of what it sent before plus the new ones."""

    def __init__(self) -> None:
        self._seen: dict[str, list[tuple[Any, ...]]] = {}
        # the marks of the batches last polled, by identity: a host that keeps its batches
        # (FlowHost does) costs a hash per new batch, not one per batch held per poll
        self._marks: dict[int, tuple[Any, tuple[Any, ...]]] = {}
        self._next: dict[int, tuple[Any, tuple[Any, ...]]] = {}

    def poll(self, host: Any, nodes: Iterable[str]) -> list[Seen]:
        new: list[Seen] = []
        for node_id in nodes:
            new += self._new(node_id, host.debug_batches(node_id))
        self._marks, self._next = self._next, {}
        return sorted(new, key=lambda s: s.at)

    async def apoll(self, host: Any, nodes: Iterable[str]) -> list[Seen]:
        """:meth:`poll` for a host whose ``debug_batches`` is a coroutine."""
        new: list[Seen] = []
        for node_id in nodes:
            batches = host.debug_batches(node_id)
            new += self._new(node_id, await batches if inspect.isawaitable(batches) else batches)
        self._marks, self._next = self._next, {}
        return sorted(new, key=lambda s: s.at)

    def _mark(self, batch: Any) -> tuple[Any, ...]:
        held = self._marks.get(id(batch))
        mark = held[1] if held is not None and held[0] is batch else _mark(batch)
        self._next[id(batch)] = (batch, mark)  # held: its id is not reused while cached
        return mark

    def _new(self, node_id: str, batches: list[Any]) -> list[Seen]:
        before, now = self._seen.get(node_id, []), [self._mark(b) for b in batches]
        self._seen[node_id] = now
        kept = next(  # the longest end of the last poll that starts this one
            k
            for k in range(min(len(before), len(now)), -1, -1)
            if before[len(before) - k :] == now[:k]
        )
        return [Seen(node_id, b.created, b.frame, b.error, b.topic) for b in batches[kept:]]


class SharedFeed:
    """One flow's new debug batches, read from its host once however many tabs show them:
    each batch gets a number, and a tab asks for those after the last number it took."""

    def __init__(self, keep: int = 4 * KEEP_MESSAGES) -> None:
        self._feed = BatchFeed()
        self._log: deque[tuple[int, Seen]] = deque(maxlen=keep)
        self.last = 0  # the number of the newest batch

    def update(self, host: Any, nodes: Iterable[str]) -> None:
        for seen in self._feed.poll(host, nodes):
            self.last += 1
            self._log.append((self.last, seen))

    def since(self, taken: int) -> list[Seen]:
        """The batches after number ``taken`` (0: all it still holds), oldest first."""
        if not self._log or self._log[-1][0] <= taken:
            return []
        return [seen for number, seen in self._log if number > taken]


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
            rec[str(c)] = cell(row[c])
        records.append(rec)
    return columns, records


@dataclass(frozen=True, slots=True)
class Shown:
    """What a debug node asks its batches to show: its ``rows`` and ``columns`` options."""

    rows: int = DEFAULT_ROWS
    columns: tuple[str, ...] | None = None

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Shown:
        """From a node's config as written (an unresolved ``${VAR}`` falls back to defaults)."""
        try:
            rows = max(0, int(config.get("rows", DEFAULT_ROWS)))
        except (TypeError, ValueError):
            rows = DEFAULT_ROWS
        columns = config.get("columns")
        picked = tuple(str(c) for c in columns) if isinstance(columns, list) and columns else None
        return cls(rows, picked)

    def columns_of(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with only the asked-for columns, in the asked order (those present)."""
        if self.columns is None:
            return frame
        by_name = {str(c): c for c in frame.columns}
        return frame[[by_name[c] for c in self.columns if c in by_name]]


def _short(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def body_html(frame: pd.DataFrame, shown: Shown, mode: Mode) -> str:
    """A message's body: the shown rows as records or a table, escaped, then what was left out."""
    picked = shown.columns_of(frame)
    head = picked.head(shown.rows)
    names = [str(c) for c in head.columns]
    values = [[html.escape(_short(cell(v))) for v in row] for row in head.itertuples(index=False)]
    parts: list[str] = []
    if not names and len(frame.columns) and shown.rows:  # none of the asked-for columns came
        asked = ", ".join(shown.columns or ())
        have = ", ".join(str(c) for c in frame.columns)
        return html.escape(f"none of its columns ({asked}) in this batch, which has: {have}")
    if mode == "table" and len(head):
        ths = "".join(f"<th>{html.escape(n)}</th>" for n in names)
        trs = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>" for row in values)
        parts.append(f"<table><thead><tr>{ths}</tr></thead><tbody>{trs}</tbody></table>")
    else:
        keys = [f'<span class="fe-k">{html.escape(n)}</span>: ' for n in names]
        for row in values:
            pairs = ", ".join(k + v for k, v in zip(keys, row, strict=True))
            parts.append(f'<div class="fe-rec">{{{pairs}}}</div>')
    more = len(frame) - len(head)
    if more or not shown.rows:
        hidden = len(frame.columns) - len(picked.columns)
        extra = f", {hidden} column(s) not shown" if hidden else ""
        parts.append(f'<div class="fe-more">… {more} more row(s){extra}</div>')
    return "".join(parts)


def yaml_rows(frame: pd.DataFrame, limit: int = COPY_ROWS) -> str:
    """``frame``'s rows as the YAML list a flow test's ``rows:`` takes, one flow-style mapping
    a line, times as ISO 8601 UTC and secrets masked (as "Save as test" writes them)."""
    masked, _ = mask_secrets(frame.head(limit))
    seq = CommentedSeq()
    for row in plain_rows(masked):
        item = CommentedMap(row)
        item.fa.set_flow_style()
        seq.append(item)
    yaml = YAML()
    yaml.width = 4096  # a row on one line
    out = StringIO()
    yaml.dump(seq, out)
    return out.getvalue()


class Message:
    """One batch in the list: a header (node, time, rows, topic, error), its body, a copy
    button. Drawn once; redrawn only when the list's view mode changes."""

    def __init__(self, seen: Seen, shown: Shown, mode: Mode, panel: DebugPanel) -> None:
        self.seen, self.shown = seen, shown
        self._text: str | None = None
        stamp = time.strftime("%H:%M:%S", time.localtime(seen.at))
        head = f"{seen.node} · {stamp} · {len(seen.frame)} rows"
        if seen.topic:
            head += f" · {seen.topic}"
        self.element = ui.element("div").classes("fe-msg").mark("debug-message")
        self.element.props(f'data-node="{html.escape(seen.node, quote=True)}"')
        if seen.error:
            self.element.classes("fe-msg-error")
        with self.element:
            with ui.row().classes("w-full items-center no-wrap gap-1"):
                ui.label(head).classes("text-caption text-weight-medium grow")
                ui.button(icon="content_copy").props(  # a title: no tooltip element each
                    'flat dense round size=xs title="Copy the rows as YAML (a flow test\'s rows:)"'
                ).on("click.stop", lambda: panel.copy(self)).mark("debug-copy")
            if seen.error:
                ui.label(f"error: {seen.error}").classes("text-caption text-negative")
            self.body = ui.html(seen.body(shown, mode)).classes("fe-msg-body w-full")
        self.element.on("click", lambda: panel.pick(seen.node))

    def redraw(self, mode: Mode) -> None:
        self.body.set_content(self.seen.body(self.shown, mode))

    @property
    def text(self) -> str:
        """What a text filter searches: node, topic, error and the shown cells."""
        if self._text is None:
            picked = self.shown.columns_of(self.seen.frame).head(max(self.shown.rows, 1))
            cells = " ".join(f"{c} {cell(v)}" for c in picked.columns for v in picked[c])
            parts = (self.seen.node, self.seen.topic or "", self.seen.error or "", cells)
            self._text = " ".join(parts).lower()
        return self._text

    def copy_text(self) -> str:
        return yaml_rows(self.shown.columns_of(self.seen.frame))


class DebugPanel:
    """The debug sidebar: messages from debug nodes, filtered by node (all, the canvas's
    selection, one debug node) and text; pause, clear, records or table, and "Save as test"
    (``on_save_test``). ``on_pick(node)`` selects a message's node; ``shown(node)`` is how
    the node asks its batches to be shown; ``nodes()`` lists the debug nodes and
    ``selection()`` the canvas's selected nodes (both read once a second)."""

    def __init__(
        self,
        on_save_test: Callable[[], Any] | None = None,
        *,
        on_pick: Callable[[str], Any] | None = None,
        shown: Callable[[str], Shown] | None = None,
        nodes: Callable[[], list[str]] | None = None,
        selection: Callable[[], list[str]] | None = None,
        visible: Callable[[], bool] | None = None,
    ) -> None:
        self.messages: deque[Message] = deque()
        #: batches that came while the Debug tab was hidden: drawn when it is opened (a page
        #: load beside a busy flow draws no message nobody looks at)
        self.pending: deque[Seen] = deque(maxlen=KEEP_MESSAGES)
        self.visible_tab = visible
        self.paused = False
        self.mode: Mode = "records"
        self.on_pick, self.shown = on_pick, shown
        self.nodes, self.selection = nodes, selection
        self._selected: list[str] = []
        self.copied: str | None = None  # the last copy (what went to the clipboard)
        ui.add_css(CSS)
        if on_save_test is not None:  # the batches in and out of the canvas's selection
            ui.button("Save as test", icon="science", on_click=on_save_test).props(
                "flat dense no-caps"
            ).mark("save-test").tooltip(
                "A test case from the batches that entered and left the selected node(s)"
            )
        with ui.row().classes("w-full items-center gap-2 no-wrap"):
            self.pause = ui.switch("Pause", on_change=lambda e: self._pause(e.value)).mark(
                "debug-pause"
            )
            ui.button("Clear", icon="clear_all", on_click=self.clear).props("flat dense").mark(
                "debug-clear"
            )
            ui.toggle(
                {"records": "Rows", "table": "Table"},
                value="records",
                on_change=lambda e: self.set_mode(e.value),
            ).props("dense no-caps size=sm").mark("debug-mode")
        with ui.row().classes("w-full items-center gap-2 no-wrap"):
            self.source = (
                ui.select(self._source_options(), value=ALL, on_change=lambda: self.apply())
                .props("dense options-dense")
                .classes("w-40")
                .mark("debug-source")
            )
            self.filter = (
                ui.input(placeholder="Filter", on_change=lambda: self.apply())
                .props("dense clearable")
                .classes("grow")
                .mark("debug-filter")
            )
        self.count = ui.label("No batches yet").classes("text-caption text-grey-7")
        with ui.element("div").classes("fe-debug-scroll"):  # pinned to the newest message
            self.box = ui.column().classes("w-full gap-1 no-wrap").mark("debug-list")
        if nodes is not None or selection is not None:
            ui.timer(1.0, self.follow)

    # ---- filters -----------------------------------------------------------------------
    def _source_options(self) -> dict[str, str]:
        options = {ALL: "All nodes", SELECTED: "Selected nodes"}
        options.update({n: n for n in (self.nodes() if self.nodes else [])})
        return options

    def follow(self) -> None:
        """Keep the node choices and the "selected nodes" filter up to date."""
        options = self._source_options()
        if options != self.source.options:
            value = self.source.value if self.source.value in options else ALL
            self.source.set_options(options, value=value)
        selected = list(self.selection()) if self.selection else []
        if selected != self._selected:
            self._selected = selected
            if self.source.value == SELECTED:
                self.apply()

    def matches(self, message: Message) -> bool:
        source = self.source.value
        if source == SELECTED and message.seen.node not in self._selected:
            return False
        if source not in (ALL, SELECTED, None) and message.seen.node != source:
            return False
        query = (self.filter.value or "").strip().lower()
        return not query or query in message.text

    def visible(self) -> list[Seen]:
        return [m.seen for m in self.messages if self.matches(m)]

    def apply(self) -> None:
        """Show the messages the filters let through (a visibility change each, no redraw)."""
        for message in self.messages:
            message.element.set_visibility(self.matches(message))
        self._count()

    def _count(self) -> None:
        shown = sum(1 for m in self.messages if m.element.visible)
        self.count.text = f"{shown} of {len(self.messages)} batches" + (
            " (paused)" if self.paused else ""
        )

    # ---- the list ----------------------------------------------------------------------
    def _pause(self, paused: bool) -> None:
        self.paused = paused
        self._count()

    def clear(self) -> None:
        self.messages.clear()
        self.box.clear()
        self._count()

    def set_mode(self, mode: Mode) -> None:
        self.mode = mode
        for message in self.messages:
            message.redraw(mode)

    def show(self) -> None:
        """The Debug tab is open: draw what came while it was hidden."""
        pending, self.pending = list(self.pending), deque(maxlen=KEEP_MESSAGES)
        self.add(pending)

    def add(self, seen: list[Seen]) -> None:
        """Append new batches (the oldest go beyond :data:`KEEP_MESSAGES`)."""
        if self.paused or not seen:
            return
        if self.visible_tab is not None and not self.visible_tab():
            self.pending.extend(seen)
            return
        with self.box:
            for s in seen[-KEEP_MESSAGES:]:
                shown = self.shown(s.node) if self.shown else Shown(TABLE_ROWS)
                message = Message(s, shown, self.mode, self)
                message.element.set_visibility(self.matches(message))
                self.messages.append(message)
        while len(self.messages) > KEEP_MESSAGES:
            self.box.remove(self.messages.popleft().element)
        self._count()

    # ---- actions -----------------------------------------------------------------------
    def pick(self, node: str) -> None:
        if self.on_pick is not None:
            self.on_pick(node)

    def copy(self, message: Message) -> None:
        self.copied = text = message.copy_text()
        ui.clipboard.write(text)
        ui.notify(f"Copied {min(len(message.seen.frame), COPY_ROWS)} row(s) as YAML")


def shown_of(flow_nodes: Mapping[str, Any], node_id: str) -> Shown:
    """How ``node_id`` of a parsed flow asks its batches to be shown (defaults if unknown)."""
    node = flow_nodes.get(node_id)
    return Shown.of(node.config) if node is not None else Shown()

"""The debug sidebar as a message list: the debug node's `rows`/`columns`, filters by node, a
click selects the node, "copy as YAML rows"; only new batches are drawn; the canvas's fire,
debug on/off and help events (NiceGUI User, no browser)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from nicegui.testing import User, UserInteraction
from ruamel.yaml import YAML

from flowengine.flowtest.data import rows_frame
from flowengine.logs import MASK
from flowengine.types import Batch
from flowengine.ui import debugview
from flowengine.ui.app import Editor, EditorConfig
from flowengine.ui.canvas import FlowCanvas
from flowengine.ui.debugview import BatchFeed, DebugPanel, Shown, body_html, yaml_rows
from tests.helpers.uiuser import (  # noqa: F401  (storage_in_tmp: autouse fixture)
    editing,
    open_debug,
    run,
    storage_in_tmp,
)

#: Two debug nodes; `narrow` asks for two columns and one row, `wide` for everything.
FLOW = """\
version: 1
nodes:
  src:
    type: inject
    interval: 0.2
    rows:
      - {event: raise, severity: critical, line: "3", message: "Line 3: defect probability 0.97"}
      - {event: clear, severity: info, line: "3", message: "Line 3: back to normal"}
    wires: [narrow, wide]
  narrow:
    type: debug
    rows: 1
    columns: [message, event]
  wide:
    type: debug
layout:
  src: {x: 80, y: 80}
  narrow: {x: 300, y: 40}
  wide: {x: 300, y: 140}
"""


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def canvas_op(user: User, **args: Any) -> None:
    user.find(FlowCanvas).trigger("change", args)


_PANELS: list[DebugPanel] = []


@pytest.fixture(autouse=True)
def remember_panels(monkeypatch: pytest.MonkeyPatch) -> None:
    """The editor's DebugPanel (built inside the page), for the test to read."""
    _PANELS.clear()
    init = DebugPanel.__init__

    def spy(self: DebugPanel, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        _PANELS.append(self)

    monkeypatch.setattr(DebugPanel, "__init__", spy)


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(FLOW)
    return path


# ---- pure parts ----------------------------------------------------------------------------
def test_a_message_shows_the_columns_and_rows_its_debug_node_asks_for() -> None:
    frame = pd.DataFrame(
        {"event": ["raise", "clear"], "severity": ["critical", "info"], "message": ["a<b", "ok"]}
    )
    shown = Shown.of({"rows": 1, "columns": ["message", "event", "absent"]})
    assert shown == Shown(1, ("message", "event", "absent"))
    body = body_html(frame, shown, "records")
    assert (
        '{<span class="fe-k">message</span>: a&lt;b, <span class="fe-k">event</span>: raise}'
        in body
    )
    assert "severity" not in body and "clear" not in body  # not asked for: not shown
    assert "1 more row(s), 1 column(s) not shown" in body
    table = body_html(frame, Shown(5, ("event",)), "table")
    assert "<th>event</th>" in table and "<td>clear</td>" in table and "message" not in table
    summary = body_html(frame, Shown(0), "records")  # rows: 0 prints a summary only
    assert "fe-rec" not in summary and "2 more row(s)" in summary
    assert Shown.of({"rows": "${ROWS}"}) == Shown()  # unresolved: the node's default
    absent = body_html(frame, Shown(5, ("sensor",)), "records")
    assert (
        absent == "none of its columns (sensor) in this batch, which has: event, severity, message"
    )


def test_copy_as_yaml_rows_gives_what_a_flow_test_reads_back() -> None:
    stamp = pd.Timestamp("2026-01-01T06:00:16.5Z")
    frame = pd.DataFrame(
        {"timestamp": [stamp, stamp], "value": [1.5, None], "password": ["hunter2", "x"]}
    )
    text = yaml_rows(frame)
    assert text.splitlines()[0].startswith("- {timestamp: '2026-01-01T06:00:16.500")
    rows = YAML(typ="safe").load(text)
    back = rows_frame(rows, stamp)
    assert back["timestamp"].tolist() == [stamp, stamp]
    assert back["value"].tolist()[0] == 1.5 and pd.isna(back["value"].tolist()[1])
    assert back["password"].tolist() == [MASK, MASK]  # a secret never reaches the clipboard


def test_the_feed_reports_a_batch_once_even_when_the_host_sends_copies() -> None:
    """A host in another process sends new objects every poll: still only new batches count,
    as the oldest drop off the host's window (one input's two outputs share a creation time)."""
    kept: list[Batch] = []

    class Host:
        def debug_batches(self, node: str) -> list[Batch]:
            return [Batch(b.frame.copy(), b.topic, b.origin, b.created) for b in kept]

    def batch(value: int, created: float) -> Batch:
        return Batch(pd.DataFrame({"v": [value]}), origin="a", created=created)

    feed, host = BatchFeed(), Host()
    kept += [batch(1, 1.0), batch(2, 1.0)]
    assert [s.frame["v"][0] for s in feed.poll(host, ["d"])] == [1, 2]
    assert feed.poll(host, ["d"]) == []
    kept.append(batch(3, 2.0))
    kept.pop(0)  # the host keeps the latest N
    assert [s.frame["v"][0] for s in feed.poll(host, ["d"])] == [3]
    assert feed.poll(host, ["d"]) == []
    kept[:] = [batch(1, 1.0)]  # the node restarted (a deploy): what it keeps now is new
    assert [s.frame["v"][0] for s in feed.poll(host, ["d"])] == [1]


# ---- the panel in the editor ---------------------------------------------------------------
def test_messages_honour_the_node_filter_select_their_node_and_copy(
    flow: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = Editor(EditorConfig(flow))
    copied: list[str] = []
    monkeypatch.setattr(debugview.ui.clipboard, "write", copied.append)

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            open_debug(user)
            await eventually(lambda: bool(_PANELS and len(_PANELS[-1].messages) >= 4), "batches")
            panel = _PANELS[-1]
            first = panel.messages[0].element
            narrow = next(m for m in panel.messages if m.seen.node == "narrow")
            assert 'fe-k">message</span>: Line 3: defect probability 0.97' in narrow.body.content
            assert "severity" not in narrow.body.content  # the node's columns
            assert "back to normal" not in narrow.body.content  # and rows: 1
            assert (
                "severity" in next(m for m in panel.messages if m.seen.node == "wide").body.content
            )

            panel.set_mode("table")  # the same message, redrawn as a compact table
            assert "<th>message</th><th>event</th>" in narrow.body.content
            panel.set_mode("records")

            # a busy flow appends: the messages already drawn stay as they are
            count = len(panel.messages)
            await eventually(lambda: len(panel.messages) > count, "more batches")
            assert panel.messages[0].element is first
            assert all(m.element.parent_slot is not None for m in panel.messages)

            # filter by one debug node, then by the canvas's selection
            panel.source.value = "wide"
            assert {s.node for s in panel.visible()} == {"wide"}
            assert all(m.element.visible == (m.seen.node == "wide") for m in panel.messages)
            panel.source.value = debugview.SELECTED
            assert panel.visible() == []
            canvas_op(user, op="select", nodes=["narrow"], wires=[])
            await eventually(lambda: panel._selected == ["narrow"], "the selection followed")
            assert {s.node for s in panel.visible()} == {"narrow"}

            # a click on a message selects its node on the canvas (the Debug tab stays)
            canvas_op(user, op="select", nodes=[], wires=[])
            panel.source.value = debugview.ALL
            wide = next(m for m in panel.messages if m.seen.node == "wide")
            UserInteraction(user, {wide.element}, None).trigger("click")
            canvas = user.find(FlowCanvas).elements.pop()
            assert canvas.selection == (["wide"], [])
            await user.should_see(marker="properties")

            # copy: the shown columns of every row, as YAML rows
            copy = next(e for e in narrow.element.descendants() if "debug-copy" in e._markers)
            UserInteraction(user, {copy}, None).trigger("click.stop")
            assert copied and copied[-1].splitlines() == [
                "- {message: 'Line 3: defect probability 0.97', event: raise}",
                "- {message: 'Line 3: back to normal', event: clear}",
            ]

    run(scenario)


def test_canvas_fire_debug_toggle_and_help(flow: Path) -> None:
    editor = Editor(EditorConfig(flow))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await eventually(lambda: editor.host is not None and editor.host.running, "running")
            host: Any = editor.host
            canvas_op(user, op="fire", node="narrow")  # a debug node cannot fire: said so
            await user.should_see("narrow did not fire")
            canvas_op(user, op="debug_toggle", id="wide", on=False)
            await eventually(lambda: not host.debug_on("wide"), "wide switched off")

            canvas_op(user, op="help", type="filter")
            await user.should_see(content="Keep matching rows on", marker="info-docs")

            await editor.shutdown()
            canvas_op(user, op="fire", node="src")
            await user.should_see("The flow is not running: cannot fire src")

    run(scenario)

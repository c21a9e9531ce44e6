"""Tabs on one flow share its live view (issue 11: N viewers cost about what one does): the
host is read and its status and debug batches turned into views once per reading, a tab is
sent only the nodes whose status changed since it last looked, and a hidden Chart plots
nothing until it is shown (NiceGUI User, no browser)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from nicegui.testing import User, UserInteraction

from flowengine.types import Batch
from flowengine.ui import debugview, live
from flowengine.ui.app import Editor, EditorConfig
from flowengine.ui.editor_view import EditorView
from flowengine.ui.live import LiveShare, share_of
from tests.helpers.uiuser import editing, run, storage_in_tmp  # noqa: F401  (autouse fixture)

FLOW = """\
version: 1
nodes:
  src: {type: inject, interval: 0.5, rows: [{value: 1.0}], wires: [show]}
  show: {type: debug}
layout:
  src: {x: 80, y: 80}
  show: {x: 300, y: 80}
"""


class Host:
    """A running flow's host as the editor reads it, counting the reads."""

    running, error, pid = True, None, None

    def __init__(self) -> None:
        self.reads = 0
        self.rate = 1.0
        self.batches: list[Batch] = []

    def snapshot(self) -> list[dict[str, Any]]:
        self.reads += 1
        node = {"state": "ok", "rows_per_s": 0.0, "errors": 0}
        return [{**node, "id": "src", "rows_per_s": self.rate}, {**node, "id": "show"}]

    def wire_fill(self) -> dict[tuple[str, str, str, str], float]:
        return {("src", "out", "show", "in"): 0.0}

    def debug_batches(self, node: str) -> list[Batch]:
        return list(self.batches) if node == "show" else []


def test_a_reading_serves_every_tab_and_a_tab_gets_only_what_changed() -> None:
    share, host = LiveShare(period=0.9), Host()
    share.read(host, ["show"], now=10.0)
    share.read(host, ["show"], now=10.5)  # a second tab, half a tick later: the same reading
    assert host.reads == 1 and set(share.status_since(0)) == {"src", "show"}
    seen = share.version
    share.read(host, ["show"], now=11.0)  # nothing changed
    assert host.reads == 2 and share.status_since(seen) == {} and share.fill_since(seen) == {}
    host.rate = 5.0
    share.read(host, ["show"], now=12.0)
    assert share.status_since(seen) == {"src": share.status["src"]}  # not "show"


def test_two_tabs_on_one_flow_share_each_reading_and_each_debug_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = tmp_path / "shared.yaml"
    flow.write_text(FLOW)
    editor = Editor(EditorConfig(flow, run=False))
    views: list[EditorView] = []
    init = EditorView.__init__

    def spy(self: EditorView, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        views.append(self)

    monkeypatch.setattr(EditorView, "__init__", spy)
    calls = {"status": 0, "body": 0}

    def counted(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(live, "status_views", counted("status", live.status_views))
    monkeypatch.setattr(debugview, "body_html", counted("body", debugview.body_html))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await User(user.http_client).open("/")  # a second browser tab on the same flow
            assert len(views) == 2
            host = Host()
            editor.open_flows[flow.resolve()].host = host
            share = share_of(host)
            share.expire()
            before = dict(calls)
            for view in views:  # both tabs' ticks, back to back
                view.tick()
            assert host.reads == 1 and calls["status"] - before["status"] == 1
            sent: list[str] = []
            for view in views:
                assert set(view.canvas.props["status"]) == {"src", "show"}
                monkeypatch.setattr(
                    view.canvas, "run_method", lambda name, *a, **k: sent.append(name)
                )
            views[0].tabs.set_value("Debug")  # the second tab stays on Properties
            host.batches.append(Batch(pd.DataFrame({"value": [1.0]}), origin="src", created=1.0))
            share.expire()
            for view in views:
                view.tick()
            assert "setStatus" not in sent  # nothing changed: no status update to either tab
            # a hidden Debug tab draws nothing (a page load beside a busy flow stays light) ...
            assert [len(view.debug.messages) for view in views] == [1, 0]
            assert len(views[1].debug.pending) == 1
            views[1].tabs.set_value("Debug")  # ... until it is opened
            assert [len(view.debug.messages) for view in views] == [1, 1]
            assert not views[1].debug.pending
            assert calls["body"] - before["body"] == 1  # the message drawn once for both
            chart = views[0].chart  # its tab hidden: the batch is kept, not plotted
            assert chart.series == {} and len(chart.pending) == 1
            views[0].tabs.set_value("Chart")
            assert [p[1] for p in chart.series["value"]] == [1.0] and not chart.pending
            # the second browser tab goes to the background: nothing is sent to it meanwhile
            background = UserInteraction(user, {views[1].canvas.client.layout}, None)
            with views[1].canvas.client:
                background.trigger("fe_visibility", {"state": "hidden"})
            host.rate, sent[:] = 500.0, []
            host.batches.append(Batch(pd.DataFrame({"value": [2.0]}), origin="src", created=2.0))
            share.expire()
            views[1].tick()
            assert sent == [] and len(views[1].debug.messages) == 1
            with views[1].canvas.client:  # back in front: what changed comes at once
                background.trigger("fe_visibility", {"state": "visible"})
            assert "setStatus" in sent and len(views[1].debug.messages) == 2

    run(scenario)

"""The editor's start and end: a flow process is started ahead when it serves, and shutdown
stops a flow whose first start is still under way (no browser, no flow process)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flowengine.ui import editor as editor_module
from flowengine.ui import flowproc
from flowengine.ui.editor import Editor, EditorConfig
from flowengine.ui.host import FlowHost
from flowengine.validate import CheckedFlow

FLOW = "version: 1\nnodes:\n  src: {type: inject, interval: 1, rows: [{v: 1}], wires: [out]}\n"
FLOW += "  out: {type: debug}\n"


def test_serving_starts_a_flow_process_ahead_only_when_flows_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[bool] = []
    monkeypatch.setattr(flowproc, "prewarm", lambda: started.append(True))
    Editor(EditorConfig(tmp_path, run=False)).serving()
    assert started == []
    Editor(EditorConfig(tmp_path)).serving()
    assert started == [True]


def test_shutdown_stops_a_flow_whose_first_start_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flow whose start never returns (a node that waits at start) does not keep the editor
    from ending: its start is cancelled, so what it started is cleaned up."""
    flow = tmp_path / "hangs.yaml"
    flow.write_text(FLOW)
    began, cancelled = asyncio.Event(), asyncio.Event()

    async def hanging_start(self: FlowHost, checked: CheckedFlow) -> None:
        began.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    monkeypatch.setattr(FlowHost, "start", hanging_start)
    monkeypatch.setattr(editor_module, "START_WAIT", 0.2)

    async def scenario() -> None:
        editor = Editor(EditorConfig(flow))
        model = await editor.open(flow)
        await asyncio.wait_for(began.wait(), 10)
        await asyncio.wait_for(editor.shutdown(), 10)
        entry = editor.entry(model)
        assert cancelled.is_set() and entry.starting is not None and entry.starting.done()
        assert entry.stopped and not entry.running

    asyncio.run(scenario())

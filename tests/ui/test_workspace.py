"""The editor as a workspace of flows (issue 11) through NiceGUI's simulated User: every open
flow keeps running, each with its own Start/Stop/Restart; a field still being typed in is
committed by Deploy (or refused when it cannot be); a file changed on disk is never overwritten
without the user choosing, and "overwrite" holds for the version they saw only."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from nicegui.testing import User

from flowengine.ui.app import Editor, EditorConfig
from flowengine.ui.canvas import FlowCanvas
from flowengine.ui.disk import DiskWatch
from tests.helpers.uiuser import editing, run, storage_in_tmp  # noqa: F401  (autouse fixture)

FLOW = """\
version: 1
nodes:
  src:
    type: inject
    interval: 0.2
    rows: [{{value: 1.0}}]
    wires: [hot]
  hot:
    type: filter
    query: value > {limit}
    wires: [show]
  show:
    type: debug
layout:
  src: {{x: 80, y: 80}}
  hot: {{x: 300, y: 80}}
  show: {{x: 520, y: 80}}
"""


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Wait on the test's own loop (where the editor's timers run) until ``condition``."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)
    assert condition(), what


def open_node(user: User, node: str) -> None:
    user.find(FlowCanvas).trigger("change", {"op": "open", "node": node})


def test_every_open_flow_runs_and_starts_stops_and_restarts_on_its_own(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(FLOW.format(limit=1))
    b.write_text(FLOW.format(limit=2))
    editor = Editor(EditorConfig(tmp_path))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/edit/a.yaml")
            await user.should_see(marker="flow-tab-a.yaml", retries=100)
            await user.open("/edit/b.yaml")
            await user.should_see(marker="flow-tab-a.yaml", retries=100)  # a is a tab of b's page
            entry_a, entry_b = editor.open_flows[a.resolve()], editor.open_flows[b.resolve()]
            await eventually(lambda: entry_a.running and entry_b.running, "a and b running")
            assert await editor.open(a) is entry_a.model  # one model per file
            first_run = entry_b.host.pid
            label = user.find(marker="run-state").elements.pop()
            await eventually(lambda: label.text == "running", "shown running (Stop enabled)")

            user.find(marker="flow-stop").click()
            await eventually(lambda: not entry_b.running, "b stopped")
            await eventually(lambda: label.text == "stopped", "shown stopped")
            assert entry_a.running
            open_node(user, "hot")
            user.find(marker="prop-query").type("0")  # value > 20, still in the field
            user.find(marker="deploy").click()  # saves, and b stays stopped
            await eventually(lambda: "value > 20" in b.read_text(), "b saved")
            await user.should_see("Saved (the flow is stopped: Start runs it)")
            assert not entry_b.running and "value > 1\n" in a.read_text()

            user.find(marker="flow-start").click()
            await eventually(lambda: entry_b.running, "b started")
            assert entry_b.deployed is not None and "value > 20" in str(entry_b.deployed.flow)
            user.find(marker="flow-restart").click()
            await user.should_see("Restarted", retries=100)
            assert entry_b.running and entry_b.host.pid != first_run  # a new flow process
            assert entry_a.running
            user.find(marker="flow-tab-a.yaml").click()  # the tab strip goes to a's page
            await user.should_see("(a.yaml)", retries=100)
        assert not entry_a.running and not entry_b.running  # the editor's shutdown stops all

    run(scenario)


def test_fields_being_typed_in_are_committed_by_deploy_and_export_or_refused(
    tmp_path: Path,
) -> None:
    flow = tmp_path / "f.yaml"
    flow.write_text(FLOW.format(limit=1))
    editor = Editor(EditorConfig(flow, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            open_node(user, "src")
            user.find(marker="prop-rows").clear().type("[{value: ")  # no blur: broken YAML
            user.find(marker="deploy").click()
            await user.should_see("A field's value is invalid")
            await user.should_see("invalid YAML")
            assert flow.read_text() == FLOW.format(limit=1)
            user.find(marker="prop-rows").clear().type("[{value: 2.5}]")
            user.find(marker="deploy").click()
            await eventually(lambda: "value: 2.5" in flow.read_text(), "the fixed rows saved")
            open_node(user, "hot")
            user.find(marker="prop-query").type("7")  # value > 17, still in the field
            user.find(marker="export-flow-yaml").click()
            assert "query: value > 17" in (await user.download.next()).text

    run(scenario)


def test_overwrite_holds_for_the_version_seen_and_reload_takes_theirs(tmp_path: Path) -> None:
    flow = tmp_path / "f.yaml"
    flow.write_text(FLOW.format(limit=1))
    editor = Editor(EditorConfig(flow, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            open_node(user, "hot")
            user.find(marker="prop-query").type("1").trigger("blur")  # mine: value > 11
            flow.write_text(FLOW.format(limit=2))
            await user.should_see(marker="disk-warning", retries=60)
            user.find(marker="disk-keep").click()  # overwrite *that* version with mine
            flow.write_text(FLOW.format(limit=3))  # ... and then it changes again
            user.find(marker="deploy").click()
            await user.should_see("Not deployed: the file changed on disk")
            await user.should_see(marker="conflict-diff")
            assert flow.read_text() == FLOW.format(limit=3)
            user.find(marker="conflict-overwrite").click()
            await eventually(lambda: "value > 11" in flow.read_text(), "mine, as chosen")

            flow.write_text(FLOW.format(limit=4))
            user.find(marker="prop-query").type("5").trigger("blur")  # mine: value > 115
            user.find(marker="deploy").click()
            await user.should_see(marker="conflict-reload")
            user.find(marker="conflict-reload").click()
            assert not editor.model.dirty and "value > 4\n" in editor.model.text
            assert flow.read_text() == FLOW.format(limit=4)

    run(scenario)


def test_a_same_size_rewrite_within_one_timestamp_tick_is_still_a_change(tmp_path: Path) -> None:
    flow = tmp_path / "f.yaml"
    flow.write_text(FLOW.format(limit=1))
    watch = DiskWatch(flow)
    stamp = flow.stat().st_mtime_ns
    flow.write_text(FLOW.format(limit=2))  # same size, and (coarse file times) same mtime
    os.utime(flow, ns=(stamp, stamp))
    assert watch.changed()
    watch.remember()
    assert not watch.changed()

"""The editor app through NiceGUI's simulated User (no browser): palette, property forms,
canvas intents, deploy into a running flow, disk-change warning, debug sidebar, login."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from nicegui import core, ui
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing import User, UserInteraction
from nicegui.testing.user_simulation import user_simulation

from flowengine import logs
from flowengine.logs import MASK
from flowengine.node import NodeConfig, Sink
from flowengine.registry import Registry
from flowengine.types import Batch
from flowengine.ui.app import Editor, EditorConfig
from flowengine.ui.canvas import FlowCanvas
from flowengine.ui.live import (
    ChartPanel,
    DebugPanel,
    Seen,
    cell,
    chart_points,
    compact,
    fill_views,
    status_views,
    table_of,
)
from tests.helpers.samples import SAMPLE
from tests.helpers.uiuser import (  # noqa: F401  (storage_in_tmp: autouse fixture)
    editing,
    open_debug,
    run,
    storage_in_tmp,
)

INJECT_FLOW = """\
# a source that fires every half second, into a debug node
version: 1
nodes:
  src:
    type: inject
    interval: 0.5
    rows: [{sensor: a, value: 1.5}, {sensor: b, value: 2.5}]
    wires: [show]
  show:
    type: debug
    rows: 2
layout:
  src: {x: 80, y: 80}
  show: {x: 300, y: 80}
"""


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Wait on the test's own loop (where the editor's timers run) until ``condition``."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)
    assert condition(), what


@pytest.fixture
def line3(tmp_path: Path) -> Path:
    path = tmp_path / "line3.yaml"
    path.write_text(SAMPLE)
    return path


def canvas_op(user: User, **args: Any) -> None:
    user.find(FlowCanvas).trigger("change", args)


def test_palette_is_grouped_from_the_registry_and_search_filters_it(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            for name in ("simulate", "filter", "debug", "mqtt_in", "switch"):
                await user.should_see(marker=f"palette-{name}")
            await user.should_see("Input")
            await user.should_see("Output")
            user.find(marker="palette-search").type("mqtt")
            await user.should_see(marker="palette-mqtt_out")
            await user.should_not_see(marker="palette-filter")
            user.find(marker="palette-search").clear()
            await user.should_see(marker="palette-filter")

    run(scenario)


def test_drop_adds_a_node_whose_form_edits_the_model(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            canvas_op(user, op="drop", type="filter", x=500, y=400)
            model = editor.model
            assert model is not None
            assert "filter1" in model.nodes
            assert model.position("filter1") == (500, 400)
            await user.should_see("Query *")  # required mark from the schema
            await user.should_see("missing required field 'query'")  # inline, from the validator
            user.find(marker="prop-query").type("value > 3").trigger("blur")
            assert model.form_values("filter1")["query"] == "value > 3"
            await user.should_not_see("missing required field 'query'")
            await user.should_see(marker="dirty")
            canvas_op(
                user, op="wire", source="too_far", port="out", target="filter1", target_port="in"
            )
            assert "filter1" in [str(t) for t in model.flow().nodes["too_far"].wires["out"]]
            user.find(marker="undo").click()
            assert "filter1" not in [str(t) for t in model.flow().nodes["too_far"].wires["out"]]
            user.find(marker="redo").click()
            assert "filter1" in [str(t) for t in model.flow().nodes["too_far"].wires["out"]]
            canvas_op(user, op="delete", nodes=["filter1"], wires=[])
            assert "filter1" not in model.nodes

    run(scenario)


def test_form_controls_follow_field_types_and_show_errors(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            canvas_op(user, op="open", node="console")
            number = user.find(marker="prop-rows").elements.pop()
            assert isinstance(number, ui.number) and number.value == 3
            level = user.find(marker="prop-level").elements.pop()
            assert isinstance(level, ui.select) and level.options == ["debug", "info", "warning"]
            await user.should_see(marker="advanced")  # `keep` is an advanced field
            assert number.min == 0  # the schema's bound: the control cannot go below
            user.find(marker="prop-rows").clear().type("7").trigger("blur")
            assert editor.model.form_values("console")["rows"] == 7
            canvas_op(user, op="open", node="furnace")
            user.find(marker="prop-query").clear().type("value >").trigger("blur")
            await user.should_see("query is not a valid expression", marker="field-query")
            canvas_op(user, op="open", node="deviation")
            await user.should_see("abs(deviation)")  # the key/value rows of `columns`
            canvas_op(user, op="open", node="plc")
            toggle = [e for e in user.find(kind=ui.switch).elements if e.text == "Disabled"]
            assert toggle and toggle[0].value is False

    run(scenario)


def test_secret_fields_reach_the_browser_masked(tmp_path: Path) -> None:
    flow = tmp_path / "mq.yaml"
    flow.write_text(
        "version: 1\nnodes:\n  src:\n    type: mqtt_in\n    password: hunter2\n"
        "    wires: [out]\n  ref:\n    type: mqtt_in\n    password: ${MQ_PASS:-x}\n"
        "    wires: [out]\n  out:\n    type: debug\n"
    )
    editor = Editor(EditorConfig(flow, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            canvas_op(user, op="open", node="src")
            field = user.find(marker="prop-password").elements.pop()
            assert isinstance(field, ui.input)
            assert field.value == MASK and field.props.get("type") == "password"
            field_values = [getattr(e, "value", None) for e in user.find(kind=ui.input).elements]
            assert "hunter2" not in field_values
            user.find(marker="prop-password").trigger("blur")  # the mask comes back unchanged
            assert not editor.model.dirty
            canvas_op(user, op="open", node="ref")
            field = user.find(marker="prop-password").elements.pop()
            assert field.value == "${MQ_PASS:-x}" and field.props.get("type") != "password"

    run(scenario)


def test_deploy_saves_the_file_and_applies_to_the_running_flow(tmp_path: Path) -> None:
    flow = tmp_path / "inject.yaml"
    flow.write_text(INJECT_FLOW)
    editor = Editor(EditorConfig(flow))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await eventually(lambda: editor.host is not None, "the flow running in the editor")
            host = editor.host
            await eventually(lambda: len(host.debug_batches("show")) >= 1, "an injected batch")
            open_debug(user)
            await user.should_see("show · ", retries=50)  # the debug sidebar lists the batch
            body = next(iter(user.find(kind=ui.html).elements)).content  # rows as records
            assert 'sensor</span>: b, <span class="fe-k">value</span>: 2.5}' in body
            canvas_op(user, op="move", positions={"show": {"x": 320, "y": 80}})
            canvas_op(user, op="drop", type="debug", x=300, y=200)
            canvas_op(user, op="wire", source="src", port="out", target="debug1", target_port="in")
            before = flow.read_text()
            user.find(marker="deploy").click()
            await eventually(lambda: flow.read_text() != before, "the file saved by deploy")
            text = flow.read_text()
            assert text.startswith("# a source that fires every")  # comments kept
            assert "  show: {x: 320, y: 80}" in text
            assert "wires: [show, debug1]" in text
            await user.should_see("Deployed: 1 added, 0 removed, 0 restarted", retries=50)
            assert "debug1" in {s["id"] for s in host.snapshot()} and host.running
            canvas = user.find(FlowCanvas).elements.pop()
            await eventually(lambda: "debug1" in canvas.props["status"], "debug1's status")
            assert canvas.props["status"]["src"]["color"] == "green"
            assert "src:out->show:in" in canvas.props["fill"]
            await user.should_not_see(marker="dirty")

    run(scenario)


def test_deploy_is_refused_while_the_flow_has_errors(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            before = line3.read_text()
            canvas_op(user, op="drop", type="filter", x=0, y=0)
            user.find(marker="deploy").click()
            await user.should_see("Not deployed: 1 error(s), see Problems")
            await user.should_see("missing required field 'query'")
            assert line3.read_text() == before

    run(scenario)


def test_a_file_changed_on_disk_is_flagged_and_not_overwritten(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await user.should_not_see(marker="disk-warning")
            canvas_op(user, op="move", positions={"plc": {"x": 0, "y": 0}})
            line3.write_text(line3.read_text() + "# changed elsewhere\n")
            await user.should_see(marker="disk-warning", retries=60)
            user.find(marker="deploy").click()
            await user.should_see("Not deployed: the file changed on disk")
            assert line3.read_text().endswith("# changed elsewhere\n")

    run(scenario)


def test_folder_mode_lists_flows_and_creates_one(tmp_path: Path) -> None:
    (tmp_path / "line3.yaml").write_text(SAMPLE)
    editor = Editor(EditorConfig(tmp_path, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await user.should_see("line3.yaml")
            user.find(marker="new-flow").type("pumps")
            user.find(marker="create-flow").click()
            await eventually(lambda: (tmp_path / "pumps.yaml").exists(), "the new flow file")
            await user.open("/edit/pumps.yaml")
            await user.should_see(marker="canvas")
            assert editor.model is not None and editor.model.path.name == "pumps.yaml"

    run(scenario)


def test_login_is_required_with_a_password_and_kept_in_the_signed_session(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, password="s3cret!", run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await user.should_see("Log in")
            await user.should_not_see(marker="canvas")
            user.find("Password").type("wrong")
            user.find("Log in").click()
            await user.should_see("Wrong password")
            user.find("Password").type("s3cret!")
            user.find("Log in").click()
            await user.should_see(marker="canvas")
            await user.open("/")  # the same browser: its session stays logged in
            await user.should_see(marker="canvas")
            cookie = user.http_client.cookies.get("session")
            assert cookie and "authenticated" not in cookie  # an id, signed; no claim in clear
            for jar in ({}, {"session": cookie[:-4] + "AAAA"}):  # another browser, a forgery
                other = User(
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(core.app), base_url="http://test", cookies=jar
                    )
                )
                async with other.http_client:
                    await other.open("/")
                    await other.should_see("Log in")
                    await other.should_not_see(marker="canvas")

    run(scenario)


def test_failed_logins_are_rate_limited(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, password="s3cret!", run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            for _ in range(5):
                user.find("Password").type("nope")
                user.find("Log in").click()
            user.find("Password").type("s3cret!")  # right, but too late
            user.find("Log in").click()
            await user.should_see("Too many failed logins")
            await user.should_not_see(marker="canvas")

    run(scenario)


def test_chart_points_are_epoch_ms_whatever_the_timestamp_unit() -> None:
    stamps = pd.to_datetime(["2026-01-01T00:00:00.500Z", "2026-01-01T00:00:01.000Z"], utc=True)
    base = 1767225600000  # 2026-01-01T00:00:00Z in ms
    for unit in ("ns", "us", "ms"):
        frame = pd.DataFrame(
            {"timestamp": stamps.as_unit(unit), "sensor": ["a", "b"], "value": [1.0, float("nan")]}
        )
        assert chart_points(frame, "value", 0) == {"a": [[base + 500, 1.0]]}  # NaN dropped
    plain = pd.DataFrame({"x": [1, 2]})
    assert chart_points(plain, "x", 10.0) == {"x": [[10000, 1], [10000, 2]]}
    assert chart_points(plain, "missing", 10.0) == {}


def test_debug_sidebar_cells_mask_secrets_like_the_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret that reached the data (an inject, a header a `change` node copied) shows in
    the debug sidebar as it does in the debug node's log line: masked."""
    monkeypatch.setattr(logs, "_secrets", {})
    logs.add_secrets(["tok-9f2Kx81"])  # what resolving ${secret:API_TOKEN} registers
    frame = pd.DataFrame(
        {
            "sensor": ["auth", "db", "line"],
            "value": ["Bearer tok-9f2Kx81", "postgresql://u:Pw0rd-x1@db/p", "tok-9f2Kx81x"],
            "n": [1.5, 2.0, 3.25],
        }
    )
    _, records = table_of(frame)
    assert [r["value"] for r in records] == [
        f"Bearer {MASK}",
        f"postgresql://u:{MASK}@db/p",
        "tok-9f2Kx81x",  # another token that merely starts like the secret is data
    ]
    assert [r["sensor"] for r in records] == ["auth", "db", "line"] and records[0]["n"] == "1.5"
    assert cell({"Authorization": "tok-9f2Kx81"}) == f"{{'Authorization': '{MASK}'}}"


def test_status_views_colour_state_rate_and_error() -> None:
    snap = [
        {"id": "a", "kind": "source", "state": "ok", "rows_out": 100, "text": ""},
        {"id": "b", "kind": "sink", "state": "error", "rows_in": 5, "last_error": "boom"},
        {"id": "c", "kind": "sink", "state": "retrying", "rows_per_s": 12.5, "text": "retry in 2s"},
    ]
    first = status_views(snap)
    assert first["a"] == {"color": "green", "text": "ok", "rate": 0.0, "error": None}
    assert first["b"]["color"] == "red" and first["b"]["error"] == "boom"
    assert first["c"] == {"color": "yellow", "text": "retry in 2s", "rate": 12.5, "error": None}
    assert fill_views({("a", "out", "b", "in"): 1.7}) == {"a:out->b:in": 1.0}


def test_status_views_give_nodes_with_data_on_disk_a_badge() -> None:
    disk = {"kind": "buffer", "batches": 3, "rows": 1234, "bytes": 2_100_000, "age_s": 35.7}
    snap = [
        {"id": "db", "state": "retrying", "on_disk": disk, "warning": "buffer full"},
        {"id": "src", "state": "ok", "on_disk": dict(disk, kind="journal", rows=9, age_s=None)},
        {"id": "f", "state": "ok", "on_disk": None, "warning": None},
    ]
    views = status_views(snap)
    assert views["db"]["disk"] == {
        "label": "1.2k",
        "title": "1,234 rows buffered (2.1 MB, oldest 35s): buffer full",
        "warn": True,
    }
    assert views["src"]["disk"] == {
        "label": "9",
        "title": "9 rows journaled (2.1 MB)",
        "warn": False,
    }
    assert "disk" not in views["f"]
    assert [compact(n) for n in (0, 999, 1000, 12_345, 4_100_000)] == [
        "0",
        "999",
        "1.0k",
        "12k",
        "4.1M",
    ]


def test_folder_mode_opens_only_flows_listed_in_the_folder(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(SAMPLE)
    (tmp_path / "notes.txt").write_text("not a flow")
    editor = Editor(EditorConfig(tmp_path, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            for name in ("notes.txt", "missing.yaml"):
                await user.open(f"/edit/{name}")
                await user.should_see(f"No flow {name}")
            assert editor.model is None

    run(scenario)


def test_copy_paste_import_and_export_from_the_toolbar_and_canvas(tmp_path: Path) -> None:
    flow = tmp_path / "mq.yaml"
    flow.write_text(
        "version: 1\nnodes:\n  src:\n    type: mqtt_in\n    password: hunter2\n"
        "    wires: [out]\n  out:\n    type: debug\n"
    )
    editor = Editor(EditorConfig(flow, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            model = editor.model
            canvas_op(user, op="copy", nodes=["src", "out"])
            canvas_op(user, op="paste", x=400, y=300)
            assert [t.node for t in model.flow().nodes["mqtt_in1"].wires["out"]] == ["debug1"]
            canvas = user.find(FlowCanvas).elements.pop()
            assert canvas.selection == (["mqtt_in1", "debug1"], [])
            canvas_op(user, op="undo")
            assert "mqtt_in1" not in model.nodes
            canvas_op(user, op="redo")
            assert "mqtt_in1" in model.nodes

            user.find(marker="export-flow-yaml").click()
            exported = (await user.download.next()).text
            assert "hunter2" not in exported and "password: '******'" in exported

            user.find(marker="import").click()
            user.find(marker="import-text").type(
                "nodes:\n  a:\n    type: inject\n    wires: [b]\n  b:\n    type: debug\n"
            )
            user.find(marker="import-ok").click()
            assert [t.node for t in model.flow().nodes["inject1"].wires["out"]] == ["debug2"]
            await user.should_see("Imported 2 node(s)")

    run(scenario)


def test_an_error_a_node_raises_shows_on_that_node(tmp_path: Path) -> None:
    flow = tmp_path / "bad.yaml"
    flow.write_text(
        "version: 1\nnodes:\n  src:\n    type: inject\n    interval: 0.2\n"
        "    rows: [{value: 1.0}]\n    wires: [calc]\n"
        "  calc:\n    type: compute\n    columns: {y: no_such_column * 2}\n    wires: [show]\n"
        "  show:\n    type: debug\n"
    )
    editor = Editor(EditorConfig(flow))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            canvas = user.find(FlowCanvas).elements.pop()
            await eventually(
                lambda: (canvas.props["status"].get("calc") or {}).get("error"), "calc's error"
            )
            assert "no_such_column" in canvas.props["status"]["calc"]["error"]
            assert canvas.props["status"]["src"]["error"] is None

    run(scenario)


class Down(Sink[NodeConfig]):
    """A database that refuses every connection: its batches wait in the buffer."""

    def write(self, batch: Batch) -> None:
        raise ConnectionRefusedError("db down")


def test_a_sink_buffering_on_disk_gets_an_amber_badge(tmp_path: Path) -> None:
    flow = tmp_path / "buffered.yaml"
    flow.write_text(
        "version: 1\nsettings: {drain_timeout: 0.5}\nnodes:\n"
        "  src:\n    type: inject\n    interval: 0.1\n"
        "    rows: [{value: 1.0}]\n    wires: [db]\n"
        "  db:\n    type: down\n    retry: {initial: 0.05, max: 0.1}\n    buffer: {}\n"
    )
    registry = Registry.from_entry_points()
    registry.register("down", Down)
    editor = Editor(EditorConfig(flow), registry)

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            canvas = user.find(FlowCanvas).elements.pop()

            def badge() -> dict[str, Any]:
                return canvas.props["status"].get("db", {}).get("disk") or {}

            await eventually(lambda: badge().get("warn", False), "db's amber badge")
            assert badge()["label"] != "0" and "rows buffered" in badge()["title"]
            assert "disk" not in canvas.props["status"]["src"]  # no buffer of its own

    run(scenario)


def test_every_installed_type_gets_a_form(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            for name in editor.registry.names():
                added = editor.model.new_id(name)
                canvas_op(user, op="drop", type=name, x=0, y=0)
                assert editor.model.node_type(added) == name
                for field in editor.registry.describe(name)["schema"].get("properties", {}):
                    await user.should_see(marker=f"field-{field}")

    run(scenario)


def test_an_edit_in_one_tab_shows_in_another(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            other = User(
                httpx.AsyncClient(transport=httpx.ASGITransport(core.app), base_url="http://test")
            )
            async with other.http_client:
                await other.open("/")
                theirs = other.find(FlowCanvas).elements.pop()
                canvas_op(user, op="drop", type="debug", x=10, y=10)
                await eventually(
                    lambda: "debug1" in [n["id"] for n in theirs.props["flow"]["nodes"]],
                    "the other tab's canvas",
                )
                await other.should_see(marker="dirty")

    run(scenario)


def test_debug_panel_pause_filter_and_clear_and_chart_series() -> None:
    panels: dict[str, Any] = {}

    def page() -> None:
        panels["debug"] = DebugPanel()
        panels["chart"] = ChartPanel(lambda: ["show"])
        panels["chart"].refresh_nodes()

    def seen(sensor: str, value: float) -> Seen:
        stamp = pd.Timestamp("2026-01-01T00:00:00Z")
        frame = pd.DataFrame({"timestamp": [stamp], "sensor": [sensor], "value": [value]})
        return Seen("show", 1.0, frame)

    async def scenario() -> None:
        async with user_simulation(root=page) as user:
            await user.open("/")
            debug, chart = panels["debug"], panels["chart"]
            with user:
                debug.add([seen("furnace", 1.5), seen("roll", 2.5)])
                chart.add([seen("furnace", 1.5), seen("roll", 2.5)])
            await user.should_see("2 of 2 batches")
            user.find(marker="debug-filter").type("roll")
            await user.should_see("1 of 2 batches")
            assert [s.frame["sensor"][0] for s in debug.visible()] == ["roll"]
            user.find(marker="debug-pause").click()
            with user:
                debug.add([seen("furnace", 9.0)])
            await user.should_see("1 of 2 batches (paused)")
            user.find(marker="debug-clear").click()
            await user.should_see("0 of 0 batches (paused)")
            assert chart.columns.value == ["value"]  # chosen by default
            series = {s["name"]: s["data"] for s in chart.chart.options["series"]}
            assert series == {"furnace": [[1767225600000, 1.5]], "roll": [[1767225600000, 2.5]]}

    run(scenario)


def test_a_file_that_does_not_parse_shows_its_problems(tmp_path: Path) -> None:
    flow = tmp_path / "broken.yaml"
    flow.write_text("version: 1\nnodes:\n  a: [unclosed\n")
    editor = Editor(EditorConfig(flow))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await user.should_see("broken.yaml cannot be opened:")
            await user.should_see("invalid YAML")
            assert editor.host is None

    run(scenario)


def test_key_value_rows_edit_a_mapping_field(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            canvas_op(user, op="open", node="deviation")
            assert len(user.find(marker="columns-value").elements) == 3
            user.find(marker="columns-add").click()
            keys = user.find(marker="columns-key").elements
            values = user.find(marker="columns-value").elements
            new_key = next(e for e in keys if not e.value)
            new_value = next(e for e in values if not e.value)
            new_key.value, new_value.value = "hot", "value > 1250"
            user.find(marker="columns-value").trigger("blur")
            columns = editor.model.form_values("deviation")["columns"]
            assert list(columns) == ["setpoint", "deviation", "abs_deviation", "hot"]
            removes = user.find(marker="columns-remove").elements
            assert len(removes) == 4
            first = min(removes, key=lambda e: e.id)  # the setpoint row's
            UserInteraction(user, {first}, None).click()
            columns = editor.model.form_values("deviation")["columns"]
            assert list(columns) == ["deviation", "abs_deviation", "hot"]
            assert "1200.0" not in editor.model.text

    run(scenario)


SECRET_FLOW = """\
version: 1
nodes:
  src:
    type: mqtt_in
    password: hunter2
    wires: [hot]
  hot:
    type: filter
    query: value > 3
    wires: [show]
  show:
    type: debug
  ref:
    type: mqtt_in
    password: ${MQ_PASS}
    wires: [show]
layout:
  src: {x: 80, y: 80}
  hot: {x: 300, y: 80}
  show: {x: 520, y: 80}
  ref: {x: 80, y: 200}
"""


def test_export_offers_the_flow_or_the_selection_as_yaml_or_json(tmp_path: Path) -> None:
    flow = tmp_path / "mq.yaml"
    flow.write_text(SECRET_FLOW)
    editor = Editor(EditorConfig(flow, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            user.find(marker="export-selection-yaml").click()
            await user.should_see("Nothing selected")
            canvas_op(user, op="select", nodes=["src", "hot"], wires=[])
            user.find(marker="export-selection-json").click()
            picked = json.loads((await user.download.next()).text)
            assert list(picked["nodes"]) == ["src", "hot"]
            assert picked["nodes"]["src"]["wires"] == ["hot"]
            assert "wires" not in picked["nodes"]["hot"]  # its wire leaves the selection
            assert picked["nodes"]["src"]["password"] == MASK
            assert picked["layout"] == {"src": {"x": 80, "y": 80}, "hot": {"x": 300, "y": 80}}
            user.find(marker="export-selection-yaml").click()
            text = (await user.download.next()).text
            assert "hunter2" not in text and "password: '******'" in text
            assert "show" not in text and "ref" not in text
            user.find(marker="export-flow-json").click()
            whole = json.loads((await user.download.next()).text)
            assert list(whole["nodes"]) == ["src", "hot", "show", "ref"]
            assert whole["nodes"]["src"]["password"] == MASK
            assert whole["nodes"]["ref"]["password"] == "${MQ_PASS}"  # a reference, kept
            assert "hunter2" in flow.read_text()  # the file itself is untouched

    run(scenario)


def test_import_a_node_red_flows_json_file_lists_what_did_not_map(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, run=False))
    data = (Path(__file__).resolve().parents[1] / "data" / "nodered" / "flows.json").read_bytes()

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            model = editor.model
            before = set(model.nodes)
            user.find(marker="import").click()
            upload = user.find(marker="import-file").elements.pop()
            assert isinstance(upload, ui.upload)
            await upload.handle_uploads([SmallFileUpload("flows.json", "application/json", data)])
            # one report (the text `flowengine import` prints), not a toast per node
            await user.should_see("Imported from Node-RED (flows.json): 14 of 15 nodes")
            await user.should_see("ui_gauge 'Furnace gauge' (a10000000000000b): dashboard")
            added = set(model.nodes) - before
            assert {model.node_type(i) for i in added} >= {"mqtt_in", "switch", "debug"}
            canvas = user.find(FlowCanvas).elements.pop()
            assert set(canvas.selection[0]) == added
            await user.should_not_see(marker="import-file")  # the dialog is gone
            user.find(marker="import-report-close").click()

            user.find(marker="import").click()
            upload = user.find(marker="import-file").elements.pop()
            await upload.handle_uploads([SmallFileUpload("x.yaml", "", b"version: 1\n")])
            await user.should_see("no 'nodes' to import")
            assert set(model.nodes) - before == added

    run(scenario)


def test_folder_mode_creates_a_json_flow_refuses_bad_names_and_links_back(
    tmp_path: Path,
) -> None:
    (tmp_path / "line3.yaml").write_text(SAMPLE)
    editor = Editor(EditorConfig(tmp_path, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            user.find(marker="new-flow").type(".yaml")
            user.find(marker="create-flow").click()
            await user.should_see("ends in .yaml, .yml or .json")
            user.find(marker="new-flow").clear().type("pumps.json")
            user.find(marker="create-flow").click()
            await user.should_see(marker="canvas")
            assert json.loads((tmp_path / "pumps.json").read_text())["nodes"] == {}
            assert editor.model is not None and editor.model.path.name == "pumps.json"
            canvas_op(user, op="drop", type="debug", x=10, y=10)
            user.find(marker="deploy").click()
            await user.should_see("Saved")
            saved = json.loads((tmp_path / "pumps.json").read_text())
            assert saved["nodes"] == {"debug1": {"type": "debug"}}
            user.find(marker="folder").click()
            await user.should_see(marker="flow-pumps.json")
            await user.should_see(marker="flow-line3.yaml")
            await user.should_not_see(marker="canvas")

    run(scenario)


def test_an_empty_field_shows_its_default_and_types_get_their_controls(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            canvas_op(user, op="drop", type="features", x=0, y=0)
            size = user.find(marker="prop-size").elements.pop()
            assert isinstance(size, ui.input) and size.value == ""
            assert size.props["placeholder"] == "10s"
            await user.should_see("(default: 10s)", marker="field-size")
            chips = user.find(marker="prop-aggregations").elements.pop()
            assert isinstance(chips, ui.input_chips)
            await user.should_see("(default: ['mean', 'std', 'min', 'max', 'slope'])")
            chips = user.find(marker="prop-sensors").elements.pop()
            chips.value = ["furnace_temp", "roll_force"]
            assert editor.model.form_values("features1")["sensors"] == [
                "furnace_temp",
                "roll_force",
            ]
            for type_name, field in (("filter", "query"), ("python", "code")):
                canvas_op(user, op="drop", type=type_name, x=0, y=0)
                code = user.find(marker=f"prop-{field}").elements.pop()
                assert isinstance(code, ui.textarea)
                assert "font-mono" in code.props["input-class"]
            canvas_op(user, op="drop", type="file", x=0, y=0)
            append = user.find(marker="prop-append").elements.pop()
            assert isinstance(append, ui.switch) and append.value is True  # the default, on
            user.find(marker="prop-append").click()
            assert editor.model.form_values("file1")["append"] is False

    run(scenario)


def test_reload_from_disk_drops_local_edits(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            model = editor.model
            canvas_op(user, op="move", positions={"plc": {"x": 0, "y": 0}})
            assert model.dirty
            line3.write_text(line3.read_text().replace("seed: 3", "seed: 4"))
            await user.should_see(marker="disk-warning", retries=60)
            user.find(marker="disk-reload").click()
            await user.should_not_see(marker="disk-warning")
            assert model.text == line3.read_text()
            assert model.form_values("plc")["seed"] == 4
            assert model.position("plc") == (80, 160)
            assert not model.dirty and not model.changed_on_disk()
            await user.should_not_see(marker="dirty")
            canvas = user.find(FlowCanvas).elements.pop()
            plc = next(n for n in canvas.props["flow"]["nodes"] if n["id"] == "plc")
            assert (plc["x"], plc["y"]) == (80, 160)

    run(scenario)


def test_keep_my_version_lets_the_next_deploy_overwrite_the_file(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            model = editor.model
            canvas_op(user, op="move", positions={"plc": {"x": 0, "y": 0}})
            line3.write_text(line3.read_text() + "# changed elsewhere\n")
            await user.should_see(marker="disk-warning", retries=60)
            user.find(marker="disk-keep").click()
            await user.should_not_see(marker="disk-warning")
            assert model.position("plc") == (0, 0)  # my edits stay
            user.find(marker="deploy").click()
            await user.should_see("Saved")
            text = line3.read_text()
            assert "plc: {x: 0, y: 0}" in text and "# changed elsewhere" not in text
            assert not model.dirty and not model.changed_on_disk()

    run(scenario)

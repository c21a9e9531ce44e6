"""OPC UA failover: `server_url` as a list, against two real asyncua servers (one killed and
restarted under a running flow), the config checks of the list, and the editor's form for it."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flowengine.runtime import Runtime
from flowengine.testing import check_text
from tests.helpers.cli import flowengine
from tests.helpers.peers import free_port, until
from tests.nodes.opcua.test_opcua import UaServer

asyncua = pytest.importorskip("asyncua")
ua = asyncua.ua

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
TEMP = "ns=2;i=1001"
SETPOINT = "ns=2;i=2001"


def stamp(i: int) -> dt.datetime:
    """Reading ``i``'s source timestamp: redundant servers mirror the same device."""
    return T0 + dt.timedelta(seconds=i)


class Plc(UaServer):
    """An asyncua server with a temperature whose first value is given (with its source
    timestamp) before the server listens, and a writable setpoint."""

    def __init__(self, port: int, first: int = 0) -> None:
        super().__init__(port)
        self.first = first

    async def _start(self) -> None:
        server = asyncua.Server()
        await server.init()
        server.set_endpoint(self.url)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace("urn:flowengine:test")
        line = await server.nodes.objects.add_object(ua.NodeId("Line3", idx), f"{idx}:Line3")
        double = ua.VariantType.Double
        temp = await line.add_variable(ua.NodeId(1001, idx), f"{idx}:Temperature", 0.0, double)
        await temp.write_value(self._value(self.first))
        setpoint = await line.add_variable(ua.NodeId(2001, idx), f"{idx}:Setpoint", 0.0, double)
        await setpoint.set_writable()
        await server.start()
        self.server = server

    @staticmethod
    def _value(i: int) -> Any:
        return ua.DataValue(ua.Variant(float(i), ua.VariantType.Double), SourceTimestamp=stamp(i))

    def put(self, i: int) -> None:
        """Reading ``i`` (value i, source time T0 + i s)."""
        self.call(self.server.get_node(TEMP).write_value(self._value(i)))


def source(urls: list[str], mode: str, **cfg: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "settings": {"retry": {"initial": 0.2, "max": 0.5}},
        "nodes": {
            "src": {
                "type": "opcua_in",
                "server_url": urls,
                "mode": mode,
                "nodes": {TEMP: "temp"},
                "sampling_interval": 0.05,
                "batch_interval": 0.1,
                "timeout": 1.0,
                "failback_interval": 0.5,
                **cfg,
                "wires": ["cap"],
            },
            "cap": {"type": "capture"},
        },
    }


def rows(runtime: Runtime) -> pd.DataFrame:
    frames = [b.frame for b in runtime.node("cap").batches]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def values(runtime: Runtime) -> list[float]:
    frame = rows(runtime)
    return [] if frame.empty else frame["value"].tolist()


def text(runtime: Runtime, node: str = "src") -> str:
    return runtime.stats[node].text


def test_subscription_fails_over_and_back_without_losing_or_repeating_a_reading(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Readings 0..9 are written to every live server (a redundant pair), each only once the
    one before has arrived. The primary is killed after 3, restarted after 6: the flow gets
    each reading exactly once, with its source timestamp, from whichever server serves."""
    caplog.set_level(logging.INFO)
    port = free_port()
    primary, backup = Plc(port).start(), Plc(free_port()).start()
    live = [primary, backup]
    runtime = Runtime(check_text(source([primary.url, backup.url], "subscription")))

    async def step(i: int, task: asyncio.Task[Any]) -> None:
        for plc in live:
            await asyncio.to_thread(plc.put, i)
        await until(lambda: values(runtime)[-1:] == [float(i)], task, what=f"reading {i}")

    async def main() -> None:
        nonlocal primary
        task = asyncio.create_task(runtime.run())
        await until(lambda: values(runtime) == [0.0], task)
        await until(lambda: "(primary)" in text(runtime), task)
        for i in range(1, 4):
            await step(i, task)
        live.remove(primary)
        await asyncio.to_thread(primary.close)  # killed under the running flow
        await until(lambda: f"{backup.url} (backup 1 of 2)" in text(runtime), task)
        for i in range(4, 7):
            await step(i, task)
        primary = await asyncio.to_thread(lambda: Plc(port, first=6).start())  # back, mirrored
        live.append(primary)
        await until(lambda: f"connected to {primary.url} (primary)" in text(runtime), task)
        for i in range(7, 10):
            await step(i, task)
        runtime.stop()
        await task

    try:
        asyncio.run(main())
    finally:
        primary.close()
        backup.close()
    got = rows(runtime)
    assert got["value"].tolist() == [float(i) for i in range(10)]  # none lost, none twice
    assert list(got["timestamp"]) == [pd.Timestamp(stamp(i)) for i in range(10)]
    stats = runtime.stats["src"]
    assert stats.counters["failovers"] == 1 and stats.counters["failbacks"] == 1
    assert stats.counters["repeats_dropped"] >= 1  # the primary's first value, seen already
    assert stats.retries >= 1
    logged = caplog.text
    assert f"failover: {primary.url} (primary) lost, {backup.url} (backup 1 of 2) serves" in logged
    assert f"failback: {primary.url} (primary) serves again" in logged


def test_polling_reads_the_backup_while_the_primary_is_down() -> None:
    """Polling: the two servers hold different values, so each row says who served it."""
    port = free_port()
    primary, backup = Plc(port, first=1).start(), Plc(free_port(), first=2).start()
    runtime = Runtime(check_text(source([primary.url, backup.url], "polling")))

    async def main() -> None:
        nonlocal primary
        task = asyncio.create_task(runtime.run())
        await until(lambda: values(runtime)[-1:] == [1.0], task)
        await asyncio.to_thread(primary.close)
        await until(lambda: values(runtime)[-1:] == [2.0], task)
        assert f"connected to {backup.url} (backup 1 of 2)" in text(runtime)
        primary = await asyncio.to_thread(lambda: Plc(port, first=1).start())
        await until(lambda: values(runtime)[-1:] == [1.0], task)
        assert f"connected to {primary.url} (primary)" in text(runtime)
        runtime.stop()
        await task

    try:
        asyncio.run(main())
    finally:
        primary.close()
        backup.close()
    seen = values(runtime)
    switches = sum(1 for a, b in itertools.pairwise(seen) if a != b)
    assert switches == 2  # primary -> backup -> primary, no flapping
    assert runtime.stats["src"].counters["failovers"] == 1


def test_both_down_at_start_retries_naming_every_server(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing answers: `retrying`, with an error that names each server tried (passwords
    masked); once the backup comes up the flow runs on it."""
    dead, later = free_port(), free_port()
    urls = [f"opc.tcp://op:hunter2@127.0.0.1:{dead}", f"opc.tcp://127.0.0.1:{later}/"]
    runtime = Runtime(check_text(source(urls, "polling", failback_interval=0)))
    backup: Plc | None = None

    async def main() -> None:
        nonlocal backup
        task = asyncio.create_task(runtime.run())
        await until(lambda: runtime.stats["src"].state == "retrying", task)
        error = runtime.stats["src"].last_error
        assert "no OPC UA server answered" in error
        assert f"opc.tcp://op:******@127.0.0.1:{dead}:" in error
        assert f"opc.tcp://127.0.0.1:{later}/:" in error
        backup = await asyncio.to_thread(lambda: Plc(later, first=2).start())
        await until(lambda: values(runtime)[-1:] == [2.0], task)
        assert f"connected to opc.tcp://127.0.0.1:{later}/ (backup 1 of 2)" in text(runtime)
        runtime.stop()
        await task

    try:
        asyncio.run(main())
    finally:
        if backup is not None:
            backup.close()
    assert "hunter2" not in caplog.text
    assert (
        f"failover: opc.tcp://op:******@127.0.0.1:{dead} (primary) did not answer, "
        f"opc.tcp://127.0.0.1:{later}/ (backup 1 of 2) serves; "
        f"opc.tcp://op:******@127.0.0.1:{dead}: "
    ) in caplog.text


def test_sink_writes_to_the_backup_then_to_the_primary_again() -> None:
    """opcua_out with two servers: a setpoint written every 0.1 s lands on the primary, on
    the backup while the primary is down, and on the primary again once it is back."""
    port = free_port()
    primary, backup = Plc(port).start(), Plc(free_port()).start()
    flow = {
        "version": 1,
        "nodes": {
            "feed": {
                "type": "inject",
                "interval": 0.1,
                "rows": [{"sensor": SETPOINT, "value": 7.5}],
                "wires": ["out"],
            },
            "out": {
                "type": "opcua_out",
                "server_url": [primary.url, backup.url],
                "timeout": 1.0,
                "failback_interval": 0.3,
            },
        },
    }
    runtime = Runtime(check_text(flow))

    def written(plc: Plc) -> bool:
        return bool(plc.get(SETPOINT) == 7.5)

    async def main() -> None:
        nonlocal primary
        task = asyncio.create_task(runtime.run())
        await until(lambda: written(primary), task)
        assert not written(backup)
        await asyncio.to_thread(primary.close)
        await until(lambda: written(backup), task)
        await until(
            lambda: f"connected to {backup.url} (backup 1 of 2)" in text(runtime, "out"), task
        )
        primary = await asyncio.to_thread(lambda: Plc(port).start())  # its setpoint is 0 again
        await until(lambda: written(primary), task)
        await until(lambda: f"connected to {primary.url} (primary)" in text(runtime, "out"), task)
        runtime.stop()
        await task

    try:
        asyncio.run(main())
    finally:
        primary.close()
        backup.close()
    counters = runtime.stats["out"].counters
    assert counters["failovers"] == 1 and counters["failbacks"] == 1
    assert counters["writes"] >= 3


def test_seed_connector_fails_over_in_read_data() -> None:
    from flowengine.connectors import OPCUAConnector

    port = free_port()
    primary, backup = Plc(port, first=1).start(), Plc(free_port(), first=2).start()
    opcua = OPCUAConnector(
        {"server_url": [primary.url, backup.url], "nodes": [TEMP], "timeout": 1.0}
    )
    try:
        assert opcua.connect()
        assert opcua.read_data()["value"].tolist() == [1.0]  # type: ignore[index]
        assert opcua.active_server == f"{primary.url} (primary)"
        primary.close()
        data = None
        for _ in range(50):  # the loss is noticed within the watchdog interval (timeout)
            data = opcua.read_data()
            if data is not None and data["value"].tolist() == [2.0]:
                break
        assert data is not None and data["value"].tolist() == [2.0]
        assert opcua.active_server == f"{backup.url} (backup 1 of 2)"
        assert opcua.failovers == 1
    finally:
        opcua.disconnect()
        primary.close()
        backup.close()


def test_editor_form_edits_a_server_list(tmp_path: Path) -> None:
    """`str | list[str]` falls to the form's YAML control: a list shows as a YAML list, and
    typing one URL or a list both store what the flow file wants."""
    pytest.importorskip("nicegui")
    from nicegui import app
    from nicegui.storage import Storage

    from flowengine.nodes.opcua.source import OpcuaInConfig
    from flowengine.ui.app import Editor, EditorConfig
    from flowengine.ui.canvas import FlowCanvas
    from flowengine.ui.fields import field_specs, from_yaml, to_yaml
    from tests.helpers.uiuser import editing, run

    Storage.path = tmp_path / "storage"  # what the editor tests' storage_in_tmp fixture does
    app.storage = Storage()

    spec = next(s for s in field_specs(OpcuaInConfig.model_json_schema()) if s.name == "server_url")
    assert spec.kind == "yaml" and spec.required
    urls = ["opc.tcp://a:4840", "opc.tcp://b:4841"]
    assert from_yaml(to_yaml(urls)) == urls
    assert from_yaml("opc.tcp://a:4840") == "opc.tcp://a:4840"
    path = tmp_path / "f.yaml"
    path.write_text(
        "version: 1\nnodes:\n  src:\n    type: opcua_in\n    server_url: [opc.tcp://a:4840]\n"
        "    nodes: [ns=2;i=1001]\n    wires: [out]\n  out: {type: debug}\n"
    )
    editor = Editor(EditorConfig(path, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            user.find(FlowCanvas).trigger("change", {"op": "open", "node": "src"})
            area = user.find(marker="prop-server_url").elements.pop()
            assert from_yaml(area.value) == ["opc.tcp://a:4840"]
            area.value = "- opc.tcp://a:4840\n- opc.tcp://b:4841\n"
            user.find(marker="prop-server_url").trigger("blur")
            assert editor.model.form_values("src")["server_url"] == urls
            area.value = "opc.tcp://c:4840"
            user.find(marker="prop-server_url").trigger("blur")
            assert editor.model.form_values("src")["server_url"] == "opc.tcp://c:4840"
            area.value = "- opc.tcp://a:4840\n- b:4841\n"
            user.find(marker="prop-server_url").trigger("blur")
            await user.should_see("entry [1]: 'b:4841' must start with opc.tcp://")

    run(scenario)


def test_bad_entry_is_named_by_its_index() -> None:
    flow = """\
version: 1
nodes:
  src:
    type: opcua_in
    server_url: {urls}
    nodes: [ns=2;i=1001]
    wires: [out]
  out: {{type: debug}}
"""

    def errors(urls: str) -> list[str]:
        return [str(p) for p in check_text(flow.format(urls=urls), path="f.yaml").errors]

    (error,) = errors("[opc.tcp://a:4840, 'plc:4840']")
    assert error.startswith("f.yaml:5:5: node 'src': field 'server_url': entry [1]: ")
    assert "'plc:4840' must start with opc.tcp://" in error
    (error,) = errors("[opc.tcp://a:4840, 'opc.tcp://op:hunter2@b']")
    assert "entry [1]: 'opc.tcp://op:******@b' needs a port" in error
    (error,) = errors("[opc.tcp://a:4840, opc.tcp://a:4840]")
    assert "entry [1]: 'opc.tcp://a:4840' is listed twice" in error
    (error,) = errors("[]")
    assert "list at least one server" in error
    assert errors("[opc.tcp://a:4840, 'opc.tcp://[::1]:4841']") == []
    assert errors("opc.tcp://a:4840") == []  # one value, as ever


def test_a_list_round_trips_through_flowengine_validate(tmp_path: Path) -> None:
    import os

    path = tmp_path / "f.yaml"
    path.write_text(
        "version: 1\nnodes:\n  src:\n    type: opcua_in\n    server_url:\n"
        "      - opc.tcp://plc-a:4840\n      - opc.tcp://plc-b:4841\n"
        "    failback_interval: 10\n    nodes: [ns=2;i=1001]\n    wires: [out]\n"
        "  out: {type: debug}\n"
    )
    done = flowengine("validate", str(path), env=dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    bad = path.read_text().replace("opc.tcp://plc-b:4841", "plc-b:4841")
    path.write_text(bad)
    done = flowengine("validate", str(path), env=dict(os.environ))
    assert done.returncode != 0
    assert "entry [1]: 'plc-b:4841' must start with opc.tcp://" in done.stdout + done.stderr

"""An honest import of a Tasmota-style Node-RED flow (issue 11, item 5): the report names every
node that behaves differently, and the imported flow, run against a real broker, publishes
(the commands of its injects) and reads "3.2V" as 3.2 as parseFloat did."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from flowengine.nodes.nodered.convert import ImportResult, import_nodered, report, to_yaml
from flowengine.runtime import Runtime
from flowengine.testing import check_text, run_flow
from tests.helpers.cli import flowengine
from tests.helpers.mqtt import publish

TASMOTA = Path(__file__).resolve().parents[2] / "data" / "nodered" / "tasmota.json"


@pytest.fixture(scope="module")
def imported() -> ImportResult:
    return import_nodered(TASMOTA.read_text(encoding="utf-8"))


def kinds(result: ImportResult) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for d in result.differences:
        out.setdefault(d.node, set()).add(d.kind)
    return out


def test_the_report_names_each_node_that_behaves_differently(imported: ImportResult) -> None:
    assert kinds(imported) == {
        "plug_sensor": {"payloads"},
        "power_from_energy": {"function"},
        "plug_command": {"topics", "payloads"},
        "plug_on": {"click-only"},
        "plug_off": {"click-only"},
        "plug_state": {"payloads"},
        "plug_lwt": {"payloads"},
        "battery_voltage": {"payloads"},
        "parsefloat": {"numbers"},
    }
    assert {u.type for u in imported.unmapped} == {"ui_gauge", "ui_switch", "ui_text", "ui_chart"}
    text = report(imported, "tasmota.json")
    assert text.startswith(
        "Imported from Node-RED (tasmota.json): 16 of 20 nodes; 9 behave differently, "
        "4 not imported."
    )
    assert "  plug_on (was inject 'Plug ON'):\n    - click-only: " in text
    assert "ui_chart 'Voltage' (u000000000000003): dashboard widget: not supported, dropped" in text
    assert to_yaml(imported, "tasmota.json").startswith("# " + text.splitlines()[0])


def test_topics_become_a_column_and_functions_python_stubs(imported: ImportResult) -> None:
    nodes = imported.flow["nodes"]
    assert nodes["plug_on"]["rows"] == [
        {"sensor": "cmnd/tasmota_plug/POWER", "value": "ON", "topic": "cmnd/tasmota_plug/POWER"}
    ]
    assert nodes["plug_command"]["topic"] == "{topic}"  # Node-RED's msg.topic
    stub = nodes["power_from_energy"]
    assert stub["type"] == "python"
    assert "#     msg.payload = msg.payload.ENERGY.Power;" in stub["code"]
    assert "translate me" in stub["code"].split("def process")[1]
    # parseFloat on an MQTT input: the text payloads leave mqtt_in on `error`
    assert nodes["battery_voltage"]["wires"] == {"error": ["parsefloat"], "out": ["voltage_v"]}
    assert nodes["parsefloat"]["operations"][-1] == {
        "op": "convert",
        "column": "value",
        "dtype": "number",
    }


def test_the_cli_prints_the_report_and_exits_non_zero(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    done = flowengine("import", str(TASMOTA), "-o", str(tmp_path / "plug.yaml"), env=cli_env)
    assert done.returncode == 1, done.stderr  # dashboard nodes dropped; the stub needs code
    assert "Behaves differently (9 nodes" in done.stderr
    assert "Not imported (4 nodes" in done.stderr
    assert "16 nodes imported, 9 behave differently, 4 not imported" in done.stderr


def test_convert_to_number_reads_a_leading_number_like_parsefloat() -> None:
    texts = ["3.2V", " -1e3 W", ".5", "abc", "", None, "12"]
    result = run_flow(
        {
            "src": {"type": "inject", "rows": [{"value": t} for t in texts], "wires": ["num"]},
            "num": {
                "type": "change",
                "operations": [{"op": "convert", "column": "value", "dtype": "number"}],
                "wires": ["cap"],
            },
            "cap": {"type": "capture"},
        }
    )
    values = result.frame("cap")["value"].tolist()
    assert values[:3] == [3.2, -1000.0, 0.5] and values[-1] == 12.0
    assert all(v != v for v in values[3:6])  # NaN, as parseFloat("abc") is


class Subscriber:
    """Collects what the broker delivers on a topic filter (paho's own thread)."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[tuple[str, Any]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append(
            (m.topic, json.loads(m.payload))
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10), "not subscribed"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def until(condition: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_the_imported_flow_publishes_and_parses_like_node_red(
    imported: ImportResult, broker: Any
) -> None:
    flow = json.loads(json.dumps(imported.flow))
    for node in flow["nodes"].values():
        if node["type"] in ("mqtt_in", "mqtt_out"):
            node["broker_port"] = broker.port
    flow["settings"] = {"allow_code": True}  # the function's python stub
    runtime = Runtime(check_text(flow))
    commands = Subscriber(broker.port, "cmnd/tasmota_plug/#")
    sources = [i for i, n in flow["nodes"].items() if n["type"] == "mqtt_in"]

    async def main() -> None:
        task = asyncio.create_task(runtime.run())
        try:
            await until(lambda: all(runtime.stats[s].state == "ok" for s in sources), "subscribed")
            # the click-only injects wait for their button (once: false), as in Node-RED
            injects = {i: n for i, n in flow["nodes"].items() if n["type"] == "inject"}
            clicks = [i for i, n in injects.items() if not ({"interval", "cron"} & set(n))]
            assert sorted(clicks) == ["plug_off", "plug_on"]
            assert all(injects[i]["once"] is False for i in clicks)
            await until(lambda: len(commands.messages) >= 1, "the STATUS inject's first firing")
            assert len(commands.messages) == 1  # ON and OFF wait for their buttons
            for node_id in clicks:
                await runtime.fire(node_id)
            await until(lambda: len(commands.messages) >= 3, "ON, OFF and STATUS")
            readings = [
                ("tele/tasmota_sensor/VOLTAGE", "3.2V"),
                ("tele/tasmota_sensor/VOLTAGE", 3.3),
            ]
            readings.append(("tele/tasmota_plug/SENSOR", {"Power": 2500}))
            await asyncio.to_thread(publish, broker.port, readings)
            voltage = runtime.node("voltage_v")
            await until(lambda: sum(len(b.frame) for b in voltage.recent) >= 2, "two voltages")
            stub = runtime.stats["power_from_energy"]
            await until(lambda: stub.errors >= 1, "the stub's error")
        finally:
            runtime.stop()
            await asyncio.wait_for(task, 20)
        values = sorted(v for b in voltage.recent for v in b.frame["value"])
        assert values == [3.2, 3.3]  # "3.2V" as parseFloat read it, 3.3 as a JSON number
        assert "translate me: this was a Node-RED function node" in stub.last_error

    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        commands.close()
    published = sorted((topic, row["value"]) for topic, row in commands.messages)
    assert published == [
        ("cmnd/tasmota_plug/POWER", "OFF"),
        ("cmnd/tasmota_plug/POWER", "ON"),
        ("cmnd/tasmota_plug/STATUS", "8"),
    ]  # each a JSON row, not Node-RED's bare "ON" (the report says so)

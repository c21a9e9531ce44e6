"""`flowengine simulate` serves the plant over OPC UA; `flowengine browse` and the shipped
flow read it (the server runs in another process, as users run it)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from flowengine.testing import run_flow
from tests.helpers.cli import REPO
from tests.helpers.peers import free_port, port_open, wait_until

pytest.importorskip("asyncua")

CLI = [sys.executable, "-m", "flowengine.cli"]


@pytest.fixture(scope="module")
def plant() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "simulate", "--opcua", f"127.0.0.1:{port}", "--rate", "10", "--sensors", "12"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 30, "the plant server")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        yield f"opc.tcp://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_help_lists_the_commands() -> None:
    out = subprocess.run([*CLI, "--help"], capture_output=True, text=True, check=True).stdout
    assert "browse" in out and "simulate" in out


def test_browse_json(plant: str) -> None:
    out = subprocess.run(
        [*CLI, "browse", plant, "--json", "--depth", "2"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    rows = {row["node_id"]: row for row in json.loads(out)}
    temp = rows["ns=2;i=1001"]
    assert temp["browse_name"] == "2:furnace_temp" and temp["data_type"] == "Double"
    assert 1000 < temp["value"] < 1400
    assert rows["ns=2;i=1002"]["browse_name"] == "2:roll_force"
    assert rows["ns=2;i=1003"]["browse_name"] == "2:cooling_water_flow"
    assert "ns=2;i=1012" in rows and rows["ns=2;s=Line3"]["node_class"] == "Object"


def test_browse_text_and_unreachable_server() -> None:
    out = subprocess.run(
        [*CLI, "browse", f"opc.tcp://127.0.0.1:{free_port()}", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0 and "Failed to connect to OPC UA server" in out.stderr


def test_line3_plant_flow_reads_the_plant(plant: str, tmp_path: Path) -> None:
    flow = tmp_path / "flows" / "line3-plant.yaml"
    flow.parent.mkdir()
    text = (REPO / "flows" / "line3-plant.yaml").read_text()
    result = run_flow(text, path=flow, env={"LINE3_OPCUA": plant}, duration=3.5)
    assert result.stats("plc")["rows_out"] >= 4 * 4  # four sensors, changing every tick
    raw = pd.read_csv(tmp_path / "out" / "line3-plant-raw.csv")
    assert set(raw["sensor"]) == {"furnace_temp", "roll_force", "cooling_water_flow", "strip_speed"}
    assert (raw["quality"] == "good").all() and len(raw) == result.stats("plc")["rows_out"]
    stamps = pd.to_datetime(raw["timestamp"], utc=True)
    temps = raw.loc[raw["sensor"] == "furnace_temp"]
    assert stamps.loc[temps.index].is_monotonic_increasing and temps["value"].nunique() > 1


def test_simulate_publishes_readings_to_mqtt(tmp_path: Path) -> None:
    import getpass
    import os
    import shutil

    import paho.mqtt.client as mqtt

    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(mosquitto):
        pytest.skip("the mosquitto binary is not installed")
    mqtt_port, opcua_port = free_port(), free_port()
    conf = tmp_path / "mosquitto.conf"  # as root, `user` keeps mosquitto able to run here
    conf.write_text(
        f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
    )
    broker = subprocess.Popen([mosquitto, "-c", str(conf)], stderr=subprocess.DEVNULL)
    got: list[tuple[str, dict]] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sim = None
    try:
        wait_until(lambda: port_open(mqtt_port), 10, "the private mosquitto")
        subscribed = threading.Event()
        sub.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload)))
        sub.on_subscribe = lambda *a: subscribed.set()
        sub.on_connect = lambda c, *a: c.subscribe("plant/line3/#", 1)
        sub.connect("127.0.0.1", mqtt_port)
        sub.loop_start()
        assert subscribed.wait(10)
        mqtt_args = ["--mqtt", f"127.0.0.1:{mqtt_port}", "--rate", "10"]
        sim = subprocess.Popen(
            [*CLI, "simulate", "--opcua", f"127.0.0.1:{opcua_port}", *mqtt_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        seeds = {"furnace_temp", "roll_force", "cooling_water_flow"}

        def arrived() -> bool:
            assert sim.poll() is None, sim.stdout.read() if sim.stdout else ""
            return seeds <= {p.get("sensor") for _, p in got} and len(got) >= 3 * 6

        wait_until(arrived, 30, "the simulated readings over MQTT")
    finally:
        sub.disconnect()
        sub.loop_stop()
        if sim is not None:
            sim.terminate()
            sim.wait(10)
        broker.terminate()
        broker.wait(10)
    readings = pd.DataFrame([{"topic": t, **p} for t, p in got])
    assert (readings["topic"] == "plant/line3/" + readings["sensor"]).all()
    assert pd.api.types.is_float_dtype(readings["value"]) and readings["value"].notna().all()
    temps = readings.loc[readings["sensor"] == "furnace_temp", "value"]
    assert ((temps > 1000) & (temps < 1400)).all()
    stamps = pd.to_datetime(readings["timestamp"], utc=True)
    now = pd.Timestamp.now(tz="UTC")
    assert (abs(now - stamps) < pd.Timedelta(minutes=1)).all()
    assert stamps[readings["sensor"] == "furnace_temp"].is_monotonic_increasing


def test_simulate_without_any_server_says_what_to_add() -> None:
    done = subprocess.run(
        [*CLI, "simulate", "--opcua", "off", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "--opcua off needs another server" in done.stderr
    assert "Traceback" not in done.stderr
